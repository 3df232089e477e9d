"""The wire format of the host summary: what each published entry may hold.

Layer rule: pure core (no Nova, oslo, CONF or I/O), typed. One table per
entry kind (a required key and its check, the optional keys and theirs),
the checks :meth:`nova_gpu_ext.core.summary.HostSummary.from_dict` applies
to a value of any version, and the encoding of an entry. Only
:mod:`nova_gpu_ext.core.summary` uses it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def count(value: Any) -> bool:
    return is_int(value) and value >= 0


def int_or_none(value: Any) -> bool:
    return value is None or is_int(value)


def _str(value: Any) -> bool:
    return isinstance(value, str)


def _mdev_types(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(
        _str(k) and (v is None or count(v)) for k, v in value.items())


def _by_type(value: Any) -> bool:
    return isinstance(value, dict) and all(
        _str(k) and count(v) for k, v in value.items())


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(_str(v) for v in value)


def _share(value: Any) -> bool:
    return (is_int(value) or isinstance(value, float)) and value >= 0


def is_bool(value: Any) -> bool:
    return isinstance(value, bool)


_Check = Callable[[Any], bool]

#: per entry kind: (required key, its check), optional keys and checks,
#: keys always written (None included), fields written as tuples
_NODE: tuple[tuple[str, _Check], dict[str, _Check]] = (
    ('id', is_int),
    {'socket': int_or_none, 'cpus': int_or_none, 'mem_mb': int_or_none})
_GPU: tuple[tuple[str, _Check], dict[str, _Check]] = (
    ('addr', _str),
    {'kind': _str, 'node': int_or_none, 'socket': int_or_none,
     'vendor': _str, 'device': _str, 'rp': _str, 'used': count,
     'vfs': count, 'mdevs': count, 'mdev_types': _mdev_types,
     'mdevs_by_type': _by_type, 'mig_types': _strings, 'vf_rps': _strings,
     'pf': _str, 'render': _str, 'type': _str, 'min_share': _share,
     'bar64': count, 'vf_device': _str})
_RENDER: tuple[tuple[str, _Check], dict[str, _Check]] = (
    ('name', _str),
    {'path': _str, 'node': int_or_none, 'guests': count,
     'pci': lambda v: v is None or _str(v), 'present': is_bool})
_ALWAYS = {'nodes': ('id', 'socket', 'cpus', 'mem_mb'),
           'gpus': ('addr', 'kind', 'node', 'socket', 'vendor', 'device'),
           'render_nodes': ('name', 'path', 'node', 'pci')}
_TUPLES = ('mig_types', 'vf_rps')
#: the table of each entry kind
SCHEMAS = {'nodes': _NODE, 'gpus': _GPU, 'render_nodes': _RENDER}


def fields(key: str, index: int, entry: Any,
           problems: list[str]) -> Optional[dict[str, Any]]:
    """The valid fields of ``entry``, the ``index``-th of ``key``; what is
    dropped is said in ``problems``; None: the entry itself is dropped."""
    (name, check), optional = SCHEMAS[key]
    if not isinstance(entry, dict) or not check(entry.get(name)):
        problems.append('%s[%d] has no valid %s' % (key, index, name))
        return None
    out = {name: entry[name]}
    if key != 'nodes' and 'node' not in entry:
        # An older compute that did not say where it is: unknown, not
        # "no NUMA node" (which `required` refuses).
        problems.append('%s[%d] has no node' % (key, index))
    if key == 'nodes':
        for size in ('cpus', 'mem_mb'):
            if entry.get(size) is None:
                # Unknown size is not "full": the compute counts it as
                # unbounded, so the scheduler must not refuse on it.
                problems.append('nodes[%d] has no %s' % (index, size))
    for field, field_check in optional.items():
        if field not in entry:
            continue
        value = entry[field]
        if not field_check(value):
            problems.append('%s[%d].%s is %r' % (key, index, field, value))
            continue
        out[field] = tuple(value) if field in _TUPLES else value
    return out


def as_dict(entry: Any, key: str) -> dict[str, Any]:
    """The published form of one entry (a summary dataclass)."""
    always = _ALWAYS[key]
    out = {}
    for field in dataclasses.fields(entry):
        value = getattr(entry, field.name)
        if value is None and field.name not in always:
            continue
        if field.name in _TUPLES:
            value = list(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        out[field.name] = value
    return out
