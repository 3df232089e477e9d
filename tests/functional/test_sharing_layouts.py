"""Pack/spread and the time-slice bound on the layouts operators run.

Each host is one :mod:`nova_gpu_ext.sim.gpu_layouts` description, rendered
both as Nova's fakelibvirt node devices and as the fake sysfs tree our
discovery reads; when Nova creates an mdev both views change together.
Servers go through the API, GPUPlacementFilter and the compute; the
assertions read the physical GPU each guest got and the scheduler's log.
"""

from oslo_utils import uuidutils

import nova.conf
from nova_gpu_ext.conf import sharing as sharing_conf
from nova_gpu_ext.sim import gpu_layouts
from tests.functional import base

CONF = nova.conf.CONF
PF0, PF1 = '0000:3b:00.0', '0000:af:00.0'
REFUSED = 'GPUPlacementFilter: host layout-host refused'
TIME_BOUND = ('4 tenants with 500 ms slices wait 2.0 s between turns, over '
              'the 1.5 s limit (2.0 s guest timeout x 0.75 margin)')


class LayoutTestBase(base.GPUExtTestBase):
    """One compute, ``layout-host``, running ``layout``."""

    sysfs_sample = None
    layout = None
    hostname = 'layout-host'

    def setUp(self):
        super().setUp()
        self.layout_host = self.layout.host()
        root = self.build_sysfs(None)
        self.layout_host.write_sysfs(root)
        self.flags(sysfs_root=root, group='gpu_ext')
        self.configure()
        self.start_compute(self.hostname, host_info=self.layout.host_info(),
                           pci_info=self.layout_host.pci_info())
        self.compute = self.computes[self.hostname]
        # The GPU providers exist after the first update; the driver
        # publishes their UUIDs on the next.
        self._run_periodics()
        self._run_periodics()

    def configure(self):
        """Nova's options for the layout."""

    def _create_mdev(self, dev_name, mdev_type, uuid=None):
        # Nova's vGPU base fakes the mdev in libvirt; the layout shows it
        # in sysfs too and lowers the parent's instances in both views.
        uuid = super()._create_mdev(dev_name, mdev_type, uuid=uuid)
        self.layout_host.mdev_created(dev_name, mdev_type, uuid)
        return uuid

    def _boot(self, flavor, state='ACTIVE'):
        return self._create_server(flavor_id=flavor, networks='none',
                                   expected_state=state)

    def physical_gpu(self, address):
        fn = self.layout_host.functions[address]
        return fn.physfn or fn.address

    def _long_slices(self, type_name):
        # 500 ms slices, 2 s guest timeout, 0.75 margin: 1.5 s limit, so
        # 3 tenants (1.5 s between turns) fit on one physical GPU.
        sharing_conf.register_dynamic_opts(CONF, [type_name])
        self.flags(slice_ms=500, switch_ms=0,
                   group=sharing_conf.group_name(type_name))
        self.flags(timeout_margin=0.75, guest_timeout_ms=2000,
                   group='gpu_ext')

    def _allocate(self, rp_names, resource_class, amount=1):
        """An allocation outside Nova (another tenant) on providers."""
        allocations = {}
        for name in rp_names:
            allocations[self._get_provider_uuid_by_name(name)] = {
                'resources': {resource_class: amount}}
        response = self.placement.put(
            '/allocations/%s' % uuidutils.generate_uuid(), {
                'allocations': allocations,
                'project_id': uuidutils.generate_uuid(),
                'user_id': uuidutils.generate_uuid(),
                'consumer_generation': None}, version='1.28')
        self.assertEqual(204, response.status, response.body)


class MdevLayoutTestBase(LayoutTestBase):
    """Layouts whose tenants get mdevs (``resources:VGPU``)."""

    mdev_type = None

    def configure(self):
        self.flags(enabled_mdev_types=[self.mdev_type], group='devices')

    def _flavor(self, **specs):
        extra = {'resources:VGPU': '1'}
        extra.update(specs)
        return self._create_flavor(memory_mb=1024, vcpu=1, disk=1,
                                   ephemeral=0, extra_spec=extra)

    def gpu_of(self, server):
        (parent,) = self.mdev_parents(server).values()
        return self.physical_gpu(parent)

    def parents_of(self, pf):
        """Provider names of the mdev parents of one physical GPU."""
        fn = self.layout_host.functions[pf]
        return ['%s_%s' % (self.hostname, self.layout_host.functions[a]
                           .libvirt_name) for a in (fn.vfs or (pf,))]


class SRIOVvGPUTest(MdevLayoutTestBase):
    """SR-IOV vGPU: mdev types on the VFs, one vGPU per VF; Nova makes a
    provider per VF, pack/spread and the bound are per physical GPU."""

    layout = gpu_layouts.SRIOV_VGPU
    mdev_type = 'nvidia-566'

    def test_each_vf_is_an_mdev_parent_with_one_instance(self):
        # Nova's view of the host: a VGPU provider per VF, total 1 each.
        for pf in (PF0, PF1):
            for name in self.parents_of(pf):
                rp = self._get_provider_uuid_by_name(name)
                self.assertEqual(1, self._get_provider_inventory(rp)[
                    'VGPU']['total'])
        self.assertEqual(16, len(self.compute.driver._get_mdev_capable_devices(
            types=[self.mdev_type])))

    def test_pack_fills_the_first_physical_gpu_first(self):
        flavor = self._flavor(**{'gpu:placement': 'pack'})
        used = [self.gpu_of(self._boot(flavor)) for _ in range(3)]
        self.assertEqual([PF0] * 3, used)
        # Three VFs hold one vGPU each; sysfs says so as libvirt does.
        driver = self.compute.driver
        self.assertEqual(3, len(driver._get_all_assigned_mediated_devices()))
        full = [d['dev_id'] for d in driver._get_mdev_capable_devices(
            types=[self.mdev_type])
            if d['types'][self.mdev_type]['availableInstances'] == 0]
        self.assertEqual(3, len(full))
        topology = driver._refresh_gpu_topology()
        self.assertEqual(5, sum(
            t.available_instances for v in topology.gpu(PF0).vfs
            for t in topology.gpu(v).mdev_types))

    def test_spread_alternates_physical_gpus(self):
        flavor = self._flavor(**{'gpu:placement': 'spread'})
        used = [self.gpu_of(self._boot(flavor)) for _ in range(4)]
        self.assertEqual([PF0, PF1, PF0, PF1], used)

    def test_tenant_past_the_time_bound_is_refused_at_the_scheduler(self):
        self._long_slices(self.mdev_type)
        self._allocate(self.parents_of(PF1), 'VGPU')    # PF1 is full
        flavor = self._flavor(**{'gpu:placement': 'pack'})
        for _ in range(3):
            self.assertEqual(PF0, self.gpu_of(self._boot(flavor)))
        server = self._boot(flavor, state='ERROR')
        self.assertIn('No valid host', server['fault']['message'])
        log = self.stdlog.logger.output
        self.assertIn(REFUSED, log)
        self.assertIn('%s refused: %s' % (PF0, TIME_BOUND), log)
        self.assertNotIn(server['id'], self.defined_xml)
