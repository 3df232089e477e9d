"""What GPUPlacementFilter costs the scheduler in placement calls (issue 12).

Every placement request the report client sends while the scheduler runs
``select_destinations`` is counted (the compute's own calls are not). One
vGPU boot must cost the same at 2 hosts and at 6 hosts, and at most 2
calls more than the same boot with ``[gpu_ext] enabled = false``. A
multi-create request places several tenants on the same GPUs in one
scheduling pass: the filter must see the tenants this request already
claimed.
"""

import threading

import fixtures
import nova.conf
from nova.scheduler.client import report
from nova.scheduler import manager

from nova_gpu_ext.conf import sharing as sharing_conf
from nova_gpu_ext.sim import samplehost
from tests.functional import base

CONF = nova.conf.CONF
GPU0, GPU1 = '0000:81:00.0', '0000:81:01.0'


class PlacementCallCounter(fixtures.Fixture):
    """Placement requests made inside ``select_destinations``."""

    def _setUp(self):
        self.calls = []
        local = threading.local()
        select = manager.SchedulerManager.select_destinations

        def counted_select(mgr, *args, **kwargs):
            local.active = True
            try:
                return select(mgr, *args, **kwargs)
            finally:
                local.active = False

        self.useFixture(fixtures.MonkeyPatch(
            'nova.scheduler.manager.SchedulerManager.select_destinations',
            counted_select))
        for method in ('get', 'put', 'post', 'delete'):
            self._wrap(method, local)

    def _wrap(self, method, local):
        original = getattr(report.SchedulerReportClient, method)
        calls = self.calls

        def counted(client, url, *args, **kwargs):
            if getattr(local, 'active', False):
                calls.append('%s %s' % (method.upper(), url.split('?')[0]))
            return original(client, url, *args, **kwargs)

        self.useFixture(fixtures.MonkeyPatch(
            'nova.scheduler.client.report.SchedulerReportClient.' + method,
            counted))


class SchedulerCostTest(base.GPUExtTestBase):

    sysfs_sample = None

    def setUp(self):
        super().setUp()
        samplehost.configure(self)
        self.hosts = samplehost.start_hosts(self, cpu_host=False)
        self.compute = self.computes[self.hosts['gpu']]
        self.counter = self.useFixture(PlacementCallCounter())
        self._run_periodics()

    def _flavor(self, **specs):
        extra = {'resources:VGPU': '1'}
        extra.update(specs)
        return self._create_flavor(memory_mb=1024, vcpu=1, disk=1,
                                   ephemeral=0, extra_spec=extra)

    def _calls_for_one_boot(self, flavor):
        del self.counter.calls[:]
        server = self._create_server(flavor_id=flavor, networks='none',
                                     expected_state='ACTIVE')
        calls = list(self.counter.calls)
        self._delete_server(server)
        return calls

    def _add_hosts(self, count):
        first = len(self.computes) + 1
        for i in range(first, first + count):
            self.start_compute('gpu-host-%d' % i,
                               host_info=samplehost.host_info(),
                               pci_info=samplehost.pci_info())
        # GPU provider UUIDs are published from the 2nd resource update.
        self._run_periodics()
        self._run_periodics()

    def test_placement_calls_do_not_grow_with_hosts(self):
        flavor = self._flavor()
        self._add_hosts(1)
        at_2 = self._calls_for_one_boot(flavor)
        self.flags(enabled=False, group='gpu_ext')
        upstream = self._calls_for_one_boot(flavor)
        self.flags(enabled=True, group='gpu_ext')
        self._add_hosts(4)
        self.assertEqual(6, len(self.computes))
        at_6 = self._calls_for_one_boot(flavor)
        self.assertEqual(len(at_2), len(at_6), (at_2, at_6))
        self.assertLessEqual(len(at_6), len(upstream) + 2,
                             (at_6, upstream))

    def test_multi_create_counts_the_tenants_it_claimed(self):
        # 500 ms slices, 2 s guest timeout, 0.75 margin: 3 tenants per GPU.
        sharing_conf.register_dynamic_opts(CONF, ['nvidia-11'])
        self.flags(slice_ms=500, switch_ms=0, group='gpu_sharing_nvidia-11')
        self.flags(timeout_margin=0.75, guest_timeout_ms=2000,
                   group='gpu_ext')
        flavor = self._flavor(**{'gpu:placement': 'pack'})
        body = self._build_server(name='multi', flavor_id=flavor,
                                  networks='none')
        body['min_count'] = body['max_count'] = 4
        self.api.post_server({'server': body})
        servers = [self.wait_until_settled(s, timeout=60)
                   for s in self.api.get_servers(detail=True)]
        self.assertEqual(['ACTIVE'] * 4, [s['status'] for s in servers])
        used = sorted(parent for s in servers
                      for parent in self.mdev_parents(s).values())
        self.assertEqual([GPU0, GPU0, GPU0, GPU1], used)
