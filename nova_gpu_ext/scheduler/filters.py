"""nova-gpu-ext scheduler filters.

Layer rule: adapter. A filter rebuilds the request from the flavor and the
host's facts from ``HostState`` (published by the driver), asks the core,
and logs why a host was refused at INFO, so an operator can read it in the
scheduler log.

Enable with, in nova.conf::

    [filter_scheduler]
    available_filters = nova.scheduler.filters.all_filters
    available_filters = nova_gpu_ext.scheduler.filters.GPUExtHostFilter
    available_filters = nova_gpu_ext.scheduler.filters.GPUPlacementFilter
    enabled_filters = ...,GPUExtHostFilter,GPUPlacementFilter
"""

from nova.scheduler import filters
from oslo_log import log as logging

from nova_gpu_ext import conf as gpu_conf
from nova_gpu_ext.topology import host_facts
from nova_gpu_ext.core import affinity
from nova_gpu_ext.nova_glue import wraps
# importable as nova_gpu_ext.scheduler.filters.GPUAddressSpaceFilter too
from nova_gpu_ext.scheduler.address_filter import GPUAddressSpaceFilter  # noqa
from nova_gpu_ext.scheduler import numa_candidates
from nova_gpu_ext.scheduler import numa_consume
from nova_gpu_ext.scheduler import request as sched_request
from nova_gpu_ext.scheduler import usage as gpu_usage
from nova_gpu_ext.scheduler import weighers
from nova_gpu_ext.core import decide
from nova_gpu_ext.virt import domcaps

LOG = logging.getLogger(__name__)
CONF = gpu_conf.CONF


def install_wraps():
    """The scheduler's wraps of Nova internals (idempotent): our filters
    install them when Nova's scheduler creates them, never at import."""
    wraps.install_scheduler(gpu_usage.record_candidates,
                            gpu_usage.record_claim,
                            numa_candidates.fitted_for, numa_consume.consume)


class _GPUFilter(filters.BaseHostFilter):
    """Per host, not on rebuild; installs the scheduler's wraps."""

    run_filter_once_per_request = False
    RUN_ON_REBUILD = False

    def __init__(self):
        super().__init__()
        install_wraps()


class GPUExtHostFilter(_GPUFilter):
    """Send flavors that use ``gpu:`` extra specs to nova-gpu-ext hosts.

    A flavor with ``gpu:`` extra specs relies on this project's driver; a
    compute that runs the upstream driver (in a cloud being upgraded host by
    host) would silently ignore them. Such hosts are refused. Flavors
    without ``gpu:`` keys, or with ``gpu:enabled=false``, pass everywhere.
    """

    def host_passes(self, host_state, spec_obj):
        if not CONF.gpu_ext.enabled:
            return True
        request = sched_request.gpu_request(spec_obj)
        if not request.enabled or not request.gpu_keys:
            return True
        if sched_request.host_summary(host_state) is None:
            LOG.info('GPUExtHostFilter: host %s refused: it does not run '
                     'nova-gpu-ext (compute_driver = gpu_ext.GPULibvirtDriver)'
                     ' and the flavor sets %s', host_state.host,
                     ', '.join(request.gpu_keys))
            return False
        return True


