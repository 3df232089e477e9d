"""Guest configs as upstream's driver builds them, and the guest questions.

The builders here assemble ``LibvirtConfigGuest`` objects the way Nova 34's
``LibvirtDriver._get_guest_config`` does for the same flavor (same classes,
same attributes, same device order), so the tweak tests start from
upstream's XML. The other ``test_tweaks_*`` modules import them.
"""

import shutil
import subprocess
import tempfile

from lxml import etree
from nova.virt.libvirt import config as vconfig
import pytest

from nova_gpu_ext import model
from nova_gpu_ext.core import spec as specs
from nova_gpu_ext.virt import tweaks
from nova_gpu_ext.virt.tweaks import guestinfo

NVIDIA_T4 = (0x10de, 0x1eb8)
GPU_ADDR = '0000:3b:00.0'
VF_ADDR = '0000:d8:00.4'
NIC_ADDR = '0000:5e:00.1'     # a passed-through NIC: not a GPU


def host_topology(hugepages=((2048, 4096), (1048576, 8)), cpus_per_node=6):
    nodes = tuple(
        model.NUMANode(
            id=n, cpus=frozenset(range(n * cpus_per_node,
                                       (n + 1) * cpus_per_node)),
            memory_mb=64 * 1024, socket=n, distances=(10, 21),
            hugepages_free=tuple(hugepages))
        for n in (0, 1))
    gpus = (
        model.GPU(address=model.PCIAddress.parse(GPU_ADDR),
                  vendor_id=NVIDIA_T4[0], device_id=NVIDIA_T4[1],
                  pci_class=0x0302, kind=model.GPUKind.WHOLE,
                  numa_node=0, socket=0),
        model.GPU(address=model.PCIAddress.parse(VF_ADDR),
                  vendor_id=0x1002, device_id=0x7312,
                  pci_class=0x0380, kind=model.GPUKind.VF,
                  numa_node=1, socket=1),
    )
    return model.HostTopology(numa_nodes=nodes, gpus=gpus)


def _hostdev(address):
    dev = vconfig.LibvirtConfigGuestHostdevPCI()
    domain, bus, rest = address.split(':')
    slot, function = rest.split('.')
    dev.domain, dev.bus, dev.slot, dev.function = domain, bus, slot, function
    return dev


def upstream_guest(*, memory_mb=4096, vcpus=4, numa=None, cpuset=None,
                   graphics=('vnc',), pci=(GPU_ADDR,), mdevs=(),
                   nics=('bridge',), balloon='virtio', boot_dev='hd',
                   mach='q35', membacking=None, virt_type='kvm'):
    """A guest as upstream's driver builds it.

    ``numa``: None (no NUMA topology) or a list of host node ids, one guest
    cell per entry, memory and vCPUs split evenly (``hw:numa_nodes``).
    """
    guest = vconfig.LibvirtConfigGuest()
    guest.virt_type = virt_type
    guest.name = 'instance-00000001'
    guest.uuid = '11111111-2222-3333-4444-555555555555'
    guest.memory = memory_mb * 1024
    guest.vcpus = vcpus
    guest.cpuset = cpuset
    guest.os_type = 'hvm'
    guest.os_mach_type = mach
    guest.os_boot_dev = [boot_dev]
    if numa:
        guest.cpu = vconfig.LibvirtConfigGuestCPU()
        guest.cpu.mode = 'host-model'
        guest.cpu.numa = vconfig.LibvirtConfigGuestCPUNUMA()
        guest.numatune = vconfig.LibvirtConfigGuestNUMATune()
        guest.numatune.memory = vconfig.LibvirtConfigGuestNUMATuneMemory()
        guest.numatune.memory.nodeset = sorted(set(numa))
        per_cell_cpus = vcpus // len(numa)
        for cell_id, host_node in enumerate(numa):
            cell = vconfig.LibvirtConfigGuestCPUNUMACell()
            cell.id = cell_id
            cell.cpus = set(range(cell_id * per_cell_cpus,
                                  (cell_id + 1) * per_cell_cpus))
            cell.memory = memory_mb * 1024 // len(numa)
            guest.cpu.numa.cells.append(cell)
            memnode = vconfig.LibvirtConfigGuestNUMATuneMemNode()
            memnode.cellid = cell_id
            memnode.nodeset = [host_node]
            guest.numatune.memnodes.append(memnode)
    guest.membacking = membacking

    disk = vconfig.LibvirtConfigGuestDisk()
    disk.source_type = 'file'
    disk.source_path = '/var/lib/nova/instances/x/disk'
    disk.driver_name = 'qemu'
    disk.driver_format = 'qcow2'
    disk.target_dev = 'vda'
    disk.target_bus = 'virtio'
    guest.add_device(disk)
    for index, net_type in enumerate(nics):
        nic = vconfig.LibvirtConfigGuestInterface()
        nic.net_type = net_type
        nic.mac_addr = 'fa:16:3e:00:00:%02x' % index
        if net_type == 'hostdev':
            nic.source_dev = NIC_ADDR
        else:
            nic.model = 'virtio'
            nic.source_dev = 'br-int'
            nic.target_dev = 'tap%d' % index
        guest.add_device(nic)
    serial = vconfig.LibvirtConfigGuestSerial()
    serial.type = 'pty'
    guest.add_device(serial)
    for kind in graphics:
        gfx = vconfig.LibvirtConfigGuestGraphics()
        gfx.type = kind
        gfx.listen = '127.0.0.1'
        guest.add_device(gfx)
    if graphics:
        video = vconfig.LibvirtConfigGuestVideo()
        video.type = 'virtio'
        guest.add_device(video)
        guest.add_device(vconfig.LibvirtConfigGuestInput())  # USB tablet
    usb = vconfig.LibvirtConfigGuestUSBHostController()
    usb.index = 0
    usb.model = None if graphics else 'none'
    guest.add_device(usb)
    for address in pci:
        guest.add_device(_hostdev(address))
    if balloon:
        dev = vconfig.LibvirtConfigMemoryBalloon()
        dev.model = balloon
        dev.period = 10 if balloon == 'virtio' else None
        guest.add_device(dev)
    for uuid in mdevs:
        mdev = vconfig.LibvirtConfigGuestHostdevMDEV()
        mdev.uuid = uuid
        guest.add_device(mdev)
    return guest


