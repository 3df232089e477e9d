"""Every Nova internal we override or call, pinned against the installed Nova.

Private methods of ``LibvirtDriver`` change between releases without notice
(Nova 34 added ``share_info`` to ``finish_migration`` and
``finish_revert_migration``, and ``process_instances_at_startup``). This
test fails loudly on an upgrade that changes one: the parameters (names,
kinds, defaults; not annotations) of each method are compared with what we
were written against, and each of our overrides must still accept every
call Nova can make (positionally and by keyword). When it fails: read the
new upstream method, adapt the override, update the pin here and the row in
doc/source/reference/nova-internals.rst.
"""

import inspect

import pytest
from nova.compute import provider_tree
from nova.objects import migrate_data as migrate_data_obj
from nova.virt import driver as virt_driver
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import host as libvirt_host
from nova.virt.libvirt import migration as libvirt_migration

from nova_gpu_ext.virt import driver as gpu_driver

Upstream = libvirt_driver.LibvirtDriver
Ours = gpu_driver.GPULibvirtDriver

#: LibvirtDriver methods GPULibvirtDriver overrides -> their parameters in
#: the Nova we were written against (34.0.0).
OVERRIDDEN = {
    '__init__': 'virtapi, read_only=False',
    'init_host': 'host',
    'process_instances_at_startup': 'context, instances',
    'get_available_resource': 'nodename',
    'update_provider_tree': 'provider_tree, nodename, allocations=None',
    '_get_guest_config': (
        'instance, network_info, image_meta, disk_info, rescue=None, '
        'block_device_info=None, context=None, mdevs=None, accel_info=None, '
        'share_info=None, old_guest=None'),
    '_create_guest': (
        'context, xml, instance, power_on=True, pause=False, '
        'post_xml_callback=None'),
    'spawn': (
        'context, instance, image_meta, injected_files, admin_password, '
        'allocations, network_info=None, block_device_info=None, '
        'power_on=True, accel_info=None'),
    'rebuild': (
        'context, instance, image_meta, injected_files, admin_password, '
        'allocations, bdms, detach_block_devices, attach_block_devices, '
        'network_info=None, evacuate=False, block_device_info=None, '
        'preserve_ephemeral=False, accel_uuids=None, '
        'reimage_boot_volume=False'),
    'finish_migration': (
        'context, migration, instance, disk_info, network_info, image_meta, '
        'resize_instance, allocations, block_device_info=None, '
        'power_on=True, share_info=None'),
    'finish_revert_migration': (
        'context, instance, network_info, migration, '
        'block_device_info=None, power_on=True, share_info=None'),
    '_hard_reboot': (
        'context, instance, network_info, share_info, '
        'block_device_info=None, accel_info=None'),
    'rescue': (
        'context, instance, network_info, image_meta, rescue_password, '
        'block_device_info, share_info'),
    'pre_live_migration': (
        'context, instance, block_device_info, network_info, disk_info, '
        'migrate_data'),
    'post_live_migration_at_destination': (
        'context, instance, network_info, block_migration=False, '
        'block_device_info=None'),
    'post_live_migration_at_source': 'context, instance, network_info',
    'rollback_live_migration_at_destination': (
        'context, instance, network_info, block_device_info, '
        'destroy_disks=True, migrate_data=None'),
    '_live_migration_operation': (
        'context, instance, dest, block_migration, migrate_data, guest, '
        'device_names'),
    'confirm_migration': 'context, migration, instance, network_info',
    'cleanup': (
        'context, instance, network_info, block_device_info=None, '
        'destroy_disks=True, migrate_data=None, destroy_vifs=True, '
        'destroy_secrets=True'),
}

#: Other internals we call (or whose behaviour an override relies on).
CALLED = {
    (Upstream, '_get_mediated_device_information'): 'devname',
    (Upstream, '_get_all_assigned_mediated_devices'): 'instance=None',
    (Upstream, '_get_mediated_devices'): 'types=None',
    (Upstream, '_allocate_mdevs'): 'allocations',
    (Upstream, '_allocate_cyborg_mdevs'): 'accel_info',
    (Upstream, '_get_pci_passthrough_devices'): '',
    (Upstream, '_get_guest_xml'): (
        'context, instance, network_info, disk_info, image_meta, '
        'rescue=None, block_device_info=None, mdevs=None, accel_info=None, '
        'share_info=None, old_guest=None'),
    (Upstream, 'power_on'): (
        'context, instance, network_info, block_device_info=None, '
        'accel_info=None, share_info=None'),
    (Upstream, 'resume_state_on_host_boot'): (
        'context, instance, network_info, share_info, '
        'block_device_info=None'),
    (libvirt_host.Host, 'list_guests'): 'only_running=True',
    (libvirt_host.Host, 'get_guest'): 'instance',
    (virt_driver.ComputeDriver, 'rebuild'): OVERRIDDEN['rebuild'],
    (provider_tree.ProviderTree, 'exists'): 'name_or_uuid',
}


