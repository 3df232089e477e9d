"""GPU-to-NUMA affinity and render nodes, end to end through Nova.

The sample host (two NUMA nodes, a vGPU-capable GPU and a host GPU with a
render node on each) runs our driver; servers are booted through the API,
the scheduler (GPUPlacementFilter) and the compute, and the assertions read
the domain XML the driver defined and the scheduler's log.
"""


from lxml import etree
from oslo_utils import uuidutils
import nova.conf
from nova.tests.functional.libvirt import base as base_libvirt

from nova_gpu_ext.sim import samplehost
from tests.functional import base

CONF = nova.conf.CONF


def numatune_nodes(xml):
    root = etree.fromstring(xml.encode())
    memory = root.find('./numatune/memory')
    if memory is None:
        return None, None
    return memory.get('nodeset'), memory.get('mode')


def vcpu_cpuset(xml):
    return etree.fromstring(xml.encode()).find('./vcpu').get('cpuset')


def guest_host_cpus(xml):
    """Host CPUs the vCPUs may run on: <vcpupin>s, else <vcpu cpuset>."""
    root = etree.fromstring(xml.encode())
    pins = root.findall('./cputune/vcpupin')
    if pins:
        return set().union(*(_expand(p.get('cpuset')) for p in pins))
    return set(_expand(vcpu_cpuset(xml)))


def rendernode(xml):
    gl = etree.fromstring(xml.encode()).find('./devices/graphics/gl')
    return None if gl is None else gl.get('rendernode')


class AffinityTestBase(base.GPUExtTestBase):

    sysfs_sample = None

    def setUp(self):
        super().setUp()
        samplehost.configure(self)
        self.hosts = samplehost.start_hosts(self, cpu_host=False)
        self.compute = self.computes[self.hosts['gpu']]
        # The second resource update publishes the GPU providers' UUIDs.
        self._run_periodics()

    def mdev_parent_node(self, server):
        (parent,) = self.mdev_parents(server).values()
        for gpu in samplehost.GPUS:
            if parent == gpu.address:
                return gpu.numa_node, gpu.address
        raise AssertionError('unknown parent %s' % parent)


