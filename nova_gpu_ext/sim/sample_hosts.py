"""The named sample hosts: fake sysfs trees of documented real layouts.

Layer rule: simulation (writes only under the root it is given). Each
function builds one host with :class:`nova_gpu_ext.sim.fake_sysfs.FakeSysfs`
as the vendors' and the kernel's documents show it (PCI addresses with hex
letters, VFs carrying mdev types); :data:`SAMPLE_HOSTS` names the hosts
every test, the CLI's ``--sample`` and the docs refer to.
"""

import os

from nova_gpu_ext.sim import fake_sysfs
from nova_gpu_ext.sim import samplehost

FakeSysfs = fake_sysfs.FakeSysfs
NVIDIA = fake_sysfs.NVIDIA
AMD = fake_sysfs.AMD
INTEL = fake_sysfs.INTEL
CLASS_VGA = fake_sysfs.CLASS_VGA
_write = fake_sysfs._write


def _two_sockets(fs, cpus_per_node=8, memory_mb=65536, hugepages=None):
    for node in (0, 1):
        fs.add_node(node, range(node * cpus_per_node,
                                (node + 1) * cpus_per_node),
                    memory_mb, socket=node, hugepages=hugepages)


def dgx_2socket_8gpu(root, dev_root=None):
    """2 sockets / 2 NUMA nodes, 8 NVIDIA A100 (4 per socket, 2 per PCIe
    switch), each with a card and a render node, an ASPEED BMC console."""
    fs = FakeSysfs(root, dev_root)
    _two_sockets(fs, cpus_per_node=16, memory_mb=262144,
                 hugepages={2048: 1024, 1048576: 16})
    fs.add_pci('0000:02:00.0', 0x1a03, 0x2000, pci_class=CLASS_VGA,
               numa_node=0, driver='ast', iommu_group=1, link=None)
    group = 10
    for node, buses in ((0, (0x07, 0x0f, 0x47, 0x4e)),
                        (1, (0x87, 0x90, 0xb7, 0xbd))):
        for i, bus in enumerate(buses):
            if i % 2 == 0:
                root_port = '0000:%02x:01.0' % (bus - 4)
                switch_up = '0000:%02x:00.0' % (bus - 3)
                fs.add_bridge(root_port, numa_node=node)
                fs.add_bridge(switch_up, parent=root_port, numa_node=node)
            down = '0000:%02x:%02x.0' % (bus - 2, i % 2)
            fs.add_bridge(down, parent=switch_up, numa_node=node)
            fs.add_gpu('0000:%02x:00.0' % bus, NVIDIA, 0x20b0, node,
                       'nvidia', iommu_group=group, parent=down,
                       render=True, card=True)
            group += 1
    return fs


def amd_mxgpu_sriov(root, dev_root=None):
    """AMD MxGPU: 2 FirePro S7150 x2 PFs (one per node), 16 VFs each
    possible, 8 enabled on the first, 16 on the second."""
    fs = FakeSysfs(root, dev_root)
    _two_sockets(fs, cpus_per_node=12, memory_mb=131072)
    fs.add_gpu('0000:03:00.0', AMD, 0x6929, 0, 'gim', iommu_group=20)
    fs.add_vfs('0000:03:00.0', 8, totalvfs=16, vf_device=0x692f,
               first_iommu_group=100)
    fs.add_gpu('0000:83:00.0', AMD, 0x6929, 1, 'gim', iommu_group=21)
    fs.add_vfs('0000:83:00.0', 16, totalvfs=16, vf_device=0x692f,
               first_iommu_group=200)
    return fs


NVIDIA_VGPU_TYPES = (
    # (type id, label, instances on an idle M60 GPU)
    ('nvidia-18', 'GRID M60-2Q', 4),
    ('nvidia-22', 'GRID M60-8Q', 1),
)


def nvidia_vgpu_mdev(root, dev_root=None):
    """NVIDIA vGPU: 4 Tesla M60 GPUs (2 per node) offering mdev types; two
    mdevs already exist on the first GPU."""
    fs = FakeSysfs(root, dev_root)
    _two_sockets(fs)
    for i, (bus, node) in enumerate(((0x3d, 0), (0x3e, 0),
                                     (0x88, 1), (0x89, 1))):
        address = '0000:%02x:00.0' % bus
        fs.add_gpu(address, NVIDIA, 0x13f2, node, 'nvidia',
                   iommu_group=30 + i)
        used = 2 if i == 0 else 0
        fs.add_mdev_type(address, 'nvidia-18', 'GRID M60-2Q', 4 - used,
                         description='num_heads=4, frl_config=60, '
                                     'framebuffer=2048M')
        fs.add_mdev_type(address, 'nvidia-22', 'GRID M60-8Q',
                         0 if used else 1,
                         description='num_heads=4, frl_config=60, '
                                     'framebuffer=8192M')
        for n in range(used):
            fs.add_mdev(address, 'nvidia-18',
                        uuid='a%07d-0000-4000-8000-000000000000' % n)
    return fs


