"""The scheduler's view of a request and a host, for nova-gpu-ext.

Layer rule: adapter. Turns a ``RequestSpec`` and a ``HostState`` into the
core's inputs (``specs.GPURequest``, the published host summary), the same
way the compute driver does, so both sides decide from the same facts.
"""

from oslo_log import log as logging

from nova_gpu_ext.topology import host_facts
from nova_gpu_ext.nova_glue import request_inputs
from nova_gpu_ext.core import spec as specs
from nova_gpu_ext.core import affinity

LOG = logging.getLogger(__name__)


def gpu_request(spec_obj):
    """The flavor's ``gpu:`` request; invalid entries are logged, ignored.

    The API refuses invalid ``gpu:`` specs; a flavor created before the
    validators were installed (or below microversion 2.86) can still hold
    one, and the compute driver ignores it the same way.
    """
    flavor = getattr(spec_obj, 'flavor', None)
    extra_specs = getattr(flavor, 'extra_specs', None) or {}
    return specs.parse(
        extra_specs,
        on_error=lambda exc: LOG.warning(
            'Ignoring invalid flavor extra spec: %s', exc))


def resolved(spec_obj, request, default_policy):
    """The effective request (flavor bounds, image and port input) for
    this ``RequestSpec``; see :mod:`nova_gpu_ext.core.inputs`."""
    flavor = getattr(spec_obj, 'flavor', None)
    return request_inputs.resolve(
        getattr(flavor, 'extra_specs', None),
        request_inputs.field(spec_obj, 'image'),
        request_inputs.field(spec_obj, 'pci_requests'),
        default_policy, request)


def host_summary(host_state):
    """What the host's nova-gpu-ext driver published, or None."""
    return host_facts.summary_from_stats(getattr(host_state, 'stats', None))


def node_capacities(host_state, summary):
    """Free CPUs and memory per NUMA node, as the scheduler knows them.

    From the host's NUMA topology: Nova's per-cell usage, which counts
    every guest with a NUMA topology, and every GPU guest nova-gpu-ext
    places is one (a one-cell topology claimed by Nova, see
    ``nova_gpu_ext.virt.numa_claim``), with the host's CPU and RAM
    allocation ratios as Nova's fit applies them
    (``numa_fit_instance_to_host`` with ``NUMATopologyLimits``).
    """
    sockets = {n['id']: n.get('socket') for n in summary.get('nodes', ())}
    cells = getattr(getattr(host_state, 'numa_topology', None), 'cells',
                    None) or ()
    ratio = getattr(host_state, 'cpu_allocation_ratio', 1.0) or 1.0
    ram_ratio = getattr(host_state, 'ram_allocation_ratio', 1.0) or 1.0
    out = []
    for cell in cells:
        # The guests sized here float over the shared CPUs (``cpuset``);
        # pinned guests' CPUs (``pcpuset``) are not theirs.
        out.append(affinity.node_capacity(
            cell.id, sockets.get(cell.id), len(cell.cpuset), cell.memory,
            cell.cpu_usage, cell.memory_usage, ratio, ram_ratio))
    if not out:
        for node in summary.get('nodes', ()):
            out.append(affinity.node_capacity(
                node['id'], node.get('socket'), node.get('cpus') or 0,
                node.get('mem_mb')))
    return out


def gpus_by_provider(summary):
    """The published physical GPUs (summary entries) by provider UUID.

    A PF whose VFs are mdev parents (SR-IOV vGPU) is found by the
    providers of its VFs (``vf_rps``) as well: the bound is per physical
    GPU.
    """
    out = {}
    for g in summary.get('gpus', ()):
        for rp in [g.get('rp')] + list(g.get('vf_rps', ())):
            if rp:
                out[rp] = g
    return out


def candidate_gpus(candidate, by_provider):
    """The physical GPUs an allocation candidate uses
    (``by_provider`` from :func:`gpus_by_provider`)."""
    return [by_provider[rp] for rp in candidate.get('allocations', {})
            if rp in by_provider]
