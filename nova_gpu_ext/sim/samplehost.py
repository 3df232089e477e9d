"""The built-in sample GPU host of the demo and the functional tests.

Layer rule: simulation. One description drives both views of the host, so
they cannot disagree: Nova's fakelibvirt (what libvirt reports: NUMA cells,
PCI devices, mdev-capable GPUs) and a fake sysfs tree (what nova-gpu-ext's
discovery reads: NUMA nodes, sockets, GPUs, render nodes).

The host: 2 sockets, one NUMA node each, 6 CPUs and 16 GiB per node;
on each node one NVIDIA GPU offering vGPU (mdev) types, one NVIDIA GPU for
whole passthrough (bound to vfio-pci, so it has no DRM node) and one AMD GPU
kept by the host driver (amdgpu) whose DRM render node serves virgl guests.
"""

import dataclasses

from oslo_serialization import jsonutils

from nova_gpu_ext.sim import gpu_layouts

DESCRIPTION = ('2 sockets / 2 NUMA nodes, per node: 1 vGPU-capable GPU '
               '(mdev), 1 passthrough GPU, 1 host GPU with a render node')

GPU_VENDOR = '10de'
PASSTHROUGH_PRODUCT = '1eb8'       # Tesla T4
VGPU_PRODUCT = '13f2'              # Tesla M60
GPU_ALIAS = 'nvidia-t4'


#: Nova's fake vGPU type: fakelibvirt's stock mdev parent offers 16
NVIDIA_11 = gpu_layouts.MdevType('nvidia-11', 'nvidia-11', 16)

RENDER_VENDOR = '1002'
RENDER_PRODUCT = '73a3'            # Radeon PRO W6800


@dataclasses.dataclass(frozen=True)
class SampleGPU:
    bus: int
    slot: int
    numa_node: int
    mdev: bool
    render_node: str = ''

    @property
    def address(self):
        return '0000:%02x:%02x.0' % (self.bus, self.slot)

    @property
    def vendor(self):
        return RENDER_VENDOR if self.render_node else GPU_VENDOR

    @property
    def product(self):
        if self.render_node:
            return RENDER_PRODUCT
        return VGPU_PRODUCT if self.mdev else PASSTHROUGH_PRODUCT

    @property
    def product_name(self):
        if self.render_node:
            return 'Radeon PRO W6800'
        return 'Tesla M60' if self.mdev else 'Tesla T4'

    @property
    def driver(self):
        if self.render_node:
            return 'amdgpu'
        return 'nvidia' if self.mdev else 'vfio-pci'

    def as_gpu(self, iommu_group):
        """This GPU in the one description format."""
        return gpu_layouts.GPU(
            self.address, int(self.vendor, 16), int(self.product, 16),
            self.product_name, self.numa_node, self.driver, iommu_group,
            mdev_types=(NVIDIA_11,) if self.mdev else (),
            render_node=self.render_node)


GPUS = (
    SampleGPU(bus=0x81, slot=0, numa_node=0, mdev=True),
    SampleGPU(bus=0x81, slot=1, numa_node=1, mdev=True),
    SampleGPU(bus=0x3b, slot=0, numa_node=0, mdev=False),
    SampleGPU(bus=0xd8, slot=0, numa_node=1, mdev=False),
    SampleGPU(bus=0x3c, slot=0, numa_node=0, mdev=False,
              render_node='renderD128'),
    SampleGPU(bus=0xd9, slot=0, numa_node=1, mdev=False,
              render_node='renderD129'),
)

NODES = 2
CPUS_PER_NODE = 6
MEMORY_MB_PER_NODE = 16384


def layout(gpus=GPUS, nodes=NODES, nodes_per_socket=1,
           cpus_per_node=CPUS_PER_NODE,
           memory_mb_per_node=MEMORY_MB_PER_NODE):
    """The one description (:class:`gpu_layouts.Layout`) of a host with
    these GPUs, rendered both as fake sysfs and as fakelibvirt devices."""
    return gpu_layouts.Layout(
        'sample', DESCRIPTION,
        tuple(g.as_gpu(iommu_group=40 + i) for i, g in enumerate(gpus)),
        nodes=nodes, nodes_per_socket=nodes_per_socket,
        cpus_per_node=cpus_per_node, memory_mb_per_node=memory_mb_per_node)


def host_info():
    return layout().host_info()


def pci_info(gpus=GPUS):
    """fakelibvirt's view of the GPUs."""
    return layout(gpus).stock_pci_info()


def write_sysfs(root, gpus=GPUS, dev_root=None):
    """The same host as a fake sysfs tree under ``root``."""
    return layout(gpus).host().write_sysfs(root, dev_root=dev_root)


def configure(test):
    """Nova options for the sample host: PCI alias, vGPU type."""
    # Lazy: the CLI's sample hosts (--sample) use this module without
    # Nova's test fixtures.
    from nova.tests.fixtures import libvirt as fakelibvirt
    spec = {'vendor_id': GPU_VENDOR, 'product_id': PASSTHROUGH_PRODUCT}
    test.flags(device_spec=[jsonutils.dumps(spec)],
               alias=[jsonutils.dumps(dict(spec, name=GPU_ALIAS))],
               group='pci')
    test.flags(enabled_mdev_types=fakelibvirt.NVIDIA_11_VGPU_TYPE,
               group='devices')


def start_hosts(test, cpu_host=True):
    """Start the sample GPU host and a CPU-only host, both ours.

    Returns a dict role -> hostname.
    """
    hosts = {}
    test.sysfs_root = test.build_sysfs(None)
    # Kept so a test can change the host as the kernel would (mdevs).
    test.sysfs = write_sysfs(test.sysfs_root)
    test.flags(sysfs_root=test.sysfs_root, group='gpu_ext')
    hosts['gpu'] = test.start_compute(
        'gpu-host-1', host_info=host_info(), pci_info=pci_info(),
        libvirt_version=test.FAKE_LIBVIRT_VERSION,
        qemu_version=test.FAKE_QEMU_VERSION)
    if cpu_host:
        test.flags(sysfs_root=test.build_sysfs(None), group='gpu_ext')
        hosts['cpu'] = test.start_compute('cpu-host-1', host_info=host_info())
    test.flags(sysfs_root=test.sysfs_root, group='gpu_ext')
    return hosts


def start_upstream_twin(test):
    """The same hardware with upstream's driver, for XML comparisons."""
    return test.start_compute(
        'upstream-twin', driver=test.UPSTREAM_DRIVER,
        host_info=host_info(), pci_info=pci_info(),
        libvirt_version=test.FAKE_LIBVIRT_VERSION,
        qemu_version=test.FAKE_QEMU_VERSION)
