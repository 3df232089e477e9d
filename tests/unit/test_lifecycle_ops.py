"""Admission per operation (virt/operations.py) and the live migration
decision (virt/live_migration.py) on the sample host's real layout."""

import types

import pytest
from nova.objects import migrate_data as migrate_data_obj

from nova_gpu_ext.topology import host_facts
from nova_gpu_ext.core import affinity
from nova_gpu_ext.sim import samplehost
from nova_gpu_ext.virt import gpu_affinity
from nova_gpu_ext.virt import live_migration
from nova_gpu_ext.virt import operations

T4_NODE1 = '0000:d8:00.0'


@pytest.fixture
def topology(tmp_path):
    samplehost.write_sysfs(str(tmp_path))
    return host_facts.discover(str(tmp_path), str(tmp_path / 'dev'))


def instance(uuid='11111111-2222-3333-4444-555555555555', **kw):
    flavor = types.SimpleNamespace(vcpus=2, memory_mb=1024, extra_specs={})
    return types.SimpleNamespace(uuid=uuid, flavor=flavor, numa_topology=None,
                                 task_state=None, vm_state='active', **kw)


def test_admit_raises_on_a_new_claim_and_warns_in_place(caplog):
    inst = instance()
    with operations.new_claim(inst, 'spawn'):
        assert operations.is_new_claim(inst)
        with pytest.raises(gpu_affinity.Refused):
            operations.admit(inst, 'over the limit')
    with operations.in_place(inst, 'hard reboot'):
        assert not operations.is_new_claim(inst)
        assert operations.is_in_place(inst)
        assert operations.admit(inst, 'over the limit') is False
    assert 'hard reboot: the guest keeps what it has although over the ' \
        'limit' in caplog.text
    # Unmarked paths keep the guest too; marks do not leak.
    assert not operations.is_new_claim(inst)
    assert not operations.is_in_place(inst)
    assert operations.admit(inst, 'x') is False


def test_rebuild_in_place_keeps_evacuate_claims():
    inst = instance(uuid='rebuilt')
    inst.task_state = 'rebuild_spawning'
    operations.note_rebuild(inst, evacuate=False)
    assert operations.spawn_operation(inst) == (operations.IN_PLACE,
                                                'rebuild')
    operations.note_rebuild(inst, evacuate=True)
    assert operations.spawn_operation(inst) == (operations.NEW_CLAIM,
                                                'evacuate')
    assert operations.spawn_operation(inst) == (operations.NEW_CLAIM,
                                                'spawn')


def test_a_rebuild_failing_before_its_spawn_leaves_no_mark():
    inst = instance(uuid='failed-rebuild')
    operations.note_rebuild(inst, evacuate=False)
    # The rebuild failed (destroy raised); later, an unshelve spawns it.
    inst.task_state, inst.vm_state = 'spawning', 'shelved_offloaded'
    assert operations.spawn_operation(inst) == (operations.NEW_CLAIM,
                                                'unshelve')
    # cleanup() drops a mark no spawn took, not one of a rebuild under way.
    operations.note_rebuild(inst, evacuate=False)
    inst.task_state = 'rebuilding'
    operations.forget_rebuild(inst)
    assert inst.uuid in operations._rebuilds
    inst.task_state = 'deleting'
    operations.forget_rebuild(inst)
    assert inst.uuid not in operations._rebuilds


def test_evacuation_allocates_from_this_hosts_providers_only():
    from nova.compute import provider_tree
    tree = provider_tree.ProviderTree()
    tree.new_root('dest', 'dest-uuid')
    tree.new_child('dest_pci_0000_81_01_0', 'dest-uuid', uuid='dest-gpu')
    allocations = {
        'src-uuid': {'resources': {'VCPU': 2}},
        'src-gpu': {'resources': {'VGPU': 1}},
        'dest-uuid': {'resources': {'VCPU': 2}},
        'dest-gpu': {'resources': {'VGPU': 1}}}
    assert sorted(operations.evacuation_allocations(
        tree, allocations, instance())) == ['dest-gpu', 'dest-uuid']
    assert operations.evacuation_allocations(None, allocations,
                                             instance()) is allocations
    assert operations.evacuation_allocations(tree, {}, instance()) == {}


