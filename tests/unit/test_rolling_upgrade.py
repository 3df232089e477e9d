"""Rolling upgrade: no, older, newer or malformed host summaries.

The scheduler must never crash on what a compute published, and never
refuse a good host because of it (the compute re-checks every rule).
"""

import json
from unittest import mock

from hypothesis import given, settings, HealthCheck
from hypothesis import strategies as st
from nova import objects
import pytest

from nova_gpu_ext.topology import host_facts
from nova_gpu_ext.scheduler import filters
from nova_gpu_ext.scheduler import usage as gpu_usage
from nova_gpu_ext.scheduler import weighers
from nova_gpu_ext.core.summary import HostSummary

objects.register_all()

RP = '6a2f0f4e-0d5b-4f0e-9e1c-1f3d6a7b8c9d'
SETTINGS = settings(max_examples=300, derandomize=True, database=None,
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def good_summary():
    return {
        'v': 1,
        'nodes': [{'id': 0, 'socket': 0, 'cpus': 64, 'mem_mb': 262144},
                  {'id': 1, 'socket': 1, 'cpus': 64, 'mem_mb': 262144}],
        'gpus': [{'addr': '0000:81:00.0', 'kind': 'mdev_parent', 'node': 0,
                  'socket': 0, 'vendor': '10de', 'device': '13f2',
                  'rp': RP, 'used': 0, 'mdevs': 0,
                  'mdev_types': {'nvidia-11': 16}}],
        'render_nodes': [{'name': 'renderD128', 'path': '/dev/dri/renderD128',
                          'node': 0, 'pci': '0000:81:00.0', 'guests': 0}],
        'warnings': 0}


class FakeHost:
    host = 'gpu-host'
    numa_topology = None
    cpu_allocation_ratio = 1.0

    def __init__(self, stats_value):
        self.stats = {} if stats_value is None else {'gpu_ext': stats_value}
        self.allocation_candidates = [
            {'allocations': {RP: {'resources': {'VGPU': 1}}}}]


def spec(**extra):
    extra.setdefault('resources:VGPU', '1')
    flavor = objects.Flavor(vcpus=2, memory_mb=2048, extra_specs=extra,
                            root_gb=1, ephemeral_gb=0, swap=0)
    return objects.RequestSpec(
        flavor=flavor, image=objects.ImageMeta.from_dict({}),
        instance_uuid=RP, numa_topology=None)


REQUESTS = [
    {},
    {'gpu:numa_affinity_policy': 'required', 'gpu:placement': 'pack'},
    {'gpu:render_node': 'numa-local', 'gpu:numa_affinity_policy': 'socket'},
    {'gpu:min_share_percent': '10', 'gpu:placement': 'spread'},
]


def decide(stats_value, extra):
    host = FakeHost(stats_value)
    request = spec(**extra)
    with mock.patch.object(gpu_usage, 'current', return_value=None):
        ours = filters.GPUExtHostFilter().host_passes(host, request)
        placement = filters.GPUPlacementFilter().host_passes(host, request)
    avoid = weighers.GPUHostAvoidanceWeigher()._weigh_object(
        host, spec(**{'resources:VGPU': '0'}))
    return ours, placement, avoid


@pytest.mark.parametrize('extra', REQUESTS)
def test_the_good_summary_passes(extra):
    assert decide(json.dumps(good_summary()), extra)[:2] == (True, True)


def test_no_summary_is_a_host_without_nova_gpu_ext():
    assert host_facts.summary_from_stats({}) is None
    assert host_facts.summary_from_stats(None) is None
    assert host_facts.summary_from_stats('stats?') is None
    # A flavor with gpu: keys needs our driver; one without passes.
    assert decide(None, REQUESTS[1])[:2] == (False, True)
    assert decide(None, {}) == (True, True, 0.0)


@pytest.mark.parametrize('raw', ['{not json', '[1, 2]', 'null', '42',
                                 '"text"', json.dumps({'gpus': 'all'})])
def test_unreadable_summary_never_refuses_the_host(raw):
    # Old code: None for '{not json' (GPUExtHostFilter refused a host that
    # runs nova-gpu-ext), AttributeError for a JSON list.
    summary = host_facts.summary_from_stats({'gpu_ext': raw})
    assert summary.is_partial
    for extra in REQUESTS:
        assert decide(raw, extra)[:2] == (True, True)


def test_an_older_summary_without_render_nodes_does_not_refuse():
    old = good_summary()
    del old['render_nodes']
    del old['v']
    assert decide(json.dumps(old), REQUESTS[2])[:2] == (True, True)
    # ... while a host that says it has none is refused.
    none = good_summary()
    none['render_nodes'] = []
    assert decide(json.dumps(none), REQUESTS[2])[1] is False


def test_a_gpu_whose_node_was_not_published_is_unknown_not_refused():
    old = good_summary()
    del old['gpus'][0]['node']
    summary = host_facts.summary_from_stats({'gpu_ext': json.dumps(old)})
    assert 'gpus[0] has no node' in summary.partial
    assert decide(json.dumps(old), REQUESTS[1])[:2] == (True, True)


def test_newer_keys_are_kept_and_ignored():
    new = good_summary()
    new['v'] = 7
    new['health'] = {'0000:81:00.0': 'ok'}
    new['gpus'][0]['link'] = {'width': 16}
    summary = host_facts.summary_from_stats({'gpu_ext': json.dumps(new)})
    assert not summary.is_partial
    assert decide(json.dumps(new), REQUESTS[1])[:2] == (True, True)


def test_normalize_drops_bad_entries_and_fields():
    raw = good_summary()
    raw['nodes'].append({'id': 'two'})
    raw['gpus'][0]['used'] = -3
    raw['gpus'].append(['0000:82:00.0'])
    summary = HostSummary.from_dict(raw)
    assert [n.id for n in summary.nodes] == [0, 1]
    assert summary.gpus[0].used is None
    assert 'used' not in summary.to_dict()['gpus'][0]
    assert len(summary.gpus) == 1
    assert summary.problems == (
        'nodes[2] has no valid id', 'gpus[0].used is -3',
        'gpus[1] has no valid addr')


def test_a_bad_summary_is_logged_once():
    raw = json.dumps({'gpus': [{'addr': 3}]})
    with mock.patch.object(host_facts.LOG, 'warning') as warning:
        for _ in range(3):
            host_facts.summary_from_stats({'gpu_ext': raw})
    assert warning.call_count == 1


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10 ** 6) | st.floats() |
    st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) |
    st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)


