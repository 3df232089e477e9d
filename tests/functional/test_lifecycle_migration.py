"""Moves of GPU guests land bound to the destination's choice.

Two sample hosts (``gpu-host-1``, ``gpu-host-2``; per NUMA node one vGPU
GPU, one passthrough T4 and one render-node GPU). A guest bound to node 0
on the source whose destination device is on node 1 must arrive with
``<numatune nodeset='1'>`` and node 1's CPUs: for an mdev guest, for a PCI
GPU guest, by live migration (the XML the source sends, spied on at
``createXML``), cold migration, resize, evacuate and unshelve (the XML the
destination defines).
"""

from lxml import etree
from oslo_serialization import jsonutils
from oslo_utils import uuidutils

from nova import context as nova_context
from nova import objects
from nova.tests.functional.libvirt import base as base_libvirt

import nova.conf
from nova_gpu_ext.conf import sharing as sharing_conf
from nova_gpu_ext.sim import samplehost
from nova_gpu_ext.virt import live_migration
from tests.functional import base

CONF = nova.conf.CONF
GPU0, GPU1 = '0000:81:00.0', '0000:81:01.0'
T4_NODE0, T4_NODE1 = '0000:3b:00.0', '0000:d8:00.0'
NODE0_CPUS, NODE1_CPUS = set(range(0, 6)), set(range(6, 12))


def numatune(xml):
    memory = etree.fromstring(xml.encode()).find('./numatune/memory')
    return None if memory is None else memory.get('nodeset')


def cpuset(xml):
    """The host CPUs the guest's vCPUs may run on: ``<vcpu cpuset>``, or
    (a one-cell NUMA guest in Nova's books, issue 10) its ``<vcpupin>``s."""
    root = etree.fromstring(xml.encode())
    texts = [root.find('./vcpu').get('cpuset')]
    if not texts[0]:
        texts = [pin.get('cpuset')
                 for pin in root.findall('./cputune/vcpupin')]
    out = set()
    for part in ','.join(t for t in texts if t).split(','):
        if '-' in part:
            low, high = part.split('-')
            out.update(range(int(low), int(high) + 1))
        elif part:
            out.add(int(part))
    return out


def hostdev_addresses(xml):
    """PCI addresses of the guest's passthrough devices."""
    root = etree.fromstring(xml.encode())
    return ['%04x:%02x:%02x.%x' % tuple(int(a.get(k), 16) for k in (
        'domain', 'bus', 'slot', 'function'))
        for a in root.findall("./devices/hostdev[@type='pci']/source/"
                              "address")]


class MoveTestBase(base_libvirt.LibvirtMigrationMixin, base.GPUExtTestBase):

    sysfs_sample = None
    # Nova's minimum versions for mdev and VFIO-variant PCI live migration
    FAKE_LIBVIRT_VERSION = 10000000
    FAKE_QEMU_VERSION = 8002002

    def setUp(self):
        super().setUp()
        samplehost.configure(self)
        spec = {'vendor_id': samplehost.GPU_VENDOR,
                'product_id': samplehost.PASSTHROUGH_PRODUCT,
                'live_migratable': 'yes'}
        self.flags(device_spec=[jsonutils.dumps(spec)], alias=[
            jsonutils.dumps(dict(spec, name=samplehost.GPU_ALIAS))],
            group='pci')
        # The source has only its node-1 T4, the destination only its
        # node-0 T4 (fakelibvirt and the fake sysfs alike).
        for host, t4 in (('gpu-host-1', T4_NODE1), ('gpu-host-2', T4_NODE0)):
            gpus = [g for g in samplehost.GPUS
                    if g.mdev or g.render_node or g.address == t4]
            root = self.build_sysfs(None)
            samplehost.write_sysfs(root, gpus)
            self.flags(sysfs_root=root, group='gpu_ext')
            self.start_compute(host, host_info=samplehost.host_info(),
                               pci_info=samplehost.pci_info(gpus))
        self._run_periodics()
        self._run_periodics()
        self.src = self.computes['gpu-host-1']
        self.dest = self.computes['gpu-host-2']

    def fill_gpu(self, host, address):
        """Use up one physical GPU's vGPUs in placement."""
        rp_uuid = self._get_provider_uuid_by_name('%s_pci_%s' % (
            host, address.replace(':', '_').replace('.', '_')))
        total = self.placement.get(
            '/resource_providers/%s/inventories' % rp_uuid).body[
                'inventories']['VGPU']['total']
        response = self.placement.put(
            '/allocations/%s' % uuidutils.generate_uuid(), {
                'allocations': {rp_uuid: {'resources': {'VGPU': total}}},
                'project_id': uuidutils.generate_uuid(),
                'user_id': uuidutils.generate_uuid(),
                'consumer_generation': None}, version='1.28')
        self.assertEqual(204, response.status, response.body)

    def vgpu_server(self):
        """An mdev guest on the source's node-0 GPU; the destination can
        only give it a vGPU of its node-1 GPU."""
        self.fill_gpu('gpu-host-1', GPU1)
        self.fill_gpu('gpu-host-2', GPU0)
        flavor = self._create_flavor(memory_mb=1024, vcpu=2, disk=1,
                                     ephemeral=0,
                                     extra_spec={'resources:VGPU': '1'})
        self.server = self._create_server(
            flavor_id=flavor, networks='none', host='gpu-host-1',
            expected_state='ACTIVE')
        self.assertEqual([GPU0], list(self.mdev_parents(self.server).values()))
        self.assertEqual('0', numatune(self.domain_xml(self.server)))
        return self.server

    def pci_server(self):
        """A T4 guest bound to node 1 on the source; the destination's
        only T4 is on node 0."""
        flavor = self._create_flavor(memory_mb=1024, vcpu=2, disk=1,
                                     ephemeral=0, extra_spec={
                                         'pci_passthrough:alias': '%s:1' %
                                         samplehost.GPU_ALIAS})
        self.server = self._create_server(
            flavor_id=flavor, networks='none', host='gpu-host-1',
            expected_state='ACTIVE')
        xml = self.domain_xml(self.server)
        self.assertEqual('1', numatune(xml))
        self.assertEqual(NODE1_CPUS, cpuset(xml))
        self.assertEqual([T4_NODE1], hostdev_addresses(xml))
        return self.server


