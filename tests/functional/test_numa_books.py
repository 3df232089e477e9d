"""Issue 10: GPU guests in Nova's NUMA books, through Nova.

The host (``numa_host.ISSUE_10``): two NUMA nodes of 8 GiB and 4 CPUs
each, both vGPU-capable GPUs and the passthrough GPU on node 1; fake sysfs
and fakelibvirt are written from the same description. ``ram_allocation_
ratio = 1.0`` (a node's memory is what it has). After each scenario no
node may have more memory committed (strict bindings plus NUMA cells, read
from the defined domain XML, and in Nova's own per-cell usage) than it has.
"""

import nova.conf
from nova import context as nova_context
from nova import objects

from nova_gpu_ext.sim import numa_host
from nova_gpu_ext.sim import samplehost
from tests.functional import base

CONF = nova.conf.CONF
HOST = numa_host.ISSUE_10


class _NumaBooksBase(base.GPUExtTestBase):

    sysfs_sample = None
    # What a NUMA cloud runs (not in Nova's default enabled_filters).
    ADDITIONAL_FILTERS = list(base.OUR_FILTERS) + [
        'NUMATopologyFilter', 'PciPassthroughFilter']

    def setUp(self):
        super().setUp()
        samplehost.configure(self)
        self.flags(ram_allocation_ratio=1.0, cpu_allocation_ratio=4.0)
        self.hostname = HOST.start(self, 'numa-host-1')
        self.compute = self.computes[self.hostname]
        self._run_periodics()

    def _flavor(self, memory_mb, vcpu=1, **extra):
        return self._create_flavor(memory_mb=memory_mb, vcpu=vcpu, disk=1,
                                   ephemeral=0, extra_spec=extra)

    def _vgpu(self, memory_mb, policy=None, **extra):
        extra['resources:VGPU'] = '1'
        if policy:
            extra['gpu:numa_affinity_policy'] = policy
        return self._flavor(memory_mb, **extra)

    def _boot(self, flavor):
        body = self._build_server(flavor_id=flavor, networks='none')
        server = self.api.post_server({'server': body})
        return self.wait_until_settled(server)

    def active(self, servers):
        return [s for s in servers if s['status'] == 'ACTIVE']

    def assert_no_node_overcommitted(self, servers):
        xmls = [self.domain_xml(s) for s in self.active(servers)]
        committed = numa_host.committed_mb(xmls)
        for node, mib in committed.items():
            self.assertLessEqual(mib, HOST.memory_mb_per_node,
                                 'node %d committed %s' % (node, committed))
        # Nova's own ledger agrees (per-cell usage of the compute node).
        ctxt = nova_context.get_admin_context()
        cn = objects.ComputeNode.get_by_nodename(ctxt, self.hostname)
        topology = objects.NUMATopology.obj_from_db_obj(cn.numa_topology)
        usage = {c.id: c.memory_usage for c in topology.cells}
        for cell in topology.cells:
            self.assertLessEqual(cell.memory_usage, cell.memory, usage)
        return committed, usage

    def cell_nodes(self, server):
        return sorted(numa_host.guest_commitment(
            self.domain_xml(server))[0])