def intel_gvtg(root, dev_root=None):
    """Intel GVT-g: one integrated GPU (VGA class, i915) with GVT-g types,
    single socket and single node, card0 and renderD128."""
    fs = FakeSysfs(root, dev_root)
    fs.add_node(0, range(8), 32768, socket=0)
    address = '0000:00:02.0'
    fs.add_gpu(address, INTEL, 0x3e92, 0, 'i915', pci_class=CLASS_VGA,
               iommu_group=0, render=True, card=True)
    fs.add_mdev_type(address, 'i915-GVTg_V5_4', 'GVTg_V5_4', 2,
                     description='low_gm_size: 128MB, high_gm_size: 512MB')
    fs.add_mdev_type(address, 'i915-GVTg_V5_8', 'GVTg_V5_8', 4,
                     description='low_gm_size: 64MB, high_gm_size: 384MB')
    return fs


def nvidia_sriov_vgpu(root, dev_root=None):
    """SR-IOV vGPU (NVIDIA Ampere and later, the layout of Nova's
    virtual-GPU guide): two A10 PFs (0000:ca:00.0 on node 0, 0000:e1:00.0
    on node 1); ``sriov-manage -e`` enabled 4 VFs on each, and each VF
    offers one instance of ``nvidia-593`` (A10-4Q) under its own
    ``mdev_supported_types``. One mdev exists on the first VF of the first
    PF (its ``available_instances`` is 0)."""
    fs = FakeSysfs(root, dev_root)
    _two_sockets(fs)
    for i, (pf, node) in enumerate((('0000:ca:00.0', 0),
                                    ('0000:e1:00.0', 1))):
        fs.add_gpu(pf, NVIDIA, 0x2236, node, 'nvidia', iommu_group=50 + i)
        vfs = fs.add_vfs(pf, 4, totalvfs=32, driver='nvidia',
                         first_iommu_group=150 + 10 * i)
        for j, vf in enumerate(vfs):
            used = i == 0 and j == 0
            fs.add_mdev_type(vf, 'nvidia-593', 'NVIDIA A10-4Q',
                             0 if used else 1,
                             description='num_heads=4, frl_config=60, '
                                         'framebuffer=4096M')
            if used:
                fs.add_mdev(vf, 'nvidia-593',
                            uuid='c0000000-0000-4000-8000-000000000000')
    return fs


def nvidia_mig_vgpu(root, dev_root=None):
    """MIG-backed vGPU: an A100 PF (0000:b1:00.0) in MIG mode whose 7 VFs
    each offer one ``A100-1-5C`` instance (one GPU instance of 1 slice
    each). Its tenants run in parallel: not time-sliced."""
    fs = FakeSysfs(root, dev_root)
    _two_sockets(fs)
    fs.add_gpu('0000:b1:00.0', NVIDIA, 0x20b0, 1, 'nvidia', iommu_group=60)
    for vf in fs.add_vfs('0000:b1:00.0', 7, totalvfs=16, driver='nvidia',
                         first_iommu_group=160):
        fs.add_mdev_type(vf, 'nvidia-699', 'NVIDIA A100-1-5C', 1)
    return fs


def nvidia_vfio_variant(root, dev_root=None):
    """NVIDIA vGPU on the vendor's VFIO variant driver (no mdev): an L40S
    PF (0000:4a:00.0) with 4 VFs bound to ``nvidia_vgpu_vfio``; the vGPU
    type is set per VF in sysfs and Nova passes the VFs through as PCI
    devices (``[pci] device_spec`` with ``"managed": "no"``, Nova 31 and
    later). The VFs are the tenants of their PF, like SR-IOV VFs."""
    fs = FakeSysfs(root, dev_root)
    _two_sockets(fs)
    fs.add_gpu('0000:4a:00.0', NVIDIA, 0x26b9, 0, 'nvidia', iommu_group=70)
    for vf in fs.add_vfs('0000:4a:00.0', 4, totalvfs=32,
                         driver='nvidia_vgpu_vfio', first_iommu_group=170):
        _write(os.path.join(fs.device_dir(vf), 'nvidia',
                            'current_vgpu_type'), '1155\n')
    return fs


def single_socket_numa_unknown(root, dev_root=None):
    """A single-socket host whose GPU reports ``numa_node`` = -1."""
    fs = FakeSysfs(root, dev_root)
    fs.add_node(0, range(16), 65536, socket=0)
    fs.add_gpu('0000:01:00.0', NVIDIA, 0x1eb8, -1, 'vfio-pci',
               iommu_group=1, render=False, audio=True)
    return fs


def two_node_numa_unknown(root, dev_root=None):
    """A 2-node host whose only GPU reports ``numa_node`` = -1."""
    fs = FakeSysfs(root, dev_root)
    _two_sockets(fs)
    fs.add_gpu('0000:41:00.0', NVIDIA, 0x1eb8, -1, 'vfio-pci',
               iommu_group=5)
    return fs


