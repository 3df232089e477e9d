"""Servers boot end to end through our driver, filter and weigher."""

from nova.tests.fixtures import libvirt as fakelibvirt

from nova_gpu_ext.topology import host_facts
from nova_gpu_ext.virt import driver as gpu_driver
from tests.functional import base


class BootTest(base.GPUExtTestBase):

    def test_boot_plain_server_through_our_driver_and_filter(self):
        self.start_compute('host1')
        compute = self.computes['host1']
        self.assertIsInstance(compute.driver, gpu_driver.GPULibvirtDriver)
        self.assertIn('GPUExtHostFilter',
                      self.flags_value('enabled_filters'))
        flavor = self._create_flavor(extra_spec={'gpu:enabled': 'true'})
        server = self._create_server(flavor_id=flavor, networks='none')
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        self.assertIn('<domain', self.domain_xml(server))

    def test_driver_trait_on_compute_provider(self):
        self.start_compute('host1')
        traits = self._get_provider_traits(self.compute_rp_uuids['host1'])
        self.assertIn(gpu_driver.DRIVER_TRAIT, traits)

    def test_gpu_flavor_refused_on_upstream_compute(self):
        self.start_compute('upstream', driver=base.UPSTREAM_DRIVER)
        flavor = self._create_flavor(
            extra_spec={'gpu:numa_affinity_policy': 'preferred'})
        with self.assertLogs('nova_gpu_ext.scheduler.filters',
                             level='INFO') as logs:
            server = self._create_server(
                flavor_id=flavor, networks='none', expected_state='ERROR')
        self.assertIn('No valid host', server['fault']['message'])
        self.assertIn('does not run nova-gpu-ext', '\n'.join(logs.output))
        # Once a nova-gpu-ext compute joins, the same flavor lands there.
        self.start_compute('ours')
        server = self._create_server(flavor_id=flavor, networks='none')
        self.assertEqual('ours', server['OS-EXT-SRV-ATTR:host'])

    def test_flavor_without_gpu_keys_may_use_upstream_computes(self):
        self.start_compute('upstream', driver=base.UPSTREAM_DRIVER)
        flavor = self._create_flavor(extra_spec={'gpu:enabled': 'false'})
        server = self._create_server(flavor_id=flavor, networks='none')
        self.assertEqual('upstream', server['OS-EXT-SRV-ATTR:host'])

    def flags_value(self, name):
        return getattr(self.flags_conf().filter_scheduler, name)

    def flags_conf(self):
        return base.CONF


class HostAvoidanceWeigherTest(base.GPUExtTestBase):
    """CPU-only guests go to CPU-only hosts; GPU guests are not steered."""

    def test_cpu_guest_avoids_gpu_host(self):
        # Dominant over RAM/CPU spreading, as an operator sets it to keep
        # GPU hosts free.
        self.flags(gpu_host_avoidance_weight_multiplier=10.0,
                   group='gpu_ext')
        self.start_compute('gpuhost', pci_info=fakelibvirt.HostPCIDevicesInfo(
            num_pci=0, num_pfs=0, num_vfs=0, num_mdevcap=2))
        self.sysfs_root = self.build_sysfs(None)
        self.flags(sysfs_root=self.sysfs_root, group='gpu_ext')
        self.start_compute('cpuhost')
        summaries = {
            name: host_facts.summary_from_stats(
                compute.driver.get_available_resource(name)['stats'])
            for name, compute in self.computes.items()}
        self.assertTrue(summaries['gpuhost'].gpus)
        self.assertFalse(summaries['cpuhost'].gpus)
        flavor = self._create_flavor()
        for _ in range(2):
            server = self._create_server(flavor_id=flavor, networks='none')
            self.assertEqual('cpuhost', server['OS-EXT-SRV-ATTR:host'])
