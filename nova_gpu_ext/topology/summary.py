"""Placement traits a compute sets on its GPU providers.

Layer rule: pure (no I/O, no Nova). :func:`gpu_traits`: placement traits
for each physical GPU's resource provider (``CUSTOM_GPU_NUMA_NODE_<n>``,
``CUSTOM_GPU_SOCKET_<n>``, or ``CUSTOM_GPU_NUMA_UNKNOWN``), so an operator
can see locality in ``openstack resource provider trait list`` and a
request can require it. The other form of the same facts, the host summary
in the compute node's ``stats``, is :mod:`nova_gpu_ext.core.summary`.
"""

import re

from nova_gpu_ext import model
from nova_gpu_ext.topology import health

NUMA_TRAIT = 'CUSTOM_GPU_NUMA_NODE_%d'
SOCKET_TRAIT = 'CUSTOM_GPU_SOCKET_%d'
UNKNOWN_NUMA_TRAIT = 'CUSTOM_GPU_NUMA_UNKNOWN'
#: The traits this project sets on GPU providers, hence the only ones it
#: ever removes: an operator's own ``CUSTOM_GPU_A100`` is left alone.
OWNED_TRAITS = re.compile(
    r'^CUSTOM_GPU_(NUMA_NODE_\d+|SOCKET_\d+|NUMA_UNKNOWN)$')


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
