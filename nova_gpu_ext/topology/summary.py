"""What a compute publishes about its GPUs for the scheduler to read.

Layer rule: pure (no I/O, no Nova). Two forms of the same facts:

* :func:`host_summary`: a compact JSON-able dict that the driver puts in the
  compute node's ``stats`` (``gpu_ext`` key), so filters and weighers see it
  as ``HostState.stats`` without extra placement calls.
* :func:`gpu_traits`: placement traits for each physical GPU's resource
  provider (``CUSTOM_GPU_NUMA_NODE_<n>``, ``CUSTOM_GPU_SOCKET_<n>``, or
  ``CUSTOM_GPU_NUMA_UNKNOWN``), so an operator can see locality in
  ``openstack resource provider trait list`` and a request can require it.
"""

import re

from nova_gpu_ext import model
from nova_gpu_ext.topology import health

SUMMARY_VERSION = 1
NUMA_TRAIT = 'CUSTOM_GPU_NUMA_NODE_%d'
SOCKET_TRAIT = 'CUSTOM_GPU_SOCKET_%d'
UNKNOWN_NUMA_TRAIT = 'CUSTOM_GPU_NUMA_UNKNOWN'
#: The traits this project sets on GPU providers, hence the only ones it
#: ever removes: an operator's own ``CUSTOM_GPU_A100`` is left alone.
OWNED_TRAITS = re.compile(
    r'^CUSTOM_GPU_(NUMA_NODE_\d+|SOCKET_\d+|NUMA_UNKNOWN)$')


#: NVIDIA names MIG-backed vGPU types ``<GPU>-<slices>-<GB><series>``
#: (``A100-1-5C``), time-sliced ones ``<GPU>-<GB><series>`` (``A100-4C``).
MIG_LABEL = re.compile(r'-\d+-\d+[A-Z]+$')


def is_mig_backed(mtype: model.MdevType) -> bool:
    """A MIG-backed vGPU type: each instance has its own GPU slices, so
    its tenants are not time-sliced against each other."""
    return bool(mtype.label and MIG_LABEL.search(mtype.label.strip()))


def is_owned_trait(name: str) -> bool:
    """Whether ``name`` is a trait nova-gpu-ext sets (and may remove)."""
    return bool(OWNED_TRAITS.match(name))


def gpu_traits(topology: model.HostTopology, gpu: model.GPU) -> set[str]:
    """Locality (and health) traits of one GPU function's resource
    provider."""
    if gpu.numa_node is None:
        return {UNKNOWN_NUMA_TRAIT} | health_traits(topology, gpu)
    traits = {NUMA_TRAIT % gpu.numa_node}
    if gpu.socket is not None:
        traits.add(SOCKET_TRAIT % gpu.socket)
    return traits | health_traits(topology, gpu)


def health_traits(topology: model.HostTopology, gpu: model.GPU) -> set[str]:
    """``CUSTOM_GPU_LINK_DEGRADED`` etc. (see :mod:`.health`); a VF has
    its PF's."""
    return health.traits(topology.health_of(gpu.physfn or gpu.address))


def gpu_summary(gpu: model.GPU) -> dict:
    entry = {
        'addr': str(gpu.address),
        'kind': gpu.kind.value,
        'node': gpu.numa_node,
        'socket': gpu.socket,
        'vendor': '%04x' % gpu.vendor_id,
        'device': '%04x' % gpu.device_id,
    }
    if gpu.mdev_types:
        entry['mdev_types'] = {
            t.name: t.available_instances for t in gpu.mdev_types}
        entry['mdevs'] = len(gpu.mdevs)
        by_type: dict[str, int] = {}
        for mdev in gpu.mdevs:
            if mdev.type_name:
                by_type[mdev.type_name] = by_type.get(mdev.type_name, 0) + 1
        # Created mdevs, used or free, per type: the kernel's
        # available_instances leaves them out (decide.capacity).
        entry['mdevs_by_type'] = by_type
        mig = sorted(t.name for t in gpu.mdev_types if is_mig_backed(t))
        if mig:
            entry['mig_types'] = mig
    if gpu.kind is model.GPUKind.PF:
        entry['vfs'] = gpu.sriov_numvfs or 0
    if gpu.physfn is not None:
        entry['pf'] = str(gpu.physfn)
    if gpu.render_node:
        entry['render'] = gpu.render_node
    return entry


def _with_vf_device(topology: model.HostTopology, entry: dict,
                    gpu: model.GPU) -> dict:
    # A PCI alias may name the VFs' device id (not the PF's): the scheduler
    # tells it is one of the host's GPUs by it (numa_books.gpu_nodes).
    for vf in gpu.vfs[:1]:
        function = topology.gpu(vf)
        if function is not None:
            entry['vf_device'] = '%04x' % function.device_id
    return entry


def host_summary(topology: model.HostTopology) -> dict:
    """The compact host view published in compute node stats."""
    return {
        'v': SUMMARY_VERSION,
        'nodes': [{'id': n.id, 'socket': n.socket, 'cpus': len(n.cpus),
                   'mem_mb': n.memory_mb} for n in topology.numa_nodes],
        # VFs are summarised on their PF (count), not listed one by one:
        # a host can have hundreds and stats travel on every update.
        'gpus': [_with_vf_device(topology, gpu_summary(g), g)
                 for g in topology.gpus if g.kind is not model.GPUKind.VF],
        'render_nodes': [{'name': r.name, 'path': r.path, 'node': r.numa_node,
                          'pci': str(r.pci_address) if r.pci_address
                          else None}
                         for r in topology.render_nodes],
        'warnings': len(topology.warnings),
    }
