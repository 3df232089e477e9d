"""One per-host decision for a GPU guest: the composition of the core.

Layer rule: pure core. No Nova, no I/O, no CONF; fully typed. The scheduler
filter (``GPUPlacementFilter``), the compute's admission
(``nova_gpu_ext.virt.sharing_claim``) and ``nova-gpu-ext explain`` only
gather facts into a :class:`HostFacts` and call :func:`decide`; none of them
re-derives capacity, type or node room. Like Kubernetes' Topology Manager:
many hint providers, one admit path.

Capacity is defined here once (:func:`capacity`): the instances of the type
a physical GPU has created (mdevs, used or free, or its enabled VFs) plus
the instances it can still create (``available_instances``). The kernel's
``available_instances`` drops when an mdev is *created*, not when it is
assigned, and Nova keeps created mdevs and reuses them: an mdev freed by a
deleted guest is free again.

The steps, each one recorded with its reason in the :class:`Decision`:

1. NUMA rank of every candidate physical GPU (:func:`affinity.rank`).
2. Sharing admission of the time-sliced ones (:func:`packing.admit_on`:
   free instance, time-slice bound, the newcomer's and the residents' min
   shares).
3. Order: NUMA-local GPUs first, and within each tier the flavor's pack or
   spread order (:func:`packing.choose_physical_gpu`); whole GPUs after the
   shared ones of their tier.
4. Render node, on the chosen GPU's node when one was chosen.

Public API::

    GPUFacts(address, numa_node, socket=None, shared=False, created=0,
             available=0, tenants=0, profile=None, type_name=None,
             resident_min_share=None)
    HostFacts(nodes, gpus, render_nodes=())
    DecisionRequest(needs, strategy='pack', min_share=None,
                    wants_devices=True, wants_render=False)
    capacity(gpu) -> int
    decide(request, facts) -> Decision     (memoized, see below)
    decide_cache_clear()

:func:`decide` is pure and its inputs are frozen values: the same request
on equal facts (hosts of the same hardware with the same use, asked for by
the scheduler for every host of a request) is computed once and the
:class:`Decision` (frozen too) shared. Facts given with lists instead of
tuples are decided afresh.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional, Sequence

from nova_gpu_ext.core import affinity
from nova_gpu_ext.core import packing
from nova_gpu_ext.core import sharing

CHOSEN = 'chosen'
ACCEPTED = 'accepted'
REFUSED = 'refused'


@dataclasses.dataclass(frozen=True)
class GPUFacts:
    """One physical GPU as the decision sees it.

    ``shared``: time-sliced (an mdev parent, an SR-IOV PF whose VFs are
    the tenants' devices); False for a whole GPU. ``created``: instances of
    the type that exist (mdevs created, used or free; the PF's enabled
    VFs). ``available``: instances the device can still create (the mdev
    type's ``available_instances``; 0 for VFs). ``tenants``: instances in
    use, counting builds in flight on the compute. ``profile``: how the
    GPU time-slices (None for a whole GPU). ``type_name``: the mdev type or
    the PF's ``vendor:device`` the profile was read for.
    """

    address: str
    numa_node: Optional[int]
    socket: Optional[int] = None
    shared: bool = False
    created: int = 0
    available: int = 0
    tenants: int = 0
    profile: Optional[sharing.SharingProfile] = None
    type_name: Optional[str] = None
    resident_min_share: Optional[float] = None
    time_sliced: bool = True


#: The profile of a shared GPU whose tenants are not time-sliced against
#: each other (MIG-backed vGPU: each instance has its own GPU slices): no
#: wait between turns, so only the free instances bound it.
NOT_TIME_SLICED = sharing.SharingProfile(
    slice_ms=1.0, switch_ms=0.0, guest_timeout_ms=1e9)


@dataclasses.dataclass(frozen=True)
class HostFacts:
    """Everything :func:`decide` needs to know about one host."""

    nodes: tuple[affinity.NodeCapacity, ...]
    gpus: tuple[GPUFacts, ...]
    render_nodes: tuple[affinity.RenderSlot, ...] = ()

    def gpu(self, address: str) -> Optional[GPUFacts]:
        for gpu in self.gpus:
            if gpu.address == address:
                return gpu
        return None


@dataclasses.dataclass(frozen=True)
class DecisionRequest:
    """What the guest asks for, as the decision needs it."""

    needs: affinity.GuestNeeds
    strategy: str = packing.PACK
    min_share: Optional[float] = None
    wants_devices: bool = True
    wants_render: bool = False


@dataclasses.dataclass(frozen=True)
class GPUVerdict:
    """What the decision made of one physical GPU."""

    address: str
    status: str                      # CHOSEN, ACCEPTED or REFUSED
    reason: str
    node: Optional[int] = None       # node the guest binds to with it
    binding: Optional[str] = None
    local: bool = False
    load: Optional[packing.PhysicalGPULoad] = None
    admission: Optional[sharing.Admission] = None


@dataclasses.dataclass(frozen=True)
class Decision:
    """The outcome for one host.

    ``ranking``: every GPU that takes the guest, best first
    (``ranking[0] == address``). ``gpus``: a verdict per input GPU, in
    input order. ``reasons``: why each refused alternative was dropped
    (and, when nothing fits, why the host is refused). ``fit_score`` and
    ``share_score`` are for the weighers (None: no shared GPU considered).
    """

    ok: bool
    address: Optional[str]
    node: Optional[int]
    ranking: tuple[str, ...]
    gpus: tuple[GPUVerdict, ...]
    reasons: tuple[str, ...]
    fit_score: float = 0.0
    share_score: Optional[float] = None
    sharing_reason: Optional[str] = None
    render: Optional[affinity.RenderChoice] = None

    def verdict(self, address: str) -> Optional[GPUVerdict]:
        for verdict in self.gpus:
            if verdict.address == address:
                return verdict
        return None

    @property
    def chosen(self) -> Optional[GPUVerdict]:
        return self.verdict(self.address) if self.address else None


def capacity(gpu: GPUFacts) -> int:
    """Instances of the type ``gpu`` offers, used or free (see module)."""
    return max(gpu.created, gpu.tenants) + max(gpu.available, 0)


def load_of(gpu: GPUFacts) -> packing.PhysicalGPULoad:
    """The sharing core's view of a shared GPU."""
    if not gpu.time_sliced:
        return packing.PhysicalGPULoad(
            address=gpu.address, numa_node=gpu.numa_node,
            tenants=gpu.tenants, capacity=capacity(gpu),
            profile=NOT_TIME_SLICED)
    if gpu.profile is None:
        raise ValueError('%s: a shared GPU needs a sharing profile'
                         % gpu.address)
    return packing.PhysicalGPULoad(
        address=gpu.address, numa_node=gpu.numa_node, tenants=gpu.tenants,
        capacity=capacity(gpu), profile=gpu.profile,
        resident_min_share=gpu.resident_min_share)


#: distinct (request, facts) pairs kept; a scheduler sees few at a time
MEMO_SIZE = 4096


def decide(request: DecisionRequest, facts: HostFacts) -> Decision:
    """The one decision for ``request`` on the host ``facts`` describe."""
    if (isinstance(facts.gpus, tuple) and isinstance(facts.nodes, tuple)
            and isinstance(facts.render_nodes, tuple)):
        return _memo(request, facts)
    return _decide(request, facts)


def decide_cache_clear() -> None:
    """Forget every memoized decision (tests)."""
    _memo.cache_clear()


def _decide(request: DecisionRequest, facts: HostFacts) -> Decision:
    verdicts: dict[str, GPUVerdict] = {}
    ranking: list[str] = []
    reasons: list[str] = []
    fit_score = 0.0
    share_score = None
    sharing_reason = None
    chosen_node = None
    address = None
    if request.wants_devices:
        (ranking, verdicts, reasons, fit_score, share_score,
         sharing_reason) = _devices(request, facts.gpus, facts.nodes)
        if ranking:
            address = ranking[0]
            first = verdicts[address]
            verdicts[address] = dataclasses.replace(first, status=CHOSEN)
            chosen_node = first.node
        elif not facts.gpus:
            reasons.append('No physical GPU on this host offers the '
                           'requested device.')
    render = None
    ok = bool(ranking) or not request.wants_devices
    if request.wants_render and ok:
        render = affinity.choose_render_node(
            facts.render_nodes, request.needs, facts.nodes,
            only_node=chosen_node)
        if not render.ok:
            ok = False
            reasons.append('render node: %s' % render.reason)
        elif not request.wants_devices:
            chosen_node = render.node
    return Decision(
        ok=ok, address=address, node=chosen_node, ranking=tuple(ranking),
        gpus=tuple(verdicts[g.address] for g in facts.gpus
                   if g.address in verdicts),
        reasons=tuple(reasons), fit_score=fit_score,
        share_score=share_score, sharing_reason=sharing_reason,
        render=render)


_memo = functools.lru_cache(maxsize=MEMO_SIZE)(_decide)


def _devices(request: DecisionRequest, gpus: Sequence[GPUFacts],
             nodes: Sequence[affinity.NodeCapacity]) -> tuple[Any, ...]:
    seen = set()
    for gpu in gpus:
        if gpu.address in seen:
            raise ValueError('physical GPU %s listed twice' % gpu.address)
        seen.add(gpu.address)
    by_address = {g.address: g for g in gpus}
    slots = [affinity.GPUSlot(g.address, g.numa_node, g.socket)
             for g in gpus]
    accepted, refused = affinity.rank(request.needs, slots, nodes)
    verdicts: dict[str, GPUVerdict] = {}
    reasons: list[str] = []
    for c in refused:
        verdicts[c.gpu.address] = GPUVerdict(
            c.gpu.address, REFUSED, c.reason, local=c.local)
        reasons.append(c.reason)
    loads = {c.gpu.address: load_of(by_address[c.gpu.address])
             for c in accepted if by_address[c.gpu.address].shared}
    share_score = None
    sharing_reason = None
    admissions = {}
    if loads:
        everything = packing.choose_physical_gpu(
            list(loads.values()), request.strategy, request.min_share)
        score = (packing.host_pack_score if request.strategy == packing.PACK
                 else packing.host_spread_score)
        share_score = score(list(loads.values()), request.min_share)
        sharing_reason = everything.reason
        for refusal in everything.refusals:
            admissions[refusal.address] = refusal.admission
            reasons.append(refusal.reason)
    ranking: list[str] = []
    for tier in ([c for c in accepted if c.local],
                 [c for c in accepted if not c.local]):
        tier_loads = [loads[c.gpu.address] for c in tier
                      if c.gpu.address in loads]
        if tier_loads:
            # One tier holding every shared GPU: the choice over all of
            # them is already made.
            pick = everything if tier_loads == list(loads.values()) else \
                packing.choose_physical_gpu(
                    tier_loads, request.strategy, request.min_share)
            if pick.address is not None and not ranking:
                sharing_reason = pick.reason
            ranking.extend(pick.ranking)
        ranking.extend(c.gpu.address for c in tier
                       if c.gpu.address not in loads)
    for c in accepted:
        a = c.gpu.address
        load = loads.get(a)
        admission = admissions.get(a)
        if load is not None and admission is None:
            admission = packing.admit_on(load, request.min_share)
        if admission is not None and not admission.ok:
            verdicts[a] = GPUVerdict(a, REFUSED, admission.reason, c.node,
                                     c.binding, c.local, load, admission)
        else:
            verdicts[a] = GPUVerdict(a, ACCEPTED, c.reason, c.node,
                                     c.binding, c.local, load, admission)
    kept = [c for c in accepted if c.gpu.address in ranking]
    # Spread tenants of shared GPUs: NUMA-local only, so that a fuller node
    # (every GPU guest is counted per node) does not pull them together.
    fit_score = affinity.host_score(kept, tightness=not (
        loads and request.strategy == packing.SPREAD))
    if not ranking and not reasons:
        reasons.append('no GPU fits the request')
    return ranking, verdicts, reasons, fit_score, share_score, sharing_reason
