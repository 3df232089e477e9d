"""Discovery on every sample host: the parsed model, fact by fact."""

import os

import pytest

from nova_gpu_ext import model
from nova_gpu_ext.topology import discover
from nova_gpu_ext.sim import fake_sysfs
from nova_gpu_ext.sim import sample_hosts
from nova_gpu_ext.topology import matrix
from nova_gpu_ext.topology import paths as sysfs_paths
from nova_gpu_ext.topology import summary


def discover_sample(tmp_path, name):
    sample_hosts.SAMPLE_HOSTS[name](str(tmp_path))
    return discover.discover_host(sysfs_paths.SysfsPaths(str(tmp_path)))


def addr(text):
    return model.PCIAddress.parse(text)


def test_dgx_two_sockets_eight_gpus(tmp_path):
    host = discover_sample(tmp_path, 'dgx_2socket_8gpu')
    assert [n.id for n in host.numa_nodes] == [0, 1]
    assert [n.socket for n in host.numa_nodes] == [0, 1]
    assert host.node(1).cpus == frozenset(range(16, 32))
    assert host.node(0).memory_mb == 262144
    assert host.node(0).distances == (10, 21)
    assert dict(host.node(0).hugepages_free) == {2048: 1024, 1048576: 16}
    assert len(host.gpus) == 8
    by_node = {0: [], 1: []}
    for gpu in host.gpus:
        assert gpu.kind is model.GPUKind.WHOLE
        assert gpu.vendor_name == 'NVIDIA'
        assert gpu.driver == 'nvidia'
        assert gpu.socket == gpu.numa_node
        assert gpu.local_cpus == host.node(gpu.numa_node).cpus
        assert gpu.link_speed == '16.0 GT/s PCIe' and gpu.link_width == 16
        by_node[gpu.numa_node].append(gpu)
    assert [len(v) for v in by_node.values()] == [4, 4]
    # Every GPU has its own render and card node, on its own NUMA node.
    assert len(host.render_nodes) == 8
    for render in host.render_nodes:
        gpu = host.gpu(render.pci_address)
        assert gpu.render_node == render.path
        assert render.numa_node == gpu.numa_node
    assert host.gpu('0000:07:00.0').render_node == '/dev/dri/renderD128'
    assert host.gpu('0000:07:00.0').card_node == '/dev/dri/card0'
    # The BMC's VGA is a display controller but not a GPU.
    assert host.gpu('0000:02:00.0') is None
    assert any('ASPEED' in line for line in host.ignored)
    assert host.warnings == ()


def test_dgx_link_matrix_follows_the_pcie_tree(tmp_path):
    host = discover_sample(tmp_path, 'dgx_2socket_8gpu')
    g = host.gpu
    assert matrix.relation(g('0000:07:00.0'), g('0000:0f:00.0')) == 'PIX'
    assert matrix.relation(g('0000:07:00.0'), g('0000:47:00.0')) == 'NODE'
    assert matrix.relation(g('0000:07:00.0'), g('0000:87:00.0')) == 'SYS'
    assert matrix.relation(g('0000:07:00.0'), g('0000:07:00.0')) == 'X'
    assert g('0000:07:00.0').upstream[0] == 'pci0000:03'


def test_amd_mxgpu_sriov_pfs_and_vfs(tmp_path):
    host = discover_sample(tmp_path, 'amd_mxgpu_sriov')
    pfs = [g for g in host.gpus if g.kind is model.GPUKind.PF]
    vfs = [g for g in host.gpus if g.kind is model.GPUKind.VF]
    assert [str(p.address) for p in pfs] == ['0000:03:00.0', '0000:83:00.0']
    assert [(p.sriov_numvfs, p.sriov_totalvfs) for p in pfs] == [
        (8, 16), (16, 16)]
    assert [len(p.vfs) for p in pfs] == [8, 16]
    assert len(vfs) == 24
    for vf in vfs:
        pf = host.gpu(vf.physfn)
        assert vf.address in pf.vfs
        assert vf.numa_node == pf.numa_node and vf.socket == pf.socket
        assert vf.vendor_id == 0x1002 and vf.device_id == 0x692f
        assert vf.driver == 'vfio-pci'
    assert host.gpu('0000:83:00.1').numa_node == 1
    assert host.gpu('0000:03:00.1').iommu_group == 100
    # VFs are not places for tenants: their PFs are.
    assert host.physical_gpus() == tuple(pfs)