def params(func):
    """'a, b=1, *args' of ``func`` without self and annotations."""
    out = []
    for p in list(inspect.signature(func).parameters.values()):
        if p.name == 'self':
            continue
        text = p.name
        if p.kind is p.VAR_POSITIONAL:
            text = '*' + text
        elif p.kind is p.VAR_KEYWORD:
            text = '**' + text
        if p.default is not p.empty:
            text += '=%r' % (p.default,)
        out.append(text)
    return ', '.join(out)


def overridden_names():
    return sorted(name for name, value in vars(Ours).items()
                  if callable(value) and hasattr(Upstream, name))


def test_every_override_is_pinned():
    assert overridden_names() == sorted(OVERRIDDEN), (
        'pin the upstream signature of every LibvirtDriver method '
        'GPULibvirtDriver overrides')


@pytest.mark.parametrize('name', sorted(OVERRIDDEN))
def test_upstream_signature_unchanged(name):
    assert params(getattr(Upstream, name)) == OVERRIDDEN[name], (
        'LibvirtDriver.%s changed: adapt GPULibvirtDriver.%s' % (name, name))


@pytest.mark.parametrize('name', sorted(OVERRIDDEN))
def test_override_accepts_every_call_nova_makes(name):
    upstream = inspect.signature(getattr(Upstream, name))
    ours = inspect.signature(getattr(Ours, name))
    names = [p.name for p in upstream.parameters.values()]
    # All positional, as far as upstream allows; then all by keyword.
    positional = [p.name for p in upstream.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    ours.bind(*positional)
    ours.bind(**{n: n for n in names})


@pytest.mark.parametrize('owner,name', sorted(CALLED, key=str))
def test_called_internal_unchanged(owner, name):
    assert params(getattr(owner, name)) == CALLED[(owner, name)]


def test_driver_docstring_lists_every_override():
    missing = [n for n in overridden_names()
               if '``%s``' % n not in gpu_driver.__doc__]
    assert not missing


def test_behaviour_we_rely_on():
    # Cached for the life of the process; we clear it on new VFs.
    assert hasattr(Upstream._get_pci_passthrough_devices, 'cache_clear')
    # The live migration XML starts from the migratable XML of the guest
    # we hand _live_migration_operation (MigratingGuest rewrites it).
    assert 'get_xml_desc(dump_migratable=True)' in inspect.getsource(
        libvirt_migration.get_updated_guest_xml)
    # Nova removes <vcpu cpuset> when this set is empty: never send one.
    assert 'not migrate_data.dst_cpu_shared_set_info' in inspect.getsource(
        libvirt_migration.get_updated_guest_xml)
    # The fields our live migration reads.
    fields = migrate_data_obj.LibvirtLiveMigrateData.fields
    for field in ('target_mdevs', 'pci_dev_map_src_dst',
                  'dst_cpu_shared_set_info'):
        assert field in fields
    # spawn and _hard_reboot extend _allocate_mdevs' result: a list.
    for method in (Upstream.spawn, Upstream._hard_reboot):
        source = inspect.getsource(method)
        assert '_allocate_cyborg_mdevs' in source and 'mdevs.extend' in \
            source
    # An evacuation's spawn hands _allocate_mdevs the instance's
    # allocations, the failed source's too; _allocate_mdevs looks every
    # provider up in this host's tree (so spawn filters them first).
    source = inspect.getsource(Upstream.spawn)
    assert source.count('allocations') == 2 and \
        'self._allocate_mdevs(allocations)' in source
    assert 'self.provider_tree.data(rp_uuid)' in inspect.getsource(
        Upstream._allocate_mdevs)
    # The rebuild's spawn runs in task state rebuild_spawning, its destroy
    # (in place) before that: only that spawn takes the rebuild mark.
    from nova.compute import manager as compute_manager
    source = inspect.getsource(
        compute_manager.ComputeManager._rebuild_default_impl)
    assert source.index('task_states.REBUILD_SPAWNING') < source.index(
        'self.driver.spawn(') and source.index('self.driver.destroy(') < \
        source.index('task_states.REBUILD_BLOCK_DEVICE_MAPPING')
    # The libvirt driver has no rebuild: Nova falls back to destroy+spawn
    # (our rebuild hook marks the spawn, then raises NotImplementedError).
    assert 'rebuild' not in vars(Upstream)
    # _hard_reboot destroys through destroy() -> cleanup(), where we must
    # not free the render node of the guest being rebooted.
    assert 'self.destroy(' in inspect.getsource(Upstream._hard_reboot)


def test_internals_page_lists_every_override():
    import pathlib
    page = (pathlib.Path(__file__).resolve().parents[2] / 'doc' / 'source' /
            'reference' / 'nova-internals.rst').read_text()
    missing = [n for n in OVERRIDDEN if '``%s(' % n not in page]
    assert not missing
