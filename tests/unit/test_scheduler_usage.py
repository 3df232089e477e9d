"""Where GPUPlacementFilter's usage comes from (scheduler/usage.py).

The first group pins the Nova internals the module relies on (listed in
doc/source/reference/nova-internals.rst, section "Issue 12"): they fail
when Nova changes how the scheduler fetches candidates or claims them.
"""

import inspect
from unittest import mock

from nova.scheduler.client import report
from nova.scheduler import manager
from nova.scheduler import utils as scheduler_utils

from nova_gpu_ext.nova_glue import wraps
from nova_gpu_ext.scheduler import filters
from nova_gpu_ext.scheduler import usage

GPU0, GPU1, ROOT = 'rp-gpu-0', 'rp-gpu-1', 'rp-root'


def summaries(**used):
    out = {ROOT: {'resources': {'VCPU': {'capacity': 8, 'used': 2}}}}
    for rp, n in used.items():
        out[rp] = {'resources': {'VGPU': {'capacity': 16, 'used': n}}}
    return out


def context(request_id='req-1'):
    return mock.Mock(global_id=request_id, request_id=request_id)


def fetch(result, ctx=None):
    """Run Nova's real get_allocation_candidates on a faked HTTP reply."""
    client = report.SchedulerReportClient.__new__(report.SchedulerReportClient)
    reply = mock.Mock(status_code=200)
    reply.json.return_value = {'allocation_requests': [],
                               'provider_summaries': result}
    resources = mock.Mock()
    resources.to_querystring.return_value = 'resources=VGPU:1'
    with mock.patch.object(report.SchedulerReportClient, 'get',
                           return_value=reply):
        return client.get_allocation_candidates(ctx or context(), resources)


def claim(alloc_request, status=204):
    """Run Nova's real claim_resources (wrapped) on faked HTTP replies."""
    client = report.SchedulerReportClient.__new__(report.SchedulerReportClient)
    put = mock.Mock(status_code=status, text='no room')
    put.json.return_value = {'errors': [{'code': 'placement.undefined_code',
                                         'detail': 'no room'}]}
    with mock.patch.object(report.SchedulerReportClient, 'get',
                           return_value=mock.Mock(status_code=404)), \
            mock.patch.object(report.SchedulerReportClient,
                              '_put_allocations', return_value=put):
        return client.claim_resources(context(), 'instance-1', alloc_request,
                                      'project', 'user', '1.36')


def setup_module():
    # What GPUPlacementFilter.__init__ does in the scheduler.
    filters.install_wraps()


def setup_function():
    usage._local.usage = None


# --- Nova internals (issue 12) -------------------------------------------

def test_nova_get_allocation_candidates_signature_and_reply_shape():
    params = list(inspect.signature(
        report.SchedulerReportClient.get_allocation_candidates).parameters)
    assert params == ['self', 'context', 'resources']
    result = fetch(summaries(**{GPU0: 3}))
    # (allocation_requests, provider_summaries, version), as usage expects.
    assert result[1][GPU0]['resources']['VGPU']['used'] == 3
    assert usage.current().summary_used(GPU0) == 3


def test_nova_claim_resources_signature():
    params = list(inspect.signature(
        report.SchedulerReportClient.claim_resources).parameters)
    assert params[:8] == ['self', 'context', 'consumer_uuid', 'alloc_request',
                          'project_id', 'user_id',
                          'allocation_request_version', 'consumer_generation']


def test_both_report_client_methods_are_wrapped_once():
    filters.install_wraps()
    filters.install_wraps()
    cls = report.SchedulerReportClient
    for name in ('get_allocation_candidates', 'claim_resources'):
        method = getattr(cls, name)
        assert getattr(method, wraps.MARK)
        assert not getattr(method.__wrapped__, wraps.MARK, False)


def test_nova_scheduler_fetches_and_claims_through_the_report_client():
    # select_destinations asks the report client singleton for candidates
    # and _schedule claims through scheduler.utils.claim_resources, which
    # calls the client's claim_resources; all in the thread of the request.
    prop = inspect.getsource(manager.SchedulerManager.placement_client.fget)
    assert 'report.report_client_singleton()' in prop
    # (select_destinations is wrapped by a decorator without __wrapped__.)
    module = inspect.getsource(manager)
    select = module.split('def select_destinations(')[1].split(
        'def _select_destinations(')[0]
    assert 'self.placement_client.get_allocation_candidates(' in select
    assert 'self._select_destinations(' in select
    schedule = inspect.getsource(manager.SchedulerManager._schedule)
    assert 'utils.claim_resources(' in schedule
    assert 'self._get_sorted_hosts(spec_obj, hosts, num)' in schedule
    assert 'client.claim_resources(' in inspect.getsource(
        scheduler_utils.claim_resources)


