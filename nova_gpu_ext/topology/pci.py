"""Read PCI display-class functions: ids, locality, IOMMU group, link.

Layer rule: adapter (I/O) through :class:`SysfsPaths`; see the package
docstring for the error rule. SR-IOV and mediated-device facts come from
:mod:`sriov` and :mod:`mdev`; :mod:`discover` composes one ``GPU`` each.

Cost matters: nova-compute discovers on every resource update, and a host
can have hundreds of VFs. Each device directory is listed once and only the
attributes it has are opened; a VF's NUMA node and local CPUs are its PF's
(the kernel copies them), so they are not read again per VF.
"""

import dataclasses
from typing import Optional

from nova_gpu_ext import model
from nova_gpu_ext.topology import sysfs_reader as sr


@dataclasses.dataclass
class RawPCIFunction:
    """What sysfs says about one PCI function, before policy."""

    address: model.PCIAddress
    path: str
    entries: frozenset
    vendor_id: Optional[int]
    device_id: Optional[int]
    pci_class: Optional[int]
    numa_node: Optional[int]        # as the kernel says: -1 kept
    local_cpus: frozenset
    iommu_group: Optional[int]
    driver: Optional[str]
    link_speed: Optional[str]
    link_width: Optional[int]

    @property
    def is_vf(self) -> bool:
        return 'physfn' in self.entries


def parse_class(text):
    """``0x030200`` -> 0x0302 (base class and subclass)."""
    return int(text, 16) >> 8


def _read(reader, path, entries, name, parse, what, required=False):
    if name not in entries:
        if required:
            reader.warn('%s/%s: missing' % (path, name))
        return None
    return reader.parsed(path + '/' + name, parse, required=required,
                         what=what)


def read_function(reader, path, address, entries, pci_class):
    is_vf = 'physfn' in entries
    numa_node = local = speed = width = None
    if not is_vf:
        numa_node = _read(reader, path, entries, 'numa_node', sr.parse_int,
                          'a NUMA node')
        local = _read(reader, path, entries, 'local_cpulist',
                      sr.parse_cpulist, 'a CPU list')
        if local is None:
            local = _read(reader, path, entries, 'local_cpus',
                          sr.parse_cpumask, 'a CPU mask')
        if 'current_link_speed' in entries:
            speed = reader.text(path + '/current_link_speed') or None
        width = _read(reader, path, entries, 'current_link_width',
                      sr.parse_count, 'a link width')
    iommu_group = None
    if 'iommu_group' in entries:
        iommu = reader.link_name(path + '/iommu_group', check=not is_vf)
        try:
            iommu_group = int(iommu) if iommu is not None else None
        except ValueError:
            reader.warn('%s/iommu_group: odd target %r' % (path, iommu))
    return RawPCIFunction(
        address=address,
        path=path,
        entries=entries,
        # A VF's vendor is its PF's; discover fills it in.
        vendor_id=-1 if is_vf else _read(
            reader, path, entries, 'vendor', sr.parse_hex, 'a vendor id',
            required=True),
        device_id=_read(reader, path, entries, 'device', sr.parse_hex,
                        'a device id', required=True),
        pci_class=pci_class,
        numa_node=numa_node,
        local_cpus=local or frozenset(),
        iommu_group=iommu_group,
        driver=(reader.link_name(path + '/driver', check=not is_vf)
                if 'driver' in entries else None),
        link_speed=speed,
        link_width=width,
    )


def read_display_functions(paths, reader):
    """Every display-class PCI function (GPU, PF, VF), by address."""
    out = []
    base = paths.pci_devices_dir
    for name in reader.listdir(base):
        path = base + '/' + name
        pci_class = reader.parsed(path + '/class', parse_class,
                                  what='a PCI class')
        if pci_class not in model.GPU_PCI_CLASSES:
            continue
        try:
            address = model.PCIAddress.parse(name)
        except ValueError:
            reader.warn('%s: not a PCI address, ignored' % path)
            continue
        entries = frozenset(reader.listdir(path))
        function = read_function(reader, path, address, entries, pci_class)
        if function.vendor_id is not None:
            out.append(function)
    return sorted(out, key=lambda f: f.address)


def read_iommu_group_members(paths, reader, group):
    members = []
    for name in reader.listdir(
            '%s/%d/devices' % (paths.iommu_groups_dir, group)):
        try:
            members.append(model.PCIAddress.parse(name))
        except ValueError:
            continue
    return tuple(sorted(members))
