"""nova-gpu-ext scheduler weighers.

Layer rule: adapter. Weighers read the same request and host facts as the
filters; higher weights win, and Nova normalises each weigher's values over
the candidate hosts before applying the multiplier.

Enable with, in nova.conf::

    [filter_scheduler]
    weight_classes = nova.scheduler.weights.all_weighers,<ours>

where ``<ours>`` is
``nova_gpu_ext.scheduler.weighers.GPUHostAvoidanceWeigher,``
``nova_gpu_ext.scheduler.weighers.GPUAffinityWeigher``

(one comma-separated line: ``weight_classes`` is a list option, a second
line would replace the first).
"""

from nova.scheduler import utils as scheduler_utils
from nova.scheduler import weights
from oslo_log import log as logging

from nova_gpu_ext import conf as gpu_conf
from nova_gpu_ext.scheduler import request as sched_request

LOG = logging.getLogger(__name__)
CONF = gpu_conf.CONF


class GPUHostAvoidanceWeigher(weights.BaseHostWeigher):
    """Keep GPU hosts free for GPU work.

    A request that asks for no GPU (no vGPU, no PCI alias, no render node)
    weighs a host by minus its number of physical GPUs, so CPU-only guests
    land on CPU-only hosts first. GPU requests get the same weight on every
    host (this weigher stays out of their way). Upstream's ``PCIWeigher``
    does the same for PCI passthrough hosts only; this one also sees vGPU
    and render-node hosts. The multiplier can be overridden per aggregate
    with ``gpu_host_avoidance_weight_multiplier`` metadata.
    """

    def weight_multiplier(self, host_state):
        return scheduler_utils.get_weight_multiplier(
            host_state, 'gpu_host_avoidance_weight_multiplier',
            CONF.gpu_ext.gpu_host_avoidance_weight_multiplier)

    def _weigh_object(self, host_state, request_spec):
        if not CONF.gpu_ext.enabled:
            return 0.0
        request = sched_request.gpu_request(request_spec)
        if not request.enabled or request.wants_devices or \
                request.wants_render_node:
            return 0.0
        summary = sched_request.host_summary(host_state)
        return -float(summary.physical_gpu_count) if summary else 0.0


def record_score(host_state, attribute, spec_obj, score):
    """Leave a filter's per-request score on the host for a weigher.

    HostState objects outlive requests, so the score is tagged with the
    request's instance and a weigher only reads its own request's score.
    """
    setattr(host_state, attribute,
            (getattr(spec_obj, 'instance_uuid', None), score))


class _RecordedScoreMixin:
    """Weighs by the score ``GPUPlacementFilter`` recorded for this request
    (:func:`record_score`); hosts it did not score weigh 0. A mixin, not a
    weigher itself: only the classes below are meant for weight_classes."""

    #: the host_state attribute the filter writes
    score_attribute = ''
    #: the [gpu_ext] option and aggregate key of the multiplier
    multiplier_option = ''

    def weight_multiplier(self, host_state):
        return scheduler_utils.get_weight_multiplier(
            host_state, self.multiplier_option,
            getattr(CONF.gpu_ext, self.multiplier_option))

    def _weigh_object(self, host_state, weight_properties):
        recorded = getattr(host_state, self.score_attribute, None)
        if not recorded or recorded[0] != getattr(
                weight_properties, 'instance_uuid', None):
            return 0.0
        return max(recorded[1], 0.0)


class GPUAffinityWeigher(_RecordedScoreMixin, weights.BaseHostWeigher):
    """Prefer hosts where a GPU guest fits NUMA-local and tightly.

    Reads the fit that ``GPUPlacementFilter`` computed for this request
    (``affinity.host_score``: 1 for a NUMA-local GPU, plus up to 1 for how
    full the node gets, which keeps emptier nodes for bigger guests).
    Hosts the filter did not score weigh 0.
    """

    score_attribute = 'gpu_ext_fit'
    multiplier_option = 'gpu_affinity_weight_multiplier'


class GPUSharingWeigher(_RecordedScoreMixin, weights.BaseHostWeigher):
    """Pack or spread time-sliced GPU tenants across hosts.

    Reads the score ``GPUPlacementFilter`` computed for this request with
    the flavor's ``gpu:placement`` (or ``[gpu_ext]
    sharing_default_placement``): under ``pack``, hosts whose partly used
    GPU the tenant would fill best, then hosts with fewer whole GPUs free;
    under ``spread``, the host where the tenant gets the largest share.
    Hosts the filter did not score weigh 0 (and so do hosts where no GPU
    admits the tenant, scored -1 by the core).
    """

    score_attribute = 'gpu_ext_share'
    multiplier_option = 'gpu_sharing_weight_multiplier'
