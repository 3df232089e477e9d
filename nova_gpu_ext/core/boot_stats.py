"""Boot phases of builds: names, sums and percentiles (pure core).

Layer rule: pure core. No Nova, no I/O, no CONF. The driver's telemetry
(:mod:`nova_gpu_ext.virt.boot_telemetry`) turns timestamps into phases with
:func:`phases_from_marks`; ``nova-gpu-ext boot-report`` and the compute
node's stats summarize records with :func:`summarize`.

A record is a dict: ``{"uuid", "time", "memory_mb", "gpu": bool,
"phases": {name: milliseconds}, "kernel_line": str | None, ...}``.
"""

import math
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, cast

#: (phase, start mark, end mark, what it covers), in boot order
PHASES: Tuple[Tuple[str, str, str, str], ...] = (
    ('defined', 'request', 'defined', 'request to domain defined'),
    ('qemu_started', 'defined', 'qemu_started',
     'domain defined to QEMU process started'),
    ('qemu_init', 'qemu_started', 'resumed',
     'QEMU init: QEMU started to vCPUs resumed'),
    ('launched', 'defined', 'resumed',
     'domain defined to vCPUs resumed (when QEMU\'s start is not seen)'),
    ('firmware', 'resumed', 'console',
     'firmware: vCPUs resumed to the first console output'),
    ('kernel', 'console', 'kernel',
     'first console output to the guest kernel\'s first line'),
)
PHASE_NAMES = tuple(p[0] for p in PHASES)
DESCRIPTIONS = {p[0]: p[3] for p in PHASES}


def phases_from_marks(marks: Dict[str, float]) -> Dict[str, Tuple[float,
                                                                  float]]:
    """{phase: (start, end)} for every phase whose two marks were seen.

    ``launched`` is given only when ``qemu_started`` is unknown (it is the
    sum of the two phases it replaces); nothing is ever estimated.
    """
    out = {}
    for name, start, end, _ in PHASES:
        if name == 'launched' and 'qemu_started' in marks:
            continue
        if start in marks and end in marks and marks[end] >= marks[start]:
            out[name] = (marks[start], marks[end])
    return out


def to_first_console_ms(phases_ms: Dict[str, float]) -> Optional[float]:
    """Domain defined to first console output, when both are seen."""
    if 'firmware' not in phases_ms:
        return None
    if 'launched' in phases_ms:
        return phases_ms['launched'] + phases_ms['firmware']
    if 'qemu_started' in phases_ms and 'qemu_init' in phases_ms:
        return (phases_ms['qemu_started'] + phases_ms['qemu_init'] +
                phases_ms['firmware'])
    return None


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """Nearest-rank percentile (q in 0..100) of values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(math.ceil(q / 100.0 * len(ordered))))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2.0


def memory_bucket(memory_mb: Optional[int]) -> str:
    """A coarse size class: '<=2G', '<=8G', '<=32G', '<=128G', '>128G'."""
    if memory_mb is None:
        return 'unknown'
    for limit in (2, 8, 32, 128):
        if memory_mb <= limit * 1024:
            return '<=%dG' % limit
    return '>128G'


def group_key(record: Dict[str, Any], by: str) -> str:
    if by == 'gpu':
        return 'gpu' if record.get('gpu') else 'other'
    if by == 'memory':
        return memory_bucket(record.get('memory_mb'))
    return 'all'


def summarize(records: Iterable[Dict[str, Any]],
              by: str = 'all') -> Dict[str, Dict[str, Any]]:
    """{group: {"builds": n, "phases": {phase: {"n", "median", "p95"}}}}."""
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(group_key(record, by), []).append(record)
    out = {}
    for key in sorted(groups):
        rows = groups[key]
        phases = {}
        for name in PHASE_NAMES:
            values = [r['phases'][name] for r in rows
                      if isinstance(r.get('phases'), dict) and
                      isinstance(r['phases'].get(name), (int, float))]
            if values:
                mid = cast(float, median(values))
                p95 = cast(float, percentile(values, 95))
                phases[name] = {'n': len(values),
                                'median': round(mid, 1),
                                'p95': round(p95, 1)}
        out[key] = {'builds': len(rows), 'phases': phases}
    return out


def stats_summary(records: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """The compact summary for the compute node's stats: medians only."""
    summary = summarize(records).get('all', {'builds': 0, 'phases': {}})
    return {'builds': summary['builds'],
            'median_ms': {k: v['median']
                          for k, v in summary['phases'].items()}}