def test_render_node_kept_over_its_limit(topology):
    tracker = gpu_affinity.RenderNodeTracker()
    needs = affinity.GuestNeeds(2, 1024, 'preferred')
    tracker.record('a', 'renderD128')
    tracker.record('b', 'renderD128')
    choice = tracker.keep('b', topology, needs, 1)
    assert choice.render.name == 'renderD128' and not choice.ok
    assert tracker.counts() == {'renderD128': 2}
    assert tracker.keep('a', topology, needs, 2).ok


def migrate_data(shared):
    data = migrate_data_obj.LibvirtLiveMigrateData()
    data.pci_dev_map_src_dst = {'0000:3b:00.0': T4_NODE1}
    data.dst_cpu_shared_set_info = set(shared)
    return data


def request(render=False):
    return types.SimpleNamespace(wants_render_node=render)


def test_live_migration_binds_to_the_destination_gpu_node(topology):
    data = migrate_data(range(12))
    decision = live_migration.choose(
        None, instance(), request(), data, topology, 'preferred', 0)
    assert decision['gpu_ext:numa_node'] == '1'
    assert data.dst_cpu_shared_set_info == set(range(6, 12))
    assert 'target_mdevs' not in data


def test_never_an_empty_shared_cpu_set(topology):
    # The destination shares only node 0's CPUs; its GPU is on node 1.
    data = migrate_data(range(6))
    decision = live_migration.choose(
        None, instance(), request(), data, topology, 'preferred', 0)
    assert data.dst_cpu_shared_set_info == set(range(6))
    assert decision == {'gpu_ext:unbind': '1'}
    with pytest.raises(gpu_affinity.Refused):
        live_migration.choose(None, instance(), request(),
                              migrate_data(range(6)), topology, 'required',
                              0)


def test_unbind_removes_the_source_numatune():
    xml = gpu_affinity.rewrite_migration_xml(
        "<domain><vcpu cpuset='0-5'>2</vcpu><numatune><memory "
        "mode='strict' nodeset='0'/></numatune><devices/></domain>",
        {'unbind': '1'})
    assert 'numatune' not in xml


def test_new_vfs_clear_upstreams_pci_device_cache(tmp_path):
    from unittest import mock

    from nova.virt.libvirt import driver as libvirt_driver

    from nova_gpu_ext.sim import fake_sysfs
    from nova_gpu_ext.virt import driver as gpu_driver
    # Upstream caches the list for the life of the process.
    assert hasattr(libvirt_driver.LibvirtDriver._get_pci_passthrough_devices,
                   'cache_clear')
    root = str(tmp_path)
    fs = fake_sysfs.FakeSysfs(root)
    fs.add_node(0, [0, 1], 1024, 0)
    fs.add_gpu('0000:03:00.0', 0x1002, 0x6929, 0, 'gim', iommu_group=20)
    drv = object.__new__(gpu_driver.GPULibvirtDriver)
    drv._gpu_topology = None
    drv._sysfs_root, drv._dev_root = root, root + '/dev'
    with mock.patch.object(gpu_driver.GPULibvirtDriver,
                           '_clear_pci_devices_cache') as clear:
        drv._refresh_gpu_topology()
        drv._refresh_gpu_topology()
        assert not clear.called
        fs.add_vfs('0000:03:00.0', 2, totalvfs=16, vf_device=0x692f,
                   first_iommu_group=100)
        drv._refresh_gpu_topology()
        assert clear.call_count == 1


def test_startup_forgets_render_nodes_of_guests_gone_elsewhere():
    from unittest import mock

    from nova.virt.libvirt import driver as libvirt_driver

    from nova_gpu_ext.virt import driver as gpu_driver
    drv = object.__new__(gpu_driver.GPULibvirtDriver)
    drv.render_nodes = gpu_affinity.RenderNodeTracker()
    drv.render_nodes.record('here', 'renderD128')
    drv.render_nodes.record('evacuated', 'renderD128')
    here = types.SimpleNamespace(uuid='here', deleted=False)
    with mock.patch.object(libvirt_driver.LibvirtDriver,
                           'process_instances_at_startup',
                           side_effect=lambda ctx, instances: instances):
        assert drv.process_instances_at_startup(None, [here]) == [here]
    assert drv.render_nodes.counts() == {'renderD128': 1}
