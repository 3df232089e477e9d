"""Read SR-IOV relations: a PF's VFs and counts, a VF's PF.

Layer rule: adapter (I/O) through :class:`SysfsPaths`; see the package
docstring for the error rule.
"""

import dataclasses
import os
from typing import Optional

from nova_gpu_ext import model
from nova_gpu_ext.topology import sysfs_reader as sr


@dataclasses.dataclass(frozen=True)
class SRIOVFacts:
    physfn: Optional[model.PCIAddress] = None
    vfs: tuple = ()
    totalvfs: Optional[int] = None
    numvfs: Optional[int] = None


def _address(reader, link):
    name = reader.link_name(link)
    if name is None:
        return None
    try:
        return model.PCIAddress.parse(name)
    except ValueError:
        reader.warn('%s: odd target %r' % (link, name))
        return None


def read_sriov(reader, device_path, entries):
    """SR-IOV facts of one function whose directory lists ``entries``."""
    physfn = None
    if 'physfn' in entries:
        physfn = _address(reader, os.path.join(device_path, 'physfn'))
    if 'sriov_totalvfs' not in entries:
        return SRIOVFacts(physfn=physfn)
    # The VFs themselves are found by discover through their ``physfn``
    # links (it reads every VF anyway); here only the counts.
    return SRIOVFacts(
        physfn=physfn,
        totalvfs=reader.parsed(os.path.join(device_path, 'sriov_totalvfs'),
                               sr.parse_count, what='a VF count'),
        numvfs=reader.parsed(os.path.join(device_path, 'sriov_numvfs'),
                             sr.parse_count, what='a VF count'),
    )
