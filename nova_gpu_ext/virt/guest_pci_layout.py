"""Guest PCI layout: each GPU behind an expander bus of its guest NUMA cell.

Layer rule: adapter. :func:`plan` is pure (counts in, controller indexes
and bus numbers out); :func:`expose_device_locality` reads the guest config
Nova built and the host topology and applies the plan to it.

Two rules make the layout cheap and complete on real libvirt (measured on
libvirt 9.0, see ``benchmarks/RESULTS-boot.md``):

* **Controller indexes are contiguous after Nova's.** libvirt fills every
  unused PCI controller index below the highest one with a
  ``pcie-root-port``: an expander at index 200 made libvirt add ~200 root
  ports (start 0.64 s instead of 0.33 s, and the firmware walks each one).
  Our first controller takes the first index after the PCI controllers
  Nova already put in the guest (Nova leaves their ``index`` unset and
  libvirt numbers them in order, from 0 for ``pcie-root``/``pci-root``).
* **Bus numbers leave room for every GPU of the cell.** An expander bus's
  ``busNr`` is its own bus; the buses behind it (one per
  ``pcie-root-port`` on q35) take the numbers above it, up to the next
  expander's ``busNr``. Expanders are numbered downwards from 0xff, each
  one ``1 + ports`` below the previous, so a cell with N GPUs has N buses
  (the first expander used to get 0xfe: room for one GPU only).
"""

import dataclasses

from nova.virt.libvirt import config as vconfig

from nova_gpu_ext.virt import guest_devices
from nova_gpu_ext.virt import xmlconfig

#: the highest PCI bus number (buses behind the last expander end here)
TOP_BUS = 0xff
#: the highest busNr libvirt accepts for an expander bus (9.0: 1-254)
MAX_BUS_NR = 0xfe


@dataclasses.dataclass(frozen=True)
class ExpanderPlan:
    """One expander bus: its guest cell, controller index and busNr, and
    the controller indexes of the root ports behind it (q35; empty on
    i440fx, where devices plug into the expander itself from slot 1)."""

    cell: int
    index: int
    bus_nr: int
    ports: tuple[int, ...]


def first_free_index(guest) -> int:
    """The first PCI controller index after Nova's controllers.

    Controllers without an index are numbered by libvirt in document order
    from the lowest free index; ``pcie-root``/``pci-root`` is index 0 even
    when Nova did not add it (libvirt does).
    """
    count = 0
    highest = 0
    for dev in guest.devices:
        if isinstance(dev, vconfig.LibvirtConfigGuestController) and \
                dev.type == 'pci':
            count += 1
            if dev.index is not None:
                highest = max(highest, int(dev.index) + 1)
    return max(1, count, highest)


def plan(gpus_per_cell: dict, first_index: int, q35: bool) -> list:
    """Controller indexes and bus numbers for ``{guest cell: GPU count}``.

    Cells in ascending order; indexes contiguous from ``first_index``
    (each expander followed by its root ports); bus numbers downwards from
    :data:`TOP_BUS` with one bus per root port behind each expander.
    Raises ValueError when the cells need more buses than PCI has.
    """
    out = []
    index = first_index
    top = TOP_BUS + 1
    for cell in sorted(gpus_per_cell):
        count = gpus_per_cell[cell]
        if count <= 0:
            continue
        ports = count if q35 else 0
        # libvirt accepts busNr 1-254; the buses behind go up to 0xff.
        bus_nr = min(top - 1 - ports, MAX_BUS_NR)
        if bus_nr <= 0:
            raise ValueError('no PCI bus numbers left for %d GPU(s) on '
                             'guest NUMA cell %d' % (count, cell))
        top = bus_nr
        out.append(ExpanderPlan(cell, index, bus_nr, tuple(
            range(index + 1, index + 1 + ports))))
        index += 1 + ports
    return out


def expose_device_locality(guest, topology, instance, driver):
    """Put each GPU behind a PCI expander bus of its guest NUMA node.

    For guests with several NUMA cells: a GPU whose host node backs guest
    cell ``i`` is plugged into an expander bus whose ``<node>`` is ``i``
    (behind a ``pcie-root-port`` on q35), so the guest OS and CUDA see
    which vCPUs are local to it. Single-cell guests need nothing. Returns
    one line per GPU saying where it went.
    """
    numa = getattr(instance, 'numa_topology', None)
    if not numa or len(numa.cells) < 2:
        return []
    guest_cell_of_host_node = {}
    for index, cell in enumerate(numa.cells):
        guest_cell_of_host_node.setdefault(cell.id, index)
    q35 = 'q35' in (guest.os_mach_type or '')
    placed = []          # (device, gpu, guest cell)
    for dev in list(guest.devices):
        gpu = guest_devices.device_gpu(driver, dev, topology)
        if gpu is None:
            continue
        cell = guest_cell_of_host_node.get(gpu.numa_node)
        if cell is not None:
            placed.append((dev, gpu, cell))
    counts = {}
    for _dev, _gpu, cell in placed:
        counts[cell] = counts.get(cell, 0) + 1
    layout = {p.cell: p for p in plan(counts, first_free_index(guest), q35)}
    for p in sorted(layout.values(), key=lambda p: p.index):
        guest.add_device(xmlconfig.GuestPCIExpanderBus(
            p.index, p.cell, p.bus_nr, pcie=q35))
        for slot, port in enumerate(p.ports):
            guest.add_device(xmlconfig.GuestPCIeRootPortOn(
                port, p.index, slot))
    used = {}
    lines = []
    for dev, gpu, cell in placed:
        p = layout[cell]
        n = used.get(cell, 0)
        used[cell] = n + 1
        if q35:
            bus, slot = p.ports[n], 0
        else:
            # Slot 0 of a PCI expander bus is not for devices.
            bus, slot = p.index, n + 1
        address = guest_devices.pci_address(dev) if isinstance(
            dev, vconfig.LibvirtConfigGuestHostdevPCI) else str(gpu.address)
        if isinstance(dev, vconfig.LibvirtConfigGuestHostdevPCI):
            dev = xmlconfig.promote(dev, xmlconfig.GuestHostdevPCI)
        else:
            dev = xmlconfig.promote(dev, xmlconfig.GuestHostdevMDEVOnBus)
        dev.guest_bus = bus
        dev.guest_slot = slot
        lines.append('locality: %s behind a %s expander bus on guest NUMA '
                     'node %d (host node %s; controller %d, busNr 0x%02x)' % (
                         address, 'PCIe' if q35 else 'PCI', cell,
                         gpu.numa_node, p.index, p.bus_nr))
    return lines