def test_nvidia_vgpu_mdev_types_and_existing_mdevs(tmp_path):
    host = discover_sample(tmp_path, 'nvidia_vgpu_mdev')
    assert len(host.gpus) == 4
    first = host.gpu('0000:3d:00.0')
    assert first.kind is model.GPUKind.MDEV_PARENT
    types = {t.name: t for t in first.mdev_types}
    assert types['nvidia-18'].label == 'GRID M60-2Q'
    assert types['nvidia-18'].available_instances == 2
    assert types['nvidia-18'].device_api == 'vfio-pci'
    assert 'framebuffer=2048M' in types['nvidia-18'].description
    assert types['nvidia-22'].available_instances == 0
    assert [m.type_name for m in first.mdevs] == ['nvidia-18', 'nvidia-18']
    assert all(m.parent == first.address for m in first.mdevs)
    idle = host.gpu('0000:88:00.0')
    assert idle.numa_node == 1 and idle.mdevs == ()
    assert {t.name: t.available_instances for t in idle.mdev_types} == {
        'nvidia-18': 4, 'nvidia-22': 1}


def test_intel_gvtg(tmp_path):
    host = discover_sample(tmp_path, 'intel_gvtg')
    (gpu,) = host.gpus
    assert gpu.vendor_name == 'Intel' and gpu.pci_class == 0x0300
    assert gpu.kind is model.GPUKind.MDEV_PARENT and gpu.driver == 'i915'
    assert [t.name for t in gpu.mdev_types] == [
        'i915-GVTg_V5_4', 'i915-GVTg_V5_8']
    assert gpu.numa_node == 0 and gpu.render_node == '/dev/dri/renderD128'


def test_numa_minus_one_on_a_single_node_host_is_node_zero(tmp_path):
    host = discover_sample(tmp_path, 'single_socket_numa_unknown')
    (gpu,) = host.gpus
    assert gpu.numa_node == 0 and gpu.socket == 0
    # Its HDMI audio function shares the group and is not a warning.
    assert gpu.iommu_peers == (addr('0000:01:00.1'),)
    assert host.warnings == ()


def test_numa_minus_one_on_a_two_node_host_is_unknown(tmp_path):
    host = discover_sample(tmp_path, 'two_node_numa_unknown')
    (gpu,) = host.gpus
    assert gpu.numa_node is None and gpu.socket is None
    assert summary.gpu_traits(host, gpu) == {summary.UNKNOWN_NUMA_TRAIT}
    assert len(host.warnings) == 1
    assert 'locality is unknown' in host.warnings[0]


def test_no_gpu_host(tmp_path):
    host = discover_sample(tmp_path, 'no_gpu')
    assert host.gpus == () and host.render_nodes == ()
    assert len(host.numa_nodes) == 2 and host.warnings == ()


def test_empty_tree_is_an_empty_host(tmp_path):
    host = discover.discover_host(sysfs_paths.SysfsPaths(str(tmp_path)))
    assert host == model.HostTopology(numa_nodes=(), gpus=())


