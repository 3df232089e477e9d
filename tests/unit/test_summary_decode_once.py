"""The scheduler decodes a host's summary once, and a request once.

Nova runs every enabled filter and weigher over every host of a request;
each of ours reads the host summary (``HostState.stats``) and the request
(flavor, image and port input). Decoding them in each filter and weigher
cost about 0.5 ms per host per request (doc/source/admin/scheduler-cost.rst).
Here Nova's own filter and weight handlers run our two filters and three
weighers over M hosts for one request, and the decodes are counted.
"""

import json
from unittest import mock

from nova import objects
from nova.scheduler import filters as nova_filters
from nova.scheduler import weights as nova_weights
from nova.tests.unit.scheduler import fakes

from nova_gpu_ext.scheduler import filters
from nova_gpu_ext.scheduler import weighers
from tests.unit import test_rolling_upgrade as rolling_upgrade

objects.register_all()

HOSTS = 7
GPUS = 4


def rp(host, gpu):
    return '6a2f0f4e-0d5b-4f0e-9e1c-%04x%08x' % (host, gpu)


def summary(host):
    return {
        'v': 1,
        'nodes': [{'id': n, 'socket': n, 'cpus': 32, 'mem_mb': 131072}
                  for n in (0, 1)],
        'gpus': [{'addr': '0000:%02x:00.0' % (0x3b + 0x10 * g),
                  'kind': 'mdev_parent', 'node': 2 * g // GPUS,
                  'socket': 2 * g // GPUS,
                  'vendor': '10de', 'device': '1eb8', 'rp': rp(host, g),
                  'used': 0, 'mdevs': 0, 'mdev_types': {'nvidia-35': 16}}
                 for g in range(GPUS)],
        'render_nodes': [], 'warnings': 0}


def host_states(stats=None):
    # No usage view of an earlier request in this thread (another test's).
    from nova_gpu_ext.scheduler import usage
    usage._local.usage = None
    out = []
    for h in range(HOSTS):
        raw = stats[h] if stats else json.dumps(summary(h))
        out.append(fakes.FakeHostState('host%d' % h, 'node%d' % h, {
            'stats': {'gpu_ext': raw},
            'numa_topology': None,
            'cpu_allocation_ratio': 1.0, 'ram_allocation_ratio': 1.0,
            'allocation_candidates': [
                {'allocations': {rp(h, g): {'resources': {'VGPU': 1}}},
                 'mappings': {}} for g in range(GPUS)]}))
    return out


def spec(**extra):
    request = rolling_upgrade.spec(**extra)
    request.pci_requests = objects.InstancePCIRequests(requests=[])
    return request


class Counted:
    """Wraps ``json.loads`` and counts the decodes of host summaries."""

    def __init__(self, raws):
        self.raws = set(raws)
        self.decodes = []
        self.original = json.loads

    def __call__(self, value, *args, **kwargs):
        if isinstance(value, str) and value in self.raws:
            self.decodes.append(value)
        return self.original(value, *args, **kwargs)


def schedule(hosts, request):
    """Nova's filter handler then weight handler, as the scheduler's
    manager runs them for one instance."""
    kept = nova_filters.HostFilterHandler().get_filtered_objects(
        [filters.GPUExtHostFilter(), filters.GPUPlacementFilter()],
        hosts, request)
    kept = list(kept or [])
    weighed = nova_weights.HostWeightHandler().get_weighed_objects(
        [weighers.GPUHostAvoidanceWeigher(), weighers.GPUAffinityWeigher(),
         weighers.GPUSharingWeigher()], kept, request)
    return kept, weighed


def run(hosts, request):
    counter = Counted(h.stats['gpu_ext'] for h in hosts)
    with mock.patch('json.loads', counter):
        kept, _ = schedule(hosts, request)
    return kept, counter.decodes


def test_one_decode_per_host_for_one_request():
    hosts = host_states()
    kept, decodes = run(hosts, spec(**{'gpu:placement': 'pack'}))
    assert len(kept) == HOSTS
    # Two filters and three weighers read every host: still one decode.
    assert len(decodes) == HOSTS
    assert sorted(decodes) == sorted(h.stats['gpu_ext'] for h in hosts)