class NumaBooksTest(_NumaBooksBase):

    def test_required_vgpu_guests_never_overcommit_their_gpu_node(self):
        flavor = self._vgpu(3072, 'required')
        servers = [self._boot(flavor) for _ in range(3)]
        states = [s['status'] for s in servers]
        # 3 + 3 GiB fit node 1 (8 GiB); the third only fits node 0, which
        # ``required`` does not allow: refused, not bound past node 1.
        self.assertEqual(['ACTIVE', 'ACTIVE', 'ERROR'], states)
        committed, usage = self.assert_no_node_overcommitted(servers)
        self.assertEqual({1: 6144}, committed)
        self.assertEqual(6144, usage[1])

    def test_numa_guest_sees_the_memory_of_bound_gpu_guests(self):
        numa1 = self._flavor(2048, **{'hw:numa_nodes': '1'})
        gpu = self._vgpu(3072, 'required')
        numa2 = self._flavor(4096, **{'hw:numa_nodes': '1'})
        servers = [self._boot(numa1), self._boot(gpu), self._boot(gpu),
                   self._boot(numa2)]
        self.assertEqual(['ACTIVE'] * 4, [s['status'] for s in servers])
        self.assert_no_node_overcommitted(servers)
        self.assertEqual([0], self.cell_nodes(servers[3]))

    def _numa_vgpu(self, policy):
        flavor = self._vgpu(2048, policy, **{'hw:numa_nodes': '1'})
        server = self._boot(flavor)
        self.assertEqual('ACTIVE', server['status'],
                         server.get('fault'))
        self.assertEqual([1], self.cell_nodes(server))
        return server

    def test_numa_vgpu_guest_cell_on_gpu_node_preferred(self):
        self._numa_vgpu(None)       # the default policy: preferred

    def test_numa_vgpu_guest_cell_on_gpu_node_required(self):
        self._numa_vgpu('required')

    def test_numa_vgpu_guest_when_the_gpu_node_is_full(self):
        # Node 1 (both GPUs) holds 6 GiB of bound guests: a 4 GiB NUMA vGPU
        # guest is refused by the scheduler under required (no reschedule:
        # the compute never sees it) and gets node 0 under preferred.
        gpu = self._vgpu(3072, 'required')
        servers = [self._boot(gpu), self._boot(gpu)]
        required = self._boot(self._vgpu(4096, 'required',
                                         **{'hw:numa_nodes': '1'}))
        self.assertEqual('ERROR', required['status'])
        self.assertIn('No valid host', required['fault']['message'])
        self.assertNotIn(required['id'], self.defined_xml)
        self.assertIn('no NUMA cell of the guest fits on GPU node 1',
                      self.stdlog.logger.output)
        preferred = self._boot(self._vgpu(4096, 'preferred',
                                          **{'hw:numa_nodes': '1'}))
        self.assertEqual('ACTIVE', preferred['status'])
        self.assertEqual([0], self.cell_nodes(preferred))
        self.assert_no_node_overcommitted(servers + [preferred])


class UpgradedGuestTest(_NumaBooksBase):
    """A GPU guest an older release booted without a NUMA topology (it
    bound the guest with a strict ``<numatune>``; that code is gone, so the
    guest here runs unbound) is re-accounted by the claim of its next
    move: it gets its cell on the GPU's node."""

    def test_old_way_guest_gets_its_cell_on_cold_migration(self):
        driver = type(self.compute.driver)
        planner = driver.__dict__['gpu_numa_plan']
        self.stub_out('%s.%s.gpu_numa_plan' % (driver.__module__,
                                               driver.__name__),
                      lambda self, claim: None)
        server = self._boot(self._vgpu(3072, 'required'))
        self.assertEqual('ACTIVE', server['status'])
        ctxt = nova_context.get_admin_context()
        instance = objects.Instance.get_by_uuid(ctxt, server['id'])
        self.assertIsNone(instance.numa_topology)       # the old way
        # Without a cell from the claim the compute does not bind the guest
        # (the strict-binding path of old releases is gone).
        self.assertEqual(({}, None), numa_host.guest_commitment(
            self.domain_xml(server)))
        # After the upgrade (the claim hook active) and a cold migration:
        self.stub_out('%s.%s.gpu_numa_plan' % (driver.__module__,
                                               driver.__name__),
                      planner)
        HOST.start(self, 'numa-host-2')
        self._run_periodics()
        self.flags(allow_resize_to_same_host=False)
        server = self._migrate_server(server)
        self.assertEqual('numa-host-2', server['OS-EXT-SRV-ATTR:host'])
        self._confirm_resize(server)
        instance = objects.Instance.get_by_uuid(ctxt, server['id'])
        self.assertEqual([1], [c.id for c in instance.numa_topology.cells])
        self.assertEqual(({1: 3072}, 'cells'), numa_host.guest_commitment(
            self.domain_xml(server)))
