"""GPU-to-NUMA placement quality on a simulated fleet: upstream vs ours.

Replays one seeded arrival/departure workload of GPU guests (whole GPU,
vGPU, virgl desktop; with and without ``hw:numa_nodes=1``; three sizes) on
a simulated fleet, once per scheduler, and prints per scheduler the
placements that are not NUMA-local, the requests refused while the fleet
had capacity, and the filter time per host, with ratios against the
upstream baseline measured in the same run (issue 4).

    python benchmarks/bench_placement.py [--hosts 120] [--arrivals 2400]
        [--lifetime 700,1100] [--seed 4] [--sample-every 25]
        [--weigher-multiplier 1.0]

Importing Nova is allowed here only: the upstream filter time is that of
Nova's real ``NUMATopologyFilter.host_passes``.

The fleet (``--hosts`` hosts, kinds in turn; 2 NUMA nodes, one socket each,
16 CPUs and 64 GiB per node, CPU and RAM allocation ratios 1.0):

* ``pci``: 2 whole GPUs per node (PCI passthrough, one guest each);
* ``mdev``: 1 vGPU-capable GPU per node, 8 mdev instances each;
* ``render``: 1 DRM render node per node (virgl; no guest limit, the
  ``[gpu_ext] render_node_max_guests`` default).

The workload: Poisson arrivals (rate 1), exponential lifetimes (mean
``--lifetime``, about that many guests present in steady state). Mix: 30 %
whole GPU, 40 % vGPU, 30 % virgl; half of each with ``hw:numa_nodes=1``;
sizes 2 vCPU/4 GiB (50 %), 4/8 GiB (35 %), 8/16 GiB (15 %). A kind goes
only to hosts of its kind (a virgl flavor to render hosts through an
aggregate: upstream has no render-node resource).

The schedulers. Both order the hosts that pass by Nova's RAM weigher (most
free RAM first; ties: host index); ours adds its weigher
(``affinity.host_score``), each weigher normalised to 0..1 over the passing
hosts and summed with multiplier 1.0, as Nova combines weighers.

* ``upstream``, Nova 34 with default options:

  - host capacity: placement's VCPU and MEMORY_MB inventories (host totals);
    the device: placement's first allocation candidate (the first GPU in
    provider order with a free instance; for whole GPUs under NUMA, see
    below);
  - a guest WITHOUT ``hw:numa_nodes`` has no NUMA topology: Nova never binds
    it (no ``<numatune>``, ``<vcpu>`` floats over the host), whatever its
    device, so every such placement counts as *floating* (not NUMA-local);
    its CPUs and memory count against the host totals only, not against a
    NUMA cell (Nova's NUMA cell usage counts only guests with a topology);
  - a guest WITH ``hw:numa_nodes=1``: ``NUMATopologyFilter`` binds it to a
    host cell where it fits (ratio 1.0 limits), the cell with the most
    free resources (``packing_host_numa_cells_allocation_strategy =
    False``). PCI passthrough follows Nova's ``legacy`` PCI NUMA policy:
    the GPU must be on that cell (GPUs report their node here), so it is
    local. A vGPU (mdev) is allocated by placement without any regard to the
    cell (``_allocate_mdevs`` has no NUMA logic): local only when the first
    candidate happens to sit on the chosen cell, otherwise *cross-NUMA*.
    virgl: Nova knows no render node; QEMU's egl-headless without
    ``rendernode`` opens the first one (``renderD128``, node 0): local only
    when the cell is node 0.
* ``ours-required`` / ``ours-preferred``: every guest is bound (both with
  and without ``hw:numa_nodes``) by the pure core the filter, weigher and
  driver share: ``affinity.rank`` over the host's GPUs (for vGPU, the GPUs
  that ``packing.admit_on`` admits, pack/spread by
  ``packing.choose_physical_gpu`` among the best tier, spread by
  default), ``affinity.choose_render_node`` for virgl; all CPU and memory
  usage is per node.

Metrics:

* cross-NUMA: the guest is bound to a node other than its device's;
  floating: not bound at all while its device is on one node; both are
  "not NUMA-local" (the sum is shown too);
* refused: no host passed. "Refused while capacity existed": refused while,
  in that scheduler's fleet at that moment, some host of the right kind had
  a free device of the kind (a whole GPU, an mdev instance; any render
  node) AND host-level free vCPUs and memory for the guest, i.e. placement
  alone (no NUMA) would have found a host;
* node overcommit events: placements after which a node has more vCPUs or
  memory bound to it (NUMA cells and nova-gpu-ext bindings, both counted
  per node as Nova's books count them since issue 10) than it has (target
  0);
* filter time per host: ours, the core calls per host (building the
  NodeCapacity/GPUSlot/load inputs from the host state included), timed
  for every host evaluation; upstream, Nova's real
  ``NUMATopologyFilter.host_passes`` on a ``HostState`` carrying an
  ``objects.NUMATopology`` with the upstream run's current cell usage, for a
  ``RequestSpec`` whose ``numa_topology`` comes from
  ``hardware.numa_get_constraints`` (None for flavors without
  ``hw:numa_nodes``, as in Nova), for every host at every
  ``--sample-every``-th arrival. ``pci_requests`` is None, so upstream's
  PCI NUMA check is not timed: that makes upstream look cheaper, not ours.
  The real filter's pass/fail for NUMA flavors is also checked against the
  model of it used for upstream's decisions (shown as "agreement").

Targets (issue 4): zero cross-NUMA (and floating) placements under
``required``; no more refusals while capacity existed than upstream; ours'
filter time per host within 2x of upstream's NUMATopologyFilter.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import logging
import os
import random
import sys
import time
from typing import Optional

try:
    from nova_gpu_ext.core import affinity
    from nova_gpu_ext.core import packing
    from nova_gpu_ext.core import sharing
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    from nova_gpu_ext.core import affinity
    from nova_gpu_ext.core import packing
    from nova_gpu_ext.core import sharing

NODES = 2
CPUS_PER_NODE = 16
MEM_PER_NODE = 65536
HOST_KINDS = ('pci', 'mdev', 'render')
WHOLE_PER_NODE = 2
MDEV_INSTANCES = 8
# The [gpu_ext] defaults: 6 ms slices, 0.2 ms switches, 2 s x 0.75.
PROFILE = sharing.SharingProfile(6.0, 0.2, guest_timeout_ms=2000.0,
                                 margin=0.75)
STRATEGY = 'spread'
SCHEDULERS = ('upstream', 'ours-required', 'ours-preferred')

# (weight, request kind, host kind)
KIND_MIX = ((0.30, 'whole', 'pci'), (0.40, 'vgpu', 'mdev'),
            (0.30, 'virgl', 'render'))
SIZE_MIX = ((0.50, 2, 4096), (0.35, 4, 8192), (0.15, 8, 16384))


@dataclasses.dataclass(frozen=True)
class Request:
    id: int
    at: float
    leaves: float
    kind: str
    host_kind: str
    vcpus: int
    memory_mb: int
    numa: bool                # hw:numa_nodes=1


@dataclasses.dataclass
class Device:
    address: str
    node: int
    capacity: int             # 0: unlimited (render nodes)
    tenants: int = 0

    @property
    def free(self) -> bool:
        return not self.capacity or self.tenants < self.capacity


@dataclasses.dataclass
class Host:
    index: int
    kind: str
    devices: list[Device]
    cpus_used: list[int]      # guests bound to a node
    mem_used: list[int]
    float_cpus: int = 0       # guests without binding (host level only)
    float_mem: int = 0

    def free_cpus(self) -> int:
        return NODES * CPUS_PER_NODE - sum(self.cpus_used) - self.float_cpus

    def free_mem(self) -> int:
        return NODES * MEM_PER_NODE - sum(self.mem_used) - self.float_mem


@dataclasses.dataclass
class Placement:
    host: Host
    device: Device
    node: Optional[int]       # bound node; None: floating
    vcpus: int
    memory_mb: int


@dataclasses.dataclass
class Stats:
    placed: int = 0
    local: int = 0
    cross_numa: int = 0
    floating: int = 0
    refused: int = 0
    refused_with_capacity: int = 0
    host_evals: int = 0
    filter_s: float = 0.0
    nova_calls: int = 0
    nova_s: float = 0.0
    nova_numa_calls: int = 0
    nova_numa_s: float = 0.0
    agree: int = 0
    agree_checked: int = 0
    #: placements after which a node had more CPUs or memory bound to it
    #: (NUMA cells and strict/preferred bindings, both kinds) than it has
    node_overcommits: int = 0

    @property
    def not_local(self) -> int:
        return self.cross_numa + self.floating

    @property
    def filter_us(self) -> float:
        return 1e6 * self.filter_s / self.host_evals if self.host_evals else 0

    @property
    def nova_us(self) -> float:
        return 1e6 * self.nova_s / self.nova_calls if self.nova_calls else 0

    @property
    def nova_numa_us(self) -> float:
        return (1e6 * self.nova_numa_s / self.nova_numa_calls
                if self.nova_numa_calls else 0)


def make_fleet(hosts: int) -> list[Host]:
    fleet = []
    for i in range(hosts):
        kind = HOST_KINDS[i % len(HOST_KINDS)]
        devices = []
        for node in range(NODES):
            if kind == 'pci':
                for slot in range(WHOLE_PER_NODE):
                    devices.append(Device('0000:%02x:%02x.0' % (
                        0x3b + 0x80 * node, slot), node, 1))
            elif kind == 'mdev':
                devices.append(Device('0000:%02x:00.0' % (0x81 + node * 0x40),
                                      node, MDEV_INSTANCES))
            else:
                devices.append(Device('renderD%d' % (128 + node), node, 0))
        fleet.append(Host(i, kind, devices, [0] * NODES, [0] * NODES))
    return fleet


def make_workload(arrivals: int, lifetime: float, seed: int
                  ) -> list[Request]:
    rng = random.Random(seed)
    now = 0.0
    out = []
    for i in range(arrivals):
        now += rng.expovariate(1.0)
        kind = _pick(rng, KIND_MIX)
        size = _pick(rng, SIZE_MIX)
        out.append(Request(i, now, now + rng.expovariate(1.0 / lifetime),
                           kind[0], kind[1], size[0], size[1],
                           rng.random() < 0.5))
    return out


def _pick(rng, mix):
    x = rng.random()
    for row in mix:
        x -= row[0]
        if x < 0:
            return row[1:]
    return mix[-1][1:]


# -- upstream (a model of Nova 34)

def _upstream_cells(host: Host, req: Request) -> list[int]:
    """Cells where NUMATopologyFilter fits a 1-cell guest, best first.

    Cell usage counts only guests with a NUMA topology (bound ones), as
    Nova does; "best" is the most free (spread, the default strategy).
    """
    cells = [n for n in range(NODES)
             if CPUS_PER_NODE - host.cpus_used[n] >= req.vcpus and
             MEM_PER_NODE - host.mem_used[n] >= req.memory_mb]
    return sorted(cells, key=lambda n: (host.cpus_used[n], host.mem_used[n],
                                        n))


def upstream_on_host(host: Host, req: Request
                     ) -> Optional[tuple[Device, Optional[int]]]:
    if host.free_cpus() < req.vcpus or host.free_mem() < req.memory_mb:
        return None
    free = [d for d in host.devices if d.free]
    if not free:
        return None
    if not req.numa:
        return free[0], None
    cells = _upstream_cells(host, req)
    if req.kind == 'whole':
        # legacy PCI NUMA policy: the device on the guest's cell.
        for cell in cells:
            for dev in free:
                if dev.node == cell:
                    return dev, cell
        return None
    if not cells:
        return None
    if req.kind == 'virgl':
        return host.devices[0], cells[0]     # renderD128, node 0
    return free[0], cells[0]


# -- ours ----

def ours_on_host(host: Host, req: Request, policy: str
                 ) -> tuple[Optional[tuple[Device, Optional[int]]], float]:
    """The core's decision on one host and the weigher's score."""
    needs = affinity.GuestNeeds(req.vcpus, req.memory_mb, policy)
    nodes = [affinity.NodeCapacity(
        n, n, float(CPUS_PER_NODE - host.cpus_used[n]),
        MEM_PER_NODE - host.mem_used[n], CPUS_PER_NODE, MEM_PER_NODE)
        for n in range(NODES)]
    if req.kind == 'virgl':
        slots = [affinity.RenderSlot(d.address, d.address, d.node,
                                     d.tenants) for d in host.devices]
        choice = affinity.choose_render_node(slots, needs, nodes)
        if not choice.ok:
            return None, 0.0
        dev = next(d for d in host.devices
                   if d.address == choice.render.name)
        node = choice.node
        if node is not None and needs.policy == 'legacy':
            node = None
        return (dev, node), 1.0 if node is not None else 0.0
    by_address = {d.address: d for d in host.devices}
    if req.kind == 'whole':
        gpus = [affinity.GPUSlot(d.address, d.node, d.node)
                for d in host.devices if d.free]
        accepted, _refused = affinity.rank(needs, gpus, nodes)
        if not accepted:
            return None, 0.0
        best = accepted[0]
        return ((by_address[best.gpu.address], best.node),
                affinity.host_score(accepted))
    loads = {d.address: packing.PhysicalGPULoad(
        d.address, d.node, d.tenants, d.capacity, PROFILE)
        for d in host.devices}
    gpus = [affinity.GPUSlot(a, load.numa_node, load.numa_node)
            for a, load in loads.items() if packing.admit_on(load).ok]
    accepted, _refused = affinity.rank(needs, gpus, nodes)
    for tier in ([c for c in accepted if c.local],
                 [c for c in accepted if not c.local]):
        if tier:
            pick = packing.choose_physical_gpu(
                [loads[c.gpu.address] for c in tier], STRATEGY)
            choice = next(c for c in tier if c.gpu.address == pick.address)
            return ((by_address[choice.gpu.address], choice.node),
                    affinity.host_score(accepted))
    return None, 0.0


# -- the simulation ----

def _capacity_existed(fleet: list[Host], req: Request) -> bool:
    return any(h.kind == req.host_kind and
               any(d.free for d in h.devices) and
               h.free_cpus() >= req.vcpus and h.free_mem() >= req.memory_mb
               for h in fleet)


def _normalised(values: list[float]) -> list[float]:
    lo, hi = min(values), max(values)
    if hi == lo:
        return [0.0] * len(values)
    return [(v - lo) / (hi - lo) for v in values]


def _place(p: Placement, sign: int) -> None:
    p.device.tenants += sign
    if p.node is None:
        p.host.float_cpus += sign * p.vcpus
        p.host.float_mem += sign * p.memory_mb
    else:
        p.host.cpus_used[p.node] += sign * p.vcpus
        p.host.mem_used[p.node] += sign * p.memory_mb


def simulate(scheduler: str, workload: list[Request], hosts: int,
             nova: Optional['NovaFilter'], sample_every: int,
             multiplier: float = 1.0) -> Stats:
    fleet = make_fleet(hosts)
    stats = Stats()
    live: list[tuple[float, int, Placement]] = []
    clock = time.perf_counter
    for req in workload:
        while live and live[0][0] <= req.at:
            _place(heapq.heappop(live)[2], -1)
        passing = []
        for host in fleet:
            if host.kind != req.host_kind:
                continue
            if scheduler == 'upstream':
                decision, score = upstream_on_host(host, req), 0.0
            else:
                policy = scheduler.split('-', 1)[1]
                start = clock()
                decision, score = ours_on_host(host, req, policy)
                stats.filter_s += clock() - start
                stats.host_evals += 1
            if decision is not None:
                passing.append((host, decision, score))
        if nova is not None and req.id % sample_every == 0:
            nova.time_hosts(stats, fleet, req)
        if not passing:
            stats.refused += 1
            if _capacity_existed(fleet, req):
                stats.refused_with_capacity += 1
            continue
        ram = _normalised([float(h.free_mem()) for h, _d, _s in passing])
        ours = _normalised([s for _h, _d, s in passing])
        best = max(range(len(passing)), key=lambda i: (
            ram[i] + (multiplier * ours[i] if scheduler != 'upstream'
                      else 0.0),
            -passing[i][0].index))
        host, (device, node), _score = passing[best]
        placement = Placement(host, device, node, req.vcpus, req.memory_mb)
        _place(placement, +1)
        if node is not None and (
                host.mem_used[node] > MEM_PER_NODE or
                host.cpus_used[node] > CPUS_PER_NODE):
            stats.node_overcommits += 1
        heapq.heappush(live, (req.leaves, req.id, placement))
        stats.placed += 1
        if node is None:
            stats.floating += 1
        elif node != device.node:
            stats.cross_numa += 1
        else:
            stats.local += 1
    return stats


# -- Nova's real NUMATopologyFilter ----

class NovaFilter:
    """Times ``NUMATopologyFilter.host_passes`` on realistic host states."""

    def __init__(self) -> None:
        logging.getLogger('nova').setLevel(logging.WARNING)
        from nova import objects
        objects.register_all()
        from nova.scheduler.filters import numa_topology_filter
        from nova.scheduler import host_manager
        from nova.virt import hardware
        self.objects = objects
        self.hardware = hardware
        self.host_manager = host_manager
        self.filter = numa_topology_filter.NUMATopologyFilter()
        self._specs: dict[tuple, object] = {}

    def spec(self, req: Request):
        key = (req.vcpus, req.memory_mb, req.numa)
        if key not in self._specs:
            o = self.objects
            extra = {'hw:numa_nodes': '1'} if req.numa else {}
            flavor = o.Flavor(vcpus=req.vcpus, memory_mb=req.memory_mb,
                              extra_specs=extra, name='gpu')
            image = o.ImageMeta(properties=o.ImageMetaProps())
            self._specs[key] = o.RequestSpec(
                numa_topology=self.hardware.numa_get_constraints(flavor,
                                                                 image),
                pci_requests=None,
                instance_uuid='00000000-0000-4000-8000-%012d' % len(
                    self._specs),
                flavor=flavor,
                image=image)
        return self._specs[key]

    def host_state(self, host: Host):
        o = self.objects
        cells = []
        for n in range(NODES):
            cpus = set(range(n * CPUS_PER_NODE, (n + 1) * CPUS_PER_NODE))
            cells.append(o.NUMACell(
                id=n, cpuset=cpus, pcpuset=set(), memory=MEM_PER_NODE,
                cpu_usage=host.cpus_used[n], memory_usage=host.mem_used[n],
                socket=n, pinned_cpus=set(),
                mempages=[o.NUMAPagesTopology(
                    size_kb=4, total=MEM_PER_NODE * 256,
                    used=host.mem_used[n] * 256)],
                siblings=[{c} for c in sorted(cpus)]))
        state = self.host_manager.HostState('host%d' % host.index,
                                            'node%d' % host.index, None)
        state.numa_topology = o.NUMATopology(cells=cells)
        state.pci_stats = None
        state.cpu_allocation_ratio = 1.0
        state.ram_allocation_ratio = 1.0
        state.allocation_candidates = [{'mappings': {}}]
        return state

    def time_hosts(self, stats: Stats, fleet: list[Host],
                   req: Request) -> None:
        spec = self.spec(req)
        clock = time.perf_counter
        for host in fleet:
            if host.kind != req.host_kind:
                continue
            state = self.host_state(host)
            start = clock()
            passed = self.filter.host_passes(state, spec)
            elapsed = clock() - start
            stats.nova_s += elapsed
            stats.nova_calls += 1
            if req.numa:
                stats.nova_numa_s += elapsed
                stats.nova_numa_calls += 1
                stats.agree_checked += 1
                stats.agree += bool(passed) == bool(
                    _upstream_cells(host, req))


# -- output ----

COLUMNS = (
    ('placed', lambda s: s.placed, '%d'),
    ('NUMA-local', lambda s: s.local, '%d'),
    ('cross-NUMA (bound elsewhere)', lambda s: s.cross_numa, '%d'),
    ('floating (never bound)', lambda s: s.floating, '%d'),
    ('not NUMA-local (sum)', lambda s: s.not_local, '%d'),
    ('refused', lambda s: s.refused, '%d'),
    ('refused while capacity existed', lambda s: s.refused_with_capacity,
     '%d'),
    ('node overcommit events', lambda s: s.node_overcommits, '%d'),
    ('filter time/host (us)', lambda s: s.filter_us, '%.1f'),
)


def table(results: dict[str, Stats], nova_us: float) -> str:
    base = results['upstream']
    ours = SCHEDULERS[1:]
    width = max(len(t) for t, _, _ in COLUMNS) + 2
    lines = ['%-*s' % (width, 'metric') + ''.join(
        '%16s' % s for s in SCHEDULERS) + ''.join(
        '%16s' % ('%s/up' % s.replace('ours-', '')) for s in ours)]
    for title, value, fmt in COLUMNS:
        row = '%-*s' % (width, title)
        for s in SCHEDULERS:
            v = (nova_us if s == 'upstream' and title.startswith('filter')
                 else value(results[s]))
            row += '%16s' % (fmt % v)
        for s in ours:
            b = (nova_us if title.startswith('filter') else value(base))
            row += '%16s' % ('%.2f' % (value(results[s]) / b) if b else '-')
        lines.append(row)
    return '\n'.join(lines)


def run(args: argparse.Namespace, lifetime: float) -> bool:
    started = time.perf_counter()
    workload = make_workload(args.arrivals, lifetime, args.seed)
    nova = NovaFilter()
    results = {}
    for scheduler in SCHEDULERS:
        results[scheduler] = simulate(
            scheduler, workload, args.hosts,
            nova if scheduler == 'upstream' else None, args.sample_every,
            args.weigher_multiplier)
    up = results['upstream']
    print('== %d hosts (%s in turn; %d NUMA nodes x %d CPUs / %d GiB), %d '
          'arrivals, mean %g guests present, seed %d, our weigher x%g'
          % (args.hosts, '/'.join(HOST_KINDS), NODES, CPUS_PER_NODE,
             MEM_PER_NODE // 1024, args.arrivals, lifetime, args.seed,
             args.weigher_multiplier))
    print('upstream filter time: Nova NUMATopologyFilter.host_passes, %d '
          'calls (%.1f us each for hw:numa_nodes flavors, %d calls); its '
          'pass/fail agreed with the upstream model in %d of %d of those'
          % (up.nova_calls, up.nova_numa_us, up.nova_numa_calls, up.agree,
             up.agree_checked))
    print()
    print(table(results, up.nova_us))
    print()
    req, pref = results['ours-required'], results['ours-preferred']
    checks = [
        ('zero cross-NUMA and floating placements under required',
         req.not_local == 0),
        ('required: refused <= upstream (all refusals)',
         req.refused <= up.refused),
        ('required: refused while capacity existed <= upstream',
         req.refused_with_capacity <= up.refused_with_capacity),
        ('preferred: refused while capacity existed <= upstream',
         pref.refused_with_capacity <= up.refused_with_capacity),
        ('no node overcommit event (ours, every guest counted per node)',
         req.node_overcommits == 0 and pref.node_overcommits == 0),
        ("ours' filter time/host <= 2x Nova's NUMATopologyFilter",
         max(req.filter_us, pref.filter_us) <= 2 * up.nova_us),
    ]
    for text, ok in checks:
        print('%-64s %s' % (text, 'PASS' if ok else 'FAIL'))
    print('(%.1f s)' % (time.perf_counter() - started))
    print()
    return all(ok for _, ok in checks)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--hosts', type=int, default=120)
    parser.add_argument('--arrivals', type=int, default=2400)
    parser.add_argument('--lifetime', default='700,1100',
                        help='comma-separated mean guest lifetimes (= mean '
                             'guests present), one run each: a moderate '
                             'load and one that exhausts devices and nodes')
    parser.add_argument('--seed', type=int, default=4)
    parser.add_argument('--sample-every', type=int, default=25,
                        help="time Nova's filter on every host at every "
                             'N-th arrival')
    parser.add_argument('--weigher-multiplier', type=float, default=1.0,
                        help="multiplier of ours' weigher "
                             '(affinity.host_score) next to the RAM '
                             'weigher')
    args = parser.parse_args(argv)
    ok = [run(args, float(v)) for v in args.lifetime.split(',')]
    return 0 if all(ok) else 1


if __name__ == '__main__':
    sys.exit(main())