def test_nova_scheduler_does_not_hand_summaries_to_host_states():
    # If Nova starts handing provider summaries to filters, use that
    # instead of the wrapper (and drop this internal).
    source = inspect.getsource(manager.SchedulerManager._schedule)
    assert 'provider_summaries' not in source.split('hosts_with_alloc_reqs(')[
        1].split('yield host')[0]


# --- behaviour ------------------------------------------------------------

def test_used_is_the_summary_plus_this_request_claims():
    fetch(summaries(**{GPU0: 2, GPU1: 0}))
    assert usage.used(GPU0, default=99) == 2
    assert claim({'allocations': {
        ROOT: {'resources': {'VCPU': 1}},
        GPU0: {'resources': {'VGPU': 1}}}}) is True
    # A refused claim (Nova's PUT got a 409) is not counted.
    assert not claim({'allocations': {GPU0: {'resources': {'VGPU': 1}}}},
                     status=409)
    assert usage.used(GPU0, default=99) == 3
    assert usage.used(GPU1, default=99) == 0


def test_without_a_summary_the_published_count_is_used():
    assert usage.used(GPU0, default=4) == 4        # no request at all
    fetch(summaries(**{GPU1: 1}))
    assert usage.used(GPU0, default=4) == 4
    usage.record_claim({'allocations': {
        GPU0: {'resources': {'VGPU': 1}}}}, True)
    assert usage.used(GPU0, default=4) == 5


def test_no_summary_and_no_published_count_is_unknown_not_a_crash():
    # GPUPlacementFilter asks with default None and falls back to the
    # published count; this raised TypeError (None + 0) before.
    fetch(summaries(**{GPU1: 1}))
    assert usage.used(GPU0, default=None) is None


def test_a_new_request_starts_from_its_own_summaries():
    fetch(summaries(**{GPU0: 2}), context('req-1'))
    usage.record_claim({'allocations': {
        GPU0: {'resources': {'VGPU': 1}}}}, True)
    fetch(summaries(**{GPU0: 3}), context('req-2'))
    assert usage.used(GPU0, default=0) == 3


def test_the_pcpu_fallback_query_of_one_request_merges():
    fetch(summaries(**{GPU0: 2}), context('req-1'))
    fetch(summaries(**{GPU1: 5}), context('req-1'))
    assert usage.used(GPU0, default=0) == 2
    assert usage.used(GPU1, default=0) == 5


def test_a_failed_fetch_keeps_nothing():
    usage.record_candidates(context(), (None, None, None))
    assert usage.current() is None


def test_profile_is_read_once_per_request():
    fetch(summaries(**{GPU0: 0}))
    with mock.patch('nova_gpu_ext.conf.sharing.profile_for',
                    return_value='profile') as profile_for:
        for _ in range(5):
            assert usage.profile('nvidia-35') == 'profile'
        fetch(summaries(**{GPU0: 0}), context('req-2'))
        usage.profile('nvidia-35')
    assert profile_for.call_count == 2


def test_the_filter_makes_no_placement_call():
    fetch(summaries(**{GPU0: 6}))
    from nova_gpu_ext.core import summary
    gpu = summary.GPUSummary(addr='0000:3b:00.0', rp=GPU0, used=0)
    with mock.patch.object(report, 'report_client_singleton') as singleton:
        assert usage.tenants([gpu]) == (6,)
    singleton.assert_not_called()


def test_tenants_of_gpus_sum_their_providers_and_claims():
    from nova_gpu_ext.core import summary
    fetch(summaries(**{GPU0: 2, GPU1: 1}))
    usage.record_claim({'allocations': {GPU1: {'resources': {'VGPU': 1}}}},
                       True)
    pf = summary.GPUSummary(addr='0000:af:00.0', rp=GPU0,
                            vf_rps=(GPU1,), used=9)
    alone = summary.GPUSummary(addr='0000:3b:00.0', rp=GPU0, used=9)
    unknown = summary.GPUSummary(addr='0000:d8:00.0', rp='rp-gone', used=4)
    # A PF and its VFs' providers: 2 + (1 + 1 claimed); a provider this
    # request has no summary of: what the compute published.
    assert usage.tenants([pf, alone, unknown]) == (4, 2, 4)