class VGPUAffinityTest(AffinityTestBase):

    def _fill_gpu(self, address):
        """Use up a physical GPU's vGPUs in placement (another consumer)."""
        rp_name = '%s_pci_%s' % (self.hosts['gpu'], address.replace(
            ':', '_').replace('.', '_'))
        rp_uuid = self._get_provider_uuid_by_name(rp_name)
        inventory = self.placement.get(
            '/resource_providers/%s/inventories' % rp_uuid).body
        total = inventory['inventories']['VGPU']['total']
        response = self.placement.put(
            '/allocations/%s' % uuidutils.generate_uuid(), {
                'allocations': {rp_uuid: {'resources': {'VGPU': total}}},
                'project_id': uuidutils.generate_uuid(),
                'user_id': uuidutils.generate_uuid(),
                'consumer_generation': None}, version='1.28')
        self.assertEqual(204, response.status, response.body)

    def _boot_required(self):
        flavor = self._create_flavor(
            memory_mb=2048, vcpu=2, extra_spec={
                'resources:VGPU': '1',
                'gpu:numa_affinity_policy': 'required'})
        server = self._create_server(
            flavor_id=flavor, networks='none', expected_state='ACTIVE')
        node, address = self.mdev_parent_node(server)
        xml = self.domain_xml(server)
        self.assertEqual((str(node), 'strict'), numatune_nodes(xml))
        # A one-cell NUMA guest in Nova's books (issue 10): Nova pins the
        # vCPUs to the cell's host CPUs (<vcpupin>), not <vcpu cpuset>.
        self.assertEqual(set(range(node * 6, node * 6 + 6)),
                         guest_host_cpus(xml))
        return node, address

    def test_required_vgpu_guest_runs_on_its_gpu_node(self):
        node, address = self._boot_required()
        self.assertIn((node, address), [
            (g.numa_node, g.address) for g in samplehost.GPUS if g.mdev])

    def test_required_vgpu_follows_the_only_free_gpu_to_node_1(self):
        self._fill_gpu('0000:81:00.0')
        self.assertEqual((1, '0000:81:01.0'), self._boot_required())

    def test_required_vgpu_follows_the_only_free_gpu_to_node_0(self):
        self._fill_gpu('0000:81:01.0')
        self.assertEqual((0, '0000:81:00.0'), self._boot_required())

    def test_required_refused_at_the_scheduler_with_the_reason(self):
        # 20 GiB fits the host (32 GiB) but neither NUMA node (16 GiB each).
        flavor = self._create_flavor(
            memory_mb=20480, vcpu=2, extra_spec={
                'resources:VGPU': '1',
                'gpu:numa_affinity_policy': 'required'})
        server = self._create_server(
            flavor_id=flavor, networks='none', expected_state='ERROR')
        self.assertIn('No valid host', server['fault']['message'])
        log = self.stdlog.logger.output
        self.assertIn('GPUPlacementFilter: host gpu-host-1 refused', log)
        self.assertIn('GPU 0000:81:00.0 on node 0: 16384 MiB free < '
                      '20480 MiB', log)
        self.assertIn('GPU 0000:81:01.0 on node 1: 16384 MiB free < '
                      '20480 MiB', log)
        # The compute never saw it.
        self.assertNotIn(server['id'], self.defined_xml)

    def test_preferred_never_refuses_and_does_not_bind_what_does_not_fit(
            self):
        flavor = self._create_flavor(
            memory_mb=20480, vcpu=2, extra_spec={
                'resources:VGPU': '1',
                'gpu:numa_affinity_policy': 'preferred'})
        server = self._create_server(
            flavor_id=flavor, networks='none', expected_state='ACTIVE')
        self.assertEqual((None, None),
                         numatune_nodes(self.domain_xml(server)))

    def test_legacy_is_upstream_behaviour(self):
        flavor = self._create_flavor(
            memory_mb=2048, vcpu=2, extra_spec={
                'resources:VGPU': '1', 'gpu:numa_affinity_policy': 'legacy'})
        server = self._create_server(
            flavor_id=flavor, networks='none', expected_state='ACTIVE')
        self.assertEqual((None, None),
                         numatune_nodes(self.domain_xml(server)))


class RenderNodeTest(AffinityTestBase):

    def _virgl_flavor(self, **extra):
        specs = {'gpu:render_node': 'numa-local',
                 'gpu:display': 'egl-headless'}
        specs.update(extra)
        return self._create_flavor(memory_mb=2048, vcpu=2, extra_spec=specs)

    def test_render_node_is_on_the_guest_node(self):
        server = self._create_server(
            flavor_id=self._virgl_flavor(), networks='none',
            expected_state='ACTIVE')
        xml = self.domain_xml(server)
        node, _mode = numatune_nodes(xml)
        expected = {str(g.numa_node): '/dev/dri/' + g.render_node
                    for g in samplehost.GPUS if g.render_node}
        self.assertEqual(expected[node], rendernode(xml))
        root = etree.fromstring(xml.encode())
        self.assertIsNotNone(root.find(
            "./devices/graphics[@type='egl-headless']"))
        self.assertEqual('yes', root.find(
            "./devices/video/model[@type='virtio']/acceleration").get(
                'accel3d'))

    def test_concurrent_builds_never_exceed_the_render_node_limit(self):
        self.flags(render_node_max_guests=1, group='gpu_ext')
        flavor = self._virgl_flavor()
        # Posted back to back without waiting: the builds run at the same
        # time on the compute. (The API client is not thread-safe in
        # native threading mode, so the posts themselves are sequential.)
        servers = []
        for i in range(3):
            body = self._build_server(
                name='virgl-%d' % i, flavor_id=flavor, networks='none')
            servers.append(self.api.post_server({'server': body}))
        final = [self.wait_until_settled(s) for s in servers]
        active = [s for s in final if s['status'] == 'ACTIVE']
        self.assertEqual(2, len(active), [s['status'] for s in final])
        used = [rendernode(self.domain_xml(s)) for s in active]
        self.assertEqual(sorted(set(used)), sorted(used))
        counts = self.compute.driver._render_nodes.counts()
        self.assertTrue(all(v <= 1 for v in counts.values()), counts)

    def test_render_node_is_released_on_delete(self):
        self.flags(render_node_max_guests=1, group='gpu_ext')
        flavor = self._virgl_flavor()
        first = [self._create_server(flavor_id=flavor, networks='none',
                                     expected_state='ACTIVE')
                 for _ in range(2)]
        for server in first:
            self._delete_server(server)
        self.assertEqual({}, self.compute.driver._render_nodes.counts())
        again = self._create_server(flavor_id=flavor, networks='none',
                                    expected_state='ACTIVE')
        self.assertIsNotNone(rendernode(self.domain_xml(again)))


