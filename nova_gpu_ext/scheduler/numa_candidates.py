"""The scheduler's side of a GPU guest's NUMA cells (the claim's twin).

Layer rule: adapter. The compute claim (:mod:`nova_gpu_ext.virt.numa_claim`)
fits every GPU guest's NUMA cells with Nova's fit steered to the GPU's node: a
guest with its own topology (``hw:numa_nodes``, pinning, huge pages), and a GPU
guest without one, which gets Nova's ``hw:numa_nodes=1`` topology. Here the
scheduler runs the same steered fit
(:func:`nova_gpu_ext.nova_glue.numa_fit.fit`, with the host's ``NUMATopology``,
PCI stats and allocation ratios) for each allocation candidate:

* it keeps the candidates whose cells fit where the policy allows (a
  one-cell ``preferred`` guest that fits nowhere is kept: it runs unbound),
  NUMA-local ones first;
* it records the fitted cells of each kept candidate on the ``HostState``
  (:func:`fitted_for`) and sets ``limits['numa_topology']`` as
  ``NUMATopologyFilter`` does, so that when Nova's scheduler picks the host
  its ``consume_from_request`` counts the cells Nova's claim will take
  (:mod:`nova_gpu_ext.scheduler.numa_consume`): in a multi-create the next
  instance sees them.

Where the cells may go: a vGPU guest by its candidate's physical GPU, a
render-node guest (virgl) by the host's render nodes with room, a guest with
a GPU from a PCI alias by Nova's own PCI NUMA policy inside the fit.
"""

from oslo_log import log as logging

from nova_gpu_ext import conf as gpu_conf
from nova_gpu_ext.nova_glue import numa_fit
from nova_gpu_ext.nova_glue import request_inputs
from nova_gpu_ext.core import numa_books

LOG = logging.getLogger(__name__)
CONF = gpu_conf.CONF

#: the HostState attribute the fits of the current request are kept in
ATTRIBUTE = 'gpu_ext_numa_fit'


def pci_gpu(spec_obj, summary):
    """Does a PCI request of the guest ask for a GPU this host published
    (:func:`numa_books.wants_gpu_device`, the claim's rule)?"""
    gpus = summary.device_ids
    requests = getattr(getattr(spec_obj, 'pci_requests', None), 'requests',
                       None) or ()
    return numa_books.wants_gpu_device(
        gpus, [s for r in requests for s in (r.spec or ())])


def _render_nodes(summary):
    limit = CONF.gpu_ext.render_node_max_guests
    return numa_books.render_nodes_with_room(
        [(r.name, r.node, r.guests or 0, limit)
         for r in summary.render_nodes or () if r.usable])


def requested_topology(spec_obj, request, policy, pci):
    """(topology to fit, synthetic?) for this request on this host, or
    (None, False) when the claim leaves the guest to upstream. ``pci``:
    :func:`pci_gpu` of the request on this host."""
    own = getattr(spec_obj, 'numa_topology', None)
    gpu = bool(request.vgpus) or (bool(request.pci_aliases) and pci)
    if not (gpu or request.wants_render_node):
        return None, False
    if own is not None:
        if not (request.vgpus or (request.wants_render_node and not gpu)):
            return None, False      # Nova's own fit and PCI policy decide
        return own, False
    if not numa_books.wants_one_cell(policy, True, False):
        return None, False
    return numa_fit.one_cell_topology(
        spec_obj.flavor, request_inputs.field(spec_obj, 'image')), True


def filter_candidates(host_filter, host_state, spec_obj, request, policy,
                      summary, reasons):
    """Keep and order candidates; False when none can hold the cells."""
    setattr(host_state, ATTRIBUTE, None)
    host_topology = getattr(host_state, 'numa_topology', None)
    if not host_topology:
        return True
    pci = pci_gpu(spec_obj, summary)
    requested, synthetic = requested_topology(spec_obj, request, policy, pci)
    if not requested:
        return True
    if request.vgpus and not summary.by_provider:
        return True     # no provider map yet: the compute enforces it
    nodes = dict(summary.node_sockets) or \
        {c.id: None for c in host_topology.cells}
    limits = numa_fit.limits(host_state.cpu_allocation_ratio,
                             host_state.ram_allocation_ratio)
    pci_requests = getattr(getattr(spec_obj, 'pci_requests', None),
                           'requests', None)
    render = None
    if not request.vgpus and request.wants_render_node and not pci:
        render = numa_books.steer_render(policy, len(requested.cells),
                                         list(nodes), nodes,
                                         _render_nodes(summary))
    cache = {}

    def steering_of(candidate):
        if render is not None:
            return ('render',), render
        gpu_nodes = tuple(g.node for g in summary.gpus_of(
            candidate.get('allocations', {})))
        return gpu_nodes, numa_fit.steering_for(policy, requested, nodes,
                                                gpu_nodes)

    def verdict(candidate):
        gpu_nodes, steering = steering_of(candidate)
        mappings = candidate.get('mappings')
        # PCI in placement: the fit depends on the candidate's mapping.
        key = (gpu_nodes, id(candidate) if pci_requests else None)
        if key not in cache:
            local = numa_books.Steering(steering.subsets, False,
                                        steering.reason)
            fitted = numa_fit.fit(host_topology, requested, local, limits,
                                  pci_requests, host_state.pci_stats,
                                  mappings)
            is_local = fitted is not None and bool(steering.subsets)
            if fitted is None and steering.anywhere:
                fitted = numa_fit.fit(
                    host_topology, requested, numa_books.ANYWHERE, limits,
                    pci_requests, host_state.pci_stats, mappings)
            keep = fitted is not None or (
                synthetic and not numa_books.refuse_without_cell(policy))
            if not keep:
                reasons.append('no NUMA cell of the guest fits on %s (%s)' % (
                    'a render node\'s node' if render is not None else
                    'GPU node %s' % ','.join(map(str, gpu_nodes)),
                    steering.reason))
            cache[key] = (keep, is_local, fitted)
        return cache[key]

    fits = []
    kept = host_filter.filter_candidates(host_state,
                                         lambda c: verdict(c)[0])
    host_state.allocation_candidates = sorted(
        kept, key=lambda c: not verdict(c)[1])
    for candidate in host_state.allocation_candidates:
        fits.append((candidate, verdict(candidate)[2]))
    if not kept:
        return False
    setattr(host_state, ATTRIBUTE, (
        getattr(spec_obj, 'instance_uuid', None),
        requested if synthetic else None, fits))
    host_state.limits['numa_topology'] = limits
    return True


def fitted_for(host_state, spec_obj):
    """(fitted cells, synthetic topology or None) the filter recorded for
    the candidate Nova claims (``allocation_candidates[0]``) of this
    request, or None when it recorded none (upstream's consume applies)."""
    recorded = getattr(host_state, ATTRIBUTE, None)
    candidates = getattr(host_state, 'allocation_candidates', None)
    if not recorded or not candidates or \
            recorded[0] != getattr(spec_obj, 'instance_uuid', None):
        return None
    for candidate, fitted in recorded[2]:
        if candidate is candidates[0]:
            return fitted, recorded[1]
    return None
