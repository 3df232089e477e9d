"""Issue 10: seeded random arrivals and departures, checked after each step.

Plain, NUMA (``hw:numa_nodes=1``), pinned, vGPU (each policy), NUMA+vGPU
and PCI GPU guests arrive and leave on a 2-node and a 4-node host (fake
sysfs and fakelibvirt from one ``NumaHost``; the vGPU GPUs sit on some
nodes only). After every step:

* no node is committed beyond its capacity with Nova's ratios, in Nova's
  own per-cell usage and in the domain XML (strict bindings + cells);
* an ACTIVE ``required``/``socket`` GPU guest's cell is on an allowed node;
* a guest in ERROR had no room anywhere its policy allows (an oracle that
  reads Nova's per-cell usage and placement-level totals before the boot),
  and no build was rescheduled: refusals where a fitting node existed and
  reschedules are counted and must be 0.

Kept small for CI (a dozen boots per host).
"""

import random

from lxml import etree
import nova.conf
from nova import context as nova_context
from nova import objects

from nova_gpu_ext.sim import numa_host
from nova_gpu_ext.sim import samplehost
from tests.functional import base

CONF = nova.conf.CONF
SampleGPU = samplehost.SampleGPU
RAM_RATIO = 1.0
CPU_RATIO = 4.0

KINDS = ('plain', 'numa', 'pinned', 'vgpu', 'numa_vgpu', 'pci')
POLICIES = ('required', 'socket', 'preferred')