def _expand(spec):
    out = []
    for part in spec.split(','):
        if '-' in part:
            low, high = part.split('-')
            out.extend(range(int(low), int(high) + 1))
        else:
            out.append(int(part))
    return out


class RenderNodeLiveMigrationTest(base_libvirt.LibvirtMigrationMixin,
                                  AffinityTestBase):
    """The migrated XML carries the destination's render node."""

    def setUp(self):
        super().setUp()
        self.flags(render_node_max_guests=1, group='gpu_ext')
        self.dest_name = self.start_compute(
            'gpu-host-2', host_info=samplehost.host_info(),
            pci_info=samplehost.pci_info())
        self._run_periodics()

    def test_live_migration_uses_the_destination_render_node(self):
        flavor = self._create_flavor(memory_mb=2048, vcpu=2, extra_spec={
            'gpu:render_node': 'numa-local', 'gpu:display': 'egl-headless'})
        # On the destination, renderD128 (node 0) is taken already.
        blocker = self._create_server(flavor_id=flavor, networks='none',
                                      host='gpu-host-2',
                                      expected_state='ACTIVE')
        self.assertEqual('/dev/dri/renderD128',
                         rendernode(self.domain_xml(blocker)))
        self.server = self._create_server(
            flavor_id=flavor, networks='none', host='gpu-host-1',
            expected_state='ACTIVE')
        self.assertEqual('/dev/dri/renderD128',
                         rendernode(self.domain_xml(self.server)))
        self.src = self.computes['gpu-host-1']
        self.dest = self.computes['gpu-host-2']
        self._live_migrate(self.server, 'completed')
        migrated = self.created_xml[self.server['id']]
        self.assertEqual('/dev/dri/renderD129', rendernode(migrated))
        # A render-node guest is a one-cell NUMA guest (issue 10): its cell
        # moved to node 1 with the render node (libvirt's default mode).
        self.assertEqual('1', numatune_nodes(migrated)[0])
        self.assertEqual(set(range(6, 12)), guest_host_cpus(migrated))
        # The source released its render node, the destination holds two.
        self.assertEqual({}, self.src.driver._render_nodes.counts())
        self.assertEqual({'renderD128': 1, 'renderD129': 1},
                         self.dest.driver._render_nodes.counts())

    def test_cold_migration_rechooses_on_the_destination(self):
        flavor = self._create_flavor(memory_mb=2048, vcpu=2, extra_spec={
            'gpu:render_node': 'numa-local', 'gpu:display': 'egl-headless'})
        self._create_server(flavor_id=flavor, networks='none',
                            host='gpu-host-2', expected_state='ACTIVE')
        server = self._create_server(
            flavor_id=flavor, networks='none', host='gpu-host-1',
            expected_state='ACTIVE')
        # Cold migration redefines the guest on the destination.
        self.flags(allow_resize_to_same_host=False)
        server = self._migrate_server(server)
        self.assertEqual('gpu-host-2', server['OS-EXT-SRV-ATTR:host'])
        xml = self.domain_xml(server)
        self.assertEqual('/dev/dri/renderD129', rendernode(xml))
        self.assertEqual(('1', 'strict'), numatune_nodes(xml))   # its cell
        self._confirm_resize(server)
        self.assertEqual({}, self.computes['gpu-host-1'].driver
                         ._render_nodes.counts())


