"""Pack or spread: which physical GPU supplies a shared GPU (VF or mdev).

Layer rule: pure core. No Nova, no I/O, no CONF; fully typed. The adapters
describe each physical GPU of a host as a :class:`PhysicalGPULoad` (the PF of
a VF, the parent of an mdev) and call the functions below; nothing here
raises for "does not fit", a :class:`Choice` says why.

Why
---
Upstream Nova takes the first allocation candidate placement returns for a
host, and the libvirt driver then uses that provider's physical GPU: within
a host GPUs fill in provider order with no check that one more tenant still
gets its turn before the guest driver's timeout, and across hosts the RAM
and CPU weighers spread guests. Operators of vSphere and of the Kubernetes
GPU plugins choose instead:

* ``pack``: fill one physical GPU before using the next, so whole GPUs stay
  free for passthrough and large requests. The most loaded GPU that still
  admits the tenant wins, "most loaded" meaning fewest slots left once the
  newcomer is there (best fit; for GPUs of one type and no min share that
  is the most tenants); ties: more tenants, then lowest address. A GPU with
  no tenant is never chosen while a partly used one admits.
* ``spread``: best performance. The GPU where the newcomer gets the largest
  share wins (``efficiency / (tenants + 1)``); for GPUs of one type that is
  the least loaded one (ties: fewer tenants, then lowest address).

A GPU admits a tenant (:func:`admit_on`) when it is on an allowed NUMA node,
has a free instance of the type (``tenants < capacity``) and
``nova_gpu_ext.core.sharing.admit`` accepts one more tenant (timeout,
``max_tenants``, ``min_share``).

Addresses compare as PCI addresses when they parse as one
(``0000:3b:00.0``), otherwise as text, so ``0000:0a:00.0`` < ``0000:3b:00.0``
whatever the case of the hex digits.

Public API::

    PhysicalGPULoad(address, numa_node, tenants, capacity, profile,
                    resident_min_share=None)
    admit_on(load, min_share=None, allowed_nodes=None) -> Admission
    rank_physical_gpus(loads, strategy, min_share=None,
                       allowed_nodes=None) -> tuple[str, ...]
    choose_physical_gpu(loads, strategy, min_share=None,
                        allowed_nodes=None) -> Choice
    host_pack_score(loads, min_share=None, allowed_nodes=None) -> float
    host_spread_score(loads, min_share=None, allowed_nodes=None) -> float
    slots(load, min_share=None) -> int   # most tenants with the newcomer

``strategy`` is ``'pack'`` or ``'spread'`` (``STRATEGIES``). ``min_share`` is
a fraction 0-1 (``gpu:min_share_percent / 100``). ``allowed_nodes`` is the
set of NUMA node ids the GPU must be on; None means no restriction, an empty
set allows nothing, and a GPU whose node is unknown is refused when a set is
given (a caller with a lenient policy passes None).

The scheduler filter passes a host when ``choose_physical_gpu(...).address``
is not None and logs ``Choice.reason`` otherwise; it orders the host's
allocation candidates by ``rank_physical_gpus`` (or ``Choice.ranking``) so
the claim lands on the same GPU the compute will use. The host scores are
for a weigher: higher = preferred; -1.0 when no GPU of the host admits the
tenant (the filter should have removed that host).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Collection, Optional, Sequence, Tuple

from nova_gpu_ext import model
from nova_gpu_ext.core import sharing

PACK = 'pack'
SPREAD = 'spread'
STRATEGIES = (PACK, SPREAD)

# Weigher score of a host where no physical GPU admits the tenant.
NO_FIT_SCORE = -1.0


@dataclasses.dataclass(frozen=True)
class PhysicalGPULoad:
    """One physical GPU as the placement decision sees it.

    ``capacity`` is the number of instances (VFs or mdevs) of the requested
    type the GPU offers, used or free; ``tenants`` how many are in use.
    ``resident_min_share`` is the strictest ``min_share`` among the current
    tenants when known (None: unknown or none), so a newcomer cannot push
    them below it.
    """

    address: str
    numa_node: Optional[int]
    tenants: int
    capacity: int
    profile: sharing.SharingProfile
    resident_min_share: Optional[float] = None

    def __post_init__(self) -> None:
        if self.tenants < 0 or self.capacity < 0:
            raise ValueError(
                '%s: tenants and capacity must be >= 0, not %r and %r' % (
                    self.address, self.tenants, self.capacity))

    @property
    def free(self) -> int:
        """Free instances of the type on this GPU."""
        return max(self.capacity - self.tenants, 0)


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why one physical GPU will not take the tenant."""

    address: str
    admission: sharing.Admission

    @property
    def reason(self) -> str:
        return self.admission.reason