class LiveMigrationTest(MoveTestBase):

    def test_mdev_guest_lands_bound_to_the_destination_gpu_node(self):
        server = self.vgpu_server()
        self._live_migrate(server, 'completed')
        sent = self.created_xml[server['id']]
        self.assertEqual('1', numatune(sent))
        self.assertEqual(NODE1_CPUS, cpuset(sent))
        self.assertEqual([GPU1], list(self.mdev_parents(
            self.api.get_server(server['id'])).values()))
        # Nothing of ours left in the instance.
        instance = objects.Instance.get_by_uuid(
            nova_context.get_admin_context(), server['id'],
            expected_attrs=['system_metadata'])
        self.assertNotIn(live_migration.SYSMETA_KEY,
                         instance.system_metadata)

    def test_pci_guest_on_node_1_lands_bound_to_the_destination_gpu_node(
            self):
        server = self.pci_server()
        self._live_migrate(server, 'completed')
        sent = self.created_xml[server['id']]
        self.assertEqual('0', numatune(sent))
        self.assertEqual(NODE0_CPUS, cpuset(sent))
        # Bound to the node of the GPU it got there: the destination's T4.
        self.assertEqual([T4_NODE0], hostdev_addresses(sent))


class ColdMoveTest(MoveTestBase):
    """The destination defines the guest: its own choice, as a new claim."""

    def setUp(self):
        super().setUp()
        self.flags(allow_resize_to_same_host=False)

    def assert_on_destination_node_1(self, server):
        self.assertEqual('gpu-host-2', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual([GPU1], list(self.mdev_parents(server).values()))
        xml = self.domain_xml(server)
        self.assertEqual('1', numatune(xml))
        self.assertEqual(NODE1_CPUS, cpuset(xml))

    def test_revert_resize_keeps_the_guest_on_the_source(self):
        # Admitted under the 2 s limit (500 ms slices, alone on its GPU)...
        sharing_conf.register_dynamic_opts(CONF, ['nvidia-11'])
        self.flags(slice_ms=500, switch_ms=0, group='gpu_sharing_nvidia-11')
        self.flags(timeout_margin=0.75, guest_timeout_ms=2000,
                   group='gpu_ext')
        server = self._migrate_server(self.vgpu_server())
        self.assert_on_destination_node_1(server)
        # ... the limit is lowered before the revert: the guest restarts on
        # the source with what it had there, and the log says which
        # operation kept it.
        self.flags(guest_timeout_ms=200, group='gpu_ext')
        server = self._revert_resize(server)
        self.assertEqual('gpu-host-1', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual([GPU0], list(self.mdev_parents(server).values()))
        self.assertEqual('0', numatune(self.domain_xml(server)))
        self.assertIn('revert resize: the guest keeps what it has although '
                      'GPU 0000:81:00.0', self.stdlog.logger.output)

    def test_cold_migration_and_resize(self):
        server = self._migrate_server(self.vgpu_server())
        self.assert_on_destination_node_1(server)
        self._confirm_resize(server)
        server = self.api.get_server(server['id'])
        # Resize back to the source: there, only GPU0 (node 0) is free.
        flavor = self._create_flavor(memory_mb=2048, vcpu=2, disk=1,
                                     ephemeral=0,
                                     extra_spec={'resources:VGPU': '1'})
        server = self._resize_server(server, flavor)
        self.assertEqual('gpu-host-1', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('0', numatune(self.domain_xml(server)))
        self.assertEqual(NODE0_CPUS, cpuset(self.domain_xml(server)))
        # Revert: the guest restarts on gpu-host-2 with what it had.
        server = self._revert_resize(server)
        self.assert_on_destination_node_1(server)

    def source_down(self):
        self.src.stop()
        (service,) = self.admin_api.get_services(
            host='gpu-host-1', binary='nova-compute')
        self.admin_api.put_service_force_down(service['id'], True)

    def test_evacuate(self):
        server = self.pci_server()
        self.source_down()
        server = self._evacuate_server(server, expected_host='gpu-host-2')
        xml = self.domain_xml(server)
        self.assertEqual('0', numatune(xml))
        self.assertEqual(NODE0_CPUS, cpuset(xml))
        self.assertEqual([T4_NODE0], hostdev_addresses(xml))

    def test_evacuate_vgpu_guest(self):
        # While the source is down the instance holds the source's VGPU
        # allocation and the destination's: the destination allocates
        # mdevs from its own providers only (upstream's _allocate_mdevs
        # fails on the source's: 'Resource Provider ... is missing').
        server = self.vgpu_server()
        self.source_down()
        server = self._evacuate_server(server, expected_host='gpu-host-2')
        self.assert_on_destination_node_1(server)

    def test_shelve_unshelve(self):
        server = self.vgpu_server()
        server = self._shelve_server(server)
        self.api.post_server_action(
            server['id'], {'unshelve': {'host': 'gpu-host-2'}})
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assert_on_destination_node_1(server)
