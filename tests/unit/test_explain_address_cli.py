"""``explain`` and ``inspect`` show the large-BAR computation."""

import io

from nova_gpu_ext.cmd import main as cli
from tests.unit.test_explain_cli import decide
from tests.unit.test_explain_cli import run

H100x4 = ('--sample', 'hgx_h100_4', '--spec', 'pci_passthrough:alias=h100:4',
          '--vcpus', '4', '--memory-mb', '16384')


def test_explain_shows_devices_bars_window_and_bits():
    code, text = run(*H100x4, '--firmware', 'uefi')
    assert code == 0, text
    assert 'Address space (large BARs, ovmf)' in text
    assert 'BAR1 128 GiB 64-bit pref' in text
    assert "driver emits: <maxphysaddr bits='44'/> + pdpe1gb" in text
    assert 'upstream XML (40 bits): 0 of 4' in text


def test_explain_json_and_operator_setting_too_small():
    code, result = decide(*H100x4[:4], 'hw:maxphysaddr_mode=emulate',
                          'hw:maxphysaddr_bits=40', *H100x4[4:])
    section = result['address_space']
    assert section['operator_bits'] == 40
    assert 'too few' in section['warning']
    assert section['needed'] == 4 * 256 << 30


def test_inspect_shows_host_limits_and_bars():
    out = io.StringIO()
    args = cli.build_parser().parse_args(['inspect', '--sample',
                                          'hgx_h100_4'])
    assert args.func(args, out=out) == 0
    text = out.getvalue()
    assert 'Address space: CPU 46 physical bits, IOMMU 48 bits' in text
    assert '0000:1b:00.0: 64-bit BARs BAR1 128 GiB, BAR3 32 MiB' in text
