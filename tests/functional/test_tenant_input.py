"""Tenant input narrows, never widens: an image cannot opt out of a bound.

An image with ``hw_numa_nodes=1`` gives the request a NUMA topology. It
used to make GPUPlacementFilter skip candidate filtering, the time-slice
admission and pack/spread, leaving only the compute's re-check. The sample
host has two vGPU GPUs (0000:81:00.0 on node 0, 0000:81:01.0 on node 1).
"""

from nova_gpu_ext.sim import samplehost
from tests.functional import base
from tests.functional import test_sharing

GPU0, GPU1 = test_sharing.GPU0, test_sharing.GPU1


class TenantNUMAImageTest(test_sharing.SharingTest):

    ADDITIONAL_FILTERS = base.GPUExtTestBase.ADDITIONAL_FILTERS + [
        'NUMATopologyFilter']

    def setUp(self):
        super().setUp()
        image = {
            'name': 'tenant-numa', 'status': 'active',
            'container_format': 'bare', 'disk_format': 'raw',
            'properties': {'hw_numa_nodes': '1',
                           # Looser than the flavor's: ignored, reported.
                           'hw_pci_numa_affinity_policy': 'legacy'}}
        self.image_id = self.glance.create(None, image)['id']

    def _boot(self, flavor, state='ACTIVE'):
        return self._create_server(flavor_id=flavor, networks='none',
                                   image_uuid=self.image_id,
                                   expected_state=state)

    def test_numa_image_is_still_refused_past_the_sharing_bound(self):
        self._long_slices()         # three tenants per GPU at most
        self._fill(GPU1)
        flavor = self._flavor(**{'gpu:placement': 'pack',
                                 'gpu:numa_affinity_policy': 'preferred'})
        for _ in range(3):
            server = self._boot(flavor)
            self.assertEqual(GPU0, self.gpu_of(server))
        server = self._boot(flavor, state='ERROR')
        self.assertIn('No valid host', server['fault']['message'])
        log = self.stdlog.logger.output
        # Refused by the scheduler, with the reason, not by the compute.
        self.assertIn('GPUPlacementFilter: host %s refused'
                      % self.hosts['gpu'], log)
        self.assertIn('4 tenants with 500 ms slices wait 2.0 s between '
                      'turns, over the 1.5 s limit', log)
        self.assertNotIn(server['id'], self.defined_xml)
        # The tenant's looser policy was reported by the compute.
        self.assertIn('image hw_pci_numa_affinity_policy=legacy ignored: '
                      'looser than preferred from flavor '
                      'gpu:numa_affinity_policy', log)

    # The parent's tests are run by test_sharing.
    test_pack_fills_gpu0_before_gpu1 = None
    test_spread_alternates = None
    test_tenant_beyond_the_timeout_bound_is_refused_at_the_scheduler = None
    test_min_share_refused_where_it_cannot_hold = None
    test_concurrent_builds_never_share_an_mdev = None
    test_restart_recovers_tenants_from_libvirt_and_placement = None


del samplehost
