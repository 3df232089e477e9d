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
from nova_gpu_ext import summary_compat
from nova_gpu_ext.placement import affinity
from nova_gpu_ext.scheduler import request as sched_request
from nova_gpu_ext.scheduler import weighers

LOG = logging.getLogger(__name__)
CONF = gpu_conf.CONF


class GPUExtHostFilter(filters.BaseHostFilter):
    """Send flavors that use ``gpu:`` extra specs to nova-gpu-ext hosts.

    A flavor with ``gpu:`` extra specs relies on this project's driver; a
    compute that runs the upstream driver (in a cloud being upgraded host by
    host) would silently ignore them. Such hosts are refused. Flavors
    without ``gpu:`` keys, or with ``gpu:enabled=false``, pass everywhere.
    """

    run_filter_once_per_request = False
    RUN_ON_REBUILD = False

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


class GPUPlacementFilter(filters.BaseHostFilter,
                         filters.CandidateFilterMixin):
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

    run_filter_once_per_request = False
    RUN_ON_REBUILD = False

    def host_passes(self, host_state, spec_obj):
        if not CONF.gpu_ext.enabled:
            return True
        request = sched_request.gpu_request(spec_obj)
        if not request.is_gpu_guest:
            return True
        summary = sched_request.host_summary(host_state)
        if summary is None:
            return True     # GPUExtHostFilter decides about such hosts
        if summary_compat.is_partial(summary):
            return True     # facts unreadable (upgrade): the compute decides
        flavor = spec_obj.flavor
        # Image and port input may narrow the flavor's bounds, never widen
        # them; a guest NUMA topology (hw_numa_nodes) skips nothing.
        effective = sched_request.resolved(
            spec_obj, request, CONF.gpu_ext.numa_affinity_policy)
        for note in effective.ignored:
            LOG.debug('GPUPlacementFilter: %s', note)
        needs = effective.needs(flavor.vcpus, flavor.memory_mb)
        nodes = sched_request.node_capacities(host_state, summary)
        reasons = []
        if request.wants_devices:
            if not self._filter_gpu_candidates(
                    host_state, request, needs, nodes, summary, reasons,
                    spec_obj):
                self._log_refusal(host_state, reasons)
                return False
        if request.wants_render_node and 'render_nodes' in summary:
            limit = CONF.gpu_ext.render_node_max_guests
            slots = [affinity.RenderSlot(
                r['name'], r.get('path', ''), r.get('node'),
                r.get('guests', 0), limit)
                for r in summary.get('render_nodes', ())]
            choice = affinity.choose_render_node(slots, needs, nodes)
            if not choice.ok:
                self._log_refusal(host_state, [choice.reason])
                return False
        return True

    def _filter_gpu_candidates(self, host_state, request, needs, nodes,
                               summary, reasons, spec_obj=None):
        from nova_gpu_ext.placement import packing
        by_provider = sched_request.gpus_by_provider(summary)
        # The physical GPUs of each candidate, computed once per host.
        used_by = {id(c): [g['addr'] for g in sched_request.candidate_gpus(
            c, by_provider)] for c in host_state.allocation_candidates or []}
        gpus = {g['addr']: g for g in by_provider.values()
                if any(g['addr'] in used for used in used_by.values())}
        if not gpus:
            # The compute has not published its GPU providers yet (first
            # resource update): let the compute enforce the policy.
            LOG.debug('GPUPlacementFilter: host %s has no GPU provider map '
                      'yet; the compute will enforce the policy',
                      host_state.host)
            return True
        slots = [affinity.GPUSlot(g['addr'], g.get('node'), g.get('socket'))
                 for g in gpus.values()]
        accepted, refused = affinity.rank(needs, slots, nodes)
        reasons.extend(c.reason for c in refused)
        local_rank = {c.gpu.address: i for i, c in enumerate(accepted)}
        strategy = (request.placement or
                    CONF.gpu_ext.sharing_default_placement)
        min_share = request.min_share
        loads = []
        whole = []
        for address in local_rank:
            gpu = gpus[address]
            load = self._shared_load(gpu)
            if load is None:
                whole.append(address)       # a whole GPU: nothing shared
            else:
                loads.append(load)
        order = {}
        if loads:
            choice = packing.choose_physical_gpu(loads, strategy,
                                                 min_share=min_share)
            score = (packing.host_pack_score if strategy == 'pack'
                     else packing.host_spread_score)(loads, min_share)
            # For GPUSharingWeigher: pack/spread across hosts.
            weighers.record_score(host_state, 'gpu_ext_share', spec_obj,
                                  score)
            order = {a: i for i, a in enumerate(choice.ranking)}
            reasons.extend(refusal.reason for refusal in choice.refusals)
        for address in whole:
            order[address] = len(order)
        if not order:
            return False

        local = {c.gpu.address: c.local for c in accepted}

        def sort_key(candidate):
            used = used_by[id(candidate)]
            return (not all(local.get(a, False) for a in used),
                    min((order.get(a, 1 << 20) for a in used),
                        default=1 << 20))

        kept = self.filter_candidates(
            host_state, lambda c: any(a in order for a in used_by[id(c)]))
        host_state.allocation_candidates = sorted(kept, key=sort_key)
        # For GPUAffinityWeigher, tagged with the request it belongs to.
        weighers.record_score(host_state, 'gpu_ext_fit', spec_obj,
                              affinity.host_score(accepted))
        return bool(kept)

    def _shared_load(self, gpu):
        """The sharing state of a time-sliced GPU (mdev parent or SR-IOV PF).

        Capacity from what the compute published; tenants now from
        placement, which every claim updates at once (the published count
        lags until the next resource update). None for a whole GPU.
        """
        from nova_gpu_ext.conf import sharing as sharing_conf
        from nova_gpu_ext.placement import packing
        if gpu.get('mdev_types'):
            capacity = gpu.get('used', 0) + sum(
                v or 0 for v in gpu['mdev_types'].values())
            type_name = next(iter(gpu['mdev_types']))
        elif gpu.get('kind') == 'pf':
            capacity = gpu.get('vfs', 0)
            type_name = '%s:%s' % (gpu.get('vendor'), gpu.get('device'))
        else:
            return None
        used = self._usage(gpu['rp'], gpu.get('used', 0))
        return packing.PhysicalGPULoad(
            address=gpu['addr'], numa_node=gpu.get('node'), tenants=used,
            capacity=max(capacity, used),
            profile=sharing_conf.profile_for(CONF, type_name))

    @staticmethod
    def _usage(rp_uuid, default):
        """Units in use on one physical GPU provider, from placement (VGPUs
        of an mdev parent, VFs of a PF: all its resource classes)."""
        try:
            from nova import context as nova_context
            from nova.scheduler.client import report
            client = report.report_client_singleton()
            response = client.get(
                '/resource_providers/%s/usages' % rp_uuid, version='1.9',
                global_request_id=nova_context.get_admin_context(
                ).global_id)
            if response:
                return sum(response.json()['usages'].values())
        except Exception:
            LOG.debug('Cannot read the usage of provider %s', rp_uuid,
                      exc_info=True)
        return default

    @staticmethod
    def _log_refusal(host_state, reasons):
        LOG.info('GPUPlacementFilter: host %s refused: %s', host_state.host,
                 '; '.join(reasons) or 'no GPU fits the request')