@dataclasses.dataclass(frozen=True)
class Choice:
    """The physical GPU chosen for a new tenant, and why.

    ``address`` is None when no GPU admits the tenant. ``ranking`` lists
    every admissible GPU, best first (``ranking[0] == address``);
    ``refusals`` every other GPU with its reason, in input order.
    ``reason`` is one sentence for the log and the CLI (built on first
    access, like ``Admission.reason``).
    """

    strategy: str
    address: Optional[str]
    ranking: tuple[str, ...]
    refusals: tuple[Refusal, ...]
    explain: Callable[[], str] = dataclasses.field(repr=False,
                                                   compare=False)

    @functools.cached_property
    def reason(self) -> str:
        return self.explain()

    def refusal_for(self, address: str) -> Optional[str]:
        """The reason ``address`` was refused, or None if it admits."""
        for refusal in self.refusals:
            if refusal.address == address:
                return refusal.reason
        return None


def admit_on(load: PhysicalGPULoad, min_share: Optional[float] = None,
             allowed_nodes: Optional[Collection[int]] = None
             ) -> sharing.Admission:
    """Whether ``load``'s GPU takes one more tenant; reasons name the GPU."""
    admission = sharing.admit(load.profile, load.tenants, min_share,
                              resident_min_share=load.resident_min_share)
    problems = []
    if allowed_nodes is not None and load.numa_node not in allowed_nodes:
        allowed = ', '.join(str(n) for n in sorted(allowed_nodes)) or 'none'
        if load.numa_node is None:
            problems.append('its NUMA node is unknown and the request allows '
                            'only NUMA node(s) %s' % allowed)
        else:
            problems.append('it is on NUMA node %d, not on an allowed NUMA '
                            'node (%s)' % (load.numa_node, allowed))
    if load.free < 1:
        problems.append('all %d instance(s) of the type are in use'
                        % load.capacity)
    if not problems and admission.ok:
        return admission

    def explain() -> str:
        parts = list(problems)
        if not admission.ok:
            parts.append(admission.reason.rstrip('.'))
        return '%s refused: %s.' % (load.address, '; '.join(parts))

    return sharing.Admission(
        ok=False, tenants_after=admission.tenants_after,
        worst_wait_ms=admission.worst_wait_ms, limit_ms=admission.limit_ms,
        share=admission.share, explain=explain)


def rank_physical_gpus(loads: Sequence[PhysicalGPULoad], strategy: str,
                       min_share: Optional[float] = None,
                       allowed_nodes: Optional[Collection[int]] = None
                       ) -> tuple[str, ...]:
    """Addresses of the GPUs that admit the tenant, best first."""
    return choose_physical_gpu(loads, strategy, min_share,
                               allowed_nodes).ranking


def choose_physical_gpu(loads: Sequence[PhysicalGPULoad], strategy: str,
                        min_share: Optional[float] = None,
                        allowed_nodes: Optional[Collection[int]] = None
                        ) -> Choice:
    """Pick the physical GPU for one new tenant with ``strategy``."""
    admissible, refusals = _evaluate(loads, strategy, min_share,
                                     allowed_nodes)
    key = _key(strategy, min_share)
    ranked = sorted(admissible, key=key)
    ranking = tuple(load.address for load in ranked)
    if ranked:
        best = ranked[0]
        return Choice(strategy, best.address, ranking, refusals,
                      lambda: _chosen_reason(strategy, best, min_share,
                                             len(ranked), len(loads)))
    if not loads:
        def explain() -> str:
            return 'No physical GPU offers the requested type.'
    else:
        def explain() -> str:
            return 'No physical GPU admits another tenant: %s' % ' '.join(
                refusal.reason for refusal in refusals)
    return Choice(strategy, None, (), refusals, explain)


def host_pack_score(loads: Sequence[PhysicalGPULoad],
                    min_share: Optional[float] = None,
                    allowed_nodes: Optional[Collection[int]] = None) -> float:
    """Weigher score for ``pack`` across hosts; higher = preferred.

    * [0.5, 1]: the tenant would join a partly used GPU (no whole GPU is
      consumed); the fuller that GPU is with it, counted against the most
      tenants it can hold with it (:func:`slots`), the higher: best fit.
    * [0, 0.5): the tenant would start a GPU with no tenant; the fewer
      whole-free GPUs the host has, the higher, so hosts with many free
      GPUs stay free for large and passthrough requests.
    * ``NO_FIT_SCORE`` (-1.0): no GPU admits the tenant.
    """
    admissible, _ = _evaluate(loads, PACK, min_share, allowed_nodes)
    if not admissible:
        return NO_FIT_SCORE
    best = min(admissible, key=_key(PACK, min_share))
    if best.tenants > 0:
        return 0.5 + 0.5 * (best.tenants + 1) / slots(best, min_share)
    whole_free = sum(1 for load in loads if load.tenants == 0)
    return 0.5 * (1.0 - whole_free / len(loads))


