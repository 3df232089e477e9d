"""GPU-to-NUMA affinity: on which host NUMA node a GPU guest should run.

Layer rule: pure core. No Nova, no I/O, no CONF; every input is a value,
every output a decision that says why. The scheduler filter, the weigher,
the driver and ``nova-gpu-ext explain`` all call these functions, so they
cannot disagree.

Which policy applies and which nodes it allows, in which order, is
:mod:`nova_gpu_ext.core.numa` (the one NUMA rule); this module only says
whether the guest *fits* on those nodes (free CPUs and memory, Nova's
node-size rule), ranks the GPUs and picks render nodes.

A guest that uses several physical GPUs is placed by its first GPU; the
others are checked against the same node under ``required``/``socket``.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Optional, Sequence

from nova_gpu_ext.core import numa

#: kept for callers of the old names; the words live in core.numa
DEFAULT_POLICY = numa.DEFAULT
STRICT = numa.STRICT
PREFERRED = numa.PREFERRED_MODE


@dataclasses.dataclass(frozen=True)
class NodeCapacity:
    """What is free on one host NUMA node."""

    id: int
    socket: Optional[int]
    free_cpus: float
    free_memory_mb: int
    total_cpus: int = 0
    total_memory_mb: int = 0
    #: the node's CPUs a floating guest may run on (0: unknown); Nova's fit
    #: gives no cell more vCPUs than that, whatever the allocation ratio
    cpus: int = 0


#: free capacity of a node whose size is unknown, where unknown must not
#: refuse (the compute, which only refuses a guest larger than a node)
UNBOUNDED = 1 << 30


def node_capacity(node_id: int, socket: Optional[int], cpus: int,
                  memory_mb: Optional[int], used_cpus: float = 0.0,
                  used_memory_mb: int = 0, cpu_ratio: float = 1.0,
                  ram_ratio: float = 1.0,
                  unknown_fits: bool = False) -> NodeCapacity:
    """One node's capacity: ``cpus`` (the node's CPUs a floating guest may
    use) and ``memory_mb`` times the allocation ratios, less what is used.
    The one formula of the scheduler (Nova's per-cell usage), the compute
    (node sizes) and explain (``--used-*``, domain XML). ``unknown_fits``:
    a size of 0/None is free without bound instead of full."""
    total_cpus = cpus * cpu_ratio
    total_memory = int((memory_mb or 0) * ram_ratio)
    free_cpus = max(total_cpus - used_cpus, 0.0)
    free_memory = max(total_memory - used_memory_mb, 0)
    if unknown_fits and not cpus:
        free_cpus = float(UNBOUNDED)
    if unknown_fits and not memory_mb:
        free_memory = UNBOUNDED
    return NodeCapacity(node_id, socket, free_cpus, free_memory,
                        int(total_cpus), total_memory, cpus)


@dataclasses.dataclass(frozen=True)
class GPUSlot:
    """A physical GPU a guest could get a device from (whole, VF, mdev)."""

    address: str
    numa_node: Optional[int]
    socket: Optional[int] = None
    #: opaque for the core: the caller's handle (allocation candidate, ...)
    key: object = None


@dataclasses.dataclass(frozen=True)
class GuestNeeds:
    vcpus: int
    memory_mb: int
    policy: str = DEFAULT_POLICY

    @classmethod
    def without_numa_rule(cls, vcpus: int, memory_mb: int) -> 'GuestNeeds':
        """A guest our NUMA rule leaves alone (Nova places its cells, or
        only the sharing admission is asked)."""
        return cls(vcpus, memory_mb, numa.NO_RULE)


@dataclasses.dataclass(frozen=True)
class NodeChoice:
    """Where a guest goes for one GPU; ``ok`` False says why not."""

    gpu: GPUSlot
    ok: bool
    node: Optional[int]            # host node to bind to; None = no binding
    binding: Optional[str]         # STRICT, PREFERRED or None
    local: bool                    # the guest shares the GPU's node
    reason: str
    tightness: float = 0.0         # 0..1, how full the node is afterwards

    @property
    def cross_numa(self) -> bool:
        return self.ok and not self.local


def fits_node_size(vcpus: int, node_cpus: int) -> bool:
    """Nova's rule for one guest cell: no more vCPUs than the host node has
    CPUs (``numa_fit_instance_to_host``, whatever ``cpu_allocation_ratio``);
    ``node_cpus`` 0 (unknown) never refuses. The scheduler's precheck and
    the compute's binding both apply it here; the claim gets it from Nova's
    own fit."""
    return not node_cpus or vcpus <= node_cpus


def _fits(needs: GuestNeeds, node: NodeCapacity) -> bool:
    return (node.free_cpus >= needs.vcpus and
            node.free_memory_mb >= needs.memory_mb and
            fits_node_size(needs.vcpus, node.cpus))


def _shortfall(needs: GuestNeeds, node: NodeCapacity) -> str:
    parts = []
    if node.free_memory_mb < needs.memory_mb:
        parts.append('%d MiB free < %d MiB' % (
            node.free_memory_mb, needs.memory_mb))
    if node.free_cpus < needs.vcpus:
        parts.append('%g CPUs free < %d vCPUs' % (
            node.free_cpus, needs.vcpus))
    if not fits_node_size(needs.vcpus, node.cpus):
        parts.append('%d vCPUs > %d CPUs of the node' % (
            needs.vcpus, node.cpus))
    return ', '.join(parts)


def _tightness(needs: GuestNeeds, node: NodeCapacity) -> float:
    if not node.total_memory_mb:
        return 0.0
    left = node.free_memory_mb - needs.memory_mb
    return max(0.0, min(1.0, 1.0 - left / node.total_memory_mb))


def choose_node(needs: GuestNeeds, gpu: GPUSlot,
                nodes: Sequence[NodeCapacity]) -> NodeChoice:
    """The NUMA placement of a guest that gets a device from ``gpu``, on
    the first node of :func:`numa.node_tiers` where it fits."""
    policy = numa.word(needs.policy)
    by_id = {n.id: n for n in nodes}
    if not numa.applies(policy):
        return NodeChoice(gpu, True, None, None, False,
                          'policy %s: no NUMA binding (as upstream)' % policy)
    tiers = numa.node_tiers(policy, gpu.numa_node, gpu.socket,
                            {n.id: n.socket for n in nodes})
    if gpu.numa_node is None or gpu.numa_node not in by_id:
        if not tiers.anywhere:
            return NodeChoice(gpu, False, None, None, False,
                              'GPU %s: %s' % (gpu.address, tiers.reason))
        return NodeChoice(gpu, True, None, None, False,
                          'GPU %s: NUMA node unknown; not bound' %
                          gpu.address)
    home = by_id[gpu.numa_node]
    if _fits(needs, home):
        return NodeChoice(
            gpu, True, home.id, numa.binding_mode(policy), True,
            'GPU %s on node %d; guest fits there' % (gpu.address, home.id),
            _tightness(needs, home))
    short = 'GPU %s on node %d: %s' % (
        gpu.address, home.id, _shortfall(needs, home))
    if tiers.reason:
        return NodeChoice(gpu, False, None, None, False,
                          short + '; ' + tiers.reason)
    if tiers.socket is not None:
        for node_id in tiers.nodes[1:]:
            node = by_id[node_id]
            if _fits(needs, node):
                return NodeChoice(
                    gpu, True, node.id, numa.binding_mode(policy), False,
                    short + '; node %d on the same socket %d fits' % (
                        node.id, tiers.socket), _tightness(needs, node))
        return NodeChoice(gpu, False, None, None, False,
                          short + '; no other node of socket %d fits' %
                          tiers.socket)
    if not tiers.anywhere:
        return NodeChoice(gpu, False, None, None, False, short)
    # preferred: never refused, but not bound where it does not fit.
    return NodeChoice(gpu, True, None, None, False,
                      short + '; placed without NUMA binding (%s)' % policy)


def rank(needs: GuestNeeds, gpus: Iterable[GPUSlot],
         nodes: Sequence[NodeCapacity]
         ) -> tuple[list[NodeChoice], list[NodeChoice]]:
    """Every GPU's choice: accepted ones best first, then the refused.

    Best: NUMA-local before not, then the tightest fit (keeps emptier nodes
    free for bigger guests), then the GPU address (stable order).
    """
    choices = [choose_node(needs, gpu, nodes) for gpu in gpus]
    accepted = sorted((c for c in choices if c.ok),
                      key=lambda c: (not c.local, -c.tightness,
                                     c.gpu.address))
    refused = [c for c in choices if not c.ok]
    return accepted, refused


def host_score(accepted: Sequence[NodeChoice],
               tightness: bool = True) -> float:
    """For the weigher: 0 nothing local, up to 2 for a tight local fit.

    ``tightness`` False (tenants spread over shared GPUs): NUMA-local only,
    so that a fuller node, now that every GPU guest is counted per node,
    does not pull spread tenants onto the same host."""
    if not accepted:
        return 0.0
    best = accepted[0]
    return (1.0 if best.local else 0.0) + (
        best.tightness if tightness else 0.0)


def has_room(guests: int, limit: int) -> bool:
    """Can a render node with ``guests`` guests take one more under
    ``limit`` (``[gpu_ext] render_node_max_guests``, 0: no limit)? The one
    rule of render-node room (scheduler, claim, driver, explain)."""
    return not limit or guests < limit


@dataclasses.dataclass(frozen=True)
class RenderSlot:
    """A DRM render node and how many guests use it."""

    name: str
    path: str
    numa_node: Optional[int]
    guests: int = 0
    limit: int = 0                  # 0: no limit

    @property
    def has_room(self) -> bool:
        return has_room(self.guests, self.limit)


@dataclasses.dataclass(frozen=True)
class RenderChoice:
    ok: bool
    render: Optional[RenderSlot]
    node: Optional[int]
    reason: str


def choose_render_node(render_nodes: Sequence[RenderSlot],
                       needs: GuestNeeds,
                       nodes: Sequence[NodeCapacity],
                       only_node: Optional[int] = None) -> RenderChoice:
    """A render node and the NUMA node the guest should run on with it.

    The render node is picked on a node where the guest fits (or on
    ``only_node`` when the guest's node is already decided), least used
    first, never above its limit. Under ``required``/``socket`` a guest
    never runs away from its render node's node; under ``preferred`` and
    ``legacy`` it gets the least-used render node if none is local.
    """
    by_id = {n.id: n for n in nodes}
    usable = [r for r in render_nodes if r.has_room]
    if not usable:
        return RenderChoice(False, None, None, 'every render node is at its '
                            'guest limit (%s)' % ', '.join(
                                '%s %d/%d' % (r.name, r.guests, r.limit)
                                for r in render_nodes) if render_nodes else
                            'the host has no render node')
    local = []
    for r in usable:
        if r.numa_node is None or r.numa_node not in by_id:
            continue
        if only_node is not None and r.numa_node != only_node:
            continue
        if _fits(needs, by_id[r.numa_node]):
            local.append(r)
    if local:
        best = min(local, key=lambda r: (r.guests, r.name))
        return RenderChoice(True, best, best.numa_node,
                            '%s on node %s (%d guest(s) on it)' % (
                                best.name, best.numa_node, best.guests))
    if numa.render_local_only(needs.policy):
        listing = ', '.join('%s node %s %d/%s' % (
            r.name, r.numa_node, r.guests, r.limit or '-')
            for r in render_nodes)
        return RenderChoice(False, None, None, 'no render node with room on '
                            'a NUMA node where the guest fits (%s)' % listing)
    best = min(usable, key=lambda r: (r.guests, r.name))
    return RenderChoice(True, best, None, '%s (not NUMA-local: no local '
                        'render node fits; policy %s)' % (
                            best.name, needs.policy))
