"""Build the typed host summary from a discovered host (compute side).

Layer rule: pure core (no Nova, oslo, CONF or I/O). The summary itself,
its keys and versions, is :mod:`nova_gpu_ext.core.summary`.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from nova_gpu_ext.core import address_space
from nova_gpu_ext.core.summary import GPUSummary
from nova_gpu_ext.core.summary import HostSummary
from nova_gpu_ext.core.summary import NodeSummary
from nova_gpu_ext.core.summary import RenderNodeSummary
from nova_gpu_ext.core.summary import VERSION
from nova_gpu_ext import model

#: NVIDIA names MIG-backed vGPU types ``<GPU>-<slices>-<GB><series>``
#: (``A100-1-5C``), time-sliced ones ``<GPU>-<GB><series>`` (``A100-4C``).
MIG_LABEL = re.compile(r'-\d+-\d+[A-Z]+$')


def is_mig_backed(mtype: model.MdevType) -> bool:
    """A MIG-backed vGPU type: each instance has its own GPU slices, so
    its tenants are not time-sliced against each other."""
    return bool(mtype.label and MIG_LABEL.search(mtype.label.strip()))


def gpu_from_model(gpu: model.GPU) -> GPUSummary:
    """One GPU function as published (without what only the driver
    knows)."""
    fields: dict[str, Any] = {}
    if gpu.mdev_types:
        fields['mdev_types'] = {
            t.name: t.available_instances for t in gpu.mdev_types}
        fields['mdevs'] = len(gpu.mdevs)
        by_type: dict[str, int] = {}
        for mdev in gpu.mdevs:
            if mdev.type_name:
                by_type[mdev.type_name] = by_type.get(mdev.type_name, 0) + 1
        # Created mdevs, used or free, per type: the kernel's
        # available_instances leaves them out (decide.capacity).
        fields['mdevs_by_type'] = by_type
        mig = tuple(sorted(t.name for t in gpu.mdev_types
                           if is_mig_backed(t)))
        if mig:
            fields['mig_types'] = mig
    if gpu.kind is model.GPUKind.PF:
        fields['vfs'] = gpu.sriov_numvfs or 0
    if gpu.physfn is not None:
        fields['pf'] = str(gpu.physfn)
    if gpu.render_node:
        fields['render'] = gpu.render_node
    window = address_space.GuestDevice(str(gpu.address), gpu.bars).aperture
    if window:
        fields['bar64'] = window
    return GPUSummary(addr=str(gpu.address), kind=gpu.kind.value,
                      node=gpu.numa_node, socket=gpu.socket,
                      vendor='%04x' % gpu.vendor_id,
                      device='%04x' % gpu.device_id, **fields)


def _with_vf_device(topology: model.HostTopology, entry: GPUSummary,
                    gpu: model.GPU) -> GPUSummary:
    # A PCI alias may name the VFs' device id, not the PF's: the scheduler
    # tells it is one of the host's GPUs by it (numa_books.gpu_nodes).
    for vf in gpu.vfs[:1]:
        function = topology.gpu(vf)
        if function is not None:
            return dataclasses.replace(
                entry, vf_device='%04x' % function.device_id)
    return entry


def from_topology(topology: model.HostTopology) -> HostSummary:
    """The host's summary from its discovered topology."""
    return HostSummary(
        version=VERSION,
        nodes=tuple(NodeSummary(n.id, n.socket, len(n.cpus), n.memory_mb)
                    for n in topology.numa_nodes),
        # VFs are summarised on their PF (count), not listed one by one:
        # a host can have hundreds and stats travel on every update.
        gpus=tuple(_with_vf_device(topology, gpu_from_model(g), g)
                   for g in topology.gpus
                   if g.kind is not model.GPUKind.VF),
        render_nodes=tuple(RenderNodeSummary(
            r.name, r.path, r.numa_node,
            str(r.pci_address) if r.pci_address else None)
            for r in topology.render_nodes),
        warnings=len(topology.warnings),
        address_limits=address_space.HostLimits(
            topology.address_limits.cpu_bits,
            topology.address_limits.iommu_bits,
            topology.address_limits.page_1g))