def test_a_new_stats_value_is_decoded_again_the_same_one_is_not():
    hosts = host_states()
    run(hosts, spec())
    # Nova's HostManager reads the compute nodes again for the next
    # request: equal values (the compute did not update) are not decoded
    # again ...
    for h in hosts:
        h.stats = {'gpu_ext': str(h.stats['gpu_ext'])}
    _, decodes = run(hosts, spec())
    assert decodes == []
    # ... a compute that published new facts is.
    changed = summary(0)
    changed['gpus'][0]['used'] = 3
    hosts[0].stats = {'gpu_ext': json.dumps(changed)}
    _, decodes = run(hosts, spec())
    assert decodes == [hosts[0].stats['gpu_ext']]


def test_the_request_is_resolved_once_per_request_not_per_host():
    from nova_gpu_ext.nova_glue import request_inputs
    from nova_gpu_ext.core import spec as specs
    hosts = host_states()
    request = spec(**{'gpu:numa_affinity_policy': 'preferred'})
    with mock.patch.object(specs, 'parse', wraps=specs.parse) as parse, \
            mock.patch.object(request_inputs, 'resolve',
                              wraps=request_inputs.resolve) as resolve:
        kept, _ = schedule(hosts, request)
    assert len(kept) == HOSTS
    assert parse.call_count == 1
    assert resolve.call_count == 1


def test_a_new_flavor_on_the_same_request_spec_is_parsed_again():
    # A resize reuses the RequestSpec with the new flavor.
    from nova_gpu_ext.core import spec as specs
    hosts = host_states()
    request = spec()
    schedule(hosts, request)
    request.flavor = objects.Flavor(
        vcpus=2, memory_mb=2048, root_gb=1, ephemeral_gb=0, swap=0,
        extra_specs={'resources:VGPU': '1', 'gpu:placement': 'spread'})
    with mock.patch.object(specs, 'parse', wraps=specs.parse) as parse:
        schedule(hosts, request)
    assert parse.call_count == 1
    assert parse.call_args[0][0]['gpu:placement'] == 'spread'


def test_new_host_states_of_the_next_request_do_not_decode_again():
    # Nova 34's HostManager._get_host_states builds new HostState objects
    # for every request (its host_state_map is local to the call): the
    # decoded summary must outlive them, keyed by the host and the value.
    hosts = host_states()
    run(hosts, spec())
    _, decodes = run(host_states([str(h.stats['gpu_ext']) for h in hosts]),
                     spec())
    assert decodes == []
    # The same value on another host (same hardware) is no shortcut to a
    # wrong host: each host is still decoded from its own value.
    changed = summary(0)
    changed['gpus'][0]['used'] = 3
    raws = [json.dumps(changed)] + [h.stats['gpu_ext'] for h in hosts[1:]]
    _, decodes = run(host_states(raws), spec())
    assert decodes == [raws[0]]


def test_nova_builds_new_host_states_for_every_request():
    # Pins the Nova internal the cache above is for.
    from nova.scheduler import host_manager
    from nova.tests.unit.scheduler import fakes as sched_fakes
    import collections
    manager = host_manager.HostManager.__new__(host_manager.HostManager)
    manager.host_aggregates_map = collections.defaultdict(set)
    manager.aggs_by_id = {}
    compute = sched_fakes.COMPUTE_NODES[0]
    services = {compute.host: sched_fakes.SERVICES[0]}
    with mock.patch.object(manager, '_get_instance_info', return_value={}):
        first = list(manager._get_host_states(
            None, {'cell1': [compute]}, services))
        second = list(manager._get_host_states(
            None, {'cell1': [compute]}, services))
    assert first[0] is not second[0]


def test_hosts_of_the_same_hardware_and_use_are_decided_once():
    # The hosts differ only in their provider UUIDs: one decision per
    # request serves them all; a host whose GPUs are used differently gets
    # its own.
    from nova_gpu_ext.core import decide
    from nova_gpu_ext.scheduler import usage
    decide.decide_cache_clear()
    hosts = host_states()
    request = spec(**{'gpu:placement': 'pack'})
    usage._local.usage = usage.RequestUsage('req-1', {
        rp(h, g): {'resources': {'VGPU': {'capacity': 16,
                                          'used': 2 if (h, g) == (0, 1)
                                          else 0}}}
        for h in range(HOSTS) for g in range(GPUS)})
    with mock.patch.object(decide, 'decide',
                           wraps=decide.decide) as decided:
        kept, _ = schedule(hosts, request)
    assert len(kept) == HOSTS
    assert decided.call_count == 2
    # The used GPU of host0 is ranked first on it (pack), not on the others.
    first = [h.allocation_candidates[0]['allocations'] for h in kept]
    assert list(first[0]) == [rp(0, 1)]
    assert all(list(f) != [rp(h, 1)] for h, f in enumerate(first) if h)
