"""Which host NUMA cells a GPU guest's NUMA cells may be fitted on.

Layer rule: pure core. No Nova, no I/O, no CONF; values in, a decision
(that says why) out.

Every GPU guest nova-gpu-ext places on a node is a NUMA guest in Nova's
books: a guest without a NUMA topology of its own gets a one-cell topology
(unless its policy is ``legacy``), and Nova's own fit
(``numa_fit_instance_to_host``) places the cells. This module only says on
which *subsets* of host nodes Nova's fit may be tried, in order, so that the
cell holding the GPU is on the GPU's node:

* ``required``: subsets that contain the node of every GPU of the guest;
* ``socket``: subsets that contain the GPU's node, then subsets that
  contain another node of the GPU's socket;
* ``preferred``: subsets that contain the GPU's node, then anywhere;
* ``legacy`` (and guests whose devices Nova's PCI NUMA policy places):
  anywhere, as upstream.

The adapter (``nova_gpu_ext.nova_glue.numa_fit``) runs Nova's fit on each
subset in turn, at the scheduler and at the compute claim, so both decide
alike.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Mapping, Optional, Sequence

from nova_gpu_ext.core import affinity


@dataclasses.dataclass(frozen=True)
class Steering:
    """Host-node subsets to fit the guest's cells on, best first."""

    subsets: tuple[tuple[int, ...], ...]
    #: after the subsets, may the cells go anywhere (Nova's own choice)?
    anywhere: bool
    reason: str

    @property
    def refuses_everything(self) -> bool:
        return not self.subsets and not self.anywhere


ANYWHERE = Steering((), True, 'no GPU NUMA constraint (Nova chooses)')


def steer(policy: str, cells: int, node_ids: Sequence[int],
          sockets: Mapping[int, Optional[int]],
          gpu_nodes: Sequence[Optional[int]]) -> Steering:
    """Where a guest with ``cells`` NUMA cells using GPUs on ``gpu_nodes``
    (first GPU first) may have its cells, under ``policy``."""
    policy = policy if policy in affinity.POLICIES else \
        affinity.DEFAULT_POLICY
    if policy == 'legacy' or not gpu_nodes:
        return ANYWHERE
    first = gpu_nodes[0]
    ids = sorted(set(node_ids))
    if first is None or first not in ids:
        if policy in ('required', 'socket'):
            return Steering((), False, 'GPU NUMA node unknown; policy %s '
                            'needs it' % policy)
        return Steering((), True, 'GPU NUMA node unknown (preferred)')
    needed = {first}
    if policy == 'required':
        needed |= {n for n in gpu_nodes if n is not None}
    combos = list(itertools.combinations(ids, max(1, cells)))
    home = tuple(c for c in combos if needed <= set(c))
    what = 'node %s' % ','.join(str(n) for n in sorted(needed))
    if policy == 'required':
        return Steering(home, False, 'cells on %s (required)' % what)
    if policy == 'socket':
        socket = sockets.get(first)
        if socket is None:
            return Steering(home, False, 'cells on %s; socket unknown '
                            '(socket)' % what)
        same = tuple(c for c in combos if c not in home and any(
            sockets.get(n) == socket for n in c))
        return Steering(home + same, False, 'cells on %s, else on socket '
                        '%s (socket)' % (what, socket))
    return Steering(home, True, 'cells on %s if they fit, else anywhere '
                    '(preferred)' % what)


def wants_gpu_device(gpus: "set[tuple[str, str]]",
                     pci_specs: Sequence[Mapping[str, object]]) -> bool:
    """Does one of a guest's PCI request specs (Nova's ``InstancePCIRequest
    .spec`` dicts) ask for a host GPU? ``gpus``: the host GPUs' ``(vendor,
    product)`` as 4-digit hex. A NIC or licence alias does not."""
    for spec in pci_specs:
        key = (str(spec.get('vendor_id', '')).lower(),
               str(spec.get('product_id', '')).lower())
        if key in gpus:
            return True
    return False


def render_nodes_with_room(slots: Sequence[tuple[str, Optional[int], int,
                                                 int]]) -> list[int]:
    """The host nodes of render nodes that can take one more guest, the
    node of the least-used render node first. ``slots``: ``(name, node,
    guests, limit)`` of the present render nodes (``limit`` 0: none)."""
    usable = sorted((guests, name, node) for name, node, guests, limit
                    in slots if node is not None and
                    (not limit or guests < limit))
    out: list[int] = []
    for _guests, _name, node in usable:
        if node not in out:
            out.append(node)
    return out


def steer_render(policy: str, cells: int, node_ids: Sequence[int],
                 sockets: Mapping[int, Optional[int]],
                 render_nodes: Sequence[int]) -> Steering:
    """Where a render-node guest (virgl, no GPU device) may have its cells:
    like :func:`steer` with the GPU's node replaced by any node in
    ``render_nodes`` (:func:`render_nodes_with_room`, best first). Without
    a render node with room, ``required``/``socket`` refuse and
    ``preferred`` lets Nova choose (the driver then takes a remote render
    node, as before)."""
    policy = policy if policy in affinity.POLICIES else \
        affinity.DEFAULT_POLICY
    if policy == 'legacy':
        return ANYWHERE
    if not render_nodes:
        return Steering((), policy == 'preferred', 'no render node has room '
                        '(%s)' % policy)
    home: list[tuple[int, ...]] = []
    near: list[tuple[int, ...]] = []
    for node in render_nodes:
        for subset in steer('required', cells, node_ids, sockets,
                            [node]).subsets:
            if subset not in home:
                home.append(subset)
        if policy == 'socket':
            near += [s for s in steer('socket', cells, node_ids, sockets,
                                      [node]).subsets if s not in near]
    subsets = tuple(home + [s for s in near if s not in home])
    what = 'a render node\'s node (%s)' % ','.join(map(str, render_nodes))
    if policy == 'preferred':
        return Steering(subsets, True, 'cells on %s if they fit, else '
                        'anywhere (preferred)' % what)
    return Steering(subsets, False, 'cells on %s%s (%s)' % (
        what, ', else on its socket' if policy == 'socket' else '', policy))


def wants_one_cell(policy: str, wants_devices: bool,
                   has_topology: bool) -> bool:
    """Does a GPU guest without a NUMA topology get a one-cell topology?"""
    return wants_devices and not has_topology and policy != 'legacy'


def refuse_without_cell(policy: str) -> bool:
    """A one-cell guest whose cell fits nowhere allowed: refused (True) or
    run without NUMA binding (``preferred``)?"""
    return policy in ('required', 'socket')


@dataclasses.dataclass(frozen=True)
class NodeUse:
    """One host node's capacity and what is committed on it (MiB, CPUs)."""

    id: int
    memory_mb: int
    memory_used_mb: int
    cpus: int
    cpus_used: float
    ram_ratio: float = 1.0
    cpu_ratio: float = 1.0

    @property
    def memory_over_mb(self) -> float:
        return self.memory_used_mb - self.memory_mb * self.ram_ratio

    @property
    def overcommitted(self) -> bool:
        return self.memory_over_mb > 0 or \
            self.cpus_used > self.cpus * self.cpu_ratio


def overcommitted(nodes: Sequence[NodeUse]) -> list[NodeUse]:
    """The nodes committed beyond their capacity (with the ratios)."""
    return [n for n in nodes if n.overcommitted]