class GPUPlacementFilter(_GPUFilter, filters.CandidateFilterMixin):
    """GPU-to-NUMA affinity, render nodes and GPU sharing at the scheduler.

    For a GPU guest, keeps only the host's placement allocation candidates
    whose physical GPU satisfies the NUMA affinity policy (the same core
    call the compute makes, :func:`affinity.choose_node`) and admits one
    more tenant under the time-slice sharing model, then orders them
    NUMA-local first and by the flavor's pack/spread choice, so the
    candidate the scheduler claims is the GPU the compute will use. A guest
    that asks for a render node needs a host with a render node that has
    room. Refusals are logged at INFO with the reason per GPU.
    """

    def host_passes(self, host_state, spec_obj):
        if not CONF.gpu_ext.enabled:
            return True
        request = sched_request.gpu_request(spec_obj)
        if not request.may_use_gpu:
            return True
        summary = sched_request.host_summary(host_state)
        if summary is None:
            return True     # GPUExtHostFilter decides about such hosts
        if summary.is_partial:
            return True     # facts unreadable (upgrade): the compute decides
        flavor = spec_obj.flavor
        # Image and port input may narrow the flavor's bounds, never widen
        # them; a guest NUMA topology (hw_numa_nodes) skips nothing.
        effective = sched_request.resolved(
            spec_obj, request, CONF.gpu_ext.numa_affinity_policy)
        for note in effective.ignored:
            LOG.debug('GPUPlacementFilter: %s', note)
        has_numa = getattr(spec_obj, 'numa_topology', None) is not None
        gpu_policy = effective.policy
        if has_numa:
            # Nova's NUMA fitting places the cells of a guest with a NUMA
            # topology (steered to the GPU's node by numa_candidates);
            # sharing admission and pack/spread still apply.
            needs = affinity.GuestNeeds.without_numa_rule(
                flavor.vcpus, flavor.memory_mb)
        else:
            needs = effective.needs(flavor.vcpus, flavor.memory_mb)
        nodes = sched_request.node_capacities(host_state, summary)
        if not self._decide(host_state, spec_obj, request, needs, nodes,
                            summary):
            return False
        # The cells the compute claim will fit (numa_claim), by the same
        # steered fit; recorded for Nova's consume_from_request.
        reasons = []
        if not numa_candidates.filter_candidates(
                self, host_state, spec_obj, request, gpu_policy, summary,
                reasons):
            self._log_refusal(host_state, reasons)
            return False
        return True

    def _decide(self, host_state, spec_obj, request, needs, nodes, summary):
        """Gather the host's facts, ask :func:`decide.decide`, apply it."""
        candidates = host_state.allocation_candidates or []
        used_by = {}
        gpus = ()
        if request.wants_devices:
            # The physical GPUs of each candidate, computed once per host.
            by_provider = summary.by_provider
            used_by = {id(c): [by_provider[rp].addr
                               for rp in c.get('allocations', {})
                               if rp in by_provider] for c in candidates}
            used = set().union(*used_by.values())
            gpus = tuple(g for g in summary.provider_gpus if g.addr in used)
            if not gpus:
                # The compute has not published its GPU providers yet
                # (first resource update): the compute enforces the policy.
                LOG.debug('GPUPlacementFilter: host %s has no GPU provider '
                          'map yet; the compute will enforce the policy',
                          host_state.host)
        limit = CONF.gpu_ext.render_node_max_guests
        usable, missing = [], []
        if request.wants_render_node:
            why = domcaps.refusal(summary.gl)
            if why:
                self._log_refusal(host_state, [why])
                return False
            usable, missing = summary.usable_render_nodes()
        decision_request = decide.DecisionRequest(
            needs=needs, strategy=(request.placement or
                                   CONF.gpu_ext.sharing_default_placement),
            min_share=request.min_share,
            wants_devices=request.wants_devices and bool(gpus),
            wants_render=request.wants_render_node and
            summary.knows_render_nodes)
        tenants = gpu_usage.tenants(gpus)
        decision, rank = self._decision(decision_request, gpus, tenants,
                                        nodes, usable, limit)
        if not decision.ok:
            self._log_refusal(host_state,
                              list(missing) + list(decision.reasons))
            return False
        if gpus:
            if decision.share_score is not None:
                # For GPUSharingWeigher: pack/spread across hosts.
                weighers.record_score(host_state, 'gpu_ext_share', spec_obj,
                                      decision.share_score)
            unranked = (True, 1 << 20)

            def sort_key(candidate):
                used = used_by[id(candidate)]
                if len(used) == 1:
                    return rank.get(used[0], unranked)
                keys = [rank.get(a, unranked) for a in used]
                return (any(k[0] for k in keys),
                        min((k[1] for k in keys), default=1 << 20))

            def ranked(candidate):
                return any(rank.get(a, unranked)[1] < 1 << 20
                           for a in used_by[id(candidate)])

            if all(ranked(c) for c in candidates):
                kept = list(candidates)     # Nova's helper logs each one
            else:
                kept = self.filter_candidates(host_state, ranked)
            host_state.allocation_candidates = sorted(kept, key=sort_key)
            # For GPUAffinityWeigher, tagged with the request it belongs to.
            weighers.record_score(host_state, 'gpu_ext_fit', spec_obj,
                                  decision.fit_score)
            if not kept:
                self._log_refusal(host_state, decision.reasons)
                return False
        return True

    @staticmethod
    def _decision(request, gpus, tenants, nodes, render_nodes, limit):
        """:func:`decide.decide` on this host's facts, once per distinct
        facts in a request: hosts of the same hardware with the same use
        (GPU shapes, tenants, node room, render nodes) share it. Kept for
        this request only (its sharing profiles and options). Returns the
        decision and :func:`_candidate_order` of it."""
        nodes = tuple(nodes)
        render = tuple(render_nodes)
        key = (request, tuple(g.shape for g in gpus), tenants, nodes,
               render, limit)
        memo = gpu_usage.decisions()
        found = memo.get(key) if memo is not None else None
        if found is None:
            facts = decide.HostFacts(
                nodes=nodes,
                gpus=tuple(host_facts.gpu_facts(
                    g, t, gpu_usage.profile, g.min_share)
                    for g, t in zip(gpus, tenants)),
                render_nodes=tuple(affinity.RenderSlot(
                    r.name, r.path or '', r.node, r.guests or 0, limit)
                    for r in render))
            decision = decide.decide(request, facts)
            found = (decision, _candidate_order(decision))
            if memo is not None:
                memo[key] = found
        return found

    @staticmethod
    def _log_refusal(host_state, reasons):
        LOG.info('GPUPlacementFilter: host %s refused: %s', host_state.host,
                 '; '.join(reasons) or 'no GPU fits the request')


def _candidate_order(decision):
    """{GPU address: sort key of a candidate on it} for a decision: NUMA
    local first, then the decision's ranking."""
    order = {a: i for i, a in enumerate(decision.ranking)}
    local = {v.address: v.local for v in decision.gpus}
    return {a: (not local.get(a, False), order.get(a, 1 << 20))
            for a in set(order) | set(local)}
