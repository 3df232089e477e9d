"""Pack/spread over physical GPUs and time-slice safety, through Nova.

The sample host has two vGPU-capable GPUs (0000:81:00.0 on node 0,
0000:81:01.0 on node 1). Servers with ``resources:VGPU=1`` go through the
API, GPUPlacementFilter (which orders the host's allocation candidates by
the flavor's pack/spread and drops GPUs that would break the time-slice
bound) and the compute; assertions read which GPU each mdev was created on.
"""

import os
import time

import nova.conf
from oslo_utils import uuidutils

from nova_gpu_ext.conf import sharing as sharing_conf
from nova_gpu_ext.sim import samplehost
from tests.functional import base

CONF = nova.conf.CONF
GPU0, GPU1 = '0000:81:00.0', '0000:81:01.0'


class SharingTest(base.GPUExtTestBase):

    sysfs_sample = None

    def setUp(self):
        super().setUp()
        samplehost.configure(self)
        self.hosts = samplehost.start_hosts(self, cpu_host=False)
        self.compute = self.computes[self.hosts['gpu']]
        self._run_periodics()

    def _flavor(self, **specs):
        extra = {'resources:VGPU': '1'}
        extra.update(specs)
        return self._create_flavor(memory_mb=1024, vcpu=1, disk=1,
                                   ephemeral=0, extra_spec=extra)

    def gpu_of(self, server):
        (parent,) = self.mdev_parents(server).values()
        return parent

    def _boot(self, flavor, state='ACTIVE'):
        return self._create_server(flavor_id=flavor, networks='none',
                                   expected_state=state)

    def test_pack_fills_gpu0_before_gpu1(self):
        flavor = self._flavor(**{'gpu:placement': 'pack'})
        used = [self.gpu_of(self._boot(flavor)) for _ in range(3)]
        self.assertEqual([GPU0] * 3, used)

    def test_spread_alternates(self):
        flavor = self._flavor(**{'gpu:placement': 'spread'})
        used = [self.gpu_of(self._boot(flavor)) for _ in range(4)]
        self.assertEqual([GPU0, GPU1, GPU0, GPU1], used)

    def _fill(self, address):
        rp_uuid = self._get_provider_uuid_by_name('%s_pci_%s' % (
            self.hosts['gpu'], address.replace(':', '_').replace('.', '_')))
        total = self.placement.get(
            '/resource_providers/%s/inventories' % rp_uuid).body[
                'inventories']['VGPU']['total']
        response = self.placement.put(
            '/allocations/%s' % uuidutils.generate_uuid(), {
                'allocations': {rp_uuid: {'resources': {'VGPU': total}}},
                'project_id': uuidutils.generate_uuid(),
                'user_id': uuidutils.generate_uuid(),
                'consumer_generation': None}, version='1.28')
        self.assertEqual(204, response.status, response.body)

    def _long_slices(self):
        # 500 ms slices, 2 s guest timeout, 0.75 margin: 1.5 s limit, so
        # 3 tenants (1.5 s between turns) fit and a 4th does not.
        sharing_conf.register_dynamic_opts(CONF, ['nvidia-11'])
        self.flags(slice_ms=500, switch_ms=0, group='gpu_sharing_nvidia-11')
        self.flags(timeout_margin=0.75, guest_timeout_ms=2000,
                   group='gpu_ext')

    def test_tenant_beyond_the_timeout_bound_is_refused_at_the_scheduler(
            self):
        self._long_slices()
        self._fill(GPU1)
        flavor = self._flavor(**{'gpu:placement': 'pack'})
        for _ in range(3):
            self.assertEqual(GPU0, self.gpu_of(self._boot(flavor)))
        server = self._boot(flavor, state='ERROR')
        self.assertIn('No valid host', server['fault']['message'])
        log = self.stdlog.logger.output
        self.assertIn('GPUPlacementFilter: host gpu-host-1 refused', log)
        self.assertIn('4 tenants with 500 ms slices wait 2.0 s between '
                      'turns, over the 1.5 s limit (2.0 s guest timeout x '
                      '0.75 margin)', log)
        self.assertNotIn(server['id'], self.defined_xml)

    def test_min_share_refused_where_it_cannot_hold(self):
        self._fill(GPU1)
        flavor = self._flavor(**{'gpu:placement': 'pack'})
        self._boot(flavor)
        self._boot(flavor)
        # A third tenant would get a third of the GPU at most.
        greedy = self._flavor(**{'gpu:min_share_percent': '40'})
        server = self._boot(greedy, state='ERROR')
        self.assertIn('No valid host', server['fault']['message'])
        self.assertIn('GPUPlacementFilter: host gpu-host-1 refused',
                      self.stdlog.logger.output)

    def _resident_needing_40_percent(self, restart=False):
        """GPU 0 holds a tenant asking 40 % and a plain one; a third
        would leave the first a third of the GPU: refused with the
        reason (after a compute restart too)."""
        self._fill(GPU1)
        greedy = self._flavor(**{'gpu:min_share_percent': '40',
                                 'gpu:placement': 'pack'})
        plain = self._flavor(**{'gpu:placement': 'pack'})
        self.assertEqual(GPU0, self.gpu_of(self._boot(greedy)))
        self.assertEqual(GPU0, self.gpu_of(self._boot(plain)))
        if restart:
            # Nothing admitted since the restart: the resident's min
            # share is recovered from the instances on the host and
            # their flavors.
            self.compute = self.restart_compute_service(self.hosts['gpu'])
            self.assertEqual(0.4, self.compute.driver._sharing_claims
                             .resident_min_share(GPU0))
        self._run_periodics()       # the compute publishes the min share
        server = self._boot(plain, state='ERROR')
        self.assertIn('No valid host', server['fault']['message'])
        self.assertIn('A tenant already on this GPU needs at least 40.0%',
                      self.stdlog.logger.output)

    def test_a_residents_min_share_holds_when_a_tenant_arrives(self):
        self._resident_needing_40_percent()

    def test_a_residents_min_share_holds_after_a_compute_restart(self):
        self._resident_needing_40_percent(restart=True)

    def test_restart_recovers_tenants_from_libvirt_and_placement(self):
        self._long_slices()         # three tenants per GPU at most
        flavor = self._flavor(**{'gpu:placement': 'pack'})
        for _ in range(2):
            self.assertEqual(GPU0, self.gpu_of(self._boot(flavor)))
        self.compute = self.restart_compute_service(self.hosts['gpu'])
        # Nothing was kept in memory: libvirt's domains say who uses what.
        self.assertEqual({GPU0: 2},
                         self.compute.driver._mdevs_in_use_by_parent())
        self._run_periodics()
        # Placement's usage, which the scheduler reads, survived as well:
        # the third tenant still packs onto GPU 0, the fourth cannot.
        self.assertEqual(GPU0, self.gpu_of(self._boot(flavor)))
        self.assertEqual(GPU1, self.gpu_of(self._boot(flavor)))

    def test_created_mdevs_freed_by_deleted_guests_are_free(self):
        # GPU 0 offers 4 instances of the type; GPU 1 is full.
        type_dir = os.path.join(
            self.sysfs.device_dir(GPU0), 'mdev_supported_types', 'nvidia-11')
        with open(os.path.join(type_dir, 'available_instances'), 'w') as f:
            f.write('4\n')
        self._fill(GPU1)
        self._run_periodics()
        flavor = self._flavor(**{'gpu:placement': 'pack'})
        servers = [self._boot(flavor) for _ in range(4)]
        self.assertEqual([GPU0] * 4, [self.gpu_of(s) for s in servers])
        # What the kernel shows now: 4 mdevs created, none available; Nova
        # keeps them when their guests go and reuses them.
        for _ in range(4):
            self.sysfs.add_mdev(GPU0, 'nvidia-11')
        with open(os.path.join(type_dir, 'available_instances'), 'w') as f:
            f.write('0\n')
        for server in servers[:2]:
            self._delete_server(server)
        self._run_periodics()
        self.assertEqual([GPU0] * 2, [self.gpu_of(self._boot(flavor))
                                      for _ in range(2)])
        # The fifth tenant finds no free mdev and no instance to create.
        server = self._boot(flavor, state='ERROR')
        self.assertIn('all 4 instance(s) of the type are in use',
                      self.stdlog.logger.output)
        self.assertNotIn(server['id'], self.defined_xml)

    def test_concurrent_builds_never_share_an_mdev(self):
        flavor = self._flavor(**{'gpu:placement': 'pack'})
        # Posted back to back without waiting: the builds run at the same
        # time on the compute. (The API client is not thread-safe in
        # native threading mode, so the posts themselves are sequential.)
        servers = []
        for i in range(4):
            body = self._build_server(
                name='c%d' % i, flavor_id=flavor, networks='none')
            servers.append(self.api.post_server({'server': body}))
        deadline = time.monotonic() + 60
        self.assertEqual(['ACTIVE'] * 4, [
            self.wait_until_settled(
                s, timeout=max(0.0, deadline - time.monotonic()))['status']
            for s in servers])
        assigned = self.compute.driver._get_all_assigned_mediated_devices()
        self.assertEqual(4, len(assigned))
        self.assertEqual(4, len(set(assigned.values())))


