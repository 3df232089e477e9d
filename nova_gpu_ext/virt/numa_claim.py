"""The compute claim of a GPU guest's NUMA cells (Nova's resource tracker).

Layer rule: adapter. Nova's compute claims a guest's NUMA cells in
``nova.compute.claims.Claim._test_numa_topology`` (build) and its
``MoveClaim`` subclass (resize, cold/live migration, evacuate, unshelve),
before the virt driver sees the guest; the resource tracker then stores
``claim.claimed_numa_topology`` in ``instance.numa_topology`` (or the
migration context) and counts it per node. There is no driver hook before
the claim, so the ``numa_claim`` wrap of :mod:`nova_gpu_ext.nova_glue.wraps`
(installed by the driver's ``__init__``) asks the claim's own driver
(``claim.tracker.driver.gpu_numa_plan``, i.e. :func:`plan`) and calls
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
from nova_gpu_ext.nova_glue import numa_fit
from nova_gpu_ext.nova_glue import request_inputs
from nova_gpu_ext.core import spec as specs
from nova_gpu_ext.core import numa_books
from nova_gpu_ext.virt import domcaps

LOG = logging.getLogger(__name__)
CONF = gpu_conf.CONF


@dataclasses.dataclass
class Plan:
    requested: object           # InstanceNUMATopology to fit
    steering: numa_books.Steering
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
    if plan.synthetic and not numa_books.refuse_without_cell(plan.policy):
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
    extra = flavor.extra_specs or {}
    request = specs.parse(extra, on_error=lambda exc: None)
    if not request.enabled:
        return None
    gpu = wants_gpu(driver, claim, request)
    if not (gpu or request.wants_render_node):
        return None
    image_meta = getattr(claim, 'image_meta', None)
    if image_meta is None:
        image_meta = instance.image_meta
    # The filter's and the driver's resolver (flavor bounds, narrowed by
    # image and port input); a move's claim has the new flavor and image.
    policy = request_inputs.resolve(
        extra, image_meta, getattr(claim, '_pci_requests', None) or
        request_inputs.field(instance, 'pci_requests'),
        CONF.gpu_ext.numa_affinity_policy, request).policy
    requested = claim.numa_topology
    synthetic = False
    if requested is None:
        if not numa_books.wants_one_cell(policy, True, False):
            return None
        requested = numa_fit.one_cell_topology(flavor, image_meta)
        synthetic = True
    topology = driver.gpu_topology
    nodes = {n.id: n.socket for n in topology.numa_nodes}
    if gpu:
        gpu_nodes = vgpu_nodes(driver, claim) if request.vgpus else []
        steering = numa_fit.steering_for(policy, requested, nodes, gpu_nodes)
    else:
        steering = numa_books.steer_render(
            policy, len(requested.cells), list(nodes), nodes,
            render_nodes_with_room(driver, claim.instance.uuid))
    return Plan(requested, steering, policy, synthetic)


def render_nodes_with_room(driver, instance_uuid):
    """Nodes of this host's present render nodes that can take the guest
    (:func:`numa_books.render_nodes_with_room`), from the driver's render
    node ledger and ``[gpu_ext] render_node_max_guests``."""
    topology = domcaps.with_present_render_nodes(driver,
                                                 driver.gpu_topology)
    tracker = driver.render_nodes
    counts = tracker.counts()
    mine = tracker.of(instance_uuid)
    if mine:
        counts[mine] -= 1       # a move's claim on the same host
    limit = CONF.gpu_ext.render_node_max_guests
    return numa_books.render_nodes_with_room(
        [(r.name, r.numa_node, counts.get(r.name, 0), limit)
         for r in topology.render_nodes])


def wants_gpu(driver, claim, request):
    """Does the claimed guest get a GPU (a vGPU, or a PCI alias whose
    vendor and product are a GPU of this host)? A licence resource class
    or a NIC alias does not make a GPU guest (the drop-in rule)."""
    if request.vgpus:
        return True
    if not request.pci_aliases:
        return False
    gpus = {('%04x' % g.vendor_id, '%04x' % g.device_id)
            for g in driver.gpu_topology.gpus}
    pci_requests = getattr(claim, '_pci_requests', None)
    return numa_books.wants_gpu_device(gpus, [
        spec for pci_request in getattr(pci_requests, 'requests', None) or ()
        for spec in pci_request.spec or ()])


def vgpu_nodes(driver, claim):
    """NUMA nodes of the physical GPUs the guest's VGPU allocation uses."""
    allocations = claim.tracker.reportclient.get_allocations_for_consumer(
        claim.context, claim.instance.uuid) or {}
    address_of = {uuid: address for address, uuid in
                  driver._gpu_provider_uuids.items()}
    out = []
    for rp_uuid, alloc in sorted(allocations.items()):
        if 'VGPU' not in (alloc.get('resources') or {}):
            continue
        address = address_of.get(rp_uuid)
        gpu = driver.gpu_topology.gpu(address) if address else None
        node = gpu.numa_node if gpu is not None else None
        if node not in out:
            out.append(node)
    return out
