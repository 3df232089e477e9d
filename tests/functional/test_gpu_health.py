"""A GPU whose PCIe link trained below its maximum is kept out by a flavor.

The sample host's first vGPU GPU (0000:81:00.0, node 0) trained at x8 in
its x16 slot. Its resource provider gets ``CUSTOM_GPU_LINK_DEGRADED`` from
the host's sysfs alone (no guest driver), the healthy one does not, and a
flavor forbidding the trait only lands on the healthy GPU.
"""

from nova_gpu_ext.sim import samplehost
from nova_gpu_ext.topology import health
from tests.functional import base

DEGRADED = '0000:81:00.0'
HEALTHY = '0000:81:01.0'


class DegradedLinkTest(base.GPUExtTestBase):

    sysfs_sample = None

    def setUp(self):
        super().setUp()
        samplehost.configure(self)
        self.sysfs_root = self.build_sysfs(None)
        fs = samplehost.write_sysfs(self.sysfs_root)
        fs.degrade_link(DEGRADED, width=8)
        self.flags(sysfs_root=self.sysfs_root, group='gpu_ext')
        with self.assertLogs('nova_gpu_ext.topology.host_facts',
                             level='WARNING') as logs:
            self.host = self.start_compute(
                'gpu-host-1', host_info=samplehost.host_info(),
                pci_info=samplehost.pci_info(),
                libvirt_version=self.FAKE_LIBVIRT_VERSION,
                qemu_version=self.FAKE_QEMU_VERSION)
        self.logs = logs.output

    def _traits(self, address):
        uuid = self._get_provider_uuid_by_name('%s_pci_%s' % (
            self.host, address.replace(':', '_').replace('.', '_')))
        return set(self.placement.get(
            '/resource_providers/%s/traits' % uuid,
            version='1.6').body['traits'])

    def test_degraded_gpu_has_the_trait_and_a_forbidding_flavor_avoids_it(
            self):
        self.assertIn(health.LINK_DEGRADED_TRAIT, self._traits(DEGRADED))
        self.assertNotIn(health.LINK_DEGRADED_TRAIT, self._traits(HEALTHY))
        # Logged once, at start, with what is wrong.
        lines = [line for line in self.logs if DEGRADED in line]
        self.assertEqual(1, len(lines), self.logs)
        self.assertIn('PCIe link trained at x8 of x16', lines[0])
        flavor = self._create_flavor(extra_spec={
            'resources:VGPU': '1',
            'trait:%s' % health.LINK_DEGRADED_TRAIT: 'forbidden'})
        for name in ('a', 'b'):
            server = self._create_server(name=name, flavor_id=flavor,
                                         networks='none')
            self.assertEqual([HEALTHY],
                             list(self.mdev_parents(server).values()))
        # Control: the degraded GPU is otherwise eligible (requiring the
        # trait lands there), so the exclusion above is the trait's doing.
        flavor = self._create_flavor(extra_spec={
            'resources:VGPU': '1',
            'trait:%s' % health.LINK_DEGRADED_TRAIT: 'required'})
        server = self._create_server(name='c', flavor_id=flavor,
                                     networks='none')
        self.assertEqual([DEGRADED],
                         list(self.mdev_parents(server).values()))
