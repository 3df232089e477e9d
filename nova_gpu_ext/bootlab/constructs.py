"""The domain XML constructs our driver emits, built by the driver's code.

Layer rule: pure transformation (no I/O, no libvirt): each construct is
made by the same code the driver runs (``virt/guest_pci_layout``,
``virt/xmlconfig``, ``gpu_affinity``'s NUMA binding) on a Nova-built guest
config, then grafted into a base domain XML (one our driver defined in
Nova's functional harness). ``tests/e2e/test_constructs.py`` defines each
one on real libvirtd, reads it back, counts the controllers libvirt added
and boots those this machine can start.

Where a construct needs hardware this machine lacks, :attr:`Construct.boot`
says so: PCI/mdev hostdevs (no IOMMU, no GPU) and GL render nodes (no
``/dev/dri``) are defined and round-tripped only. For the expander buses a
booted variant replaces every GPU hostdev by an emulated PCI device
(virtio-rng) at the same guest address, two per guest cell.
"""

import dataclasses
from typing import Optional

from lxml import etree
from nova import objects
from nova.virt.libvirt import config as vconfig

from nova_gpu_ext import model
from nova_gpu_ext.virt import gpu_affinity
from nova_gpu_ext.virt import guest_pci_layout
from nova_gpu_ext.virt import xmlconfig

#: stands in for a GPU at a guest PCI address (PCI on i440fx, PCIe on q35)
STAND_IN = ("<rng model='virtio'><backend model='random'>/dev/urandom"
            "</backend></rng>")


@dataclasses.dataclass
class Construct:
    name: str
    what: str                 # one line: the XML elements
    xml: str                  # the full domain XML to define
    boot: Optional[str]       # None, or why it is not booted here
    #: XPath expressions that must still match after define/dumpxml
    keeps: tuple = ()
    #: controllers our construct itself puts in the XML
    own_controllers: int = 0
    boot_xml: Optional[str] = None    # booted variant (stand-ins)


def _parse(xml):
    return etree.fromstring(xml.encode() if isinstance(xml, str) else xml)


def _text(root):
    return etree.tostring(root, encoding='unicode')


