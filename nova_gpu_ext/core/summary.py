"""The host summary: what a compute publishes of its GPUs, typed.

Layer rule: pure core (no Nova, oslo, CONF or I/O); the only module that
knows the summary's keys. The compute builds a :class:`HostSummary`
(:mod:`.summary_build`, plus what only its driver knows, added with
``dataclasses.replace``) and publishes :meth:`HostSummary.to_stats` in the
compute node's ``stats`` under :data:`STATS_KEY`; the scheduler reads it
back with :meth:`HostSummary.from_stats` (as ``HostState.stats``).

Versions live here. :data:`VERSION` is what this code publishes; in a
rolling upgrade the scheduler reads summaries of computes older or newer
than itself, and a bad one must never crash it nor make it refuse a good
host. Decoding folds in the compatibility rules:

* keys a version did not publish stay *unknown* (``None``), never made up;
  only ``nodes`` and ``gpus`` default to empty (no ``nodes``, or a GPU or
  render node without ``node``, marks the summary partial);
* an entry of the wrong shape is dropped, a field of the wrong type
  removed, and the summary marked :attr:`HostSummary.partial` (the
  reasons): the scheduler then lets the compute decide;
* keys a newer compute adds are ignored.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any, Mapping, Optional

from nova_gpu_ext.core import address_space
from nova_gpu_ext.core import summary_wire as wire

#: the version this code publishes (``v``); older: 1 or nothing
VERSION = 1
#: key of the summary in the compute node's ``stats``
STATS_KEY = 'gpu_ext'


@dataclasses.dataclass(frozen=True)
class NodeSummary:
    """One NUMA node; ``cpus``/``mem_mb`` None = size unknown."""

    id: int
    socket: Optional[int] = None
    cpus: Optional[int] = None
    mem_mb: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class GPUSummary:
    """One physical GPU function (VFs counted on their PF); None = not
    published. ``rp``: its provider; ``used``: devices in use (builds in
    flight too); ``type``: the mdev type Nova allocates; ``vf_rps``: its VFs'
    providers (SR-IOV vGPU); ``min_share``: its residents' largest."""

    addr: str
    kind: Optional[str] = None
    node: Optional[int] = None
    socket: Optional[int] = None
    vendor: Optional[str] = None
    device: Optional[str] = None
    mdev_types: Optional[Mapping[str, Optional[int]]] = None
    mdevs: Optional[int] = None
    mdevs_by_type: Optional[Mapping[str, int]] = None
    mig_types: Optional[tuple[str, ...]] = None
    vfs: Optional[int] = None
    pf: Optional[str] = None
    render: Optional[str] = None
    rp: Optional[str] = None
    vf_rps: Optional[tuple[str, ...]] = None
    used: Optional[int] = None
    type: Optional[str] = None
    min_share: Optional[float] = None
    bar64: Optional[int] = None  # bytes of 64-bit window it takes
    vf_device: Optional[str] = None  # its VFs' device id (PCI aliases)

    @functools.cached_property
    def providers(self) -> tuple[str, ...]:
        """Its placement providers (own, and its VFs' for SR-IOV vGPU)."""
        return tuple(p for p in ((self.rp,) + (self.vf_rps or ())) if p)

    @functools.cached_property
    def shape(self) -> tuple[Any, ...]:
        """Every published fact but its providers and its use (``rp``,
        ``vf_rps``, ``used``): equal for the same GPU model in the same
        slot of hosts of the same hardware, whatever their UUIDs. What a
        decision about the GPU may depend on, with the tenants counted."""
        return tuple(_hashable(getattr(self, f.name))
                     for f in dataclasses.fields(self)
                     if f.name not in _NOT_SHAPE)

    @property
    def is_vf(self) -> bool:
        return self.kind == 'vf'

    @property
    def is_pf(self) -> bool:
        return self.kind == 'pf'


