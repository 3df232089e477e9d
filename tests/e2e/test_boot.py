"""Boot the domain XML our driver generated on real libvirtd + QEMU.

Layer rule: e2e (marker ``e2e``). One test per GPU-less flavor: the XML
``GPULibvirtDriver`` defined in Nova's functional harness is started by
the boot lab (TCG here; the boot lab strips only what cannot exist in this
sandbox and the test prints that list), and the guest must print its first
kernel line and then the init marker on the serial console in time. A
vGPU flavor boots too, with its mdev removed (no GPU here). Every XML the
driver produced is checked by ``virt-xml-validate``.
"""

import shutil
import subprocess

import pytest

from nova_gpu_ext.bootlab import runner

pytestmark = pytest.mark.e2e

#: flavors of ``dump_xml.py --set e2e`` booted with our driver's XML
FLAVORS = ('cpu-plain', 'cpu-bootmenu', 'cpu-fastboot', 'vgpu-2g')
BOOT_TIMEOUT = 120.0


@pytest.mark.parametrize('flavor', FLAVORS)
def test_driver_xml_boots_to_init(lab, driver_xml, flavor):
    xml, entry, _path = driver_xml[(flavor, 'ours')]
    phases, prepared = lab.boot(xml, timeout=BOOT_TIMEOUT, fault_in=False)
    print('%s on %s: %s; boot lab changes: %s; driver changes: %s' % (
        flavor, lab.describe(), {k: round(v) for k, v in
                                 phases.as_ms().items() if v is not None},
        '; '.join(prepared.changes), '; '.join(entry['changes']) or '-'))
    console = phases.console
    assert runner.KERNEL_FIRST.search(console), console[-2000:]
    assert phases.bios is not None and phases.bios > 0
    # The init marker comes after the kernel's first line.
    assert console.index(b'NOVA-GPU-EXT-BOOTLAB-INIT-OK') > \
        runner.KERNEL_FIRST.search(console).start()
    # Only sandbox-specific elements were touched: nothing the driver
    # decided about firmware and devices is listed as changed.
    for line in prepared.changes:
        assert not line.startswith(('bootmenu', 'memballoon', 'video',
                                    'input', 'controller')), line


def test_fast_boot_flavor_differs_from_upstream(driver_xml):
    """The opted-in flavor really boots a changed XML (not upstream's)."""
    ours, entry, _ = driver_xml[('cpu-fastboot', 'ours')]
    upstream, _, _ = driver_xml[('cpu-fastboot', 'upstream')]
    assert entry['changes'], 'gpu:fast_boot=true changed nothing'
    assert ours != upstream


@pytest.mark.skipif(shutil.which('virt-xml-validate') is None,
                    reason='virt-xml-validate (libvirt-clients) missing')
def test_virt_xml_validate_accepts_every_driver_xml(driver_xml):
    failures = []
    for (flavor, variant), (_xml, _entry, path) in sorted(
            driver_xml.items()):
        proc = subprocess.run(['virt-xml-validate', path, 'domain'],
                              capture_output=True, text=True)
        if proc.returncode:
            failures.append('%s.%s: %s' % (flavor, variant,
                                           proc.stderr.strip()))
    assert len(driver_xml) >= 2 * len(FLAVORS)
    assert not failures, '\n'.join(failures)
