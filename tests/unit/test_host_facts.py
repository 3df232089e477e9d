"""What the compute publishes: summary in stats, traits on GPU providers."""


from nova_gpu_ext.topology import host_facts
from nova_gpu_ext.sim import sample_hosts


def test_discover_never_raises_and_keeps_the_previous_view(tmp_path,
                                                           monkeypatch):
    sample_hosts.nvidia_vgpu_mdev(str(tmp_path))
    first = host_facts.discover(str(tmp_path))
    assert len(first.gpus) == 4

    from nova_gpu_ext.topology import discover as discovery

    def explode(paths):
        raise RuntimeError('kernel said no')
    monkeypatch.setattr(discovery, 'discover_host', explode)
    assert host_facts.discover(str(tmp_path), previous=first) is first
    assert host_facts.discover(str(tmp_path)) == host_facts.EMPTY_HOST


def test_summary_round_trips_through_stats(tmp_path):
    sample_hosts.amd_mxgpu_sriov(str(tmp_path))
    host = host_facts.discover(str(tmp_path))
    stats = {host_facts.STATS_KEY: host_facts.host_summary(host).to_stats()}
    summary = host_facts.summary_from_stats(stats)
    # VFs are counted on their PF, not listed.
    assert [(g.addr, g.kind, g.node, g.vfs) for g in summary.gpus] == [
        ('0000:03:00.0', 'pf', 0, 8), ('0000:83:00.0', 'pf', 1, 16)]
    assert [n.cpus for n in summary.nodes] == [12, 12]
    assert host_facts.summary_from_stats({}) is None
    # Unreadable, but published by nova-gpu-ext: not "no summary" (that
    # made GPUExtHostFilter refuse the host), an empty partial one.
    unreadable = host_facts.summary_from_stats(
        {host_facts.STATS_KEY: '{not json'})
    assert unreadable.partial == 'not JSON'
    assert unreadable.gpus == () and unreadable.nodes == ()


def test_provider_traits_name_nova_pgpu_and_pci_providers(tmp_path):
    sample_hosts.nvidia_vgpu_mdev(str(tmp_path))
    host = host_facts.discover(str(tmp_path))
    traits = host_facts.provider_traits(host, 'node1')
    assert traits['node1_pci_0000_88_00_0'] == {
        'CUSTOM_GPU_NUMA_NODE_1', 'CUSTOM_GPU_SOCKET_1'}
    assert traits['node1_0000:3D:00.0'] == {
        'CUSTOM_GPU_NUMA_NODE_0', 'CUSTOM_GPU_SOCKET_0'}
    assert len(traits) == 8
