"""Expander-bus layout: contiguous controller indexes, room for every GPU.

The guests are built the way Nova 34 builds a q35 guest (``pcie-root`` and
unindexed ``pcie-root-port`` controllers, then the PCI hostdevs); two
passthrough GPUs on one host NUMA node back one guest cell.
"""

from lxml import etree
from nova import objects
from nova.virt.libvirt import config as vconfig
import pytest

from nova_gpu_ext import model
from nova_gpu_ext.virt import gpu_affinity
from nova_gpu_ext.virt import guest_pci_layout

objects.register_all()

# Two T4s on host node 0, one on node 1 (Dell R750-like bus numbers).
GPUS = (('0000:3b:00.0', 0), ('0000:5e:00.0', 0), ('0000:d8:00.0', 1))


def _topology():
    nodes = tuple(model.NUMANode(id=n, cpus=frozenset(range(n * 4,
                                                            n * 4 + 4)),
                                 memory_mb=65536, socket=n) for n in (0, 1))
    gpus = tuple(model.GPU(address=model.PCIAddress.parse(a),
                           vendor_id=0x10de, device_id=0x1eb8,
                           pci_class=0x0302, kind=model.GPUKind.WHOLE,
                           numa_node=n, socket=n) for a, n in GPUS)
    return model.HostTopology(numa_nodes=nodes, gpus=gpus)


def _guest(mach='q35', nova_ports=2):
    guest = vconfig.LibvirtConfigGuest()
    guest.virt_type = 'kvm'
    guest.name = 'g'
    guest.uuid = 'c7a5fdbd-cdaf-9455-926a-d65c16db1809'
    guest.memory = 2 * 1024 * 1024
    guest.vcpus = 2
    guest.os_type = 'hvm'
    guest.os_mach_type = mach
    if mach == 'q35':
        guest.add_device(vconfig.LibvirtConfigGuestPCIeRootController())
        for _ in range(nova_ports):
            guest.add_device(
                vconfig.LibvirtConfigGuestPCIeRootPortController())
    for address, _node in GPUS:
        dev = vconfig.LibvirtConfigGuestHostdevPCI()
        domain, bus, rest = address.split(':')
        dev.domain, dev.bus = domain, bus
        dev.slot, dev.function = rest.split('.')
        guest.add_device(dev)
    return guest


def _instance():
    cells = [objects.InstanceNUMACell(id=n, cpuset=set([n]), pcpuset=set(),
                                      memory=1024) for n in (0, 1)]
    return objects.Instance(numa_topology=objects.InstanceNUMATopology(
        cells=cells))


def _layout(mach='q35', nova_ports=2):
    guest = _guest(mach, nova_ports)
    lines = gpu_affinity.expose_device_locality(
        guest, _topology(), _instance(), driver=None)
    root = etree.fromstring(guest.to_xml())
    return root, lines


def _pci_controllers(root):
    return root.findall("./devices/controller[@type='pci']")


@pytest.mark.parametrize('nova_ports', [0, 2])
def test_q35_indexes_contiguous_after_novas(nova_ports):
    root, _ = _layout('q35', nova_ports)
    # Nova's controllers have no index: libvirt numbers them 0..n.
    ours = [int(c.get('index')) for c in _pci_controllers(root)
            if c.get('index') is not None]
    start = 1 + nova_ports
    # Two expanders (cells 0 and 1) and three root ports.
    assert sorted(ours) == list(range(start, start + 5))


def test_q35_two_gpus_on_one_cell_each_get_a_bus():
    root, lines = _layout('q35')
    expanders = {int(c.find('./target/node').text): c for c in
                 root.findall("./devices/controller"
                              "[@model='pcie-expander-bus']")}
    assert sorted(expanders) == [0, 1]
    bus0 = int(expanders[0].find('target').get('busNr'))
    bus1 = int(expanders[1].find('target').get('busNr'))
    # Cell 0 has two GPUs: two buses above its busNr, below cell 1's...
    ports = {}
    for port in root.findall("./devices/controller"
                             "[@model='pcie-root-port']"):
        address = port.find('address')
        if address is not None:
            ports.setdefault(int(address.get('bus'), 16), []).append(
                int(port.get('index')))
    assert len(ports[int(expanders[0].get('index'))]) == 2
    assert len(ports[int(expanders[1].get('index'))]) == 1
    # ... numbers from high to low without overlap: [bus1, bus1+1] above
    # cell 0's [bus0, bus0+2], all within 0..0xff.
    assert bus0 + 2 < bus1 or bus1 + 1 < bus0
    assert max(bus0 + 2, bus1 + 1) <= 0xff
    # Each GPU on its own root port behind its cell's expander.
    buses = [int(h.find('address').get('bus'), 16)
             for h in root.findall("./devices/hostdev")]
    assert len(set(buses)) == 3
    assert sorted(buses[:2]) == sorted(ports[int(expanders[0].get('index'))])
    assert len(lines) == 3


def test_i440fx_two_gpus_on_one_expander_from_slot_1():
    root, _ = _layout('pc')
    expanders = root.findall("./devices/controller"
                             "[@model='pci-expander-bus']")
    assert [int(c.get('index')) for c in expanders] == [1, 2]
    slots = [(int(h.find('address').get('bus'), 16),
              int(h.find('address').get('slot'), 16))
             for h in root.findall('./devices/hostdev')]
    assert slots == [(1, 1), (1, 2), (2, 1)]
    nrs = sorted(int(c.find('target').get('busNr')) for c in expanders)
    # libvirt 9.0: "PCI controller busNr .255. out of range - must be 1-254"
    assert nrs[0] < nrs[1] <= 0xfe


def test_plan_counts_buses_and_refuses_overflow():
    plans = guest_pci_layout.plan({0: 2, 1: 1}, first_index=3, q35=True)
    assert [(p.cell, p.index, p.bus_nr, p.ports) for p in plans] == [
        (0, 3, 0xfd, (4, 5)), (1, 6, 0xfb, (7,))]
    with pytest.raises(ValueError):
        guest_pci_layout.plan({0: 300}, first_index=1, q35=True)
