"""The scheduler's side of a NUMA guest's cell on its vGPU's node.

Layer rule: adapter. For a guest that has its own NUMA topology
(``hw:numa_nodes``, CPU pinning, huge pages) and a vGPU, keeps the host's
allocation candidates whose physical GPU can have a guest cell on its node
under the policy, NUMA-local candidates first, by running the same steered
Nova fit the compute claim runs (:func:`nova_gpu_ext.numa_fit.fit`, with the
host's ``NUMATopology``, PCI stats and allocation ratios). Devices from a PCI
alias are placed by Nova's own PCI NUMA policy in ``NUMATopologyFilter``.
"""

from oslo_log import log as logging

from nova_gpu_ext import numa_fit
from nova_gpu_ext.placement import numa_books
from nova_gpu_ext.scheduler import request as sched_request

LOG = logging.getLogger(__name__)


def filter_candidates(host_filter, host_state, spec_obj, request, policy,
                      summary, reasons):
    """Keep and order candidates; False when none can hold the cells."""
    requested = getattr(spec_obj, 'numa_topology', None)
    host_topology = getattr(host_state, 'numa_topology', None)
    if not (request.vgpus and requested and host_topology):
        return True
    by_provider = sched_request.gpus_by_provider(summary)
    if not by_provider:
        return True     # no provider map yet: the compute enforces it
    nodes = {n['id']: n.get('socket') for n in summary.get('nodes', ())} or \
        {c.id: None for c in host_topology.cells}
    limits = numa_fit.limits(host_state.cpu_allocation_ratio,
                             host_state.ram_allocation_ratio)
    pci_requests = getattr(getattr(spec_obj, 'pci_requests', None),
                           'requests', None)
    cache = {}

    def verdict(candidate):
        gpu_nodes = tuple(g.get('node') for g in sched_request.candidate_gpus(
            candidate, by_provider))
        if not gpu_nodes:
            return True, False
        if gpu_nodes not in cache:
            steering = numa_fit.steering_for(policy, requested, nodes,
                                             gpu_nodes)
            local = numa_books.Steering(steering.subsets, False,
                                        steering.reason)
            fits_local = numa_fit.fit(
                host_topology, requested, local, limits, pci_requests,
                host_state.pci_stats, candidate.get('mappings')) is not None
            fits = fits_local or (steering.anywhere and numa_fit.fit(
                host_topology, requested, numa_books.ANYWHERE, limits,
                pci_requests, host_state.pci_stats,
                candidate.get('mappings')) is not None)
            if not fits:
                reasons.append('no NUMA cell of the guest fits on GPU node '
                               '%s (%s)' % (','.join(map(str, gpu_nodes)),
                                            steering.reason))
            cache[gpu_nodes] = (fits, fits_local)
        return cache[gpu_nodes]

    kept = host_filter.filter_candidates(
        host_state, lambda c: verdict(c)[0])
    host_state.allocation_candidates = sorted(
        kept, key=lambda c: not verdict(c)[1])
    return bool(kept)
