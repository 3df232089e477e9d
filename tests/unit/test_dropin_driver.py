"""Drop-in rule, method by method: every override returns upstream's result.

Instances and migrations are built as Nova's own unit tests build them:
``objects.Instance(uuid=...)`` without a context (orphaned: a lazy load
raises ``OrphanedObjectError``), objects with no field set, and a loaded
instance with a context. Upstream's method is replaced by one returning a
sentinel; our override must hand that sentinel back, raise nothing of its
own, and read nothing more from the database (``Instance.get_by_uuid``).
The same holds, with errors of ours logged, for a GPU flavor on objects
that are otherwise empty.

And the driver class adds no public attribute to ``LibvirtDriver``'s
(Nova's own tests forbid a driver API beyond ``ComputeDriver``'s).
"""

from unittest import mock

from nova import context as nova_context
from nova import objects
from nova.objects import migrate_data as migrate_data_obj
from nova.virt.libvirt import config as vconfig
from nova.virt.libvirt import driver as libvirt_driver
from oslo_utils.fixture import uuidsentinel as uuids
import pytest

from nova_gpu_ext.virt import driver as gpu_driver

objects.register_all()

SENTINEL = object()


def instances():
    """Instances as Nova's unit tests make them (name -> factory)."""
    return {
        'orphaned uuid only': lambda: objects.Instance(uuid=uuids.inst),
        'nothing set': lambda: objects.Instance(),
        # (not Nova's fake_instance_obj: importing nova.tests.unit
        # monkey-patches the whole test process with eventlet)
        'loaded, with a context': lambda: objects.Instance(
            context=nova_context.get_admin_context(), uuid=uuids.inst3,
            task_state=None, vm_state='active', system_metadata={},
            flavor=objects.Flavor(extra_specs={}, vcpus=1, memory_mb=512),
            pci_requests=objects.InstancePCIRequests(requests=[])),
        'orphaned, GPU flavor, nothing else': lambda: objects.Instance(
            flavor=objects.Flavor(extra_specs={'resources:VGPU': '1'},
                                  vcpus=1, memory_mb=512)),
        'orphaned uuid, gpu: key, no device': lambda: objects.Instance(
            uuid=uuids.inst2, flavor=objects.Flavor(
                extra_specs={'gpu:numa_affinity_policy': 'required'},
                vcpus=1, memory_mb=512)),
    }


def migrations():
    return {
        'nothing set': lambda: objects.Migration(),
        'source only': lambda: objects.Migration(source_compute='a'),
    }


def _calls(migration):
    """(method, args after context/instance, upstream's result)."""
    md = migrate_data_obj.LibvirtLiveMigrateData()
    guest = vconfig.LibvirtConfigGuest()
    return [
        ('_get_guest_config', lambda i: (i, None, None, None), guest),
        ('_create_guest', lambda i: (None, '<domain/>', i), SENTINEL),
        ('spawn', lambda i: (None, i, None, None, None, None), SENTINEL),
        ('rebuild', lambda i: (None, i), SENTINEL),
        ('finish_migration', lambda i: (None, migration, i), SENTINEL),
        ('finish_revert_migration', lambda i: (None, i), SENTINEL),
        ('_hard_reboot', lambda i: (None, i), SENTINEL),
        ('rescue', lambda i: (None, i), SENTINEL),
        ('pre_live_migration', lambda i: (None, i, None, None, None, md),
         md),
        ('post_live_migration_at_destination', lambda i: (None, i, None),
         SENTINEL),
        ('post_live_migration_at_source', lambda i: (None, i, None),
         SENTINEL),
        ('rollback_live_migration_at_destination',
         lambda i: (None, i, None), SENTINEL),
        ('_live_migration_operation',
         lambda i: (None, i, 'dest', False, md, SENTINEL), SENTINEL),
        ('confirm_migration', lambda i: (None, migration, i, None),
         SENTINEL),
        ('cleanup', lambda i: (None, i, None), SENTINEL),
    ]


@pytest.fixture
def driver(tmp_path):
    """Our driver with upstream's ``__init__`` left out (no libvirt) on a
    host with no GPU."""
    with mock.patch.object(libvirt_driver.LibvirtDriver, '__init__',
                           lambda self, *a, **kw: None):
        drv = gpu_driver.GPULibvirtDriver(None)
    drv._sysfs_root = str(tmp_path)
    drv._dev_root = str(tmp_path / 'dev')
    drv.provider_tree = None
    drv._host = mock.Mock(spec=[])     # any libvirt call of ours fails
    return drv


CASES = [(m, i, g) for m in ('nothing set', 'source only')
         for i in instances() for g in range(len(_calls(None)))]


@pytest.mark.parametrize('migration_name,instance_name,index', CASES)
def test_override_returns_upstreams_result(driver, migration_name,
                                           instance_name, index):
    migration = migrations()[migration_name]()
    method, args, result = _calls(migration)[index]
    instance = instances()[instance_name]()
    if method == '_live_migration_operation':
        expected_guest = SENTINEL
    with mock.patch.object(libvirt_driver.LibvirtDriver, method,
                           return_value=result) as upstream, \
            mock.patch.object(objects.Instance, 'get_by_uuid') as reread:
        got = getattr(driver, method)(*args(instance))
    assert got is result
    assert upstream.call_count == 1
    if method == '_live_migration_operation':
        # Upstream got the guest it would have got.
        assert upstream.call_args[0][5] is expected_guest
    if 'GPU' not in instance_name and 'gpu:' not in instance_name:
        assert not reread.called


@pytest.mark.parametrize('instance_name', list(instances()))
def test_startup_and_host_hooks_never_raise(driver, instance_name):
    instance = instances()[instance_name]()
    with mock.patch.object(libvirt_driver.LibvirtDriver, 'init_host'):
        driver.init_host('host')
    with mock.patch.object(libvirt_driver.LibvirtDriver,
                           'process_instances_at_startup',
                           side_effect=lambda ctx, insts: insts):
        assert driver.process_instances_at_startup(
            None, [instance]) == [instance]


def test_driver_class_adds_no_public_attribute():
    ours = {n for n in dir(gpu_driver.GPULibvirtDriver)
            if not n.startswith('_')}
    theirs = {n for n in dir(libvirt_driver.LibvirtDriver)
              if not n.startswith('_')}
    assert sorted(ours - theirs) == []


def test_driver_instance_adds_no_public_attribute(driver):
    assert sorted(n for n in vars(driver) if not n.startswith('_')) == [
        'provider_tree']     # set by this test's fixture, as upstream does


def test_numa_claim_finds_the_driver_hook_by_its_name(driver):
    """The wrap of Nova's claim (installed by the driver) looks the planner
    up by name: a plain guest's claim gets upstream's code."""
    from nova.compute import claims
    from nova_gpu_ext.nova_glue import wraps
    from nova_gpu_ext.virt import numa_claim
    assert wraps.is_installed('numa_claim')
    claim = mock.Mock(instance=objects.Instance(uuid=uuids.inst),
                      flavor=None, numa_topology=None)
    claim.tracker.driver = driver
    with mock.patch.object(type(driver), '_gpu_numa_plan',
                           autospec=True,
                           side_effect=gpu_driver.GPULibvirtDriver.
                           _gpu_numa_plan) as planner, \
            mock.patch.object(numa_claim, 'plan') as plan:
        result = claims.Claim._test_numa_topology(
            claim, objects.ComputeNode(), None)
    assert result is None       # upstream's: nothing asked, nothing to fit
    assert planner.called and not plan.called