class FakeProps(dict):
    """Enough of ``ImageMetaProps`` for ``.get``."""


class FakeImageMeta:
    def __init__(self, **props):
        self.properties = FakeProps(props)


class FakeFlavor:
    def __init__(self, extra_specs):
        self.extra_specs = dict(extra_specs)


class FakeInstance:
    uuid = '11111111-2222-3333-4444-555555555555'

    def __init__(self, extra_specs):
        self.flavor = FakeFlavor(extra_specs)


DEFAULT_SETTINGS = {
    'prealloc_max_threads': 16,
    'keep_gpu_rom_ids': [],
    'usb_tablet_with_console': True,
    'hugepage_sizes_kb': [1048576, 2048],
}


def context(extra_specs=None, host='default', settings=None,
            libvirt_version=9000000, qemu_version=7002000, gpu_guest=None,
            **image_props):
    # The default flavor asks for the passthrough GPU upstream_guest()
    # holds (GPU_ADDR is a GPU of host_topology()): the driver counts that
    # device and calls it a GPU guest (specs.gpu_guest).
    if extra_specs is None and gpu_guest is None:
        gpu_guest = True
    extra_specs = ({'pci_passthrough:alias': 'gpu:1'}
                   if extra_specs is None else extra_specs)
    instance = FakeInstance(extra_specs)
    return tweaks.TweakContext(
        instance=instance,
        request=specs.parse(extra_specs),
        libvirt_version=libvirt_version,
        qemu_version=qemu_version,
        host=host_topology() if host == 'default' else host,
        settings=dict(DEFAULT_SETTINGS, **(settings or {})),
        image_meta=FakeImageMeta(**image_props),
        flavor=instance.flavor,
        gpu_guest=gpu_guest)


def to_tree(guest):
    return etree.fromstring(guest.to_xml())


def validate_schema(xml_text):
    """Run virt-xml-validate when installed; skip the check otherwise."""
    tool = shutil.which('virt-xml-validate')
    if tool is None:
        return None
    with tempfile.NamedTemporaryFile('w', suffix='.xml') as handle:
        handle.write(xml_text)
        handle.flush()
        result = subprocess.run([tool, handle.name, 'domain'],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return True


# -- the guest questions ----------------------------------------------------

def test_builder_matches_upstream_shapes():
    tree = to_tree(upstream_guest(numa=[0]))
    assert tree.find('numatune/memnode').get('nodeset') == '0'
    assert tree.find('devices/input').get('type') == 'tablet'
    assert tree.find('devices/memballoon').get('model') == 'virtio'
    assert tree.find('devices/hostdev/source/address').get('bus') == '0x3b'
    assert tree.find('os/bootmenu') is None
    assert tree.find('memoryBacking') is None


def test_builder_xml_is_schema_valid():
    if validate_schema(upstream_guest(numa=[0, 1]).to_xml()) is None:
        pytest.skip('virt-xml-validate not installed')


def test_memory_pinning_devices_names_vfio_and_mdev_only():
    guest = upstream_guest(pci=(GPU_ADDR,), mdevs=('aaaa',),
                           nics=('bridge', 'hostdev'))
    assert guestinfo.memory_pinning_devices(guest) == [
        'hostdev interface %s' % NIC_ADDR, 'PCI %s' % GPU_ADDR,
        'mdev aaaa']
    assert guestinfo.memory_pinning_devices(
        upstream_guest(pci=(), nics=('bridge',))) == []


def test_guest_host_nodes_from_numatune():
    assert guestinfo.guest_host_nodes(upstream_guest(numa=[1])) == {1}
    assert guestinfo.guest_host_nodes(upstream_guest(numa=[0, 1])) == {0, 1}
    assert guestinfo.guest_host_nodes(upstream_guest()) is None


def test_node_cpus_unknown_node_is_none():
    host = host_topology()
    assert guestinfo.node_cpus(host, [1]) == frozenset(range(6, 12))
    assert guestinfo.node_cpus(host, [7]) is None
    assert guestinfo.node_cpus(None, [0]) is None


def test_pci_address_accepts_both_spellings():
    dev = _hostdev(GPU_ADDR)
    assert guestinfo.pci_address(dev) == GPU_ADDR
    dev.domain, dev.bus, dev.slot, dev.function = '0x0000', '0x3b', '0x00', \
        '0x0'
    assert guestinfo.pci_address(dev) == GPU_ADDR
