"""The one decision is computed once per distinct input (issue 23).

The scheduler asks :func:`decide.decide` for every host of every request;
hosts of the same hardware with the same use give the same facts, and
the decision is pure: the same request on equal facts must not be
computed again (``benchmarks/bench_scheduler.py``: 0.4 ms per host with
8 GPUs). Facts given as lists (unhashable) are still decided.
"""

from unittest import mock

from nova_gpu_ext.core import affinity
from nova_gpu_ext.core import decide
from nova_gpu_ext.core import sharing

PROFILE = sharing.SharingProfile(slice_ms=500, switch_ms=0,
                                 guest_timeout_ms=2000, margin=0.75)


def facts(tenants=(0, 0)):
    return decide.HostFacts(
        nodes=(affinity.node_capacity(0, 0, 32, 65536),
               affinity.node_capacity(1, 1, 32, 65536)),
        gpus=tuple(decide.GPUFacts(
            address='0000:%02x:00.0' % (0x3b + 0x80 * i), numa_node=i,
            socket=i, shared=True, created=0, available=16, tenants=t,
            profile=PROFILE, type_name='nvidia-35')
            for i, t in enumerate(tenants)))


def request(strategy='pack'):
    return decide.DecisionRequest(
        needs=affinity.GuestNeeds(1, 1024, 'preferred'), strategy=strategy)


def test_equal_inputs_are_decided_once():
    decide.decide_cache_clear()
    with mock.patch.object(decide, '_devices',
                           wraps=decide._devices) as devices:
        first = decide.decide(request(), facts())
        second = decide.decide(request(), facts())     # equal, not same
        third = decide.decide(request(), facts((1, 0)))
        fourth = decide.decide(request('spread'), facts())
    assert first == second
    assert devices.call_count == 3
    assert third.ranking != first.ranking or third != first
    assert fourth.ranking[0] != first.ranking[0] or fourth != first


def test_list_facts_are_decided_without_the_memo():
    decide.decide_cache_clear()
    given = facts()
    as_lists = decide.HostFacts(nodes=list(given.nodes),
                                gpus=list(given.gpus))
    assert decide.decide(request(), as_lists) == \
        decide.decide(request(), given)