class SharingAcrossHostsTest(SharingTest):
    """GPUSharingWeigher: pack or spread tenants over two GPU hosts."""

    def setUp(self):
        super().setUp()
        # A second sample host; the weighers other than ours are neutral.
        self.start_compute('gpu-host-2', host_info=samplehost.host_info(),
                           pci_info=samplehost.pci_info())
        self.flags(ram_weight_multiplier=0, cpu_weight_multiplier=0,
                   disk_weight_multiplier=0, io_ops_weight_multiplier=0,
                   group='filter_scheduler')
        self._run_periodics()
        self._run_periodics()

    def _hosts(self, placement, count):
        flavor = self._flavor(**{'gpu:placement': placement})
        return [self._boot(flavor)['OS-EXT-SRV-ATTR:host']
                for _ in range(count)]

    def test_pack_keeps_to_one_host(self):
        # Nova's RAM weigher alone spreads guests over the two hosts; the
        # pack score, weighed stronger, keeps them on one.
        self.flags(ram_weight_multiplier=1.0, group='filter_scheduler')
        self.flags(gpu_sharing_weight_multiplier=10.0, group='gpu_ext')
        hosts = self._hosts('pack', 3)
        self.assertEqual(1, len(set(hosts)), hosts)

    def test_spread_uses_both_hosts(self):
        hosts = self._hosts('spread', 4)
        self.assertEqual(2, len(set(hosts)), hosts)
        self.assertEqual(2, hosts.count(hosts[0]))

    # The single-host tests of the parent class do not apply here.
    test_pack_fills_gpu0_before_gpu1 = None
    test_spread_alternates = None
    test_tenant_beyond_the_timeout_bound_is_refused_at_the_scheduler = None
    test_min_share_refused_where_it_cannot_hold = None
    test_concurrent_builds_never_share_an_mdev = None
    test_created_mdevs_freed_by_deleted_guests_are_free = None
    test_a_residents_min_share_holds_when_a_tenant_arrives = None
    test_restart_recovers_tenants_from_libvirt_and_placement = None
    test_a_residents_min_share_holds_after_a_compute_restart = None


