"""Per-GPU usage and sharing profiles for one scheduling request.

Layer rule: adapter (scheduler side). GPUPlacementFilter needs, for each
physical GPU of each candidate host, the units in use (VGPUs of an mdev
parent, VFs of a PF) and the type's sharing profile. Both are taken here
once per scheduling request, without a placement call and without reading
options per candidate:

* Usage comes from the ``provider_summaries`` that
  ``GET /allocation_candidates`` returned to the scheduler for this very
  request (``used`` of every resource class of every provider in the
  candidates' trees). Nova 34 does not hand them to filters, so the
  ``allocation_candidates`` wrap of :mod:`nova_gpu_ext.nova_glue.wraps`
  (installed by our filters' ``__init__``) hands what
  ``SchedulerReportClient.get_allocation_candidates`` returns to
  :func:`record_candidates`, which keeps the summaries for the thread that
  asked (the scheduler
  runs ``select_destinations`` - candidates, filters, weighers, claims - in
  one thread or greenthread).
* Multi-create: a request for N instances fetches candidates once and then
  filters and claims N times. The wrapped ``claim_resources`` calls
  :func:`record_claim`, which adds each successful claim of this request to the
  usage the next instance sees, so the same GPU is counted once per tenant
  placed on it.
* Profiles (:func:`profile`) are read from CONF once per type per request.

Without summaries for the current request (Nova changed, or the wrapper
was bypassed) the filter gets the count the compute published, which lags
until its next resource update; the compute's own admission stays the last
word (documented in doc/source/admin/scheduler-cost.rst and pinned by
tests/unit/test_scheduler_usage.py).

Public API::

    record_candidates(context, result) # from the allocation_candidates wrap
    record_claim(alloc_request, ok)    # from the claim_resources wrap
    used(rp_uuid, default) -> int      # units in use on a GPU provider
    tenants(gpus) -> tuple             # units in use on each GPU
    profile(type_name) -> SharingProfile
    current() -> RequestUsage | None   # the request's view, for tests
"""

import collections
import threading

from oslo_log import log as logging

from nova_gpu_ext import conf as gpu_conf
from nova_gpu_ext.conf import sharing as sharing_conf

LOG = logging.getLogger(__name__)

_local = threading.local()


class RequestUsage(object):
    """What one scheduling request knows about GPU usage."""

    def __init__(self, request_id, summaries):
        self.request_id = request_id
        self.summaries = [summaries]     # newest last
        self.claimed = collections.Counter()
        self.profiles = {}
        self._used = {}
        self.decisions = {}

    def add_summaries(self, summaries):
        self.summaries.append(summaries)
        self._used.clear()
        self.decisions.clear()

    def summary_used(self, rp_uuid):
        """Units in use on ``rp_uuid`` when the candidates were fetched
        (all its resource classes), or None if no summary names it."""
        if not self._used:
            # Every provider at once, oldest summary first so that the
            # newest wins (one pass instead of one search per provider).
            for summaries in self.summaries:
                for rp, summary in summaries.items():
                    self._used[rp] = sum(
                        int(r.get('used') or 0) for r in
                        ((summary or {}).get('resources') or {}).values())
        return self._used.get(rp_uuid)

    def add_claim(self, alloc_request):
        for rp_uuid, alloc in (alloc_request.get('allocations')
                               or {}).items():
            self.claimed[rp_uuid] += sum(
                int(v or 0) for v in (alloc.get('resources') or {}).values())


def current():
    """The usage view of the request this thread is scheduling, or None."""
    return getattr(_local, 'usage', None)


def _request_id(context):
    return getattr(context, 'global_id', None) or getattr(
        context, 'request_id', None)


def record_candidates(context, result):
    if not result or result[1] is None:
        return
    summaries = result[1]
    state = current()
    request_id = _request_id(context)
    if (state is not None and request_id is not None and
            state.request_id == request_id and not state.claimed):
        # The second query of the same request (Nova's VCPU fallback for
        # pinned CPUs): Nova merges both summaries, so do we.
        state.add_summaries(summaries)
    else:
        _local.usage = RequestUsage(request_id, summaries)


def record_claim(alloc_request, ok):
    state = current()
    if ok and state is not None and alloc_request:
        state.add_claim(alloc_request)


def decisions():
    """This request's decisions by host facts (see
    ``GPUPlacementFilter._decision``), or None outside a request."""
    state = current()
    return None if state is None else state.decisions


def tenants(gpus):
    """Units in use on each physical GPU (a published ``GPUSummary``) for
    this request: :func:`used` summed over its providers, or the count
    its compute published (``used``) when a provider has no summary."""
    state = current()
    out = []
    for gpu in gpus:
        total = 0
        for rp in gpu.providers:
            units = _used(state, rp, None)
            if units is None:
                total = gpu.used or 0
                break
            total += units
        out.append(total)
    return tuple(out)


def used(rp_uuid, default):
    """Units in use on one physical GPU provider for this request.

    Placement's figure when the candidates were fetched, plus what this
    request claimed since (multi-create); ``default`` (the count the
    compute published) when this request has no summary of the provider.
    """
    return _used(current(), rp_uuid, default)


def _used(state, rp_uuid, default):
    if state is None:
        return default
    base = state.summary_used(rp_uuid)
    if base is None:
        LOG.debug('No provider summary of %s in this request; using the '
                  'count the compute published', rp_uuid)
        if default is None:
            return None
        base = default
    return base + state.claimed.get(rp_uuid, 0)


def profile(type_name):
    """The sharing profile of ``type_name``, read once per request."""
    state = current()
    if state is None:
        return sharing_conf.profile_for(gpu_conf.CONF, type_name)
    try:
        return state.profiles[type_name]
    except KeyError:
        value = state.profiles[type_name] = sharing_conf.profile_for(
            gpu_conf.CONF, type_name)
        return value
