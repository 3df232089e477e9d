"""Issue 10, second pass: the pure rules added for render-node guests,
multi-create, the node-size rule and the claim's policy, and the Nova
internals they rely on (pinned: each test fails when Nova changes them;
listed in doc/source/reference/nova-internals.rst, Issue 10)."""

import pytest

from nova_gpu_ext.core.summary import HostSummary
from nova_gpu_ext.core import numa
from nova_gpu_ext.core import numa_books as nb

SOCKETS = {0: 0, 1: 0, 2: 1, 3: 1}


def test_render_nodes_with_room_least_used_first():
    slots = [('renderD128', 0, 2, 0), ('renderD129', 1, 0, 0),
             ('renderD130', 2, 1, 1),        # at its limit
             ('renderD131', None, 0, 0),     # node unknown
             ('renderD132', 1, 3, 4)]
    assert nb.render_nodes_with_room(slots) == [1, 0]
    assert nb.render_nodes_with_room([]) == []


@pytest.mark.parametrize('policy,cells,nodes,subsets,anywhere', [
    ('required', 1, [1], ((1,),), False),
    ('required', 1, [2, 0], ((2,), (0,)), False),
    ('required', 2, [1], ((0, 1), (1, 2), (1, 3)), False),
    ('socket', 1, [2], ((2,), (3,)), False),
    ('preferred', 1, [3], ((3,),), True),
    ('preferred', 1, [], (), True),
    ('required', 1, [], (), False),
    ('socket', 1, [], (), False),
    ('legacy', 1, [1], (), True),
])
def test_steer_render(policy, cells, nodes, subsets, anywhere):
    steering = numa.steer_render(policy, cells, [0, 1, 2, 3], SOCKETS, nodes)
    assert (steering.subsets, steering.anywhere) == (subsets, anywhere), \
        steering.reason


# -- Nova internals (pins) ----------------------------------------------------

def test_pin_locked_consume_from_request():
    import inspect
    from nova.scheduler import host_manager
    method = host_manager.HostState._locked_consume_from_request
    method = getattr(method, '__wrapped__', method)
    assert list(inspect.signature(method).parameters) == ['self',
                                                          'spec_obj']
    source = inspect.getsource(method)
    for line in ('hardware.numa_fit_instance_to_host(',
                 'self.numa_topology, spec_obj.numa_topology,',
                 "limits=self.limits.get('numa_topology')",
                 'self.numa_topology = hardware.numa_usage_from_instance_',
                 'instance_cells = spec_obj.numa_topology.cells'):
        assert line in source, line
    outer = inspect.getsource(host_manager.HostState.consume_from_request)
    assert 'self._locked_consume_from_request(spec_obj)' in outer


def test_pin_scheduler_claims_the_first_candidate_then_consumes():
    import inspect
    from nova.scheduler import manager
    source = inspect.getsource(manager.SchedulerManager._schedule)
    assert 'alloc_req = host.allocation_candidates[0]' in source
    assert 'spec_obj.instance_uuid = instance_uuid' in source
    assert source.index('alloc_req = host.allocation_candidates[0]') < \
        source.index('self._consume_selected_host(')
    consume = inspect.getsource(
        manager.SchedulerManager._consume_selected_host)
    assert 'selected_host.consume_from_request(spec_obj)' in consume


