"""Every domain XML construct our driver emits, on real libvirtd + QEMU.

Layer rule: e2e (marker ``e2e``). Each construct of
:mod:`nova_gpu_ext.bootlab.constructs` (built by the driver's own code and
grafted into the XML our driver defined for a plain flavor) is defined on
real libvirtd and read back (``defineXML`` / ``XMLDesc``): the construct
must survive the round trip and libvirt must add no controller because of
it (the same XML without the construct is the baseline). Constructs this
machine can run are booted to the guest's init marker; expander buses boot
with emulated PCI devices standing in for the GPUs, two per guest cell.
The result per construct (defined / booted / why not booted) is printed at
the end of the run (``conftest.pytest_terminal_summary``).
"""

import time
import uuid

from lxml import etree
import pytest

from nova_gpu_ext.bootlab import constructs
from nova_gpu_ext.bootlab import runner

libvirt = pytest.importorskip('libvirt')

pytestmark = pytest.mark.e2e

#: filled by the tests, printed by conftest at the end of the run
RESULTS = []

NAMES = constructs.NAMES


@pytest.fixture(scope='module')
def conn():
    c = libvirt.open(runner.URI)
    yield c
    c.close()


@pytest.fixture(scope='module')
def base_xml(driver_xml):
    xml, _entry, _path = driver_xml[('cpu-plain', 'ours')]
    return xml


def _definable(xml, name):
    root = etree.fromstring(xml.encode())
    root.set('type', 'qemu')
    root.find('name').text = name
    for el in root.findall('uuid'):
        root.remove(el)
    cpu = root.find('cpu')
    if cpu is not None:
        cpu.attrib.pop('mode', None)
        cpu.attrib.pop('match', None)
    return etree.tostring(root, encoding='unicode')


def _define_read_back(conn, xml):
    """(seconds, XML libvirt holds) of a persistent define + dumpxml."""
    name = 'xmle2e-%s' % uuid.uuid4().hex[:10]
    start = time.monotonic()
    dom = conn.defineXML(_definable(xml, name))
    elapsed = time.monotonic() - start
    try:
        return elapsed, dom.XMLDesc(0)
    finally:
        dom.undefine()


def _added(conn, xml):
    """Controllers libvirt added to ``xml`` at define time."""
    _t, dumped = _define_read_back(conn, xml)
    return constructs.controllers(dumped) - constructs.controllers(xml)


def _baseline(construct, base_xml):
    """The same XML without our construct (for expanders: the two-cell
    guest on that machine, without controllers and GPUs)."""
    if construct.name.startswith('expander-'):
        root = etree.fromstring(construct.xml.encode())
        devices = root.find('devices')
        for el in devices.findall("controller[@type='pci']") + \
                devices.findall('hostdev'):
            devices.remove(el)
        return etree.tostring(root, encoding='unicode')
    return base_xml


def _construct(base_xml, name):
    return constructs.build(name, base_xml)


@pytest.mark.parametrize('name', NAMES)
def test_construct_defined_read_back_and_booted(conn, lab, base_xml, name):
    construct = _construct(base_xml, name)
    row = dict(name=name, what=construct.what, defined='no', added='-',
               booted='no', why=construct.boot or '', boot_ms='')
    RESULTS.append(row)
    _t, dumped = _define_read_back(conn, construct.xml)
    row['defined'] = 'yes'
    root = etree.fromstring(dumped.encode())
    for path in construct.keeps:
        assert root.find(path) is not None, (
            '%s lost %s in libvirt:\n%s' % (name, path, dumped))
    added = _added(conn, construct.xml) - _added(
        conn, _baseline(construct, base_xml))
    row['added'] = str(max(added, 0))
    # Below 0 happens: with the expander buses libvirt needed one root
    # port fewer for Nova's own devices than in the baseline.
    assert added <= 0, '%s: libvirt added %d controller(s)' % (name, added)
    if added < 0:
        row['why'] = 'libvirt added %d root port(s) fewer than without' % (
            -added)
    if construct.boot is not None:
        return
    phases, prepared = lab.boot(construct.boot_xml or construct.xml,
                                timeout=120.0, fault_in=False)
    assert runner.KERNEL_FIRST.search(phases.console), phases.console[-2000:]
    assert b'NOVA-GPU-EXT-BOOTLAB-INIT-OK' in phases.console
    row['booted'] = 'yes'
    row['boot_ms'] = 'QEMU init %d, total %d' % (
        phases.qemu_init * 1000, phases.total * 1000)
    if construct.boot_xml:
        row['why'] = ('; '.join(filter(None, [
            row['why'], 'GPUs replaced by virtio-rng at the same guest '
            'address'])))
    # Nothing the construct is about was stripped by the boot lab.
    for line in prepared.changes:
        assert not line.startswith(('numatune', 'controller', 'prealloc',
                                    'memoryBacking', 'bootmenu')), line


def test_old_expander_indexes_made_libvirt_add_root_ports(conn, base_xml):
    """The layout before issue 14 (indexes from 200): libvirt fills every
    index below with a pcie-root-port. Kept as a measurement."""
    old = constructs.expander(base_xml, 'q35', legacy_base=200)
    new = constructs.expander(base_xml, 'q35')
    baseline = _added(conn, _baseline(new, base_xml))
    added_old = _added(conn, old.xml) - baseline
    t_old, _ = _define_read_back(conn, old.xml)
    t_new, _ = _define_read_back(conn, new.xml)
    RESULTS.append(dict(
        name=old.name, what=old.what + ' (old layout, for comparison)',
        defined='yes', added=str(added_old), booted='no',
        why='measurement only', boot_ms='define %d ms vs %d ms' % (
            t_old * 1000, t_new * 1000)))
    assert added_old > 150
