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
from nova_gpu_ext.core import numa
from nova_gpu_ext.nova_glue import numa_fit
from nova_gpu_ext.nova_glue import request_inputs
from nova_gpu_ext.core import numa_books

LOG = logging.getLogger(__name__)
CONF = gpu_conf.CONF

#: the HostState attribute the fits of the current request are kept in
ATTRIBUTE = 'gpu_ext_numa_fit'


def pci_gpu_nodes(spec_obj, summary):
    """NUMA nodes of the host GPUs a PCI request of the guest names, or
    None when it names none (:func:`numa_books.gpu_nodes`, the claim's
    rule): a NIC or licence alias does not make a GPU guest."""
    gpus = summary.device_nodes
    requests = getattr(getattr(spec_obj, 'pci_requests', None), 'requests',
                       None) or ()
    return numa_books.gpu_nodes(
        gpus, [s for r in requests for s in (r.spec or ())])


def _render_nodes(summary):
    limit = CONF.gpu_ext.render_node_max_guests
    return numa_books.render_nodes_with_room(
        [(r.name, r.node, r.guests or 0, limit)
         for r in summary.render_nodes or () if r.usable])


def allocates_gpu(request, candidates, by_provider):
    """Does a candidate take one of the flavor's ``resources:CUSTOM_*``
    classes from a physical GPU's provider (a whole GPU reported in
    placement with its own class)? The claim's rule
    (``numa_claim.allocated_gpu_nodes``)."""
    classes = {name for name, _count in request.custom_resources}
    return bool(classes) and any(
        rp in by_provider and classes & set(alloc.get('resources') or {})
        for candidate in candidates or ()
        for rp, alloc in candidate.get('allocations', {}).items())


def requested_topology(spec_obj, request, policy, pci, allocated=False):
    """(topology to fit, synthetic?) for this request on this host, or
    (None, False) when the claim leaves the guest to upstream. ``pci``:
    does a PCI request name a GPU of this host (:func:`pci_gpu_nodes`)?
    ``allocated``: :func:`allocates_gpu`."""
    own = getattr(spec_obj, 'numa_topology', None)
    gpu = bool(request.vgpus) or (bool(request.pci_aliases) and pci) or \
        allocated
    if not (gpu or request.wants_render_node):
        return None, False
    if own is not None:
        if not (request.vgpus or allocated or
                (request.wants_render_node and not gpu)):
            return None, False      # Nova's own fit and PCI policy decide
        return own, False
    if not numa.wants_one_cell(policy, True, False):
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
    pci_nodes = pci_gpu_nodes(spec_obj, summary)
    pci = pci_nodes is not None
    by_provider = summary.by_provider
    allocated = allocates_gpu(request, host_state.allocation_candidates,
                              by_provider)
    requested, synthetic = requested_topology(spec_obj, request, policy, pci,
                                              allocated)
    if not requested:
        return True
    if request.vgpus and not by_provider:
        return True     # no provider map yet: the compute enforces it
    nodes = dict(summary.node_sockets) or \
        {c.id: None for c in host_topology.cells}
    limits = numa_fit.limits(host_state.cpu_allocation_ratio,
                             host_state.ram_allocation_ratio)
    pci_requests = getattr(getattr(spec_obj, 'pci_requests', None),
                           'requests', None)
    render = None
    if not request.vgpus and request.wants_render_node and not pci and \
            not allocated:
        render = numa.steer_render(policy, len(requested.cells),
                                   list(nodes), nodes,
                                   _render_nodes(summary))
    cache = {}

    def steering_of(candidate):
        if render is not None:
            return ('render',), render
        gpu_nodes = tuple(g.node for g in summary.gpus_of(
            candidate.get('allocations', {})))
        cells = len(requested.cells)
        if gpu_nodes or allocated or not pci or not synthetic:
            return gpu_nodes, numa.steer(policy, cells, list(nodes), nodes,
                                         gpu_nodes)
        # A GPU from a PCI alias: Nova's PCI claim picks the device in the
        # fit; the cells go where the rule allows for any of them (the
        # claim's steering, numa_claim.plan).
        return ('pci',), numa.steer_any(policy, cells, list(nodes), nodes,
                                        pci_nodes)

    def verdict(candidate):
        gpu_nodes, steering = steering_of(candidate)
        mappings = candidate.get('mappings')
        # PCI in placement: the fit depends on the candidate's mapping.
        key = (gpu_nodes, id(candidate) if pci_requests else None)
        if key not in cache:
            local = numa.Steering(steering.subsets, False, steering.reason)
            fitted = numa_fit.fit(host_topology, requested, local, limits,
                                  pci_requests, host_state.pci_stats,
                                  mappings)
            is_local = fitted is not None and bool(steering.subsets)
            if fitted is None and steering.anywhere:
                fitted = numa_fit.fit(
                    host_topology, requested, numa.ANYWHERE, limits,
                    pci_requests, host_state.pci_stats, mappings)
            keep = fitted is not None or (
                synthetic and not numa.refuse_without_cell(policy))
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