class ConcurrentAdmissionTest(SharingTest):
    """The compute's admission is an atomic claim per physical GPU.

    Two builds race onto GPU 0 of gpu-host-1, which has room for one more
    tenant: the scheduler's usage read is made stale (as with two
    schedulers), so both are sent there. A barrier in the driver's
    admission path proves both builds are inside admission at once; the
    second must be refused by the compute and rescheduled to gpu-host-2.
    """

    def test_two_builds_inside_admission_the_second_reschedules(self):
        import threading
        import fixtures
        self._long_slices()                 # three tenants per GPU
        flavor = self._flavor(**{'gpu:placement': 'pack'})
        for _ in range(2):
            self.assertEqual(GPU0, self.gpu_of(self._boot(flavor)))
        self._fill(GPU1)
        host2 = self.start_compute(
            'gpu-host-2', host_info=samplehost.host_info(),
            pci_info=samplehost.pci_info())
        self.flags(ram_weight_multiplier=0, cpu_weight_multiplier=0,
                   disk_weight_multiplier=0, io_ops_weight_multiplier=0,
                   group='filter_scheduler')
        self.flags(gpu_sharing_weight_multiplier=10.0, group='gpu_ext')
        self._run_periodics()
        self._run_periodics()
        # Stale usage at the scheduler: what the compute last published.
        self.useFixture(fixtures.MockPatch(
            'nova_gpu_ext.scheduler.usage.RequestUsage.summary_used',
            return_value=None))
        claims = self.compute.driver._sharing_claims
        barrier = threading.Barrier(2, timeout=30)
        entered = []
        guest_devices, count = claims._guest_devices, claims._count

        def at_admission(*args):
            entered.append(1)
            if len(entered) <= 2:
                barrier.wait()          # both builds are in admission now
            return guest_devices(*args)

        def slow_count(*args):
            result = count(*args)
            time.sleep(0.3)             # widen the window between count
            return result               # and claim

        claims._guest_devices = at_admission
        claims._count = slow_count
        servers = [self.api.post_server({'server': self._build_server(
            name='race%d' % i, flavor_id=flavor, networks='none')})
            for i in range(2)]
        servers = [self.wait_until_settled(s, timeout=60) for s in servers]
        self.assertFalse(barrier.broken, 'the builds never overlapped')
        self.assertEqual(['ACTIVE', 'ACTIVE'],
                         [s['status'] for s in servers])
        self.assertEqual(
            ['gpu-host-1', host2],
            sorted(s['OS-EXT-SRV-ATTR:host'] for s in servers))
        self.assertEqual({GPU0: 3},
                         self.compute.driver._mdevs_in_use_by_parent())
        self.assertIn('4 tenants with 500 ms slices wait 2.0 s between '
                      'turns, over the 1.5 s limit',
                      self.stdlog.logger.output)


for _name in [n for n in dir(SharingTest) if n.startswith('test_')]:
    setattr(ConcurrentAdmissionTest, _name, None)
