"""Read a host summary published by any compute version, or a damaged one.

Layer rule: pure glue (no Nova, no I/O, no CONF). In a rolling upgrade the
scheduler reads summaries from computes older or newer than itself, and a
bad one must never crash it nor make it refuse a good host.
:func:`normalize` returns a summary whose every entry has the shape the
scheduler reads (so ``summary['gpus'][i]['addr']`` is a string, a node's
``id`` an int, counts are non-negative ints), and the problems found:

* keys a version did not publish stay *absent* (unknown), never made up;
  only ``nodes`` and ``gpus`` default to empty lists (no ``nodes``, or a
  GPU or render node without ``node``, also marks the summary partial:
  unknown is not "none");
* an entry of the wrong shape is dropped, a field of the wrong type
  removed, and the summary marked ``partial``: the scheduler then lets the
  compute decide, as for a host whose GPU providers are not published yet;
* keys a newer compute adds are kept and ignored.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

#: set on a summary with dropped entries or fields, or an unusable one
PARTIAL = 'partial'


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _count(value: Any) -> bool:
    return _is_int(value) and value >= 0


def _int_or_none(value: Any) -> bool:
    return value is None or _is_int(value)


def _str(value: Any) -> bool:
    return isinstance(value, str)


def _mdev_types(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(
        _str(k) and (v is None or _count(v)) for k, v in value.items())


#: per entry list: (required key and check, optional keys and checks)
_SCHEMA: dict[str, tuple[tuple[str, Callable[[Any], bool]],
                         dict[str, Callable[[Any], bool]]]] = {
    'nodes': (('id', _is_int), {
        'socket': _int_or_none, 'cpus': _int_or_none,
        'mem_mb': _int_or_none}),
    'gpus': (('addr', _str), {
        'kind': _str, 'node': _int_or_none, 'socket': _int_or_none,
        'vendor': _str, 'device': _str, 'rp': _str, 'used': _count,
        'vfs': _count, 'mdevs': _count, 'mdev_types': _mdev_types,
        'pf': _str, 'render': _str, 'vf_device': _str}),
    'render_nodes': (('name', _str), {
        'path': _str, 'node': _int_or_none, 'guests': _count,
        'pci': (lambda v: v is None or _str(v))}),
}


#: entry lists whose entries must say their NUMA node (None = unknown)
_LOCATED = ('gpus', 'render_nodes')


def unusable(reason: str) -> dict[str, Any]:
    """The summary of a host that runs nova-gpu-ext but whose facts cannot
    be read: nothing known, everything left to the compute."""
    return {'v': None, 'nodes': [], 'gpus': [], PARTIAL: reason}


def normalize(raw: Any) -> tuple[dict[str, Any], list[str]]:
    """``(summary, problems)`` for a decoded summary of any version."""
    if not isinstance(raw, dict):
        reason = 'not a JSON object (%s)' % type(raw).__name__
        return unusable(reason), [reason]
    out = dict(raw)
    problems = []
    for key, (required, optional) in _SCHEMA.items():
        if key not in raw:
            if key == 'nodes':
                # Node sizes unknown: the filter would see no room at all.
                problems.append('no nodes')
            if key != 'render_nodes':       # unknown stays unknown
                out[key] = []
            continue
        entries = raw[key]
        if not isinstance(entries, list):
            problems.append('%s is not a list' % key)
            out[key] = []
            continue
        kept = []
        for index, entry in enumerate(entries):
            name, check = required
            if not isinstance(entry, dict) or not check(entry.get(name)):
                problems.append('%s[%d] has no valid %s' % (key, index, name))
                continue
            clean = dict(entry)
            if key in _LOCATED and 'node' not in clean:
                # An older compute that did not say where it is: unknown,
                # not "no NUMA node" (which `required` refuses).
                problems.append('%s[%d] has no node' % (key, index))
            if key == 'nodes':
                for size in ('cpus', 'mem_mb'):
                    if clean.get(size) is None:
                        # Unknown size is not "full": the compute counts
                        # it as unbounded, so the scheduler must not
                        # refuse on it.
                        problems.append('nodes[%d] has no %s' % (
                            index, size))
            for field, field_check in optional.items():
                if field in clean and not field_check(clean[field]):
                    problems.append('%s[%d].%s is %r' % (
                        key, index, field, clean[field]))
                    del clean[field]
            kept.append(clean)
        out[key] = kept
    # Entries on a node the summary does not list: inconsistent facts.
    node_ids = {n['id'] for n in out['nodes']}
    for key in _LOCATED:
        for index, entry in enumerate(out.get(key, ())):
            node = entry.get('node')
            if node is not None and node not in node_ids:
                problems.append('%s[%d] is on node %d, which nodes does '
                                'not list' % (key, index, node))
    if problems:
        out[PARTIAL] = '; '.join(problems)
    return out, problems


def is_partial(summary: Optional[dict[str, Any]]) -> bool:
    """Was anything dropped from this summary (let the compute decide)?"""
    return bool(summary and summary.get(PARTIAL))
