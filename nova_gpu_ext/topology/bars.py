"""Readers of PCI BARs and of the host's address limits (large-BAR guests).

Layer rule: topology reader (the only layer that reads sysfs and /proc;
every path from :class:`~nova_gpu_ext.topology.paths.SysfsPaths`). A missing
or malformed file degrades that one fact to "unknown" (empty BARs, None),
never the host.

Formats read:

* ``/sys/bus/pci/devices/<addr>/resource`` (kernel
  Documentation/PCI/sysfs-pci.rst): one ``start end flags`` line of hex
  numbers per resource, BARs 0-5 first; a BAR's size is ``end - start + 1``
  (0 when unused); flags ``IORESOURCE_MEM`` 0x200, ``IORESOURCE_PREFETCH``
  0x2000, ``IORESOURCE_MEM_64`` 0x00100000 (include/linux/ioport.h).
* ``/proc/cpuinfo``: ``address sizes : 46 bits physical, 48 bits virtual``
  and the ``pdpe1gb`` flag (1 GiB pages).
* ``/sys/class/iommu/<unit>/intel-iommu/cap``: VT-d capability register,
  MGAW = bits 21:16 plus one (VT-d spec, 11.4.2); ``amd-iommu/features``:
  the extended feature register (``efr`` or ``efr:efr2``), HATS = bits
  11:10, 4 + HATS page-table levels = 48, 57 or 64 bits (AMD IOMMU spec,
  3.4.1 / 2.2.6).
"""

import os
import re
from typing import Optional

from nova_gpu_ext import model
from nova_gpu_ext.topology import sysfs_reader

IORESOURCE_MEM = 0x00000200
IORESOURCE_PREFETCH = 0x00002000
IORESOURCE_MEM_64 = 0x00100000
#: BARs 0-5; line 6 is the expansion ROM, then bridge windows / SR-IOV
STANDARD_BARS = 6

_ADDRESS_SIZES = re.compile(r'^address sizes\s*:\s*(\d+) bits physical',
                            re.MULTILINE)


def parse_resource(text: str) -> tuple[model.BAR, ...]:
    """Memory BARs 0-5 of one ``resource`` file (I/O BARs dropped)."""
    bars = []
    for index, line in enumerate(text.splitlines()[:STANDARD_BARS]):
        parts = line.split()
        if len(parts) != 3:
            continue
        start, end, flags = (int(p, 16) for p in parts)
        if not flags & IORESOURCE_MEM or end <= start:
            continue
        bars.append(model.BAR(index=index, size=end - start + 1,
                              is_64bit=bool(flags & IORESOURCE_MEM_64),
                              prefetchable=bool(flags &
                                                IORESOURCE_PREFETCH)))
    return tuple(bars)


def read_bars(paths, address: str, reader=None) -> tuple[model.BAR, ...]:
    """The memory BARs of one function; () when unreadable (through
    :class:`SysfsReader`: a FIFO or a directory in place of the file
    warns instead of blocking discovery)."""
    reader = reader or sysfs_reader.SysfsReader()
    return reader.parsed(paths.pci_resource(address), parse_resource,
                         what='BARs') or ()


def parse_cpuinfo(text: str) -> tuple[Optional[int], Optional[bool]]:
    """(physical address bits, 1 GiB pages) of the first CPU."""
    match = _ADDRESS_SIZES.search(text)
    bits = int(match.group(1)) if match else None
    page_1g = None
    for line in text.splitlines():
        if line.startswith('flags'):
            page_1g = 'pdpe1gb' in line.split(':', 1)[-1].split()
            break
    return bits, page_1g


def parse_intel_cap(text: str) -> int:
    return ((int(text.strip(), 16) >> 16) & 0x3f) + 1


def parse_amd_features(text: str) -> int:
    efr = int(text.strip().split(':')[0], 16)
    levels = 4 + ((efr >> 10) & 0x3)
    return min(64, 12 + 9 * levels)


def read_iommu_bits(paths, reader=None) -> Optional[int]:
    """The narrowest IOMMU's address width, None when none is known."""
    reader = reader or sysfs_reader.SysfsReader()
    widths = []
    for unit in reader.listdir(paths.iommu_class_dir):
        base = os.path.join(paths.iommu_class_dir, unit)
        for rel, parse in (('intel-iommu/cap', parse_intel_cap),
                           ('amd-iommu/features', parse_amd_features)):
            path = os.path.join(base, rel)
            if os.path.lexists(path):
                width = reader.parsed(path, parse, what='address width')
                if width is not None:
                    widths.append(width)
    return min(widths) if widths else None


def read_address_limits(paths, reader=None) -> model.AddressLimits:
    reader = reader or sysfs_reader.SysfsReader()
    bits = page_1g = None
    text = reader.text(paths.cpuinfo)
    if text:
        bits, page_1g = parse_cpuinfo(text)
    return model.AddressLimits(cpu_bits=bits,
                               iommu_bits=read_iommu_bits(paths, reader),
                               page_1g=page_1g)
