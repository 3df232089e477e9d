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

from nova_gpu_ext import model

SUMMARY_VERSION = 1
NUMA_TRAIT = 'CUSTOM_GPU_NUMA_NODE_%d'
SOCKET_TRAIT = 'CUSTOM_GPU_SOCKET_%d'
UNKNOWN_NUMA_TRAIT = 'CUSTOM_GPU_NUMA_UNKNOWN'


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
    from nova_gpu_ext.topology import health
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
    if gpu.kind is model.GPUKind.PF:
        entry['vfs'] = gpu.sriov_numvfs or 0
    if gpu.physfn is not None:
        entry['pf'] = str(gpu.physfn)
    if gpu.render_node:
        entry['render'] = gpu.render_node
    return entry


def host_summary(topology: model.HostTopology) -> dict:
    """The compact host view published in compute node stats."""
    return {
        'v': SUMMARY_VERSION,
        'nodes': [{'id': n.id, 'socket': n.socket, 'cpus': len(n.cpus),
                   'mem_mb': n.memory_mb} for n in topology.numa_nodes],
        # VFs are summarised on their PF (count), not listed one by one:
        # a host can have hundreds and stats travel on every update.
        'gpus': [gpu_summary(g) for g in topology.gpus
                 if g.kind is not model.GPUKind.VF],
        'render_nodes': [{'name': r.name, 'path': r.path, 'node': r.numa_node,
                          'pci': str(r.pci_address) if r.pci_address
                          else None}
                         for r in topology.render_nodes],
        'warnings': len(topology.warnings),
    }
