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

from nova_gpu_ext.sim import harness
from nova_gpu_ext.sim import large_bar
from tests.functional import base


class LargeBARTestBase(base.GPUExtTestBase):

    sysfs_sample = None
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
        self.layout_host = large_bar.start_host(self, self.hostname,
                                                self.vtd_cap)

    def _boot(self, gpus, state='ACTIVE'):
        return self._create_server(
            flavor_id=large_bar.flavor(self, gpus), networks='none',
            expected_state=state)

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

    def test_uefi_guest_gets_bits_and_1g_pages(self):
        server = self._create_server(
            flavor_id=large_bar.flavor(self, 2), networks='none',
            image_uuid=large_bar.uefi_image(self), expected_state='ACTIVE')
        tree = self.tree(server)
        self.assertEqual('efi', tree.find('./os').get('firmware'))
        self.assertEqual('43', tree.find('./cpu/maxphysaddr').get('bits'))
        self.assertEqual('require', tree.find(
            "./cpu/feature[@name='pdpe1gb']").get('policy'))

    def test_plain_guest_xml_has_nothing_of_ours(self):
        tree = self.tree(self._boot(0))
        self.assertIsNone(tree.find('./cpu/maxphysaddr'))
        self.assertIsNone(tree.find("./cpu/feature[@name='pdpe1gb']"))


class NarrowIOMMUHostTest(LargeBARTestBase):
    vtd_cap = large_bar.VTD_CAP_39_BITS

    def test_four_gpu_guest_is_refused_with_the_reason(self):
        server = self._boot(4, state='ERROR')
        self.assertIn('No valid host', server['fault']['message'])
        log = self.stdlog.logger.output
        self.assertIn('GPUAddressSpaceFilter: host %s refused' %
                      self.hostname, log)
        self.assertIn('IOMMU addresses 39 bits', log)