@st.composite
def damaged_summary(draw):
    """(summary, only keys were dropped)"""
    summary = good_summary()
    only_drops = True
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(['drop', 'retype', 'replace']))
        if kind == 'replace':
            return draw(JSON), False
        only_drops = only_drops and kind == 'drop'
        section = draw(st.sampled_from(sorted(summary)))
        target = summary
        key = section
        value = summary[section]
        if isinstance(value, list) and value and draw(st.booleans()):
            entry = value[draw(st.integers(0, len(value) - 1))]
            if isinstance(entry, dict) and entry:
                target, key = entry, draw(st.sampled_from(sorted(entry)))
        if kind == 'drop':
            target.pop(key, None)
        else:
            target[key] = draw(JSON)
    return summary, only_drops


@SETTINGS
@given(damaged_summary(), st.sampled_from(REQUESTS))
def test_damaged_or_older_summaries_never_crash_nor_refuse(damaged, extra):
    """Keys dropped (an older compute), values of any JSON type (a broken
    one), or any JSON at all: the filters and the weigher never raise; a
    summary that was only missing keys, or that had to be cut (partial),
    never refuses this host, which has room for the guest. (A damaged
    value that is still well formed is a different fact, e.g. "no render
    nodes", and may refuse.)"""
    raw, only_drops = damaged
    ours, placement, avoid = decide(json.dumps(raw), extra)
    assert isinstance(avoid, float)
    summary = host_facts.summary_from_stats({'gpu_ext': json.dumps(raw)})
    if only_drops or summary.is_partial:
        assert (ours, placement) == (True, True), raw