class DeviceLocalityTest(AffinityTestBase):
    """A two-cell guest sees its GPU on the right guest NUMA node."""

    def _boot(self, machine_type):
        if machine_type:
            self.flags(hw_machine_type=['x86_64=%s' % machine_type],
                       group='libvirt')
        flavor = self._create_flavor(memory_mb=2048, vcpu=2, extra_spec={
            'hw:numa_nodes': '2',
            'pci_passthrough:alias': '%s:1' % samplehost.GPU_ALIAS})
        server = self._create_server(flavor_id=flavor, networks='none',
                                     expected_state='ACTIVE')
        return etree.fromstring(self.domain_xml(server).encode())

    def _gpu_node(self, root):
        source = root.find("./devices/hostdev[@type='pci']/source/address")
        address = '%04x:%02x:%02x.%x' % tuple(
            int(source.get(k), 16)
            for k in ('domain', 'bus', 'slot', 'function'))
        return {g.address: g.numa_node for g in samplehost.GPUS}[address]

    def _guest_cell_of(self, root, host_node):
        for memnode in root.iterfind('./numatune/memnode'):
            if memnode.get('nodeset') == str(host_node):
                return int(memnode.get('cellid'))
        raise AssertionError('no guest cell on host node %s' % host_node)

    def test_q35_gpu_behind_pcie_expander_bus_of_its_cell(self):
        root = self._boot('q35')
        cell = self._guest_cell_of(root, self._gpu_node(root))
        expander = root.find(
            "./devices/controller[@model='pcie-expander-bus']")
        self.assertEqual(str(cell), expander.find('./target/node').text)
        port = root.find("./devices/controller[@model='pcie-root-port']"
                         "/address[@bus='0x%02x']/.." %
                         int(expander.get('index')))
        hostdev_bus = root.find(
            "./devices/hostdev[@type='pci']/address").get('bus')
        self.assertEqual(int(port.get('index')), int(hostdev_bus, 16))

    def test_i440fx_gpu_on_pci_expander_bus_of_its_cell(self):
        root = self._boot(None)
        cell = self._guest_cell_of(root, self._gpu_node(root))
        expander = root.find("./devices/controller[@model='pci-expander-bus']")
        self.assertEqual(str(cell), expander.find('./target/node').text)
        address = root.find("./devices/hostdev[@type='pci']/address")
        self.assertEqual(int(expander.get('index')),
                         int(address.get('bus'), 16))
        # Slot 0 of a PCI expander bus is not for devices.
        self.assertEqual(1, int(address.get('slot'), 16))


class RenderDisplayModesTest(AffinityTestBase):

    def _root(self, display):
        flavor = self._create_flavor(memory_mb=2048, vcpu=2, extra_spec={
            'gpu:render_node': 'numa-local', 'gpu:display': display})
        server = self._create_server(flavor_id=flavor, networks='none',
                                     expected_state='ACTIVE')
        return etree.fromstring(self.domain_xml(server).encode())

    def test_none_keeps_only_egl_headless(self):
        types = [g.get('type') for g in self._root('none').iterfind(
            './devices/graphics')]
        self.assertEqual(['egl-headless'], types)

    def test_egl_headless_next_to_the_console(self):
        types = sorted(g.get('type') for g in self._root(
            'egl-headless').iterfind('./devices/graphics'))
        self.assertEqual(['egl-headless', 'vnc'], types)
