"""Server operations on GPU guests, end to end through Nova.

Admission (time-slice bound, render-node limit, strict binding) is made
where a new claim is made; a guest restarted in place (hard reboot, stop
and start, resume after a host reboot, rescue and unrescue) keeps what it
has even when today's limits are tighter than when it was admitted, and
the compute logs the exceeded limit as a WARNING. A render-node guest
keeps its render node. A rebuild's mark never outlives the rebuild.
"""

from unittest import mock

from nova import context as nova_context
from nova import objects
from nova import test
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.api import client

import nova.conf
from nova_gpu_ext.conf import sharing as sharing_conf
from nova_gpu_ext.sim import samplehost
from nova_gpu_ext.virt import operations
from tests.functional import base
from tests.functional.test_affinity import rendernode

CONF = nova.conf.CONF


class SampleHostTestBase(base.GPUExtTestBase):
    """The sample GPU host (two NUMA nodes, vGPU and render-node GPUs)."""

    sysfs_sample = None

    def setUp(self):
        super().setUp()
        samplehost.configure(self)
        self.hosts = samplehost.start_hosts(self, cpu_host=False)
        self._run_periodics()
        self.driver = self.computes[self.hosts['gpu']].driver


class InPlaceKeepsTheGuestTest(SampleHostTestBase):

    def setUp(self):
        super().setUp()
        # 500 ms slices: one tenant waits 0.5 s between turns, within the
        # 2 s x 0.75 limit when the guest boots.
        sharing_conf.register_dynamic_opts(CONF, ['nvidia-11'])
        self.flags(slice_ms=500, switch_ms=0, group='gpu_sharing_nvidia-11')
        self.flags(timeout_margin=0.75, guest_timeout_ms=2000,
                   group='gpu_ext')
        flavor = self._create_flavor(
            memory_mb=1024, vcpu=1, disk=1, ephemeral=0,
            extra_spec={'resources:VGPU': '1'})
        self.server = self._create_server(
            flavor_id=flavor, networks='none', expected_state='ACTIVE')
        # The operator tightens the limit: 200 ms x 0.75 = 150 ms, less
        # than the 500 ms this guest (alone on its GPU) already waits.
        self.flags(guest_timeout_ms=200, group='gpu_ext')

    def assert_kept(self, server, status='ACTIVE'):
        self.assertEqual(status, server['status'])
        log = self.stdlog.logger.output
        self.assertIn('the guest keeps what it has although GPU 0000:81:0',
                      log)
        self.assertIn('WARNING [nova_gpu_ext.virt.operations]', log)
        self.assertNotIn('ERROR [nova.compute.manager]', log)
        # Still its vGPU.
        self.assertEqual(1, len(self.mdev_parents(server)))

    def test_hard_reboot_stop_start_host_boot_rescue_keep_the_guest(self):
        server = self._reboot_server(self.server, hard=True)
        self.assert_kept(server)
        self.assertIn('hard reboot: the guest keeps',
                      self.stdlog.logger.output)

        server = self._stop_server(server)
        server = self._start_server(server)
        self.assert_kept(server)
        self.assertIn('power on: the guest keeps', self.stdlog.logger.output)

        # The host reboots: the domain is off, nova-compute starts again
        # and resumes the guests that were running.
        self.flags(resume_guests_state_on_host_boot=True)
        compute = self.computes[self.hosts['gpu']]
        ctxt = nova_context.get_admin_context()
        instance = objects.Instance.get_by_uuid(ctxt, server['id'])
        compute.driver._host.get_guest(instance)._domain.destroy()
        self.restart_compute_service(self.hosts['gpu'])
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assert_kept(server)
        self.assertIn('resume after host boot: the guest keeps',
                      self.stdlog.logger.output)
        self.assertEqual(
            fakelibvirt.VIR_DOMAIN_RUNNING,
            self.computes[self.hosts['gpu']].driver._host.get_guest(
                instance)._domain._state)

        server = self._rescue_server(server)
        self.assert_kept(server, 'RESCUE')
        self.assertIn('rescue: the guest keeps', self.stdlog.logger.output)
        server = self._unrescue_server(server)
        self.assert_kept(server)

    def test_a_new_claim_is_still_refused(self):
        # The same limit refuses a second server at the scheduler or, if it
        # got through, at the compute: never admitted.
        flavor = self._create_flavor(
            memory_mb=1024, vcpu=1, disk=1, ephemeral=0,
            extra_spec={'resources:VGPU': '1'})
        server = self._create_server(
            flavor_id=flavor, networks='none', expected_state='ERROR')
        self.assertIn('No valid host', server['fault']['message'])

    def test_a_rebuild_failing_before_its_spawn_leaves_no_mark(self):
        # A rebuild in place keeps the guest, over today's limit too.
        image = self.server['image']['id']
        server = self._rebuild_server(self.server, image)
        self.assert_kept(server)
        self.assertIn('rebuild: the guest keeps', self.stdlog.logger.output)
        # A rebuild that fails before its spawn (in destroy)...
        with mock.patch.object(self.driver, 'destroy',
                               side_effect=test.TestingException('injected')):
            # (the harness makes RPC casts calls: the API sees the error)
            self.assertRaises(
                client.OpenStackApiException, self.api.post_server_action,
                server['id'], {'rebuild': {'imageRef': image}})
            server = self._wait_for_state_change(server, 'ERROR')
        # ... leaves nothing a later spawn of the guest takes for a
        # rebuild: an unshelve is a new claim.
        self.admin_api.post_server_action(
            server['id'], {'os-resetState': {'state': 'active'}})
        self.flags(guest_timeout_ms=2000, group='gpu_ext')
        server = self._shelve_server(server)
        seen = []
        spawn_operation = operations.spawn_operation

        def spy(instance):
            seen.append(spawn_operation(instance))
            return seen[-1]

        self.stub_out('nova_gpu_ext.virt.operations.spawn_operation', spy)
        self._unshelve_server(server)
        self.assertEqual([(operations.NEW_CLAIM, 'unshelve')], seen)