def test_broken_host_degrades_one_fact_each(tmp_path):
    host = discover_sample(tmp_path, 'broken')
    warnings = '\n'.join(host.warnings)
    # Unreadable meminfo: memory unknown, the node itself kept.
    assert host.node(1).memory_mb is None
    assert host.node(1).cpus == frozenset(range(4, 8))
    assert 'node1/meminfo' in warnings
    # numa_node "garbage": locality unknown, GPU kept.
    odd = host.gpu('0000:06:00.0')
    assert odd is not None and odd.numa_node is None
    assert '0000:06:00.0/numa_node' in warnings
    # Dangling driver and IOMMU group links: names kept, both warned.
    dangling = host.gpu('0000:07:00.0')
    assert dangling.driver == 'gone' and dangling.iommu_group == 999
    assert dangling.iommu_peers == ()
    assert '0000:07:00.0/driver: dangling' in warnings
    assert '0000:07:00.0/iommu_group: dangling' in warnings
    # No vendor file: not a GPU we can describe; skipped with a warning.
    assert host.gpu('0000:08:00.0') is None
    assert '0000:08:00.0/vendor: missing' in warnings
    # Empty available_instances: the type stays, its count is unknown.
    (mtype,) = host.gpu('0000:09:00.0').mdev_types
    assert mtype.available_instances is None
    # A GPU sharing its IOMMU group with a NIC: warned by name.
    assert host.gpu('0000:05:00.0').iommu_peers == (addr('0000:04:00.0'),)
    assert 'shares IOMMU group 7 with other devices (0000:04:00.0)' in \
        warnings
    # vgem render node: kept, no PCI device, no NUMA node.
    vgem = [r for r in host.render_nodes if r.name == 'renderD130'][0]
    assert vgem.pci_address is None and vgem.numa_node is None
    assert vgem.driver == 'vgem'
    # ... and why 0000:06:00.0's NUMA node is unknown (logged at WARNING).
    assert '0000:06:00.0 (' in warnings and \
        'has no readable numa_node' in warnings
    assert len(host.warnings) == 8


def test_unreadable_file_is_a_warning_not_an_exception(tmp_path):
    fs = fake_sysfs.FakeSysfs(str(tmp_path))
    fs.add_node(0, range(4), 1024, socket=0)
    gpu_dir = fs.add_gpu('0000:01:00.0', fake_sysfs.NVIDIA, 0x1eb8, 0,
                         'vfio-pci')
    # A directory where a file should be: reading it fails with EISDIR.
    os.unlink(os.path.join(gpu_dir, 'current_link_width'))
    os.mkdir(os.path.join(gpu_dir, 'current_link_width'))
    host = discover.discover_host(sysfs_paths.SysfsPaths(str(tmp_path)))
    assert host.gpus[0].link_width is None
    assert any('current_link_width: unreadable' in w for w in host.warnings)


def test_virgl_sample_host_matches_the_demo_description(tmp_path):
    from nova_gpu_ext.sim import samplehost
    host = discover_sample(tmp_path, 'virgl_2node')
    assert len(host.gpus) == len(samplehost.GPUS)
    for sample in samplehost.GPUS:
        gpu = host.gpu(sample.address)
        assert gpu.numa_node == sample.numa_node
        assert (gpu.kind is model.GPUKind.MDEV_PARENT) == sample.mdev
        assert (gpu.render_node or '').endswith(sample.render_node)
    assert [(r.name, r.numa_node) for r in host.render_nodes] == [
        ('renderD128', 0), ('renderD129', 1)]


def test_generated_host_size(tmp_path):
    sample_hosts.generated(str(tmp_path), gpus=4, vfs_per_gpu=3)
    host = discover.discover_host(sysfs_paths.SysfsPaths(str(tmp_path)))
    assert len(host.physical_gpus()) == 4
    assert len(host.gpus) == 16
    assert [g.numa_node for g in host.physical_gpus()] == [0, 0, 1, 1]


@pytest.mark.parametrize('text,cpus', [
    ('0-3', {0, 1, 2, 3}), ('0-1,8,10-11', {0, 1, 8, 10, 11}), ('5', {5}),
    ('', set())])
def test_parse_cpulist(text, cpus):
    from nova_gpu_ext.topology import sysfs_reader
    assert sysfs_reader.parse_cpulist(text) == cpus


def test_parse_cpumask():
    from nova_gpu_ext.topology import sysfs_reader
    assert sysfs_reader.parse_cpumask('00000000,0000000f') == {0, 1, 2, 3}
    assert sysfs_reader.parse_cpumask('1,00000001') == {0, 32}
