"""The host topology model: what a GPU host is made of.

Layer rule: pure data. Frozen dataclasses only; no Nova, no I/O, no CONF.
Readers in ``nova_gpu_ext.topology`` build these objects; every other layer
only reads them. Anything unknown is ``None`` (never a made-up default), so
policies can decide what "unknown" means.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
from typing import Any, Iterable, Optional

_PCI_RE = re.compile(
    r'^(?P<domain>[0-9a-fA-F]{4}):(?P<bus>[0-9a-fA-F]{2}):'
    r'(?P<slot>[0-9a-fA-F]{2})\.(?P<function>[0-7])$')


@dataclasses.dataclass(frozen=True, order=True)
class PCIAddress:
    """A PCI address such as ``0000:3b:00.0``: the one type that reads and
    writes every spelling of it (the kernel's lower case, ``str()``; Nova's
    upper case in PCI-in-placement provider names, :attr:`upper`; libvirt's
    node-device name, :attr:`libvirt_name`; the hex fields of a domain
    XML ``<address>``, :meth:`from_fields`)."""

    domain: int
    bus: int
    slot: int
    function: int

    @classmethod
    def parse(cls, text: str) -> 'PCIAddress':
        """``0000:3b:00.0`` or ``0000:3B:00.0``."""
        # (a dataclass type is hashable; typeshed's __hash__ says otherwise)
        return _parse_pci_address(cls, text)  # type: ignore[arg-type]

    @classmethod
    def from_libvirt_name(cls, name: str) -> 'PCIAddress':
        """``pci_0000_81_00_0`` (libvirt's node-device name)."""
        if not name.startswith('pci_'):
            raise ValueError('not a libvirt PCI device name: %r' % name)
        domain, bus, slot, function = name[len('pci_'):].split('_')
        return cls.parse('%s:%s:%s.%s' % (domain, bus, slot, function))

    @classmethod
    def from_fields(cls, domain: object, bus: object, slot: object,
                    function: object) -> 'PCIAddress':
        """From the hex fields of a domain XML ``<address>`` or Nova's
        ``LibvirtConfigGuestHostdevPCI`` (``0x3b`` or ``3b``)."""
        return cls(*(int(str(v), 16) for v in (domain, bus, slot, function)))

    @property
    def libvirt_name(self) -> str:
        """The libvirt node-device name, ``pci_0000_3b_00_0``."""
        return 'pci_%04x_%02x_%02x_%x' % (
            self.domain, self.bus, self.slot, self.function)

    @property
    def upper(self) -> str:
        """Nova's spelling in PCI-in-placement provider names
        (``pci_placement_translator``): ``0000:3B:00.0``."""
        return str(self).upper()

    def __str__(self) -> str:
        return '%04x:%02x:%02x.%x' % (
            self.domain, self.bus, self.slot, self.function)


@functools.lru_cache(maxsize=8192)
def _parse_pci_address(cls: Any, text: str) -> PCIAddress:
    # Cached: discovery parses the same few hundred addresses on every
    # resource update of nova-compute.
    match = _PCI_RE.match(text.strip())
    if not match:
        raise ValueError('not a PCI address: %r' % text)
    fields = ('domain', 'bus', 'slot', 'function')
    address: PCIAddress = cls(*(int(match.group(k), 16) for k in fields))
    return address


class GPUKind(str, enum.Enum):
    """How a GPU function is exposed to guests."""

    WHOLE = 'whole'          # a physical GPU passed through as one device
    PF = 'pf'                # an SR-IOV physical function with VFs
    VF = 'vf'                # an SR-IOV virtual function
    MDEV_PARENT = 'mdev'     # a GPU that offers mediated device types


VENDOR_NAMES = {
    0x10de: 'NVIDIA',
    0x1002: 'AMD',
    0x8086: 'Intel',
    0x1af4: 'Red Hat (virtio)',
    0x1234: 'QEMU',
    0x1a03: 'ASPEED',
    0x102b: 'Matrox',
}

# PCI base class 0x03 (display): 0x0300 VGA, 0x0302 3D, 0x0380 other.
GPU_PCI_CLASSES = frozenset({0x0300, 0x0302, 0x0380})

# Display controllers that are never a GPU for guests: BMC consoles and
# emulated VGA of a virtual machine (vendor, or (vendor, device)).
CONSOLE_DISPLAY_IDS = frozenset({
    0x1a03,             # ASPEED BMC VGA
    0x102b,             # Matrox G200 BMC VGA
    0x1234,             # QEMU standard VGA
    0x1013,             # Cirrus Logic (emulated)
    0x15ad,             # VMware SVGA
    (0x1af4, 0x1050),   # virtio-gpu of a virtual machine
})


def is_console_display(vendor_id: int, device_id: int) -> bool:
    return (vendor_id in CONSOLE_DISPLAY_IDS or
            (vendor_id, device_id) in CONSOLE_DISPLAY_IDS)


@dataclasses.dataclass(frozen=True)
class NUMANode:
    id: int
    cpus: frozenset[int]
    memory_mb: Optional[int]
    socket: Optional[int]
    # distances[i] is the distance to the i-th node in node-id order, as the
    # kernel lists it; empty when unknown.
    distances: tuple[int, ...] = ()
    # Free huge pages on this node, keyed by page size in KiB.
    hugepages_free: tuple[tuple[int, int], ...] = ()


@dataclasses.dataclass(frozen=True)
class MdevType:
    """A mediated device type offered by one parent device."""

    name: str                       # the sysfs type id, e.g. nvidia-35
    label: Optional[str]            # the human name, e.g. GRID M60-2Q
    description: Optional[str]
    device_api: Optional[str]       # vfio-pci, ...
    available_instances: Optional[int]


@dataclasses.dataclass(frozen=True)
class Mdev:
    """An existing mediated device."""

    uuid: str
    type_name: Optional[str]
    parent: PCIAddress


@dataclasses.dataclass(frozen=True)
class RenderNode:
    """A DRM node: ``/dev/dri/renderD128`` (render) or ``card0``."""

    name: str                        # renderD128
    path: str                        # /dev/dri/renderD128
    pci_address: Optional[PCIAddress]  # None for virtual (vgem) nodes
    numa_node: Optional[int]
    driver: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class BAR:
    """One PCI base address register as sysfs ``resource`` lists it."""

    index: int
    size: int
    is_64bit: bool
    prefetchable: bool


@dataclasses.dataclass(frozen=True)
class AddressLimits:
    """How much physical address space the host can give a guest.

    ``cpu_bits``: /proc/cpuinfo "address sizes"; ``iommu_bits``: the
    narrowest IOMMU's guest address width (VT-d MGAW, AMD HATS);
    ``page_1g``: the CPU has 1 GiB pages (``pdpe1gb``). None: unknown.
    """

    cpu_bits: Optional[int] = None
    iommu_bits: Optional[int] = None
    page_1g: Optional[bool] = None


@dataclasses.dataclass(frozen=True)
class GPU:
    """One PCI display-class function (a GPU, a PF or a VF)."""

    address: PCIAddress
    vendor_id: int
    device_id: int
    pci_class: int
    kind: GPUKind
    numa_node: Optional[int]            # None: unknown (numa_node = -1)
    socket: Optional[int]
    local_cpus: frozenset[int] = frozenset()
    iommu_group: Optional[int] = None
    # Other functions in the same IOMMU group (they move with the GPU).
    iommu_peers: tuple[PCIAddress, ...] = ()
    driver: Optional[str] = None
    link_speed: Optional[str] = None    # e.g. "16.0 GT/s PCIe"
    link_width: Optional[int] = None
    physfn: Optional[PCIAddress] = None          # set on VFs
    vfs: tuple[PCIAddress, ...] = ()             # set on PFs
    sriov_totalvfs: Optional[int] = None
    sriov_numvfs: Optional[int] = None
    mdev_types: tuple[MdevType, ...] = ()
    mdevs: tuple[Mdev, ...] = ()
    render_node: Optional[str] = None            # /dev/dri/renderD128
    card_node: Optional[str] = None              # /dev/dri/card0
    # The PCI path from the root complex: ('pci0000:80', '0000:80:01.0',
    # '0000:81:00.0', ...) ending with the bridge right above the GPU.
    upstream: tuple[str, ...] = ()
    # Memory BARs from sysfs ``resource`` (empty: not read).
    bars: tuple[BAR, ...] = ()

    @property
    def vendor_name(self) -> str:
        return VENDOR_NAMES.get(self.vendor_id, '0x%04x' % self.vendor_id)


@dataclasses.dataclass(frozen=True)
class GPUHealth:
    """What the host sees of one physical GPU's health (no guest driver).

    ``aer`` holds the kernel's AER totals since boot, e.g.
    ``(('correctable', 3), ('nonfatal', 0), ('fatal', 0))``;
    ``aer_baseline`` the totals at this process's first reading and
    ``aer_rising`` the kinds whose total rose since then.
    """

    address: str
    present: bool = True            # False: the device vanished
    responds: bool = True           # False: config space reads all ones
    link_width: Optional[int] = None
    max_link_width: Optional[int] = None
    link_speed: Optional[str] = None
    max_link_speed: Optional[str] = None
    aer: tuple[tuple[str, int], ...] = ()
    aer_baseline: tuple[tuple[str, int], ...] = ()
    aer_rising: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class HostTopology:
    """Everything nova-gpu-ext knows about one host."""

    numa_nodes: tuple[NUMANode, ...]
    gpus: tuple[GPU, ...]
    render_nodes: tuple[RenderNode, ...] = ()
    # One line per fact that could not be read; shown by the CLI.
    warnings: tuple[str, ...] = ()
    # Display controllers that are not GPUs (BMC consoles, emulated VGA).
    ignored: tuple[str, ...] = ()
    # Health of each physical GPU, including ones that vanished since.
    health: tuple[GPUHealth, ...] = ()
    # CPU / IOMMU address widths and 1 GiB pages (large-BAR guests).
    address_limits: AddressLimits = AddressLimits()

    def health_of(self, address: PCIAddress | str) -> Optional[GPUHealth]:
        for entry in self.health:
            if entry.address == str(address):
                return entry
        return None

    def gpu(self, address: PCIAddress | str) -> Optional[GPU]:
        if isinstance(address, str):
            address = PCIAddress.parse(address)
        for gpu in self.gpus:
            if gpu.address == address:
                return gpu
        return None

    def node(self, node_id: int) -> Optional[NUMANode]:
        for node in self.numa_nodes:
            if node.id == node_id:
                return node
        return None

    def physical_gpu(self, address: PCIAddress | str) -> Optional[GPU]:
        """The physical GPU behind one function: a VF's PF (when the host
        has it), else the function itself; None when the host has no such
        function. The one place a device is mapped to its physical GPU."""
        gpu = self.gpu(address)
        if gpu is not None and gpu.physfn is not None:
            return self.gpu(gpu.physfn) or gpu
        return gpu

    def physical_gpus(self) -> tuple[GPU, ...]:
        """GPUs a tenant can be placed on: everything but VFs."""
        return tuple(g for g in self.gpus if g.kind is not GPUKind.VF)

    def socket_of(self, node_id: Optional[int]) -> Optional[int]:
        if node_id is None:
            return None
        node = self.node(node_id)
        return node.socket if node else None

    def render_nodes_on(self, node_id: int) -> tuple[RenderNode, ...]:
        return tuple(r for r in self.render_nodes if r.numa_node == node_id)


def sorted_gpus(gpus: Iterable[GPU]) -> tuple[GPU, ...]:
    return tuple(sorted(gpus, key=lambda g: g.address))
