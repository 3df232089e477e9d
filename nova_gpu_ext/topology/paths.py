"""Every sysfs and device path discovery uses, built from one root.

Layer rule: adapter helper, no I/O. Pass a :class:`SysfsPaths` through every
reader; nothing else in this project spells ``/sys``.
"""

import dataclasses
import os
from typing import Optional


@dataclasses.dataclass(frozen=True)
class SysfsPaths:
    root: str = '/sys'
    dev_root: str = '/dev'
    # None: /proc for the real /sys, <root>/_proc for a fake tree (as the
    # fake sysfs writes it, like <root>/_dev), so one root moves all.
    proc_root: Optional[str] = None

    def sys(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    # NUMA and CPUs
    @property
    def nodes_dir(self) -> str:
        return self.sys('devices', 'system', 'node')

    def node_dir(self, node_id: int) -> str:
        return os.path.join(self.nodes_dir, 'node%d' % node_id)

    def cpu_dir(self, cpu: int) -> str:
        return self.sys('devices', 'system', 'cpu', 'cpu%d' % cpu)

    @property
    def cpus_online(self) -> str:
        return self.sys('devices', 'system', 'cpu', 'online')

    # PCI
    @property
    def pci_devices_dir(self) -> str:
        return self.sys('bus', 'pci', 'devices')

    def pci_device_dir(self, address: str) -> str:
        return os.path.join(self.pci_devices_dir, address)

    @property
    def iommu_groups_dir(self) -> str:
        return self.sys('kernel', 'iommu_groups')

    def pci_resource(self, address: str) -> str:
        return os.path.join(self.pci_device_dir(address), 'resource')

    # Host address limits (large-BAR guests)
    @property
    def cpuinfo(self) -> str:
        proc = self.proc_root or (
            '/proc' if self.root == '/sys' else self.sys('_proc'))
        return os.path.join(proc, 'cpuinfo')

    @property
    def iommu_class_dir(self) -> str:
        return self.sys('class', 'iommu')

    # Mediated devices
    @property
    def mdev_devices_dir(self) -> str:
        return self.sys('bus', 'mdev', 'devices')

    # DRM
    @property
    def drm_class_dir(self) -> str:
        return self.sys('class', 'drm')

    def dri_device(self, name: str) -> str:
        return os.path.join(self.dev_root, 'dri', name)
