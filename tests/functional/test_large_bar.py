"""Large-BAR GPU guests through Nova: API -> GPUAddressSpaceFilter ->
GPULibvirtDriver's large_bar tweak (issue 22).

The host is ``gpu_layouts.HGX_H100_4``: four H100 SXM5 whole GPUs whose
fake sysfs ``resource`` files list BAR1 128 GiB + BAR3 32 MiB, rendered
both as fakelibvirt node devices and as the fake sysfs tree. A 4-GPU guest
needs 45 address bits with SeaBIOS (Nova's default firmware): a host whose
IOMMU addresses 48 bits takes it and its XML carries ``<maxphysaddr>``; one
whose VT-d MGAW is 39 bits is refused with the reason in the scheduler log.
"""

from unittest import mock

from lxml import etree
from oslo_serialization import jsonutils

from nova_gpu_ext.sim import gpu_layouts
from nova_gpu_ext.sim import harness
from tests.functional import base

ALIAS = 'h100'
VTD_CAP_39_BITS = 'd2008c40660462'   # MGAW field 38 -> 39 bits


class LargeBARTestBase(base.GPUExtTestBase):

    sysfs_sample = None
    layout = gpu_layouts.HGX_H100_4
    hostname = 'hgx-host'
    ADDITIONAL_FILTERS = base.GPUExtTestBase.ADDITIONAL_FILTERS + [
        'PciPassthroughFilter', 'GPUAddressSpaceFilter']
    vtd_cap = None

    def setUp(self):
        # available_filters lists nova_gpu_ext.scheduler.filters.<name>
        # for the harness's filters; add ours before the services start.
        patcher = mock.patch.object(
            harness, 'OUR_FILTERS',
            harness.OUR_FILTERS + ('GPUAddressSpaceFilter',))
        patcher.start()
        self.addCleanup(patcher.stop)
        super().setUp()
        self.layout_host = self.layout.host()
        root = self.build_sysfs(None)
        fs = self.layout_host.write_sysfs(root)
        if self.vtd_cap:
            fs.set_address_limits(vtd_cap=self.vtd_cap)
        self.flags(sysfs_root=root, group='gpu_ext')
        spec = {'vendor_id': '10de', 'product_id': '2330'}
        self.flags(device_spec=[jsonutils.dumps(spec)],
                   alias=[jsonutils.dumps(dict(spec, name=ALIAS,
                                               device_type='type-PCI'))],
                   group='pci')
        self.start_compute(self.hostname, host_info=self.layout.host_info(),
                           pci_info=self.layout_host.pci_info())
        self._run_periodics()
        self._run_periodics()

    def _flavor(self, gpus):
        extra = {'pci_passthrough:alias': '%s:%d' % (ALIAS, gpus)} \
            if gpus else {}
        return self._create_flavor(memory_mb=1024, vcpu=1, disk=1,
                                   ephemeral=0, extra_spec=extra)

    def _boot(self, gpus, state='ACTIVE'):
        return self._create_server(flavor_id=self._flavor(gpus),
                                   networks='none', expected_state=state)

    def tree(self, server):
        return etree.fromstring(self.domain_xml(server).encode())


class AddressableHostTest(LargeBARTestBase):

    def test_four_gpu_guest_gets_the_bits_it_needs(self):
        tree = self.tree(self._boot(4))
        self.assertEqual(4, len(tree.findall("./devices/hostdev")))
        address = tree.find('./cpu/maxphysaddr')
        self.assertIsNotNone(address)
        self.assertEqual('emulate', address.get('mode'))
        self.assertEqual('45', address.get('bits'))
        # SeaBIOS does not need 1 GiB pages
        self.assertIsNone(tree.find("./cpu/feature[@name='pdpe1gb']"))

    def test_plain_guest_xml_has_nothing_of_ours(self):
        tree = self.tree(self._boot(0))
        self.assertIsNone(tree.find('./cpu/maxphysaddr'))
        self.assertIsNone(tree.find("./cpu/feature[@name='pdpe1gb']"))


class NarrowIOMMUHostTest(LargeBARTestBase):
    vtd_cap = VTD_CAP_39_BITS

    def test_four_gpu_guest_is_refused_with_the_reason(self):
        server = self._boot(4, state='ERROR')
        self.assertIn('No valid host', server['fault']['message'])
        log = self.stdlog.logger.output
        self.assertIn('GPUAddressSpaceFilter: host %s refused' %
                      self.hostname, log)
        self.assertIn('IOMMU addresses 39 bits', log)
