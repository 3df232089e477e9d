"""The compute claim of a GPU guest's NUMA cells (Nova's resource tracker).

Layer rule: adapter. Nova's compute claims a guest's NUMA cells in
``nova.compute.claims.Claim._test_numa_topology`` (build) and its
``MoveClaim`` subclass (resize, cold/live migration, evacuate, unshelve),
before the virt driver sees the guest; the resource tracker then stores
``claim.claimed_numa_topology`` in ``instance.numa_topology`` (or the
migration context) and counts it per node. There is no driver hook before
the claim, so the ``numa_claim`` wrap of :mod:`nova_gpu_ext.nova_glue.wraps`
(installed by the driver's ``__init__``) asks the claim's own driver
(``claim.tracker.driver._gpu_numa_plan``, i.e. :func:`plan`) and calls
:func:`test_numa_topology` with the plan, upstream's code for every guest
that is not a GPU guest of ours.

For a GPU guest (``resources:VGPU``, a PCI alias of a host GPU) or a
render-node guest (``gpu:render_node``, virgl, no GPU device):

* without a NUMA topology (and a policy other than ``legacy``) it gets the
  one-cell topology Nova builds for ``hw:numa_nodes=1``;
* the cells are fitted by Nova's ``numa_fit_instance_to_host`` on the host
  nodes the policy allows for the guest's vGPU (its physical GPU from the
  placement allocation), or, for a render-node guest, on the nodes of the
  present render nodes below ``[gpu_ext] render_node_max_guests`` (the
  driver then takes the render node of the cell's node); devices from a PCI
  alias are placed by Nova's own
  ``hw:pci_numa_affinity_policy`` / alias ``numa_policy`` in that same fit;
* ``required``/``socket``: no allowed node has room -> the claim fails
  (the build reschedules); ``preferred``: a cell elsewhere, else no cell
  (the guest runs unbound, as before).
"""

import dataclasses

from nova import objects
from oslo_log import log as logging

from nova_gpu_ext import conf as gpu_conf
from nova_gpu_ext.core import numa
from nova_gpu_ext.nova_glue import numa_fit
from nova_gpu_ext.nova_glue import request_inputs
from nova_gpu_ext.core import numa_books
from nova_gpu_ext.virt import domcaps

LOG = logging.getLogger(__name__)
CONF = gpu_conf.CONF


@dataclasses.dataclass
class Plan:
    requested: object           # InstanceNUMATopology to fit
    steering: numa.Steering
    policy: str
    synthetic: bool             # the one-cell topology is ours


def test_numa_topology(claim, compute_node, limit, plan):
    """Upstream's ``_test_numa_topology`` with the steered fit."""
    host_json = (compute_node.numa_topology
                 if 'numa_topology' in compute_node else None)
    if not host_json:
        if plan.synthetic:
            return None
        return 'Requested instance NUMA topology but the host has none'
    host = objects.NUMATopology.obj_from_db_obj(host_json)
    if limit is None:
        # The scheduler hands NUMA limits only to requests that had a
        # topology; use the same ratios it used in GPUPlacementFilter.
        limit = numa_fit.limits(compute_node.cpu_allocation_ratio,
                                compute_node.ram_allocation_ratio)
    fitted = numa_fit.fit(
        host, plan.requested, plan.steering, limit,
        pci_requests=claim._pci_requests.requests,
        pci_stats=claim.tracker.pci_tracker.stats)
    if fitted:
        claim.claimed_numa_topology = fitted
        LOG.info('nova-gpu-ext: NUMA cells on host node(s) %s (%s)',
                 ','.join(str(c.id) for c in fitted.cells),
                 plan.steering.reason, instance=claim.instance)
        return None
    if plan.synthetic and not numa.refuse_without_cell(plan.policy):
        LOG.info('nova-gpu-ext: no NUMA node has room for the guest as one '
                 'cell (%s); it runs without NUMA binding',
                 plan.steering.reason, instance=claim.instance)
        return None
    return ('GPU NUMA policy %s: the guest\'s NUMA cells fit no allowed '
            'host node (%s)' % (plan.policy, plan.steering.reason))


