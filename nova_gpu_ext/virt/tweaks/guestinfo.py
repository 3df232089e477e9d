"""Questions the tweaks ask about a guest config Nova built.

Layer rule: read-only helpers over ``LibvirtConfigGuest`` and the host
topology model; no CONF, no I/O, never change the guest. Shared by the tweak
modules so they agree on what "pins memory" or "has a console" means.
"""

from typing import Iterable, Optional

from nova.virt.libvirt import config as vconfig

from nova_gpu_ext import model

#: Graphics types that give a user a console (and want a pointer).
CONSOLE_GRAPHICS = frozenset({'vnc', 'spice', 'rdp'})


def is_qemu_hvm(guest) -> bool:
    """A QEMU/KVM full-virtualisation guest: the only kind tweaks change."""
    return guest.virt_type in ('qemu', 'kvm') and guest.os_type in (
        None, 'hvm')


def devices(guest, cls) -> list:
    return [dev for dev in guest.devices if isinstance(dev, cls)]


def pci_hostdevs(guest) -> list:
    return devices(guest, vconfig.LibvirtConfigGuestHostdevPCI)


def pci_address(hostdev) -> str:
    """``0000:3b:00.0`` from Nova's hostdev (with or without ``0x``)."""
    return str(model.PCIAddress.from_fields(
        hostdev.domain, hostdev.bus, hostdev.slot, hostdev.function))


def memory_pinning_devices(guest) -> list[str]:
    """Devices whose DMA pins all guest memory (VFIO, vDPA), described."""
    out = []
    for dev in guest.devices:
        if isinstance(dev, vconfig.LibvirtConfigGuestHostdevPCI):
            out.append('PCI %s' % pci_address(dev))
        elif isinstance(dev, vconfig.LibvirtConfigGuestHostdevMDEV):
            out.append('mdev %s' % dev.uuid)
        elif (isinstance(dev, vconfig.LibvirtConfigGuestInterface) and
              dev.net_type in ('hostdev', 'vdpa')):
            out.append('%s interface %s' % (dev.net_type, dev.source_dev))
    return out


def console_graphics(guest) -> list:
    return [dev for dev in devices(guest, vconfig.LibvirtConfigGuestGraphics)
            if dev.type in CONSOLE_GRAPHICS]


def guest_host_nodes(guest) -> Optional[frozenset[int]]:
    """Host NUMA nodes the guest's memory is bound to, or None (unbound)."""
    numatune = guest.numatune
    if numatune is None:
        return None
    nodes: set[int] = set()
    if numatune.memory is not None:
        nodes.update(numatune.memory.nodeset or ())
    for memnode in numatune.memnodes:
        nodes.update(memnode.nodeset or ())
    return frozenset(nodes) if nodes else None


def cell_host_nodes(guest) -> dict[int, frozenset[int]]:
    """Guest NUMA cell id -> the host nodes its memory is bound to."""
    if guest.numatune is None:
        return {}
    return {memnode.cellid: frozenset(memnode.nodeset or ())
            for memnode in guest.numatune.memnodes}


def guest_cells_memory_kb(guest) -> dict[int, int]:
    """Guest NUMA cell id -> memory in KiB (empty without NUMA cells)."""
    if guest.cpu is None or guest.cpu.numa is None:
        return {}
    return {cell.id: int(cell.memory) for cell in guest.cpu.numa.cells}


def node_cpus(host, node_ids: Iterable[int]) -> Optional[frozenset[int]]:
    """Host CPUs of the given NUMA nodes; None if any node is unknown."""
    if host is None:
        return None
    cpus: set[int] = set()
    for node_id in node_ids:
        node = host.node(node_id)
        if node is None or not node.cpus:
            return None
        cpus.update(node.cpus)
    return frozenset(cpus)


def host_cpus(host) -> Optional[frozenset[int]]:
    if host is None or not host.numa_nodes:
        return None
    return node_cpus(host, [node.id for node in host.numa_nodes])


def image_property(image_meta, name):
    if image_meta is None:
        return None
    props = getattr(image_meta, 'properties', None)
    if props is None:
        return None
    try:
        return props.get(name)
    except (AttributeError, NotImplementedError, ValueError):
        return None


def flavor_spec(ctx, key):
    flavor = ctx.flavor or getattr(ctx.instance, 'flavor', None)
    specs = getattr(flavor, 'extra_specs', None) or {}
    return specs.get(key)
