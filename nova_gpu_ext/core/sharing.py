"""Time-slice sharing of one physical GPU: efficiency, share, wait, admission.

Layer rule: pure core. No Nova, no I/O, no CONF; fully typed. Option values
reach this module as a :class:`SharingProfile` built by the adapter
``nova_gpu_ext.conf.sharing.profile_for(conf, type_name)``. Nothing here
raises for "does not fit": :func:`admit` returns an :class:`Admission` that
says why, in a sentence the scheduler filter logs and the CLI prints. Only
invalid arguments (a negative slice, a share outside 0-1) raise ValueError.

Why
---
Shared GPUs (SR-IOV VFs such as AMD MxGPU, NVIDIA vGPU as mdevs or VFs,
Intel GVT-g) are time-sliced: each tenant owns the whole engine for one
slice, then a context ("world") switch hands it to the next tenant. Two
things follow, and no upstream scheduler checks either:

* Switches cost time. Published SR-IOV measurements: 6 ms slices with about
  0.2 ms per switch keep 96.7 % of the GPU busy; 1 ms slices with 0.5 ms
  switches waste a third of it.
* A guest waits for its turn. A guest driver that sees no progress for too
  long resets the GPU (Windows TDR: 2 s by default), so the time between a
  tenant's turns must stay under the guest's timeout.

The model
---------
With ``n`` tenants, ``s`` = slice and ``c`` = switch cost (ms), the
scheduler runs round-robin rounds of ``n`` slices, each followed by a
switch::

    efficiency           = s / (s + c)
    share_per_tenant(n)  = efficiency / n
    worst_case_wait(n)   = n * (s + c)      (one full round)

``worst_case_wait`` is the *round period*: the longest time from a guest
submitting work that fits in one slice to that work completing. Work
submitted just after its tenant's slice ended waits for the other ``n - 1``
slices and ``n`` switches, then needs up to its own whole slice:
``(n - 1) * s + n * c + s = n * (s + c)``. This is the formula that makes
the issue's figure hold: 16 tenants x 100 ms slices with no switch cost is
exactly 1.6 s "between turns" (the idle gap alone, ``(n - 1) * s + n * c``,
would be 1.5 s). With a nonzero switch the wait is larger (16 x 100.2 ms =
1.6032 s). A lone tenant is charged the switch too, as schedulers with a
fixed timetable (MxGPU) keep switching; that costs one switch of headroom
and never decides an admission in practice.

Admission: a new tenant is admitted on a physical GPU only while, with it,

* the tenant count stays within ``max_tenants`` (when set);
* ``worst_case_wait(n + 1) <= guest_timeout_ms * margin``;
* the new tenant's share is at least its ``min_share`` (fraction 0-1);
* the share of the tenants already there stays at least the strictest
  ``min_share`` among them (``resident_min_share``, when the caller knows
  it), so an arrival never breaks an earlier guarantee.

Float comparisons allow a relative 1e-9 so that, e.g., 3 x 0.1 ms is not
"over" 0.3 ms; that is nanoseconds on any real timeout.

Public API (what the scheduler filter/weigher, the driver and the CLI use)::

    SharingProfile(slice_ms, switch_ms, max_tenants=None,
                   guest_timeout_ms=2000.0, margin=1.0)
    efficiency(profile) -> float                      # 0-1
    share_per_tenant(profile, n) -> float             # 0-1
    worst_case_wait_ms(profile, n) -> float
    limit_ms(profile) -> float                        # timeout * margin
    admit(profile, tenants_now, min_share=None, *,
          resident_min_share=None) -> Admission
    max_safe_tenants(profile, min_share=None) -> int
    describe(profile, n) -> str                       # one line for explain
    format_percent(fraction, decimals=1) -> str       # rounded down
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Optional, cast

# Relative tolerance of every "<=" below (see the module docstring).
_REL_TOL = 1e-9


@dataclasses.dataclass(frozen=True)
class SharingProfile:
    """How one physical GPU model or device type time-slices its tenants.

    ``slice_ms``: length of one tenant's turn. ``switch_ms``: cost of one
    context switch. ``max_tenants``: a hard cap (None: only the timeout and
    the device's own instance count limit it). ``guest_timeout_ms``: the
    guest driver's watchdog (Windows TDR: 2 s). ``margin``: the worst-case
    wait must be ``<= guest_timeout_ms * margin``; 1.0 is the exact bound,
    below 1.0 leaves headroom for preemption latency and jitter the model
    does not see (the ``[gpu_ext] timeout_margin`` option defaults to 0.75).
    """

    slice_ms: float
    switch_ms: float
    max_tenants: Optional[int] = None
    guest_timeout_ms: float = 2000.0
    margin: float = 1.0

    def __post_init__(self) -> None:
        if not self.slice_ms > 0:
            raise ValueError('slice_ms must be > 0, not %r' % self.slice_ms)
        if not self.switch_ms >= 0:
            raise ValueError(
                'switch_ms must be >= 0, not %r' % self.switch_ms)
        if self.max_tenants is not None and self.max_tenants < 1:
            raise ValueError(
                'max_tenants must be None or >= 1, not %r' % self.max_tenants)
        if not self.guest_timeout_ms > 0:
            raise ValueError('guest_timeout_ms must be > 0, not %r'
                             % self.guest_timeout_ms)
        if not self.margin > 0:
            raise ValueError('margin must be > 0, not %r' % self.margin)


@dataclasses.dataclass(frozen=True)
class Admission:
    """Whether one more tenant fits on a physical GPU, and why.

    ``tenants_after``, ``worst_wait_ms`` and ``share`` describe the GPU as
    it would be with the new tenant; ``limit_ms`` is timeout x margin.
    ``reason`` is a full sentence with the numbers, for a refusal or an
    admission alike. It is built on first access (``explain``), because a
    scheduler evaluates every GPU of every host and logs few of them.
    """

    ok: bool
    tenants_after: int
    worst_wait_ms: float
    limit_ms: float
    share: float
    explain: Callable[[], str] = dataclasses.field(repr=False,
                                                   compare=False)

    @functools.cached_property
    def reason(self) -> str:
        return self.explain()


def efficiency(profile: SharingProfile) -> float:
    """Fraction of GPU time spent in tenants' slices: slice/(slice+switch)."""
    return profile.slice_ms / (profile.slice_ms + profile.switch_ms)


def share_per_tenant(profile: SharingProfile, n: int) -> float:
    """Fraction of the GPU one of ``n`` tenants gets: efficiency / n.

    ``n == 0`` returns 1.0 (a tenant that arrives alone would get it all
    but the switch cost: use ``n = 1`` for that).
    """
    _check_count(n)
    if n == 0:
        return 1.0
    return efficiency(profile) / n


def worst_case_wait_ms(profile: SharingProfile, n: int) -> float:
    """Longest time between one tenant's turns: ``n * (slice + switch)``.

    One full round-robin round (see the module docstring for why the round
    and not the idle gap ``(n - 1) * slice + n * switch``): 16 tenants x
    100 ms slices, no switch cost -> 1600 ms. 0 tenants wait 0 ms.
    """
    _check_count(n)
    return n * (profile.slice_ms + profile.switch_ms)


def limit_ms(profile: SharingProfile) -> float:
    """The admissible worst-case wait: guest timeout x margin."""
    return profile.guest_timeout_ms * profile.margin


@functools.lru_cache(maxsize=4096)
def admit(profile: SharingProfile, tenants_now: int,
          min_share: Optional[float] = None, *,
          resident_min_share: Optional[float] = None) -> Admission:
    """Decide whether one more tenant may join ``tenants_now`` tenants.

    Pure and kept for the last inputs (a scheduler asks the same question
    for every GPU of every host: the same profile, a few tenant counts).

    ``min_share``: the newcomer's smallest acceptable share (fraction 0-1,
    e.g. ``gpu:min_share_percent / 100``); None: no requirement.
    ``resident_min_share``: the strictest ``min_share`` among the tenants
    already on the GPU, when the caller knows it; None: unknown or none.

    Every failed condition is named in ``reason`` (joined by "; "), in the
    order max_tenants, timeout, newcomer share, resident share.
    """
    _check_count(tenants_now)
    _check_share(min_share, 'min_share')
    _check_share(resident_min_share, 'resident_min_share')
    after = tenants_now + 1
    wait = worst_case_wait_ms(profile, after)
    limit = limit_ms(profile)
    share = share_per_tenant(profile, after)
    over_cap = (profile.max_tenants is not None and
                after > profile.max_tenants)
    too_long = not _le(wait, limit)
    too_small = min_share is not None and not _le(min_share, share)
    squeezes = (resident_min_share is not None and
                not _le(resident_min_share, share))
    ok = not (over_cap or too_long or too_small or squeezes)

    def explain() -> str:
        slices = _slices_text(profile)
        limit_text = '%s limit (%s guest timeout x %s margin)' % (
            _seconds(limit), _seconds(profile.guest_timeout_ms),
            _number(profile.margin, 2, 1))
        waits = 'waits' if after == 1 else 'wait'
        problems = []
        if over_cap:
            problems.append(
                '%d %s already %s this GPU, the most its type allows '
                '(max_tenants %s)' % (
                    tenants_now, _plural(tenants_now, 'tenant'),
                    'shares' if tenants_now == 1 else 'share',
                    profile.max_tenants))
        if too_long:
            problems.append(
                '%d %s with %s %s %s between turns, over the %s' % (
                    after, _plural(after, 'tenant'), slices, waits,
                    _seconds(wait, limit), limit_text))
        if too_small:
            problems.append(
                '%d %s would each get %s of the GPU (%s efficiency / %d), '
                'below the requested %s minimum share' % (
                    after, _plural(after, 'tenant'),
                    _percent(share, min_share),
                    _percent(efficiency(profile)), after,
                    _percent(cast(float, min_share), share)))
        if squeezes:
            problems.append(
                'a tenant already on this GPU needs at least %s of it, and '
                '%d tenants would each get %s' % (
                    _percent(cast(float, resident_min_share), share), after,
                    _percent(share, resident_min_share)))
        if problems:
            return _sentence('; '.join(problems))
        return _sentence(
            '%d %s with %s %s %s between turns, within the %s; %s %s of '
            'the GPU' % (
                after, _plural(after, 'tenant'), slices, waits,
                _seconds(wait, limit), limit_text,
                'it gets' if after == 1 else 'each gets', _percent(share)))

    return Admission(ok=ok, tenants_after=after, worst_wait_ms=wait,
                     limit_ms=limit, share=share, explain=explain)


@functools.lru_cache(maxsize=1024)
def max_safe_tenants(profile: SharingProfile,
                     min_share: Optional[float] = None) -> int:
    """The most tenants one GPU can hold with every admission condition met.

    ``admit(profile, n, min_share).ok`` is true exactly for
    ``n < max_safe_tenants(profile, min_share)``. 0 when not even one tenant
    fits (a slice longer than the limit, or a min_share above the
    efficiency).
    """
    _check_share(min_share, 'min_share')
    period = profile.slice_ms + profile.switch_ms
    # Closed form, then nudged so it agrees with admit()'s comparisons.
    n = int(math.floor(limit_ms(profile) / period))
    if min_share is not None:
        n = min(n, int(math.floor(efficiency(profile) / min_share)))
    if profile.max_tenants is not None:
        n = min(n, profile.max_tenants)
    n = max(n, 0)
    while n > 0 and not _fits(profile, n, min_share):
        n -= 1
    while _fits(profile, n + 1, min_share):
        n += 1
    return n


def describe(profile: SharingProfile, n: int) -> str:
    """One line about a GPU with ``n`` tenants, for ``explain`` output."""
    _check_count(n)
    return ('%d %s with %s: efficiency %s, %s each, worst-case wait %s '
            'of the %s limit' % (
                n, _plural(n, 'tenant'), _slices_text(profile),
                _percent(efficiency(profile)),
                _percent(share_per_tenant(profile, max(n, 1))),
                _seconds(worst_case_wait_ms(profile, n)),
                _seconds(limit_ms(profile))))


def format_percent(fraction: float, decimals: int = 1) -> str:
    """A share or efficiency as text, rounded *down* to ``decimals``.

    Down, so a displayed share never promises more than the GPU gives:
    6 ms / 0.2 ms is 96.77 % and shows as ``96.7%`` (the published figure;
    the measured switch was "about" 0.2 ms), 1 ms / 0.5 ms shows as
    ``66.6%`` ("about 66 %": a third wasted). The 1e-6 guards against
    binary fractions such as 0.57 * 1000 = 569.999...
    """
    scale = 10 ** (decimals + 2)
    value = math.floor(fraction * scale + 1e-6) / 10 ** decimals
    return '%.*f%%' % (decimals, value)


# -- helpers ---------------------------------------------------------------

def _fits(profile: SharingProfile, n: int,
          min_share: Optional[float]) -> bool:
    if n < 1:
        return True
    if profile.max_tenants is not None and n > profile.max_tenants:
        return False
    if not _le(worst_case_wait_ms(profile, n), limit_ms(profile)):
        return False
    return min_share is None or _le(min_share, share_per_tenant(profile, n))


def _le(a: float, b: float) -> bool:
    return a <= b + abs(b) * _REL_TOL


def _check_count(n: int) -> None:
    if n < 0:
        raise ValueError('a tenant count must be >= 0, not %r' % n)


def _check_share(value: Optional[float], name: str) -> None:
    if value is not None and not 0 < value <= 1:
        raise ValueError('%s must be a fraction in (0, 1], not %r'
                         % (name, value))


def _number(value: float, digits: int, min_digits: int = 0) -> str:
    """``value`` with at most ``digits`` decimals, at least ``min_digits``."""
    text = '%.*f' % (digits, value)
    if '.' in text:
        text = text.rstrip('0')
        decimals = len(text.split('.')[1])
        text += '0' * max(0, min_digits - decimals)
        text = text.rstrip('.')
    return text


def _seconds(ms: float, other: Optional[float] = None) -> str:
    """``1600`` -> ``1.6 s``, ``12.4`` -> ``12.4 ms``.

    In ms whenever seconds would make ``ms`` look equal to ``other``.
    """
    if ms < 1000:
        text = _number(ms, 3) + ' ms'
    else:
        text = _number(ms / 1000.0, 3, 1) + ' s'
    if other is not None and other != ms and text == _seconds(other):
        return _number(ms, 3) + ' ms'
    return text


def _percent(fraction: float, other: Optional[float] = None) -> str:
    text = format_percent(fraction)
    if other is not None and other != fraction and text == format_percent(
            other):
        text = format_percent(fraction, 3)
    return text


def _slices_text(profile: SharingProfile) -> str:
    text = '%s ms slices' % _number(profile.slice_ms, 3)
    if profile.switch_ms:
        text += ' and %s ms switches' % _number(profile.switch_ms, 3)
    return text


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + 's'


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + '.'
