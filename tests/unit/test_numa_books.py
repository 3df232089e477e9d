"""Issue 10: the steering core, the steered Nova fit, and the Nova
internals the NUMA books rely on (each test fails when Nova changes the
behaviour listed in doc/source/reference/nova-internals.rst, Issue 10)."""

import inspect

import pytest

from nova.compute import claims
from nova.compute import resource_tracker
from nova import objects
from nova.scheduler.filters import numa_topology_filter
from nova.scheduler import host_manager
from nova.virt import hardware

from nova_gpu_ext.core.summary import HostSummary
from nova_gpu_ext.core.summary import NodeSummary
from nova_gpu_ext.nova_glue import numa_fit
from nova_gpu_ext.core import numa
from nova_gpu_ext.core import numa_books as nb

objects.register_all()

SOCKETS = {0: 0, 1: 0, 2: 1, 3: 1}


# -- the pure core ------------------------------------------------------------

@pytest.mark.parametrize('policy,cells,gpus,subsets,anywhere', [
    ('required', 1, [1], ((1,),), False),
    ('required', 2, [1], ((0, 1), (1, 2), (1, 3)), False),
    ('required', 1, [1, 2], (), False),            # two nodes, one cell
    ('required', 2, [1, 2], ((1, 2),), False),
    ('socket', 1, [2], ((2,), (3,)), False),
    ('preferred', 1, [3], ((3,),), True),
    ('preferred', 1, [None], (), True),
    ('required', 1, [None], (), False),
    ('socket', 1, [None], (), False),
    ('legacy', 1, [1], (), True),
    ('required', 1, [], (), True),                 # PCI alias: Nova's policy
])
def test_steer(policy, cells, gpus, subsets, anywhere):
    steering = numa.steer(policy, cells, [0, 1, 2, 3], SOCKETS, gpus)
    assert (steering.subsets, steering.anywhere) == (subsets, anywhere), \
        steering.reason


def test_socket_unknown_keeps_home_only():
    steering = numa.steer('socket', 1, [0, 1], {0: None, 1: None}, [1])
    assert steering.subsets == ((1,),) and not steering.anywhere


def test_one_cell_and_refusal_rules():
    assert numa.wants_one_cell('preferred', True, False)
    assert not numa.wants_one_cell('legacy', True, False)
    assert not numa.wants_one_cell('required', True, True)
    assert not numa.wants_one_cell('required', False, False)
    assert numa.refuse_without_cell('required')
    assert numa.refuse_without_cell('socket')
    assert not numa.refuse_without_cell('preferred')


def test_overcommitted():
    ok = nb.NodeUse(0, 8192, 8192, 4, 16, 1.0, 4.0)
    over = nb.NodeUse(1, 8192, 9216, 4, 2, 1.0, 4.0)
    ratio = nb.NodeUse(1, 8192, 9216, 4, 2, 1.5, 4.0)
    assert nb.overcommitted([ok, over, ratio]) == [over]


# -- the steered fit, on Nova's objects ---------------------------------------

def host(nodes=2, cpus=4, memory=8192, used=None, sockets=None):
    """Nova's NUMATopology of a host (``sockets``: each node's socket,
    default one socket per node)."""
    used = used or {}
    sockets = sockets or list(range(nodes))
    cells = []
    for n in range(nodes):
        cells.append(objects.NUMACell(
            id=n, socket=sockets[n],
            cpuset=set(range(n * cpus, (n + 1) * cpus)),
            pcpuset=set(), memory=memory, cpu_usage=0,
            memory_usage=used.get(n, 0), pinned_cpus=set(), siblings=[],
            mempages=[objects.NUMAPagesTopology(
                size_kb=4, total=memory * 256, used=0)],
            network_metadata=objects.NetworkMetadata(
                physnets=set(), tunneled=False)))
    return objects.NUMATopology(cells=cells)


def flavor(memory_mb=3072, vcpus=2, **extra):
    return objects.Flavor(vcpus=vcpus, memory_mb=memory_mb, extra_specs=extra)