@dataclasses.dataclass(frozen=True)
class RenderNodeSummary:
    """One DRM render node, its ``guests`` and whether ``present``."""

    name: str
    path: Optional[str] = None
    node: Optional[int] = None
    pci: Optional[str] = None
    guests: Optional[int] = None
    present: Optional[bool] = None

    @property
    def usable(self) -> bool:
        """An older compute that did not say counts as present."""
        return self.present is not False


@dataclasses.dataclass(frozen=True)
class HostSummary:
    """A host's published GPU facts (see the module docstring). None is
    unknown: ``render_nodes``, ``gl`` (the compute checks), and
    ``address_limits`` (``addr``: CPU and IOMMU address bits, 1 GiB pages);
    ``partial``: why facts were dropped; ``problems``: each one found."""

    version: Optional[int] = VERSION
    nodes: tuple[NodeSummary, ...] = ()
    gpus: tuple[GPUSummary, ...] = ()
    render_nodes: Optional[tuple[RenderNodeSummary, ...]] = ()
    warnings: int = 0
    gl: Optional[Mapping[str, bool]] = None
    address_limits: Optional[address_space.HostLimits] = None
    partial: Optional[str] = None
    problems: tuple[str, ...] = ()

    # -- reading -----------------------------------------------------------

    @property
    def is_partial(self) -> bool:
        """Was anything dropped (let the compute decide)?"""
        return bool(self.partial)

    @property
    def knows_render_nodes(self) -> bool:
        return self.render_nodes is not None

    @functools.cached_property
    def by_provider(self) -> Mapping[str, GPUSummary]:
        """Physical GPUs by placement provider UUID (a PF whose VFs are
        mdev parents by its VFs' providers too: the bound is per GPU)."""
        return {rp: g for g in self.gpus for rp in g.providers}

    @functools.cached_property
    def provider_gpus(self) -> tuple[GPUSummary, ...]:
        """The physical GPUs with a provider, each once, in the order of
        :attr:`by_provider`."""
        seen: dict[str, GPUSummary] = {}
        for g in self.by_provider.values():
            seen.setdefault(g.addr, g)
        return tuple(seen.values())

    @functools.cached_property
    def device_nodes(self) -> tuple[tuple[Optional[str], Optional[str],
                                          Optional[int]], ...]:
        """``(vendor, device, node)`` of every published GPU, and of its
        VFs' device id (``vf_device``): what a PCI alias may name."""
        out = []
        for g in self.gpus:
            out.append((g.vendor, g.device, g.node))
            if g.vf_device:
                out.append((g.vendor, g.vf_device, g.node))
        return tuple(out)

    @functools.cached_property
    def node_sockets(self) -> Mapping[int, Optional[int]]:
        return {n.id: n.socket for n in self.nodes}

    @property
    def physical_gpu_count(self) -> int:
        return sum(1 for g in self.gpus if not g.is_vf)

    def gpus_of(self, providers: Any) -> list[GPUSummary]:
        """The physical GPUs behind ``providers`` (an allocation
        candidate's ``allocations`` keys)."""
        by_provider = self.by_provider
        return [by_provider[rp] for rp in providers if rp in by_provider]

    def usable_render_nodes(self) -> tuple[list[RenderNodeSummary],
                                           list[str]]:
        """(render nodes whose device exists, reasons for the others)."""
        usable, missing = [], []
        for r in self.render_nodes or ():
            if r.usable:
                usable.append(r)
            else:
                missing.append('render node %s: %s does not exist on the '
                               'host' % (r.name, r.path))
        return usable, missing

    # -- writing -----------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form (the keys the compute publishes; what the
        reader found, ``partial`` and ``problems``, is not published)."""
        out: dict[str, Any] = {
            'v': self.version,
            'nodes': [wire.as_dict(n, 'nodes') for n in self.nodes],
            'gpus': [wire.as_dict(g, 'gpus') for g in self.gpus],
        }
        if self.render_nodes is not None:
            out['render_nodes'] = [wire.as_dict(r, 'render_nodes')
                                   for r in self.render_nodes]
        out['warnings'] = self.warnings
        if self.gl is not None:
            out['gl'] = dict(self.gl)
        if self.address_limits is not None:
            limits = self.address_limits
            out['addr'] = [limits.cpu_bits, limits.iommu_bits,
                           limits.page_1g]
        return out

    def to_stats(self) -> str:
        """The value published in ``stats[STATS_KEY]``."""
        return json.dumps(self.to_dict(), sort_keys=True,
                          separators=(',', ':'))

    @classmethod
    def from_stats(cls, stats: Any) -> Optional['HostSummary']:
        """The summary in a compute node's ``stats``, or None (the host
        does not run nova-gpu-ext). Never raises: unreadable is partial."""
        raw = stats.get(STATS_KEY) if isinstance(stats, dict) else None
        if not raw:
            return None
        if isinstance(raw, dict):
            return cls.from_dict(raw)
        try:
            decoded = json.loads(raw)
        except (TypeError, ValueError):
            return unusable('not JSON')
        return cls.from_dict(decoded)

    @classmethod
    def from_dict(cls, raw: Any) -> 'HostSummary':
        """The summary of a decoded value of any version (see the module
        docstring for what is kept, dropped and marked partial)."""
        if not isinstance(raw, dict):
            return unusable('not a JSON object (%s)' % type(raw).__name__)
        problems: list[str] = []
        if 'nodes' not in raw:
            # Node sizes unknown: the filter would see no room at all.
            problems.append('no nodes')
        nodes = tuple(_entries(raw, 'nodes', problems))
        gpus = tuple(_entries(raw, 'gpus', problems))
        render = (tuple(_entries(raw, 'render_nodes', problems))
                  if 'render_nodes' in raw else None)
        node_ids = {n.id for n in nodes}
        for key, located in (('gpus', gpus), ('render_nodes', render or ())):
            for index, entry in enumerate(located):
                if entry.node is not None and entry.node not in node_ids:
                    problems.append('%s[%d] is on node %d, which nodes does '
                                    'not list' % (key, index, entry.node))
        gl = raw.get('gl')
        if gl is not None and not (isinstance(gl, dict) and all(
                isinstance(v, bool) for v in gl.values())):
            problems.append('gl is %r' % (gl,))
            gl = None
        limits = raw.get('addr')
        if limits is not None:
            if isinstance(limits, list) and len(limits) == 3 and \
                    wire.int_or_none(limits[0]) and \
                    wire.int_or_none(limits[1]) and \
                    (limits[2] is None or wire.is_bool(limits[2])):
                limits = address_space.HostLimits(*limits)
            else:
                problems.append('addr is %r' % (limits,))
                limits = None
        version = raw.get('v')
        return cls(version=version if wire.is_int(version) else None,
                   nodes=nodes, gpus=gpus, render_nodes=render,
                   warnings=(raw['warnings']
                             if wire.count(raw.get('warnings')) else 0),
                   gl=gl, address_limits=limits,
                   partial='; '.join(problems) or None,
                   problems=tuple(problems))


def unusable(reason: str) -> HostSummary:
    """A host that runs nova-gpu-ext but whose facts cannot be read:
    nothing known, everything left to the compute."""
    return HostSummary(version=None, render_nodes=None, partial=reason,
                       problems=(reason,))


# -- reading entries ------------------------------------------------------

#: GPUSummary fields that name a host's providers or its current use
_NOT_SHAPE = frozenset(('rp', 'vf_rps', 'used'))


def _hashable(value: Any) -> Any:
    """A mapping as sorted items (the shape of a GPU is a dict key)."""
    if isinstance(value, Mapping):
        return tuple(sorted(value.items()))
    return value


_KINDS: dict[str, Any] = {'nodes': NodeSummary, 'gpus': GPUSummary,
                          'render_nodes': RenderNodeSummary}


def _entries(raw: dict[str, Any], key: str,
             problems: list[str]) -> list[Any]:
    entries = raw.get(key, [])
    if not isinstance(entries, list):
        problems.append('%s is not a list' % key)
        return []
    out = []
    cls = _KINDS[key]
    for index, entry in enumerate(entries):
        fields = wire.fields(key, index, entry, problems)
        if fields is not None:
            out.append(cls(**fields))
    return out
