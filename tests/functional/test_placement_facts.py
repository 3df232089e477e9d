"""What a compute running our driver shows in placement and its stats."""

from nova_gpu_ext.core.summary import HostSummary
from nova_gpu_ext.sim import samplehost
from tests.functional import base


class PlacementFactsTest(base.GPUExtTestBase):

    sysfs_sample = None

    def setUp(self):
        super().setUp()
        samplehost.configure(self)
        self.hosts = samplehost.start_hosts(self, cpu_host=False)

    def _traits(self, rp_name):
        uuid = self._get_provider_uuid_by_name(rp_name)
        return set(self.placement.get(
            '/resource_providers/%s/traits' % uuid,
            version='1.6').body['traits'])

    def test_each_physical_gpu_provider_has_its_numa_and_socket_traits(self):
        host = self.hosts['gpu']
        for gpu in samplehost.GPUS:
            if not gpu.mdev:
                continue    # only mdev parents have providers here
            traits = self._traits('%s_pci_%s' % (
                host, gpu.address.replace(':', '_').replace('.', '_')))
            node_traits = {t for t in traits
                           if t.startswith('CUSTOM_GPU_')}
            self.assertEqual({'CUSTOM_GPU_NUMA_NODE_%d' % gpu.numa_node,
                              'CUSTOM_GPU_SOCKET_%d' % gpu.numa_node},
                             node_traits)
        self.assertIn('CUSTOM_GPU_EXT', self._traits(host))

    def test_an_operators_gpu_trait_survives(self):
        host = self.hosts['gpu']
        name = '%s_pci_0000_81_00_0' % host
        uuid = self._get_provider_uuid_by_name(name)
        self.placement.put('/traits/CUSTOM_GPU_A100', None, version='1.6')
        generation = self.placement.get(
            '/resource_providers/%s' % uuid,
            version='1.6').body['generation']
        response = self.placement.put(
            '/resource_providers/%s/traits' % uuid,
            {'traits': sorted(self._traits(name) | {'CUSTOM_GPU_A100'}),
             'resource_provider_generation': generation}, version='1.6')
        self.assertEqual(200, response.status, response.body)
        # A restarted compute reads the provider's traits from placement
        # and updates its own.
        self.restart_compute_service(host)
        self._run_periodics()
        self.assertLessEqual({'CUSTOM_GPU_A100', 'CUSTOM_GPU_NUMA_NODE_0',
                              'CUSTOM_GPU_SOCKET_0'}, self._traits(name))

    def test_host_summary_in_compute_node_stats(self):
        self._run_periodics()
        hypervisors = self.admin_api.api_get(
            '/os-hypervisors/detail').body['hypervisors']
        del hypervisors     # stats are not in the API; read the DB object
        from nova import context
        from nova import objects
        node = objects.ComputeNode.get_by_nodename(
            context.get_admin_context(), self.hosts['gpu'])
        summary = HostSummary.from_stats(node.stats)
        self.assertFalse(summary.is_partial, summary.partial)
        by_addr = {g.addr: g for g in summary.gpus}
        self.assertEqual(len(samplehost.GPUS), len(by_addr))
        for gpu in samplehost.GPUS:
            self.assertEqual(gpu.numa_node, by_addr[gpu.address].node)
        # After the second resource update, the vGPU parents' providers.
        for gpu in samplehost.GPUS:
            if gpu.mdev:
                rp = self._get_provider_uuid_by_name('%s_pci_%s' % (
                    self.hosts['gpu'],
                    gpu.address.replace(':', '_').replace('.', '_')))
                self.assertEqual(rp, by_addr[gpu.address].rp)
        self.assertEqual(['renderD128', 'renderD129'],
                         [r.name for r in summary.render_nodes])
