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


class PackSpreadChecks:
    """Pack fills the first physical GPU first, spread alternates (a
    mixin: test bases alone have no layout to run)."""

    def test_pack_fills_the_first_physical_gpu_first(self):
        flavor = self._flavor(**{'gpu:placement': 'pack'})
        self.assertEqual([PF0] * 3, [self.gpu_of(self._boot(flavor))
                                     for _ in range(3)])

    def test_spread_alternates_physical_gpus(self):
        flavor = self._flavor(**{'gpu:placement': 'spread'})
        self.assertEqual([PF0, PF1, PF0, PF1],
                         [self.gpu_of(self._boot(flavor)) for _ in range(4)])


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


class SRIOVvGPUTest(PackSpreadChecks, MdevLayoutTestBase):
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

    def test_a_residents_min_share_holds_after_a_compute_restart(self):
        self._allocate(self.parents_of(PF1), 'VGPU')    # PF1 is full
        greedy = self._flavor(**{'gpu:min_share_percent': '40',
                                 'gpu:placement': 'pack'})
        plain = self._flavor(**{'gpu:placement': 'pack'})
        self.assertEqual(PF0, self.gpu_of(self._boot(greedy)))
        self.assertEqual(PF0, self.gpu_of(self._boot(plain)))
        # Recovered from the flavors, on the PF of the resident's VF.
        self.compute = self.restart_compute_service(self.hostname)
        self.assertEqual(
            0.4, self.compute.driver._sharing_claims.resident_min_share(PF0))
        self._run_periodics()
        server = self._boot(plain, state='ERROR')
        self.assertIn('No valid host', server['fault']['message'])
        self.assertIn('A tenant already on this GPU needs at least 40.0%',
                      self.stdlog.logger.output)


class MIGvGPUTest(PackSpreadChecks, MdevLayoutTestBase):
    """MIG-backed vGPU: every VF's type is one MIG GPU instance, run in
    parallel with the others. The time-slice bound does not apply; the
    bound per physical GPU is its instances (7 here), the same count
    placement has, so pack fills all 7 before the second GPU."""

    layout = gpu_layouts.MIG_VGPU
    mdev_type = 'nvidia-699'

    def test_the_bound_is_the_instances_not_the_time_slices(self):
        # Slices that would stop a time-sliced GPU at 3 tenants.
        self._long_slices(self.mdev_type)
        flavor = self._flavor(**{'gpu:placement': 'pack'})
        used = [self.gpu_of(self._boot(flavor)) for _ in range(8)]
        self.assertEqual([PF0] * 7 + [PF1], used)
        self.assertNotIn('between turns', self.stdlog.logger.output)


class GVTgTest(MdevLayoutTestBase):
    """Intel GVT-g: mdev types on the integrated GPU's PF (0000:00:02.0),
    time-sliced by i915. A host has one such GPU, so pack/spread over
    physical GPUs has nothing to order here (across hosts it is
    GPUSharingWeigher, SharingAcrossHostsTest); the bound applies."""

    layout = gpu_layouts.GVT_G
    mdev_type = 'i915-GVTg_V5_8'
    IGPU = '0000:00:02.0'

    def test_tenant_past_the_time_bound_is_refused_at_the_scheduler(self):
        self._long_slices(self.mdev_type)
        flavor = self._flavor(**{'gpu:placement': 'pack'})
        for _ in range(3):
            self.assertEqual(self.IGPU, self.gpu_of(self._boot(flavor)))
        # Placement still has a fourth i915-GVTg_V5_8 instance.
        rp = self._get_provider_uuid_by_name('%s_pci_0000_00_02_0' %
                                             self.hostname)
        self.assertEqual(4, self._get_provider_inventory(rp)['VGPU']['total'])
        server = self._boot(flavor, state='ERROR')
        self.assertIn('No valid host', server['fault']['message'])
        log = self.stdlog.logger.output
        self.assertIn(REFUSED, log)
        self.assertIn('%s refused: %s' % (self.IGPU, TIME_BOUND), log)