def host_spread_score(loads: Sequence[PhysicalGPULoad],
                      min_share: Optional[float] = None,
                      allowed_nodes: Optional[Collection[int]] = None
                      ) -> float:
    """Weigher score for ``spread`` across hosts; higher = preferred.

    The share of the GPU the tenant would get on the GPU ``spread`` picks
    there, in (0, 1]: the host where it runs fastest wins.
    ``NO_FIT_SCORE`` (-1.0) when no GPU admits the tenant.
    """
    admissible, _ = _evaluate(loads, SPREAD, min_share, allowed_nodes)
    if not admissible:
        return NO_FIT_SCORE
    best = min(admissible, key=_key(SPREAD, min_share))
    return sharing.share_per_tenant(best.profile, best.tenants + 1)


def slots(load: PhysicalGPULoad, min_share: Optional[float] = None) -> int:
    """The most tenants ``load``'s GPU can hold once the newcomer is there.

    The device's instances, the timeout, ``max_tenants`` and the strictest
    min share among the newcomer (``min_share``) and the residents.
    """
    shares = [s for s in (min_share, load.resident_min_share)
              if s is not None]
    return min(load.capacity,
               sharing.max_safe_tenants(load.profile,
                                        max(shares) if shares else None))


# -- helpers ---------------------------------------------------------------

def _evaluate(loads: Sequence[PhysicalGPULoad], strategy: str,
              min_share: Optional[float],
              allowed_nodes: Optional[Collection[int]]
              ) -> tuple[list[PhysicalGPULoad], tuple[Refusal, ...]]:
    if strategy not in STRATEGIES:
        raise ValueError('strategy must be one of %s, not %r'
                         % (', '.join(STRATEGIES), strategy))
    seen = set()
    admissible = []
    refusals = []
    for load in loads:
        if load.address in seen:
            raise ValueError('physical GPU %s listed twice' % load.address)
        seen.add(load.address)
        admission = admit_on(load, min_share, allowed_nodes)
        if admission.ok:
            admissible.append(load)
        else:
            refusals.append(Refusal(load.address, admission))
    return admissible, tuple(refusals)


def _address_key(address: str) -> Tuple[Any, ...]:
    try:
        parsed = model.PCIAddress.parse(address)
    except ValueError:
        return (1, (), address)
    return (0, (parsed.domain, parsed.bus, parsed.slot, parsed.function), '')


def _key(strategy: str, min_share: Optional[float]
         ) -> Callable[[PhysicalGPULoad], Tuple[Any, ...]]:
    """Sort key of admissible GPUs, best first."""
    if strategy == PACK:
        def pack_key(load: PhysicalGPULoad) -> Tuple[Any, ...]:
            # Used GPUs before free ones; then best fit (fewest slots
            # left with the newcomer, so a min-share tenant joins a GPU
            # that a min-share resident already limits rather than
            # limiting a roomy one); then most tenants; then address.
            left = slots(load, min_share) - load.tenants - 1
            return (load.tenants == 0, left, -load.tenants,
                    _address_key(load.address))
        return pack_key

    def spread_key(load: PhysicalGPULoad) -> Tuple[Any, ...]:
        share = sharing.share_per_tenant(load.profile, load.tenants + 1)
        return (-share, load.tenants, _address_key(load.address))
    return spread_key


def _chosen_reason(strategy: str, best: PhysicalGPULoad,
                   min_share: Optional[float], admissible: int,
                   total: int) -> str:
    after = best.tenants + 1
    share = sharing.share_per_tenant(best.profile, after)
    wait = sharing.worst_case_wait_ms(best.profile, after)
    if strategy == PACK:
        why = ('the fullest fit (%d of %d slots used with the new tenant) '
               'of %d admitting GPU(s) out of %d' % (
                   after, slots(best, min_share), admissible, total))
    else:
        why = ('the largest share of %d admitting GPU(s) out of %d'
               % (admissible, total))
    return ('%s: %s has %d tenant(s), %s; with the new tenant each gets %s '
            'and waits up to %s ms between turns (limit %s ms).' % (
                strategy, best.address, best.tenants, why,
                sharing.format_percent(share), _ms(wait),
                _ms(sharing.limit_ms(best.profile))))


def _ms(value: float) -> str:
    return ('%.3f' % value).rstrip('0').rstrip('.')
