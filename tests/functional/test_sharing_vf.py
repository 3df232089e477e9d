"""Pack/spread and time-slice safety for SR-IOV VFs (PCI in placement).

Two PFs (0000:3b:00.0 on node 0, 0000:3b:01.0 on node 1: hex letters, as
on most servers), four VFs each, reported to placement as inventory of
their PF's provider (Nova's ``[pci] report_in_placement``), which Nova
names ``<host>_0000:3B:00.0``, in upper case. The fake sysfs tree
describes the same functions as GPUs with SR-IOV, as an AMD MxGPU host
would look.
"""

from lxml import etree
import nova.conf
from nova.tests.fixtures import libvirt as fakelibvirt
from oslo_serialization import jsonutils

from nova_gpu_ext.conf import sharing as sharing_conf
from nova_gpu_ext.sim import fake_sysfs
from tests.functional import base

CONF = nova.conf.CONF
PF0, PF1 = '0000:3b:00.0', '0000:3b:01.0'
ALIAS = 'gpu-vf'


class VFSharingTest(base.GPUExtTestBase):

    sysfs_sample = None
    ADDITIONAL_FILTERS = base.GPUExtTestBase.ADDITIONAL_FILTERS + [
        'PciPassthroughFilter']

    def setUp(self):
        super().setUp()
        root = self.build_sysfs(None)
        fs = fake_sysfs.FakeSysfs(root)
        for node in (0, 1):
            fs.add_node(node, range(node * 4, node * 4 + 4), 16384,
                        socket=node)
        for node, pf in ((0, PF0), (1, PF1)):
            fs.add_gpu(pf, 0x8086, 0x1528, node, 'gim', iommu_group=40 + node)
            fs.add_vfs(pf, 4, vf_device=0x1515)
        self.flags(sysfs_root=root, group='gpu_ext')
        spec = {'vendor_id': '8086', 'product_id': '1515'}
        self.flags(device_spec=[jsonutils.dumps(spec)],
                   alias=[jsonutils.dumps(dict(
                       spec, name=ALIAS, device_type='type-VF'))],
                   report_in_placement=True, group='pci')
        self.flags(pci_in_placement=True, group='filter_scheduler')
        self.start_compute(
            'vf-host', pci_info=fakelibvirt.HostPCIDevicesInfo(
                num_pci=0, num_pfs=2, num_vfs=8, bus=0x3b))
        self.compute = self.computes['vf-host']
        # Nova creates the PF providers after the driver's provider tree
        # update; the driver sees them on the next update and publishes
        # their UUIDs on the one after.
        self._run_periodics()
        self._run_periodics()

    def _flavor(self, **specs):
        extra = {'pci_passthrough:alias': '%s:1' % ALIAS}
        extra.update(specs)
        return self._create_flavor(memory_mb=1024, vcpu=1, disk=1,
                                   ephemeral=0, extra_spec=extra)

    def pf_of(self, server):
        root = etree.fromstring(self.domain_xml(server).encode())
        source = root.find("./devices/hostdev[@type='pci']/source/address")
        vf = '%04x:%02x:%02x.%x' % tuple(
            int(source.get(k), 16)
            for k in ('domain', 'bus', 'slot', 'function'))
        return str(self.compute.driver.gpu_topology.gpu(vf).physfn)

    def _boot(self, flavor, state='ACTIVE'):
        return self._create_server(flavor_id=flavor, networks='none',
                                   expected_state=state)

    def test_pack_fills_pf0_before_pf1(self):
        flavor = self._flavor(**{'gpu:placement': 'pack'})
        self.assertEqual([PF0] * 3, [self.pf_of(self._boot(flavor))
                                     for _ in range(3)])

    def test_spread_alternates(self):
        flavor = self._flavor(**{'gpu:placement': 'spread'})
        self.assertEqual([PF0, PF1, PF0, PF1],
                         [self.pf_of(self._boot(flavor)) for _ in range(4)])

    def test_hex_letter_pf_has_its_provider_and_traits(self):
        # The scheduler's view: the PF's provider in the published summary
        # and our traits on it, which Nova's PCI translator replaces on
        # every resource update.
        self._run_periodics()
        from nova import context
        from nova import objects
        node = objects.ComputeNode.get_by_nodename(
            context.get_admin_context(), 'vf-host')
        by_addr = {g['addr']: g for g in jsonutils.loads(
            node.stats['gpu_ext'])['gpus']}
        for pf, numa in ((PF0, 0), (PF1, 1)):
            uuid = self._get_provider_uuid_by_name(
                'vf-host_%s' % pf.upper())
            self.assertEqual(uuid, by_addr[pf]['rp'])
            traits = set(self.placement.get(
                '/resource_providers/%s/traits' % uuid,
                version='1.6').body['traits'])
            self.assertLessEqual(
                {'CUSTOM_GPU_NUMA_NODE_%d' % numa,
                 'CUSTOM_GPU_SOCKET_%d' % numa,
                 'COMPUTE_MANAGED_PCI_DEVICE'}, traits)

    def test_vf_beyond_the_timeout_bound_is_refused_with_the_reason(self):
        # 500 ms slices: three tenants per PF fit the 1.5 s limit.
        sharing_conf.register_dynamic_opts(CONF, ['10de:1528', '8086:1528'])
        self.flags(slice_ms=500, switch_ms=0,
                   group=sharing_conf.group_name('8086:1528'))
        self.flags(timeout_margin=0.75, group='gpu_ext')
        flavor = self._flavor(**{'gpu:placement': 'pack'})
        used = [self.pf_of(self._boot(flavor)) for _ in range(6)]
        self.assertEqual([PF0] * 3 + [PF1] * 3, used)
        server = self._boot(flavor, state='ERROR')
        self.assertIn('No valid host', server['fault']['message'])
        log = self.stdlog.logger.output
        self.assertIn('GPUPlacementFilter: host vf-host refused', log)
        self.assertIn('4 tenants with 500 ms slices wait 2.0 s between '
                      'turns, over the 1.5 s limit', log)