def image():
    return objects.ImageMeta.from_dict({'properties': {}})


def test_one_cell_topology_is_novas_hw_numa_nodes_1():
    topology = numa_fit.one_cell_topology(flavor(), image())
    assert len(topology.cells) == 1
    assert topology.cells[0].cpuset == {0, 1}
    assert topology.cells[0].memory == 3072


@pytest.mark.parametrize('policy,used,node', [
    ('required', {}, 1),
    ('required', {1: 6144}, None),     # GPU node full: refused
    ('preferred', {1: 6144}, 0),       # elsewhere
    ('preferred', {0: 8192, 1: 8192}, None),
    ('socket', {1: 6144}, None),        # node 0 is on another socket here
])
def test_fit_steers_to_the_gpu_node(policy, used, node):
    requested = numa_fit.one_cell_topology(flavor(), image())
    steering = numa.steer(policy, 1, [0, 1], {0: 0, 1: 1}, [1])
    fitted = numa_fit.fit(host(used=used), requested, steering,
                          numa_fit.limits(4.0, 1.0))
    assert (fitted.cells[0].id if fitted else None) == node
    assert requested.cells[0].id is None or requested.cells[0].id == 0


def test_upstream_fit_alone_ignores_the_gpu_node():
    # Why steering is needed: Nova's own choice for a one-cell guest on an
    # empty host is node 0 whatever GPU it has.
    requested = numa_fit.one_cell_topology(flavor(), image())
    fitted = hardware.numa_fit_instance_to_host(
        host(), requested, None, limits=numa_fit.limits(4.0, 1.0))
    assert fitted.cells[0].id == 0


# -- Nova internals (pins) ----------------------------------------------------

def test_pin_claim_test_numa_topology_signature():
    method = claims.Claim._test_numa_topology
    method = getattr(method, '__wrapped__', method)
    assert list(inspect.signature(method).parameters) == [
        'self', 'compute_node', 'limit']
    source = inspect.getsource(claims.Claim._claim_test)
    assert 'self._test_numa_topology(compute_node, numa_topology_limit)' \
        in source
    assert 'claimed_numa_topology' in inspect.getsource(method)


def test_pin_claim_attributes_used():
    source = inspect.getsource(claims.Claim.__init__)
    for name in ('self.instance = instance.obj_clone()', 'self.tracker',
                 'self._pci_requests', 'self.context'):
        assert name in source
    move = inspect.getsource(claims.MoveClaim)
    assert 'hardware.numa_get_constraints(self.flavor, self.image_meta)' \
        in move
    assert issubclass(claims.MoveClaim, claims.Claim)


def test_pin_resource_tracker_stores_and_counts_the_claimed_cells():
    source = inspect.getsource(resource_tracker.ResourceTracker.instance_claim)
    assert 'instance.numa_topology = instance_numa_topology' in source
    assert 'claims.Claim(' in source
    move = inspect.getsource(resource_tracker.ResourceTracker._move_claim)
    assert 'claimed_numa_topology' in move
    usage = inspect.getsource(resource_tracker.ResourceTracker._update_usage)
    assert 'numa_usage_from_instance_numa' in usage
    init = inspect.getsource(resource_tracker.ResourceTracker.__init__)
    for name in ('self.driver = driver', 'self.reportclient',
                 'self.pci_tracker'):
        assert name in init


def test_pin_numa_fit_instance_to_host_signature():
    params = list(inspect.signature(
        hardware.numa_fit_instance_to_host).parameters)
    assert params == ['host_topology', 'instance_topology',
                      'provider_mapping', 'limits', 'pci_requests',
                      'pci_stats']


def test_pin_fit_returns_host_cell_ids_and_uses_limits():
    requested = numa_fit.one_cell_topology(flavor(memory_mb=4096), image())
    full = host(used={0: 6144, 1: 6144})
    assert hardware.numa_fit_instance_to_host(
        full, requested.obj_clone(), None,
        limits=numa_fit.limits(4.0, 1.0)) is None
    # Without limits Nova checks only the cell's size: the usage is not
    # looked at, which is why the claim passes the host's ratios.
    assert hardware.numa_fit_instance_to_host(
        full, requested.obj_clone(), None) is not None