def _two_cells(root, machine):
    """The base guest as a 2-vCPU, two-cell guest on ``machine``."""
    root.find('os/type').set('machine', machine)
    root.find('vcpu').text = '2'
    for el in root.findall('vcpu'):
        el.attrib.pop('cpuset', None)
    cpu = root.find('cpu')
    for child in list(cpu):
        cpu.remove(child)
    etree.SubElement(cpu, 'topology', sockets='2', cores='1', threads='1')
    numa = etree.SubElement(cpu, 'numa')
    memory_kib = int(root.find('memory').text)
    for cell in (0, 1):
        etree.SubElement(numa, 'cell', id=str(cell), cpus=str(cell),
                         memory=str(memory_kib // 2), unit='KiB')


def _topology(per_node):
    nodes = tuple(model.NUMANode(id=n, cpus=frozenset([n]),
                                 memory_mb=4096, socket=n) for n in (0, 1))
    gpus = []
    for node in (0, 1):
        for i in range(per_node):
            gpus.append(model.GPU(
                address=model.PCIAddress.parse(
                    '0000:%02x:00.0' % (0x3b + 0x80 * node + i)),
                vendor_id=0x10de, device_id=0x1eb8, pci_class=0x0302,
                kind=model.GPUKind.WHOLE, numa_node=node, socket=node))
    return model.HostTopology(numa_nodes=nodes, gpus=tuple(gpus))


def _blank_guest(guest):
    guest.virt_type = 'kvm'
    guest.name = 'construct'
    guest.uuid = '7d4f0a52-3c1e-4b8e-9d7a-2f5b6c8e1a90'
    guest.memory = 1048576
    guest.vcpus = 1
    guest.os_type = 'hvm'
    return guest


def _nova_guest(machine, topology):
    """A guest config the way Nova builds it: GPU hostdevs, no indexes."""
    guest = _blank_guest(vconfig.LibvirtConfigGuest())
    guest.os_mach_type = machine
    for gpu in topology.gpus:
        dev = vconfig.LibvirtConfigGuestHostdevPCI()
        address = str(gpu.address)
        dev.domain, dev.bus, rest = address.split(':')
        dev.slot, dev.function = rest.split('.')
        guest.add_device(dev)
    return guest


def _instance():
    objects.register_all()
    cells = [objects.InstanceNUMACell(id=n, cpuset=set([n]), pcpuset=set(),
                                      memory=512) for n in (0, 1)]
    return objects.Instance(numa_topology=objects.InstanceNUMATopology(
        cells=cells))


def expander(base_xml, machine='q35', per_cell=2, legacy_base=None):
    """Expander buses for two guest cells with ``per_cell`` GPUs each.

    ``legacy_base``: shift our controller indexes to start there (the old
    layout started at 200), to measure what libvirt adds for it.
    """
    topology = _topology(per_cell)
    guest = _nova_guest(machine, topology)
    guest_pci_layout.expose_device_locality(guest, topology, _instance(),
                                            driver=None)
    ours = _parse(guest.to_xml())
    controllers = ours.findall('devices/controller')
    hostdevs = ours.findall('devices/hostdev')
    if legacy_base is not None:
        shift = legacy_base - min(int(c.get('index')) for c in controllers)
        for el in controllers + hostdevs:
            for address in el.findall('address'):
                bus = int(address.get('bus'), 16)
                if bus:
                    address.set('bus', '0x%02x' % (bus + shift))
        for c in controllers:
            c.set('index', str(int(c.get('index')) + shift))

    def build(stand_in):
        root = _parse(base_xml)
        _two_cells(root, machine)
        devices = root.find('devices')
        for c in controllers:
            devices.append(etree.fromstring(etree.tostring(c)))
        for h in hostdevs:
            if stand_in:
                dev = etree.fromstring(STAND_IN)
                dev.append(etree.fromstring(etree.tostring(
                    h.find('address'))))
            else:
                dev = etree.fromstring(etree.tostring(h))
            devices.append(dev)
        return _text(root)

    kind = 'pcie-expander-bus' if machine == 'q35' else 'pci-expander-bus'
    return Construct(
        name='expander-%s%s' % (machine, '-index%d' % legacy_base
                                if legacy_base is not None else ''),
        what='%d %s + %d pcie-root-port, %d GPUs per guest cell' % (
            2, kind, len(controllers) - 2, per_cell),
        xml=build(False), boot=None, boot_xml=build(True),
        keeps=("devices/controller[@model='%s']/target/node" % kind,),
        own_controllers=len(controllers))


def numatune(base_xml, node=0):
    """vCPUs and memory bound to host node ``node``: the binding Nova's
    own NUMA config gives a one-cell guest of a GPU's node."""
    topology = _topology(1)
    guest = _blank_guest(vconfig.LibvirtConfigGuest())
    guest.cpuset = gpu_affinity.usable_node_cpus(
        topology, node, guest.cpuset, 'strict', None)
    guest.numatune = vconfig.LibvirtConfigGuestNUMATune()
    guest.numatune.memory = vconfig.LibvirtConfigGuestNUMATuneMemory()
    guest.numatune.memory.mode = 'strict'
    guest.numatune.memory.nodeset = [node]
    ours = _parse(guest.to_xml())
    root = _parse(base_xml)
    root.find('vcpu').set('cpuset', ours.find('vcpu').get('cpuset'))
    root.find('vcpu').addnext(ours.find('numatune'))
    return Construct(
        'numatune', "<numatune><memory mode='strict' nodeset='%d'/>, "
        "<vcpu cpuset>" % node, _text(root), None,
        keeps=("numatune/memory[@nodeset='%d']" % node,))


def prealloc_threads(base_xml, threads=2):
    backing = xmlconfig.GuestMemoryBacking()
    backing.allocateimmediate = True
    backing.allocation_threads = threads
    root = _parse(base_xml)
    root.find('memory').addnext(backing.format_dom())
    return Construct(
        'prealloc-threads', "<allocation mode='immediate' threads='%d'/>"
        % threads, _text(root), None,
        keeps=("memoryBacking/allocation[@threads='%d']" % threads,))


def hugepages_all_memory(base_xml):
    backing = xmlconfig.GuestMemoryBacking()
    page = xmlconfig.GuestMemoryBackingPage()
    page.size_kb = 2048
    page.nodeset = None
    backing.hugepages.append(page)
    root = _parse(base_xml)
    root.find('memory').addnext(backing.format_dom())
    return Construct(
        'hugepages-no-nodeset', "<hugepages><page size='2048'/> (all guest "
        "memory)", _text(root),
        'needs 2 MiB pages reserved and hugetlbfs mounted before libvirtd',
        keeps=("memoryBacking/hugepages/page[@size='2048']",))


def bootmenu_off(base_xml):
    guest = _blank_guest(xmlconfig.Guest())
    guest.os_bootmenu_off = True
    os_el = _parse(guest.to_xml()).find('os')
    root = _parse(base_xml)
    root.find('os').append(os_el.find('bootmenu'))
    return Construct('bootmenu-off', "<bootmenu enable='no'/>", _text(root),
                     None, keeps=("os/bootmenu[@enable='no']",))


def nic_rom_off(base_xml):
    nic = xmlconfig.GuestInterface()
    nic.net_type = 'ethernet'      # the boot lab makes it user-mode
    nic.mac_addr = 'fa:16:3e:12:34:56'
    nic.model = 'virtio'
    nic.target_dev = 'tapxmle2e0'
    nic.rom_enabled = False
    root = _parse(base_xml)
    root.find('devices').append(nic.format_dom())
    return Construct('nic-rom-off', "<interface><rom enabled='no'/>",
                     _text(root), None,
                     keeps=("devices/interface/rom[@enabled='no']",))


def hostdev_rom_bar_off(base_xml):
    dev = xmlconfig.GuestHostdevPCI()
    dev.domain, dev.bus, dev.slot, dev.function = '0000', '3b', '00', '0'
    dev.rom_bar = False
    root = _parse(base_xml)
    root.find('devices').append(dev.format_dom())
    return Construct('hostdev-rom-bar-off', "<hostdev type='pci'><rom "
                     "bar='off'/>", _text(root),
                     'PCI passthrough needs an IOMMU and a GPU (none here)',
                     keeps=("devices/hostdev/rom[@bar='off']",))


def mdev_on_bus(base_xml):
    dev = xmlconfig.GuestHostdevMDEVOnBus()
    dev.uuid = '4b20d080-1b54-4048-85b3-a6a62d165c01'
    dev.guest_bus = 0
    dev.guest_slot = 0x0a
    root = _parse(base_xml)
    root.find('devices').append(dev.format_dom())
    return Construct('mdev-on-bus', "<hostdev type='mdev'><address bus "
                     "slot>", _text(root), 'no mdev (vGPU) exists here',
                     keeps=("devices/hostdev[@type='mdev']/address"
                            "[@slot='0x0a']",))


def egl_headless_rendernode(base_xml, rendernode='/dev/dri/renderD128'):
    """egl-headless with a render node and virtio video with accel3d (what
    ``gpu:render_node=numa-local`` adds)."""
    graphics = xmlconfig.GuestGraphicsGL()
    graphics.type = 'egl-headless'
    graphics.rendernode = rendernode
    video = xmlconfig.promote(vconfig.LibvirtConfigGuestVideo(),
                              xmlconfig.GuestVideoAccel3D)
    video.type = 'virtio'
    video.accel3d = True
    root = _parse(base_xml)
    devices = root.find('devices')
    for old in devices.findall('video'):
        devices.remove(old)
    devices.append(graphics.format_dom())
    devices.append(video.format_dom())
    return Construct(
        'egl-headless-rendernode', "<graphics type='egl-headless'><gl "
        "rendernode/> + <video virtio accel3d>", _text(root),
        'no /dev/dri render node here (libvirt: cannot open /dev/dri)',
        keeps=("devices/graphics[@type='egl-headless']/gl[@rendernode]",
               "devices/video/model/acceleration[@accel3d='yes']"))


BUILDERS = {
    'expander-q35': lambda base: expander(base, 'q35'),
    'expander-pc': lambda base: expander(base, 'pc'),
    'numatune': numatune,
    'prealloc-threads': prealloc_threads,
    'bootmenu-off': bootmenu_off,
    'nic-rom-off': nic_rom_off,
    'hugepages-no-nodeset': hugepages_all_memory,
    'hostdev-rom-bar-off': hostdev_rom_bar_off,
    'mdev-on-bus': mdev_on_bus,
    'egl-headless-rendernode': egl_headless_rendernode,
}


def build(name, base_xml) -> Construct:
    return BUILDERS[name](base_xml)


def all_constructs(base_xml):
    """Every construct the driver emits, in the order the tests report."""
    return [build(name, base_xml) for name in NAMES]


#: the names all_constructs() returns, in order
NAMES = ('expander-q35', 'expander-pc', 'numatune', 'prealloc-threads',
         'bootmenu-off', 'nic-rom-off', 'hugepages-no-nodeset',
         'hostdev-rom-bar-off', 'mdev-on-bus', 'egl-headless-rendernode')


def controllers(xml) -> int:
    return len(_parse(xml).findall('devices/controller'))