class PCILayoutTestBase(LayoutTestBase):
    """Layouts whose tenants get VFs passed through as PCI devices, in
    placement on their PF's provider (``<host>_0000:3B:00.0``)."""

    ADDITIONAL_FILTERS = LayoutTestBase.ADDITIONAL_FILTERS + [
        'PciPassthroughFilter']
    ALIAS = 'gpu-vf'
    #: extra ``[pci] device_spec`` keys
    spec_extra = {}

    def configure(self):
        from oslo_serialization import jsonutils
        gpu = self.layout.gpus[0]
        spec = {'vendor_id': '%04x' % gpu.vendor,
                'product_id': '%04x' % (gpu.vf_device or gpu.device)}
        self.flags(device_spec=[jsonutils.dumps(dict(spec,
                                                     **self.spec_extra))],
                   alias=[jsonutils.dumps(dict(
                       spec, name=self.ALIAS, device_type='type-VF'))],
                   report_in_placement=True, group='pci')
        self.flags(pci_in_placement=True, group='filter_scheduler')

    @property
    def type_name(self):
        gpu = self.layout.gpus[0]
        return '%04x:%04x' % (gpu.vendor, gpu.device)

    def _flavor(self, **specs):
        extra = {'pci_passthrough:alias': '%s:1' % self.ALIAS}
        extra.update(specs)
        return self._create_flavor(memory_mb=1024, vcpu=1, disk=1,
                                   ephemeral=0, extra_spec=extra)

    def hostdev(self, server):
        from lxml import etree
        root = etree.fromstring(self.domain_xml(server).encode())
        return root.find("./devices/hostdev[@type='pci']")

    def gpu_of(self, server):
        source = self.hostdev(server).find('./source/address')
        vf = '%04x:%02x:%02x.%x' % tuple(
            int(source.get(k), 16)
            for k in ('domain', 'bus', 'slot', 'function'))
        return self.physical_gpu(vf)


class PCILayoutChecks(PackSpreadChecks):
    """The three checks of a PCI layout."""

    def test_tenant_past_the_time_bound_is_refused_at_the_scheduler(self):
        self._long_slices(self.type_name)
        flavor = self._flavor(**{'gpu:placement': 'pack'})
        # 4 VFs per PF, 3 tenants fit the bound: the 4th VF of PF0 is
        # free in placement but refused.
        used = [self.gpu_of(self._boot(flavor)) for _ in range(6)]
        self.assertEqual([PF0] * 3 + [PF1] * 3, used)
        server = self._boot(flavor, state='ERROR')
        self.assertIn('No valid host', server['fault']['message'])
        log = self.stdlog.logger.output
        self.assertIn(REFUSED, log)
        self.assertIn('%s refused: %s' % (PF0, TIME_BOUND), log)


class VFIOVariantTest(PCILayoutChecks, PCILayoutTestBase):
    """NVIDIA vGPU on the VFIO variant driver: Nova does not bind the VFs
    (``"managed": "no"``, Nova 31+); the vGPU type was chosen per VF in
    sysfs (``nvidia/current_vgpu_type``)."""

    layout = gpu_layouts.VFIO_VARIANT
    # The VFs have their PF's device id; Nova refuses a spec matching a PF
    # and its VFs, so the spec names the VFs' functions (.4 to .7).
    spec_extra = {'managed': 'no', 'address': {
        'domain': '0000', 'bus': '(3b|af)', 'slot': '00',
        'function': '[4-7]'}}

    def test_hostdev_is_not_managed(self):
        server = self._boot(self._flavor())
        self.assertEqual('no', self.hostdev(server).get('managed'))


class AMDMxGPUTest(PCILayoutChecks, PCILayoutTestBase):
    """AMD MxGPU: the gim driver on the PF, VFs on vfio-pci, passed
    through as PCI devices (Nova binds them: managed)."""

    layout = gpu_layouts.AMD_MXGPU