def test_pin_usage_from_instance_numa_counts_memory():
    requested = numa_fit.one_cell_topology(flavor(), image())
    fitted = hardware.numa_fit_instance_to_host(
        host(), requested, None, limits=numa_fit.limits(4.0, 1.0))
    used = hardware.numa_usage_from_instance_numa(host(), fitted)
    assert used.cells[fitted.cells[0].id].memory_usage == 3072
    assert used.cells[fitted.cells[0].id].cpu_usage == 2


def test_pin_scheduler_limits_and_consume():
    source = inspect.getsource(
        numa_topology_filter.NUMATopologyFilter.host_passes)
    assert "host_state.limits['numa_topology'] = limits" in source
    consume = inspect.getsource(
        host_manager.HostState._locked_consume_from_request)
    assert 'if self.numa_topology and spec_obj.numa_topology:' in consume
    update = inspect.getsource(
        host_manager.HostState._update_from_compute_node)
    for name in ('self.numa_topology', 'self.cpu_allocation_ratio',
                 'self.ram_allocation_ratio'):
        assert name in update


def test_pin_compute_node_ratio_fields():
    fields = objects.ComputeNode.fields
    for name in ('numa_topology', 'cpu_allocation_ratio',
                 'ram_allocation_ratio'):
        assert name in fields
    assert set(objects.NUMATopologyLimits.fields) >= {
        'cpu_allocation_ratio', 'ram_allocation_ratio'}


def test_install_is_idempotent_and_falls_back_to_upstream(monkeypatch):
    from nova_gpu_ext.virt import numa_claim
    calls = []

    def upstream(self, compute_node, limit):
        calls.append((compute_node, limit))
        return 'upstream'

    monkeypatch.setattr(claims.Claim, '_test_numa_topology', upstream)
    from nova_gpu_ext.nova_glue import wraps
    from nova_gpu_ext.virt import pci_traits
    wraps.install_compute(pci_traits.reapply, numa_claim.test_numa_topology)
    wrapped = claims.Claim._test_numa_topology
    wraps.install_compute(pci_traits.reapply, numa_claim.test_numa_topology)
    assert claims.Claim._test_numa_topology is wrapped
    assert wrapped.__wrapped__ is upstream

    class Tracker:
        driver = object()       # not ours: upstream's code runs

    fake = type('C', (), {'tracker': Tracker(), 'instance': None})()
    assert wrapped(fake, 'cn', 'lim') == 'upstream'
    assert calls == [('cn', 'lim')]


def test_host_score_without_tightness_for_spread_tenants():
    from nova_gpu_ext.core import affinity as a
    nodes = [a.NodeCapacity(0, 0, 8, 2048, 8, 8192)]
    accepted, _ = a.rank(a.GuestNeeds(1, 1024), [a.GPUSlot('g', 0)], nodes)
    assert a.host_score(accepted) > 1.0
    assert a.host_score(accepted, tightness=False) == 1.0


def test_scheduler_node_capacities_use_novas_cells_and_ratios():
    from nova_gpu_ext.scheduler import request as sched_request
    topology = host(used={1: 6144})
    topology.cells[1].cpu_usage = 4
    state = type('HS', (), {'numa_topology': topology,
                            'cpu_allocation_ratio': 4.0,
                            'ram_allocation_ratio': 1.0})()
    nodes = {n.id: n for n in sched_request.node_capacities(
        state, HostSummary(nodes=(NodeSummary(0, 0), NodeSummary(1, 1))))}
    assert nodes[1].free_memory_mb == 2048
    assert nodes[1].free_cpus == 16 - 4
    assert nodes[0].free_memory_mb == 8192 and nodes[1].socket == 1
    state.ram_allocation_ratio = 1.5
    nodes = sched_request.node_capacities(state, HostSummary())
    assert nodes[1].free_memory_mb == 12288 - 6144
