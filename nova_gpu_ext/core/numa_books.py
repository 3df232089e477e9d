"""Which host NUMA cells a GPU guest's NUMA cells may be fitted on.

Layer rule: pure core. No Nova, no I/O, no CONF; values in, a decision
(that says why) out.

Every GPU guest nova-gpu-ext places on a node is a NUMA guest in Nova's
books: a guest without a NUMA topology of its own gets a one-cell topology
(unless its policy is ``legacy``), and Nova's own fit
(``numa_fit_instance_to_host``) places the cells. On which *subsets* of host
nodes Nova's fit may be tried, in order, so that the cell holding the GPU is
on the GPU's node, is the NUMA rule's (:func:`numa.steer`,
:func:`numa.steer_any`, :func:`numa.steer_render` in
:mod:`nova_gpu_ext.core.numa`, re-exported here for the books' callers);
this module keeps the books' other facts: which PCI requests ask for a GPU,
which render nodes have room, which nodes are overcommitted.

The adapter (``nova_gpu_ext.nova_glue.numa_fit``) runs Nova's fit on each
subset in turn, at the scheduler and at the compute claim, so both decide
alike.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

from nova_gpu_ext.core import affinity


def gpu_nodes(gpus: Sequence[tuple[str, str, Optional[int]]],
              pci_specs: Sequence[Mapping[str, object]]
              ) -> Optional[list[Optional[int]]]:
    """The NUMA nodes of the host GPUs a guest's PCI request specs (Nova's
    ``InstancePCIRequest.spec`` dicts) may get, in ``gpus`` order, or None
    when no spec asks for a host GPU (a NIC or licence alias). ``gpus``:
    ``(vendor, product, node)`` as 4-digit hex, one per device id a GPU
    offers (a PF's VFs have their own)."""
    wanted = {(str(spec.get('vendor_id', '')).lower(),
               str(spec.get('product_id', '')).lower())
              for spec in pci_specs}
    nodes = [node for vendor, product, node in gpus
             if (vendor, product) in wanted]
    return nodes or None


def wants_gpu_device(gpus: "set[tuple[str, str]]",
                     pci_specs: Sequence[Mapping[str, object]]) -> bool:
    """Does one of a guest's PCI request specs ask for a host GPU?
    ``gpus``: the host GPUs' ``(vendor, product)`` as 4-digit hex."""
    return gpu_nodes([(v, p, None) for v, p in gpus], pci_specs) is not None


def render_nodes_with_room(slots: Sequence[tuple[str, Optional[int], int,
                                                 int]]) -> list[int]:
    """The host nodes of render nodes that can take one more guest, the
    node of the least-used render node first. ``slots``: ``(name, node,
    guests, limit)`` of the present render nodes (``limit`` 0: none)."""
    usable = sorted((guests, name, node) for name, node, guests, limit
                    in slots if node is not None and
                    affinity.has_room(guests, limit))
    out: list[int] = []
    for _guests, _name, node in usable:
        if node not in out:
            out.append(node)
    return out


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
