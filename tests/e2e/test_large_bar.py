"""Large-BAR guests on real QEMU: our XML assigns every BAR, upstream's not.

Layer rule: e2e (marker ``e2e``). The XML is what ``GPULibvirtDriver``
defined in Nova's functional harness for 1 GiB, 1 vCPU UEFI q35 guests with
2 and 4 H100s (``benchmarks/dump_large_bar_xml.py``: fake sysfs of a host
whose GPUs have BAR1 128 GiB), once with our driver and once as upstream's
driver builds it (``[gpu_ext] enabled = false``). The boot lab removes the
hostdevs (no GPUs here); each is replaced by QEMU's ``pci-testdev`` with a
128 GiB 64-bit prefetchable BAR behind its own ``pcie-root-port``
(``<qemu:commandline>``). The guest kernel must give every test device's
BAR 2 an address with our XML, and log ``no space`` with upstream's.

Sandbox translation: ``<loader secure='no'/>`` loses its attribute (libvirt
9.0 refuses it next to ``firmware='efi'``; 9.2 accepts it); TCG cannot run
``host-model``, so the boot lab drops the CPU model and its features; where
our XML asks for 1 GiB pages the test keeps them (``qemu64`` + ``pdpe1gb``,
what host-model gives on a host with 1 GiB pages). QEMU's ``qemu64``
reports AuthenticAMD, so OVMF trusts upstream's 40 bits and opens a 128 GiB
window at 0xe000000000 (an Intel guest gets the 32 GiB classic one): both
are too small for two 128 GiB BARs.

Measured here (TCG, 2 shared cores): OVMF's boot grows with the address
width (40 bits 12 s, 43 bits 15 s, 46 bits 90 s with no device at all), so
the driver gives the smallest width that fits.
"""

import json
import os
import re
import subprocess
import sys

from lxml import etree
import pytest

from nova_gpu_ext.bootlab import runner

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
QEMU_NS = 'http://libvirt.org/schemas/domain/qemu/1.0'
BOOT_TIMEOUT = 420.0
TESTDEV = re.compile(rb'pci (\S+): \[1b36:0005\]')


@pytest.fixture(scope='module')
def large_bar_xml(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('large-bar-xml'))
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'benchmarks',
                                      'dump_large_bar_xml.py'),
         '--out', out], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-6000:]
    with open(os.path.join(out, 'manifest.json')) as f:
        manifest = json.load(f)
    result = {}
    for entry in manifest['domains']:
        with open(os.path.join(out, entry['file'])) as f:
            result[(entry['gpus'], entry['variant'])] = f.read()
    return result


@pytest.fixture(scope='module')
def efi_lab():
    if not os.path.exists('/usr/share/OVMF/OVMF_CODE_4M.fd'):
        pytest.skip('OVMF not installed (apt-get install ovmf)')
    from nova_gpu_ext import bootlab
    lab = bootlab.BootLab(boot_mode='kernel')
    yield lab
    lab.close()


def with_testdevs(prepared_xml, count, driver_xml):
    """``count`` pci-testdevs (128 GiB BAR 2) on their own root ports;
    keep 1 GiB pages when the driver asked for them."""
    root = etree.fromstring(prepared_xml.encode())
    driver_root = etree.fromstring(driver_xml.encode())
    cpu = root.find('cpu')
    if driver_root.find("./cpu/feature[@name='pdpe1gb']") is not None:
        if cpu is None:
            cpu = etree.SubElement(root, 'cpu')
        model = etree.SubElement(cpu, 'model')
        model.text = 'qemu64'
        model.set('fallback', 'forbid')
        etree.SubElement(cpu, 'feature', policy='require', name='pdpe1gb')
        # <model> comes before <maxphysaddr> and <feature> in the schema
        cpu.remove(model)
        cpu.insert(0, model)
    loader = root.find('./os/loader')
    if root.find('os').get('firmware') == 'efi' and loader is not None:
        # libvirt 9.0 refuses loader attributes with firmware
        # autoselection (accepted since 9.2); nothing else chooses OVMF
        loader.attrib.pop('secure', None)
    commandline = etree.SubElement(root, '{%s}commandline' % QEMU_NS)
    # QEMU's arguments come before libvirt's devices: give the ports
    # slots libvirt does not use (it fills 0x1, 0x2, 0x3 ...)
    for i in range(count):
        for arg in ('-device', 'pcie-root-port,id=lbrp%d,chassis=%d,'
                    'bus=pcie.0,addr=0x%x' % (i, 100 + i, 0x18 + i),
                    '-device', 'pci-testdev,membar=128G,bus=lbrp%d' % i):
            etree.SubElement(commandline, '{%s}arg' % QEMU_NS, value=arg)
    return etree.tostring(root, encoding='unicode')


def boot(lab, xml, count):
    prepared = lab.prepare(xml, fault_in=False)
    final = with_testdevs(prepared.xml, count, xml)
    phases = runner.boot(lab.conn, final, BOOT_TIMEOUT)
    console = phases.console.replace(b'\r', b'')
    print('%d test devices: %s; lab changes: %s' % (
        count, {k: round(v) for k, v in phases.as_ms().items()
                if v is not None}, '; '.join(prepared.changes)))
    return console


def bar_results(console):
    """{BDF: 'assigned' | the failure line} for every test device."""
    out = {}
    for bdf in TESTDEV.findall(console):
        lines = [ln for ln in console.splitlines()
                 if bdf + b': BAR 2 ' in ln]
        failed = [ln for ln in lines if b'no space' in ln
                  or b'failed to assign' in ln or b"can't claim" in ln]
        out[bdf.decode()] = failed[0].decode() if failed else 'assigned'
    return out


@pytest.mark.parametrize('gpus', (2, 4))
def test_our_xml_assigns_every_bar_and_upstream_does_not(
        efi_lab, large_bar_xml, gpus):
    ours = large_bar_xml[(gpus, 'ours')]
    assert "<maxphysaddr mode=\"emulate\"" in ours
    upstream = large_bar_xml[(gpus, 'upstream')]
    assert '<maxphysaddr' not in upstream

    results = bar_results(boot(efi_lab, ours, gpus))
    print('ours:', results)
    assert len(results) == gpus
    assert set(results.values()) == {'assigned'}, results

    console = boot(efi_lab, upstream, gpus)
    results = bar_results(console)
    print('upstream:', results)
    assert len(results) == gpus
    assert b'no space' in console
    assert 'assigned' not in set(results.values()) or \
        len(set(results.values())) > 1, results