def plan(driver, claim):
    """The :class:`Plan` for a claim, or None for upstream's claim."""
    if not CONF.gpu_ext.enabled:
        return None
    instance = claim.instance
    flavor = getattr(claim, 'flavor', None) or instance.flavor
    if flavor is None:
        return None
    request = request_inputs.flavor_request(instance, flavor,
                                            on_error=lambda exc: None)
    if not request.enabled:
        return None
    gpu_nodes = pci_gpu_nodes(driver, claim, request)
    allocated = allocated_gpu_nodes(driver, claim, request)
    if not (request.vgpus or allocated or gpu_nodes is not None or
            request.wants_render_node):
        return None
    policy = claim_policy(driver, claim, request)
    requested = claim.numa_topology
    synthetic = False
    if requested is None:
        if not numa.wants_one_cell(policy, True, False):
            return None
        requested = numa_fit.one_cell_topology(flavor, _image_meta(claim))
        synthetic = True
    topology = driver._gpu_host_topology
    nodes = {n.id: n.socket for n in topology.numa_nodes}
    cells = len(requested.cells)
    if request.vgpus or allocated:
        steering = numa.steer(policy, cells, list(nodes), nodes, allocated)
    elif gpu_nodes is not None and not synthetic:
        # A guest with its own topology: Nova's fit and its PCI NUMA
        # policy place the cells, as the scheduler's (numa_candidates).
        steering = numa.ANYWHERE
    elif gpu_nodes is not None:
        # Nova's PCI claim picks the device inside the fit (its own
        # hw:pci_numa_affinity_policy applies there): the cells may go
        # where the rule allows for any of the GPUs the alias names.
        steering = numa.steer_any(policy, cells, list(nodes), nodes,
                                  gpu_nodes)
    else:
        steering = numa.steer_render(
            policy, cells, list(nodes), nodes,
            render_nodes_with_room(driver, claim.instance.uuid))
    return Plan(requested, steering, policy, synthetic)


def _image_meta(claim):
    image_meta = getattr(claim, 'image_meta', None)
    return claim.instance.image_meta if image_meta is None else image_meta


def _pci_requests(claim):
    return getattr(claim, '_pci_requests', None) or \
        request_inputs.field(claim.instance, 'pci_requests')


def claim_policy(driver, claim, request=None):
    """The NUMA policy of the claimed guest: the filter's and the driver's
    resolver (flavor bounds, narrowed by image and port input); a move's
    claim has the new flavor and image."""
    flavor = getattr(claim, 'flavor', None) or claim.instance.flavor
    extra = flavor.extra_specs or {}
    if request is None:
        request = request_inputs.flavor_request(
            claim.instance, flavor, on_error=lambda exc: None)
    return request_inputs.resolve(
        extra, _image_meta(claim), _pci_requests(claim),
        CONF.gpu_ext.numa_affinity_policy, request).policy


def render_nodes_with_room(driver, instance_uuid):
    """Nodes of this host's present render nodes that can take the guest
    (:func:`numa_books.render_nodes_with_room`), from the driver's render
    node ledger and ``[gpu_ext] render_node_max_guests``."""
    topology = domcaps.with_present_render_nodes(driver,
                                                 driver._gpu_host_topology)
    tracker = driver._render_nodes
    counts = tracker.counts()
    mine = tracker.of(instance_uuid)
    if mine:
        counts[mine] -= 1       # a move's claim on the same host
    limit = CONF.gpu_ext.render_node_max_guests
    return numa_books.render_nodes_with_room(
        [(r.name, r.numa_node, counts.get(r.name, 0), limit)
         for r in topology.render_nodes])


def pci_gpu_nodes(driver, claim, request):
    """NUMA nodes of this host's GPUs the guest's PCI alias may get
    (:func:`numa_books.gpu_nodes`), or None when its PCI requests name no
    GPU of this host: a licence resource class or a NIC alias does not make
    a GPU guest (the drop-in rule)."""
    if not request.pci_aliases:
        return None
    pci_requests = getattr(claim, '_pci_requests', None)
    return numa_books.gpu_nodes(
        [('%04x' % g.vendor_id, '%04x' % g.device_id, g.numa_node)
         for g in driver._gpu_host_topology.gpus],
        [spec for pci_request in
         getattr(pci_requests, 'requests', None) or ()
         for spec in pci_request.spec or ()])


def wants_gpu(driver, claim, request):
    """Does the claimed guest get a GPU (a vGPU, or a PCI alias whose
    vendor and product are a GPU of this host)?"""
    return bool(request.vgpus) or \
        pci_gpu_nodes(driver, claim, request) is not None


def allocated_gpu_nodes(driver, claim, request):
    """NUMA nodes of the physical GPUs whose resource providers the
    guest's placement allocation takes a ``VGPU`` or one of the flavor's
    ``resources:CUSTOM_*`` classes from (a whole GPU reported in placement
    with its own resource class). A custom class on another provider (a
    licence) is no GPU; a VGPU provider we do not know is a GPU of unknown
    node."""
    classes = {name for name, _count in request.custom_resources}
    if request.vgpus:
        classes.add('VGPU')
    if not classes:
        return []
    allocations = claim.tracker.reportclient.get_allocations_for_consumer(
        claim.context, claim.instance.uuid) or {}
    address_of = {uuid: address for address, uuid in
                  driver._gpu_provider_uuids.items()}
    out = []
    for rp_uuid, alloc in sorted(allocations.items()):
        resources = set(alloc.get('resources') or {})
        if not classes & resources:
            continue
        address = address_of.get(rp_uuid)
        if address is None and 'VGPU' not in resources:
            continue
        gpu = driver._gpu_host_topology.gpu(address) if address else None
        node = gpu.numa_node if gpu is not None else None
        if node not in out:
            out.append(node)
    return out