def test_consume_install_is_idempotent_and_narrows_to_the_fitted_cells():
    from nova import objects
    from nova.scheduler import host_manager
    from nova_gpu_ext.scheduler import numa_candidates
    from nova_gpu_ext.scheduler import numa_consume
    from nova_gpu_ext.scheduler import filters
    objects.register_all()
    filters.install_wraps()
    wrapped = host_manager.HostState._locked_consume_from_request
    filters.install_wraps()
    assert host_manager.HostState._locked_consume_from_request is wrapped
    seen = []

    def upstream(state, spec):
        seen.append(([c.id for c in state.numa_topology.cells],
                     spec.numa_topology))
        state.numa_topology = objects.NUMATopology(cells=[
            objects.NUMACell(id=c.id, memory_usage=1)
            for c in state.numa_topology.cells])

    full = objects.NUMATopology(cells=[
        objects.NUMACell(id=0, memory_usage=0),
        objects.NUMACell(id=1, memory_usage=0)])
    candidate = {'allocations': {}}
    fitted = objects.InstanceNUMATopology(cells=[
        objects.InstanceNUMACell(id=1, cpuset=set(), memory=1)])
    synthetic = objects.InstanceNUMATopology(cells=[
        objects.InstanceNUMACell(id=0, cpuset=set(), memory=1)])
    state = type('HS', (), {})()
    state.host = 'h'
    state.numa_topology = full
    state.allocation_candidates = [candidate]
    spec = type('RS', (), {'instance_uuid': 'u', 'numa_topology': None})()
    setattr(state, numa_candidates.ATTRIBUTE,
            ('u', synthetic, [(candidate, fitted)]))
    numa_consume.consume(upstream, state, spec, fitted, synthetic)
    assert seen[0][0] == [1] and seen[0][1] is not None
    assert spec.numa_topology is None       # the request stays non-NUMA
    assert [c.memory_usage for c in state.numa_topology.cells] == [0, 1]
    assert numa_candidates.fitted_for(state, spec) == (fitted, synthetic)
    spec.instance_uuid = 'other'            # another request's record
    assert numa_candidates.fitted_for(state, spec) is None


def test_node_size_rule_more_vcpus_than_the_node_has_cpus():
    # Nova's fit refuses a cell with more vCPUs than the host cell has
    # CPUs, whatever cpu_allocation_ratio: the core says so too (gap 3).
    from nova_gpu_ext.core import affinity as a
    from nova_gpu_ext.scheduler import request as sched_request
    from tests.unit.test_numa_books import host
    state = type('HS', (), {'numa_topology': host(cpus=4),
                            'cpu_allocation_ratio': 4.0,
                            'ram_allocation_ratio': 1.0})()
    nodes = sched_request.node_capacities(state, HostSummary())
    assert nodes[1].free_cpus == 16 and nodes[1].cpus == 4
    gpu = a.GPUSlot('0000:81:00.0', 1, 1)
    big = a.choose_node(a.GuestNeeds(6, 1024, 'required'), gpu, nodes)
    assert not big.ok and '6 vCPUs > 4 CPUs of the node' in big.reason
    assert a.choose_node(a.GuestNeeds(4, 1024, 'required'), gpu, nodes).ok
    assert a.fits_node_size(6, 0)           # size unknown: not refused


def test_claim_policy_from_flavor_image_and_ports_like_the_filter():
    # Gap 4: an image's hw_pci_numa_affinity_policy=required tightens the
    # flavor's preferred for the filter (inputs.resolve); the claim agrees.
    from types import SimpleNamespace as NS
    from nova import objects
    from nova_gpu_ext import model
    from nova_gpu_ext.virt import numa_claim
    objects.register_all()
    flavor = objects.Flavor(vcpus=1, memory_mb=1024, extra_specs={
        'resources:VGPU': '1', 'gpu:numa_affinity_policy': 'preferred'})
    image = objects.ImageMeta.from_dict(
        {'properties': {'hw_pci_numa_affinity_policy': 'required'}})
    topology = model.HostTopology(numa_nodes=(
        model.NUMANode(0, frozenset((0, 1)), 4096, 0),
        model.NUMANode(1, frozenset((2, 3)), 4096, 1)), gpus=())
    driver = NS(_gpu_host_topology=topology, _gpu_provider_uuids={})
    claim = NS(instance=NS(flavor=flavor, uuid='u', image_meta=image,
                           pci_requests=None),
               flavor=flavor, image_meta=image, numa_topology=None,
               _pci_requests=None, context=None,
               tracker=NS(reportclient=NS(
                   get_allocations_for_consumer=lambda c, u: {})))
    assert numa_claim.plan(driver, claim).policy == 'required'


def test_pin_nova_fit_refuses_more_vcpus_than_the_host_cell_has_cpus():
    from nova.virt import hardware
    from nova_gpu_ext.nova_glue import numa_fit
    from tests.unit.test_numa_books import flavor, host, image
    requested = numa_fit.one_cell_topology(flavor(1024, vcpus=6), image())
    assert hardware.numa_fit_instance_to_host(
        host(cpus=4), requested, None,
        limits=numa_fit.limits(4.0, 1.0)) is None
    requested = numa_fit.one_cell_topology(flavor(1024, vcpus=4), image())
    assert hardware.numa_fit_instance_to_host(
        host(cpus=4), requested, None,
        limits=numa_fit.limits(4.0, 1.0)) is not None