class _Stress:
    """The scenario; mixed into a test case per host."""

    sysfs_sample = None
    HOST = None
    # What a NUMA cloud runs (not in Nova's default enabled_filters).
    ADDITIONAL_FILTERS = list(base.OUR_FILTERS) + [
        'NUMATopologyFilter', 'PciPassthroughFilter']
    SEED = 0
    STEPS = 14
    DEDICATED = ''
    SHARED = ''
    MEMORY = (2048, 3072, 4096)

    def setUp(self):
        super().setUp()
        samplehost.configure(self)
        self.flags(ram_allocation_ratio=RAM_RATIO,
                   cpu_allocation_ratio=CPU_RATIO,
                   reserved_host_memory_mb=0)
        self.flags(cpu_dedicated_set=self.DEDICATED,
                   cpu_shared_set=self.SHARED, group='compute')
        self.hostname = self.HOST.start(self, 'stress-host')
        self._run_periodics()
        self.flavors = {}
        self.active = {}            # server id -> (kind, policy, mem, vcpus)
        self.refused_with_room = []
        self.violations = []

    # -- what the host has ---------------------------------------------------

    def cells(self):
        cn = objects.ComputeNode.get_by_nodename(
            nova_context.get_admin_context(), self.hostname)
        return objects.NUMATopology.obj_from_db_obj(cn.numa_topology).cells

    def gpu_nodes(self, mdev):
        return sorted({g.numa_node for g in self.HOST.gpus
                       if g.mdev == mdev and not g.render_node})

    def allowed(self, kind, policy):
        nodes = list(range(self.HOST.nodes))
        if kind in ('plain', 'numa', 'pinned'):
            return nodes
        if kind == 'pci':
            used = set()
            for sid, row in self.active.items():
                if row[0] == 'pci':
                    used |= set(self.pci_nodes(sid))
            free = [g.numa_node for g in self.HOST.gpus if not g.mdev and
                    g.numa_node not in used]
            return sorted(set(free))
        gpus = self.gpu_nodes(True)
        if policy == 'required':
            return gpus
        if policy == 'socket':
            sockets = {self.HOST.socket_of(n) for n in gpus}
            return [n for n in nodes if self.HOST.socket_of(n) in sockets]
        return nodes

    def pci_nodes(self, sid):
        root = etree.fromstring(self.domain_xml({'id': sid}).encode())
        out = []
        for src in root.iterfind("./devices/hostdev[@type='pci']/source/"
                                 "address"):
            keys = ('domain', 'bus', 'slot', 'function')
            address = '%04x:%02x:%02x.%x' % tuple(
                int(src.get(k), 16) for k in keys)
            out += [g.numa_node for g in self.HOST.gpus
                    if g.address == address]
        return out

    def room(self, kind, policy, mem, vcpus):
        """Did a node the policy allows have room (and the host too)?"""
        used_mem = sum(r[2] for r in self.active.values())
        total = self.HOST.nodes * self.HOST.memory_mb_per_node
        if used_mem + mem > total * RAM_RATIO:
            return False
        if kind == 'pinned':
            pinned = sum(r[3] for r in self.active.values()
                         if r[0] == 'pinned')
            if pinned + vcpus > sum(len(c.pcpuset) for c in self.cells()):
                return False
        allowed = self.allowed(kind, policy)
        if kind == 'plain':
            return True
        for cell in self.cells():
            if cell.id not in allowed:
                continue
            if cell.memory * RAM_RATIO - cell.memory_usage < mem:
                continue
            if kind == 'pinned':
                if len(cell.pcpuset) - len(cell.pinned_cpus) >= vcpus and \
                        cell.memory - cell.memory_usage >= mem:
                    return True
                continue
            if len(cell.cpuset) * CPU_RATIO - cell.cpu_usage >= vcpus:
                return True
        return kind in ('vgpu', 'numa_vgpu') and policy == 'preferred'

    # -- the checks after each step -----------------------------------------

    def check(self, step):
        import os
        if os.environ.get('NUMA_STRESS_DEBUG'):
            print(step, [(c.id, c.memory_usage, c.cpu_usage,
                          sorted(c.pinned_cpus)) for c in self.cells()],
                  {sid[:6]: (r, numa_host.guest_commitment(
                      self.domain_xml({'id': sid}))[0])
                   for sid, r in self.active.items()})
        for cell in self.cells():
            self.assertLessEqual(cell.memory_usage, cell.memory * RAM_RATIO,
                                 'step %d node %d memory' % (step, cell.id))
            self.assertLessEqual(cell.cpu_usage,
                                 len(cell.cpuset) * CPU_RATIO,
                                 'step %d node %d cpus' % (step, cell.id))
            self.assertLessEqual(len(cell.pinned_cpus), len(cell.pcpuset))
        xmls = [self.domain_xml({'id': sid}) for sid in self.active]
        for node, mib in numa_host.committed_mb(xmls).items():
            self.assertLessEqual(
                mib, self.HOST.memory_mb_per_node * RAM_RATIO,
                'step %d: node %d committed %d MiB in the XML' % (
                    step, node, mib))

    def flavor(self, kind, policy, mem, vcpus):
        key = (kind, policy, mem, vcpus)
        if key not in self.flavors:
            extra = {}
            if kind in ('numa', 'numa_vgpu'):
                extra['hw:numa_nodes'] = '1'
            if kind == 'pinned':
                extra['hw:cpu_policy'] = 'dedicated'
            if kind in ('vgpu', 'numa_vgpu'):
                extra['resources:VGPU'] = '1'
                extra['gpu:numa_affinity_policy'] = policy
            if kind == 'pci':
                extra['pci_passthrough:alias'] = '%s:1' % \
                    samplehost.GPU_ALIAS
            self.flavors[key] = self._create_flavor(
                memory_mb=mem, vcpu=vcpus, disk=1, ephemeral=0,
                extra_spec=extra)
        return self.flavors[key]

    def test_random_arrivals_and_departures(self):
        rng = random.Random(self.SEED)
        reschedules_before = self.stdlog.logger.output.count(
            'was re-scheduled')
        boots = refusals = 0
        for step in range(self.STEPS):
            if self.active and rng.random() < 0.25:
                sid = rng.choice(sorted(self.active))
                self._delete_server({'id': sid})
                del self.active[sid]
                self.check(step)
                continue
            kind = rng.choice(KINDS)
            policy = rng.choice(POLICIES) if 'vgpu' in kind else None
            mem = rng.choice(self.MEMORY)
            vcpus = 1 if kind == 'pinned' else rng.choice((1, 2))
            had_room = self.room(kind, policy, mem, vcpus)
            body = self._build_server(
                flavor_id=self.flavor(kind, policy, mem, vcpus),
                networks='none')
            server = self.wait_until_settled(
                self.api.post_server({'server': body}))
            boots += 1
            if server['status'] == 'ACTIVE':
                self.active[server['id']] = (kind, policy, mem, vcpus)
                if policy in ('required', 'socket'):
                    nodes = numa_host.guest_commitment(
                        self.domain_xml(server))[0]
                    bad = set(nodes) - set(self.allowed(kind, policy))
                    if bad or not nodes:
                        self.violations.append((step, kind, policy, nodes))
            else:
                refusals += 1
                if had_room:
                    self.refused_with_room.append((step, kind, policy, mem,
                                                   vcpus))
                self._delete_server(server)
            self.check(step)
        reschedules = self.stdlog.logger.output.count(
            'was re-scheduled') - reschedules_before
        print('numa stress %s seed %d: %d boots, %d refused, %d refused '
              'with room, %d reschedules, %d policy violations' % (
                  type(self).__name__, self.SEED, boots, refusals,
                  len(self.refused_with_room), reschedules,
                  len(self.violations)))
        self.assertEqual([], self.refused_with_room)
        self.assertEqual([], self.violations)
        self.assertEqual(0, reschedules)


class TwoNodeStressTest(_Stress, base.GPUExtTestBase):
    HOST = numa_host.NumaHost(gpus=(
        SampleGPU(bus=0x81, slot=0, numa_node=1, mdev=True),
        SampleGPU(bus=0x82, slot=0, numa_node=1, mdev=True),
        SampleGPU(bus=0x3b, slot=0, numa_node=0, mdev=False),
        SampleGPU(bus=0xd8, slot=0, numa_node=1, mdev=False),
    ))
    SEED = 10
    DEDICATED = '3,7'
    SHARED = '0-2,4-6'


class FourNodeStressTest(_Stress, base.GPUExtTestBase):
    HOST = numa_host.NumaHost(
        sockets=2, nodes_per_socket=2, cores=3, threads=1,
        memory_mb_per_node=4096, gpus=(
            SampleGPU(bus=0x81, slot=0, numa_node=1, mdev=True),
            SampleGPU(bus=0xc1, slot=0, numa_node=2, mdev=True),
            SampleGPU(bus=0x3b, slot=0, numa_node=0, mdev=False),
            SampleGPU(bus=0xd8, slot=0, numa_node=3, mdev=False),
        ))
    SEED = 11
    MEMORY = (1024, 2048, 3072)
    DEDICATED = '2,5,8,11'
    SHARED = '0-1,3-4,6-7,9-10'
