"""Drop-in rule: our driver defines upstream's XML unless it has a reason.

Two computes with identical fake hardware run in the same harness, one with
upstream ``LibvirtDriver`` and one with ``GPULibvirtDriver``; the same flavor
is booted on each and the defined domain XML is compared. Guests without a
GPU must be identical with nova-gpu-ext enabled; every guest must be
identical with ``[gpu_ext] enabled = false``.

Not GPU guests, so upstream's XML: a flavor asking for a NIC by PCI alias
(fakelibvirt's PCI devices are Intel I210 NICs, class 0x0200) and one asking
for a licence resource class (``resources:CUSTOM_LICENCE``, inventory from
a provider config file, as an operator would publish it).
"""

import os
import shutil
import tempfile

import difflib

from nova.tests.fixtures import libvirt as fakelibvirt
from oslo_serialization import jsonutils

from tests.functional import base
from nova_gpu_ext.sim import xmlnorm

PCI_ALIAS = 'i210-nic'

FLAVORS = {
    'plain': {},
    'numa': {'hw:numa_nodes': '2'},
    'hugepages': {'hw:mem_page_size': 'large'},
    'pinned': {'hw:cpu_policy': 'dedicated', 'hw:numa_nodes': '1'},
    'nic_alias': {'pci_passthrough:alias': '%s:1' % PCI_ALIAS},
    'licence': {'resources:CUSTOM_LICENCE': '1'},
    'nic_and_licence': {'pci_passthrough:alias': '%s:1' % PCI_ALIAS,
                        'resources:CUSTOM_LICENCE': '1'},
    'vgpu': {'resources:VGPU': '1'},
}
GPU_FLAVORS = {'vgpu'}

PROVIDER_CONFIG = """
meta:
  schema_version: '1.0'
providers:
  - identification:
      name: '$COMPUTE_NODE'
    inventories:
      additional:
        - CUSTOM_LICENCE:
            total: 4
"""


class XMLParityTest(base.GPUExtTestBase):

    ADDITIONAL_FILTERS = base.GPUExtTestBase.ADDITIONAL_FILTERS + [
        'NUMATopologyFilter', 'PciPassthroughFilter']

    sysfs_sample = None

    def _write_sysfs(self):
        """The host fakelibvirt describes below, as our discovery reads it:
        the two I210 NICs (0000:81:00.0, 81:01.0) are not display class;
        the two mdev-capable NVIDIA GPUs (81:02.0 on node 0, 81:03.0 on
        node 1) are GPUs."""
        from nova_gpu_ext.sim import gpu_layouts
        from nova_gpu_ext.sim import samplehost
        self.sysfs_root = self.build_sysfs(None)
        gpu_layouts.Layout(
            'parity', 'two mdev-capable GPUs, one per node, one socket',
            gpus=tuple(gpu_layouts.GPU(
                '0000:81:%02x.0' % (2 + n), gpu_layouts.NVIDIA, 0x0ffe,
                'GK107GL', n, 'nvidia', 40 + n,
                mdev_types=(samplehost.NVIDIA_11,)) for n in (0, 1)),
            nodes=2, nodes_per_socket=2, cpus_per_node=4,
            memory_mb_per_node=8192).host().write_sysfs(self.sysfs_root)
        self.flags(sysfs_root=self.sysfs_root, group='gpu_ext')

    def setUp(self):
        super().setUp()
        self._write_sysfs()
        self.flags(
            device_spec=[jsonutils.dumps({
                'vendor_id': fakelibvirt.PCI_VEND_ID,
                'product_id': fakelibvirt.PCI_PROD_ID})],
            alias=[jsonutils.dumps({
                'vendor_id': fakelibvirt.PCI_VEND_ID,
                'product_id': fakelibvirt.PCI_PROD_ID,
                'name': PCI_ALIAS})],
            group='pci')
        self.flags(enabled_mdev_types=fakelibvirt.NVIDIA_11_VGPU_TYPE,
                   group='devices')
        self.flags(cpu_dedicated_set='2-3,6-7', cpu_shared_set='0-1,4-5',
                   group='compute')
        config_dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, config_dir)
        with open(os.path.join(config_dir, 'licence.yaml'), 'w') as f:
            f.write(PROVIDER_CONFIG)
        self.flags(provider_config_location=config_dir, group='compute')
        for name, driver in (('upstream', base.UPSTREAM_DRIVER),
                             ('ours', base.OUR_DRIVER)):
            self.start_compute(
                name, driver=driver,
                host_info=fakelibvirt.HostInfo(
                    cpu_nodes=2, cpu_sockets=1, cpu_cores=2, cpu_threads=2,
                    kB_mem=16 * 1024 * 1024, mempages={
                        0: fakelibvirt.create_mempages(
                            [(4, 1024 * 1024), (2048, 1024)]),
                        1: fakelibvirt.create_mempages(
                            [(4, 1024 * 1024), (2048, 1024)])}),
                pci_info=fakelibvirt.HostPCIDevicesInfo(
                    num_pci=2, num_pfs=0, num_vfs=0, num_mdevcap=2),
                libvirt_version=self.FAKE_LIBVIRT_VERSION,
                qemu_version=self.FAKE_QEMU_VERSION)

    def _xml_on(self, host, flavor_id):
        server = self._create_server(
            flavor_id=flavor_id, host=host, networks='none',
            expected_state='ACTIVE')
        xml = xmlnorm.normalize(self.domain_xml(server), [server['id']])
        return xml, server

    def _assert_parity(self, name):
        flavor_id = self._create_flavor(
            name=name, memory_mb=1024, vcpu=2, extra_spec=FLAVORS[name])
        upstream, first = self._xml_on('upstream', flavor_id)
        ours, second = self._xml_on('ours', flavor_id)
        # Both hosts start empty for the next flavor (and quota holds).
        for server in (first, second):
            self._delete_server(server)
        diff = '\n'.join(difflib.unified_diff(
            upstream.splitlines(), ours.splitlines(), 'upstream', 'ours',
            lineterm=''))
        self.assertEqual(upstream, ours, 'XML differs for %s:\n%s' % (
            name, diff))

    def _parity_with(self, enabled):
        self.flags(enabled=enabled, group='gpu_ext')
        names = FLAVORS if not enabled else set(FLAVORS) - GPU_FLAVORS
        for name in sorted(names):
            with self.subTest(flavor=name):
                self._assert_parity(name)

    def test_parity_for_guests_without_gpu(self):
        self._parity_with(enabled=True)

    def test_parity_for_every_guest_when_switched_off(self):
        self._parity_with(enabled=False)