class RenderNodeKeptInPlaceTest(SampleHostTestBase):
    """A render-node guest restarted in place keeps its render node, even
    when it now shares it with more guests than the (lowered) limit."""

    def setUp(self):
        super().setUp()
        flavor = self._create_flavor(
            memory_mb=1024, vcpu=1, disk=1, ephemeral=0, extra_spec={
                'gpu:render_node': 'numa-local',
                'gpu:display': 'egl-headless'})
        # No limit: least used first, so the 1st and 3rd share renderD128.
        self.servers = [self._create_server(
            flavor_id=flavor, networks='none', expected_state='ACTIVE')
            for _ in range(3)]
        self.assertEqual(
            ['/dev/dri/renderD128', '/dev/dri/renderD129',
             '/dev/dri/renderD128'],
            [rendernode(self.domain_xml(s)) for s in self.servers])
        # The operator lowers the limit below renderD128's use.
        self.flags(render_node_max_guests=1, group='gpu_ext')

    def assert_kept(self, server, operation):
        self.assertEqual('ACTIVE', server['status'])
        # Defined again, with the same render node.
        self.assertEqual('/dev/dri/renderD128',
                         rendernode(self.domain_xml(server)))
        self.assertEqual({'renderD128': 2, 'renderD129': 1},
                         self.driver._render_nodes.counts())
        log = self.stdlog.logger.output
        self.assertIn('%s: the guest keeps what it has although render '
                      'node: render node renderD128 kept (2 guest(s) with '
                      'it, limit 1)' % operation, log)
        self.assertNotIn('ERROR [nova.compute.manager]', log)

    def test_hard_reboot_and_power_on_keep_the_render_node(self):
        server = self.servers[2]
        self.defined_xml.pop(server['id'])
        server = self._reboot_server(server, hard=True)
        self.assert_kept(server, 'hard reboot')
        server = self._stop_server(server)
        self.defined_xml.pop(server['id'])
        server = self._start_server(server)
        self.assert_kept(server, 'power on')