def no_gpu(root, dev_root=None):
    """A CPU-only host: NUMA nodes and a NIC, no display controller."""
    fs = FakeSysfs(root, dev_root)
    _two_sockets(fs, cpus_per_node=4, memory_mb=16384)
    fs.add_pci('0000:18:00.0', INTEL, 0x1572, pci_class=0x020000,
               numa_node=0, driver='i40e', iommu_group=3)
    return fs


def broken(root, dev_root=None):
    """Everything that goes wrong in the field, on one 2-node host.

    * a GPU with an empty ``vendor``-less twin (skipped, warned),
    * a GPU whose ``numa_node`` says ``garbage``,
    * a dangling ``driver`` symlink and a dangling ``iommu_group``,
    * an mdev type whose ``available_instances`` is empty,
    * a render node for virtio/vgem with no PCI parent,
    * a GPU behind a non-ACS switch sharing its IOMMU group with a NIC,
    * a NUMA node whose ``meminfo`` is unreadable garbage.
    """
    fs = FakeSysfs(root, dev_root)
    _two_sockets(fs, cpus_per_node=4, memory_mb=16384)
    _write(fs.path('devices', 'system', 'node', 'node1', 'meminfo'),
           'no numbers here\n')
    good = fs.add_gpu('0000:05:00.0', NVIDIA, 0x1eb8, 0, 'vfio-pci',
                      iommu_group=7, render=True)
    fs.add_pci('0000:04:00.0', INTEL, 0x1572, pci_class=0x020000,
               numa_node=0, driver='i40e', iommu_group=7)
    del good
    odd = fs.add_gpu('0000:06:00.0', NVIDIA, 0x1eb8, 1, 'vfio-pci')
    _write(os.path.join(odd, 'numa_node'), 'garbage\n')
    dangling = fs.add_gpu('0000:07:00.0', AMD, 0x66a1, 1, None)
    os.symlink('../../../bus/pci/drivers/gone', os.path.join(dangling,
                                                             'driver'))
    os.symlink('../../../kernel/iommu_groups/999',
               os.path.join(dangling, 'iommu_group'))
    nameless = fs.add_pci('0000:08:00.0', NVIDIA, 0x13f2, numa_node=1)
    os.unlink(os.path.join(nameless, 'vendor'))
    mdev_parent = fs.add_gpu('0000:09:00.0', NVIDIA, 0x13f2, 1, 'nvidia')
    type_dir = fs.add_mdev_type('0000:09:00.0', 'nvidia-18', 'GRID M60-2Q',
                                4)
    _write(os.path.join(type_dir, 'available_instances'), '')
    del mdev_parent
    fs.add_drm('renderD130', platform='vgem', driver='vgem')
    return fs


def virgl_2node(root, dev_root=None):
    """The demo's sample host (see :mod:`nova_gpu_ext.sim.samplehost`)."""
    return samplehost.write_sysfs(root, dev_root=dev_root)


def generated(root, gpus=16, vfs_per_gpu=16, nodes=2, dev_root=None):
    """A large host for benchmarks: ``gpus`` PFs spread over ``nodes``
    nodes, each with ``vfs_per_gpu`` VFs, a render node and an mdev type."""
    fs = FakeSysfs(root, dev_root)
    per_node = max(1, 64 // nodes)
    for node in range(nodes):
        fs.add_node(node, range(node * per_node, (node + 1) * per_node),
                    131072, socket=node)
    for i in range(gpus):
        node = i * nodes // gpus
        address = '0000:%02x:00.0' % (0x10 + i * 4)
        fs.add_gpu(address, AMD, 0x6929, node, 'gim', iommu_group=i + 1,
                   render=True)
        if vfs_per_gpu:
            fs.add_vfs(address, vfs_per_gpu, vf_device=0x692f,
                       first_iommu_group=1000 + i * vfs_per_gpu)
    return fs


def hgx_h100_4(root, dev_root=None):
    """4 NVIDIA H100 SXM5 passed through whole (vfio-pci), 2 per NUMA
    node, BAR1 128 GiB each: the large-BAR scenario (gpu_layouts)."""
    from nova_gpu_ext.sim import gpu_layouts
    return gpu_layouts.HGX_H100_4.host().write_sysfs(root, dev_root)


SAMPLE_HOSTS = {
    'hgx_h100_4': hgx_h100_4,
    'dgx_2socket_8gpu': dgx_2socket_8gpu,
    'amd_mxgpu_sriov': amd_mxgpu_sriov,
    'nvidia_vgpu_mdev': nvidia_vgpu_mdev,
    'intel_gvtg': intel_gvtg,
    'nvidia_sriov_vgpu': nvidia_sriov_vgpu,
    'nvidia_mig_vgpu': nvidia_mig_vgpu,
    'nvidia_vfio_variant': nvidia_vfio_variant,
    'single_socket_numa_unknown': single_socket_numa_unknown,
    'two_node_numa_unknown': two_node_numa_unknown,
    'no_gpu': no_gpu,
    'broken': broken,
    'virgl_2node': virgl_2node,
}
