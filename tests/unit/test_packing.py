"""Pack or spread over the physical GPUs of one host, and the host scores."""

import pytest

from nova_gpu_ext.core import packing
from nova_gpu_ext.core import sharing

PROFILE = sharing.SharingProfile(100.0, 0.0, margin=0.75)   # 15 tenants fit
FAST = sharing.SharingProfile(6.0, 0.2)

GPU0 = '0000:3b:00.0'
GPU1 = '0000:5e:00.0'
GPU2 = '0000:af:00.0'


def load(address, tenants, capacity=24, numa_node=0, prof=PROFILE,
         resident_min_share=None):
    return packing.PhysicalGPULoad(address, numa_node, tenants, capacity,
                                   prof, resident_min_share)


def place(strategy, addresses, count, **kwargs):
    """Place ``count`` tenants one by one; return the addresses chosen."""
    tenants = {address: 0 for address in addresses}
    chosen = []
    for _ in range(count):
        loads = [load(a, n, **kwargs) for a, n in tenants.items()]
        choice = packing.choose_physical_gpu(loads, strategy)
        chosen.append(choice.address)
        if choice.address is not None:
            tenants[choice.address] += 1
    return chosen


def test_pack_fills_gpu0_before_gpu1():
    chosen = place('pack', [GPU1, GPU0], 17)
    # 15 tenants is the most a 100 ms / 0.75 margin GPU admits.
    assert chosen == [GPU0] * 15 + [GPU1] * 2


def test_spread_alternates():
    chosen = place('spread', [GPU1, GPU0], 6)
    assert chosen == [GPU0, GPU1] * 3


def test_both_strategies_refuse_when_every_gpu_is_at_the_timeout_bound():
    for strategy in packing.STRATEGIES:
        chosen = place(strategy, [GPU0, GPU1], 31)
        assert chosen[:30].count(GPU0) == 15
        assert chosen[:30].count(GPU1) == 15
        assert chosen[30] is None


@pytest.mark.parametrize('strategy,loads,expected', [
    # pack: the most loaded GPU that admits; ties: lowest address.
    ('pack', [load(GPU0, 2), load(GPU1, 5), load(GPU2, 0)],
     (GPU1, GPU0, GPU2)),
    ('pack', [load(GPU2, 3), load(GPU1, 3), load(GPU0, 0)],
     (GPU1, GPU2, GPU0)),
    # pack never takes a GPU at the bound, nor a whole-free one first.
    ('pack', [load(GPU0, 0), load(GPU1, 15), load(GPU2, 1)],
     (GPU2, GPU0)),
    # spread: the least loaded; ties: lowest address.
    ('spread', [load(GPU0, 2), load(GPU1, 5), load(GPU2, 0)],
     (GPU2, GPU0, GPU1)),
    ('spread', [load(GPU2, 1), load(GPU1, 1), load(GPU0, 4)],
     (GPU1, GPU2, GPU0)),
    # Addresses compare as PCI addresses, whatever the case of the hex.
    ('spread', [load('0000:AF:00.0', 0), load('0000:3B:00.0', 0)],
     ('0000:3B:00.0', '0000:AF:00.0')),
    # spread prefers the GPU where the newcomer gets the larger share: 2
    # tenants on a 96.7 % GPU give 32.2 % each, 2 on the 100 % one 33.3 %.
    ('spread', [load(GPU0, 2, prof=FAST), load(GPU1, 2)], (GPU1, GPU0)),
])
def test_ranking(strategy, loads, expected):
    assert packing.rank_physical_gpus(loads, strategy) == expected
    choice = packing.choose_physical_gpu(loads, strategy)
    assert choice.ranking == expected
    assert choice.address == expected[0]
    assert choice.reason.startswith('%s: %s has' % (strategy, expected[0]))


def test_min_share_refusal_names_the_share():
    loads = [load(GPU0, 9, prof=FAST), load(GPU1, 3, prof=FAST)]
    choice = packing.choose_physical_gpu(loads, 'pack', min_share=0.10)
    assert choice.address == GPU1
    reason = choice.refusal_for(GPU0)
    assert reason.startswith(GPU0 + ' refused: ')
    assert '10 tenants would each get 9.6% of the GPU' in reason
    assert choice.refusal_for(GPU1) is None

    choice = packing.choose_physical_gpu(loads, 'pack', min_share=0.30)
    assert choice.address is None
    assert choice.ranking == ()
    assert choice.reason.startswith(
        'No physical GPU admits another tenant: ')
    assert '30.0% minimum share' in choice.reason


def test_max_tenants_refusal():
    capped = sharing.SharingProfile(6.0, 0.2, max_tenants=4)
    loads = [load(GPU0, 4, prof=capped), load(GPU1, 4, prof=capped)]
    choice = packing.choose_physical_gpu(loads, 'spread')
    assert choice.address is None
    for address in (GPU0, GPU1):
        assert 'max_tenants 4' in choice.refusal_for(address)


def test_full_device_is_refused_even_under_the_timeout():
    loads = [load(GPU0, 2, capacity=2, prof=FAST), load(GPU1, 1, prof=FAST)]
    choice = packing.choose_physical_gpu(loads, 'pack')
    assert choice.address == GPU1
    assert 'all 2 instance(s) of the type are in use' in choice.refusal_for(
        GPU0)


def test_resident_min_share_protects_tenants_already_there():
    loads = [load(GPU0, 3, prof=FAST, resident_min_share=0.30),
             load(GPU1, 1, prof=FAST)]
    choice = packing.choose_physical_gpu(loads, 'pack')
    assert choice.address == GPU1
    assert 'needs at least 30.0%' in choice.refusal_for(GPU0)


@pytest.mark.parametrize('allowed,numa_nodes,expected,fragment', [
    ({1}, (0, 1), GPU1, 'it is on NUMA node 0, not on an allowed NUMA node '
                        '(1)'),
    ({0, 1}, (0, 1), GPU0, None),
    ({1}, (None, 1), GPU1, 'its NUMA node is unknown'),
    (set(), (0, 1), None, 'not on an allowed NUMA node (none)'),
    (None, (None, None), GPU0, None),
])
def test_allowed_nodes_restrict_with_a_reason(allowed, numa_nodes, expected,
                                              fragment):
    loads = [load(GPU0, 5, numa_node=numa_nodes[0]),
             load(GPU1, 0, numa_node=numa_nodes[1])]
    choice = packing.choose_physical_gpu(loads, 'pack',
                                         allowed_nodes=allowed)
    assert choice.address == expected
    if fragment is None:
        assert choice.refusals == ()
    else:
        assert fragment in choice.refusal_for(GPU0)


def test_no_gpu_at_all():
    choice = packing.choose_physical_gpu([], 'pack')
    assert choice.address is None
    assert choice.reason == 'No physical GPU offers the requested type.'
    assert packing.host_pack_score([]) == packing.NO_FIT_SCORE
    assert packing.host_spread_score([]) == packing.NO_FIT_SCORE


@pytest.mark.parametrize('call', [
    lambda: packing.choose_physical_gpu([load(GPU0, 0)], 'fill'),
    lambda: packing.choose_physical_gpu([load(GPU0, 0), load(GPU0, 1)],
                                        'pack'),
    lambda: load(GPU0, -1),
])
def test_invalid_input_raises(call):
    with pytest.raises(ValueError):
        call()


# -- host scores (weigher): higher = preferred --------------------------------

def _host(*tenants, **kwargs):
    addresses = ['0000:%02x:00.0' % (i + 1) for i in range(len(tenants))]
    return [load(a, n, **kwargs) for a, n in zip(addresses, tenants)]


@pytest.mark.parametrize('better,worse', [
    # Joining a used GPU beats opening a free one.
    (_host(1, 0, 0, 0), _host(0, 0, 0, 0)),
    # A fuller GPU beats an emptier one (best fit).
    (_host(10, 0), _host(3, 0)),
    # Among hosts that must open a GPU, fewer free GPUs left wins.
    (_host(15, 0), _host(0, 0)),
    (_host(15, 15, 0, 0), _host(15, 0, 0, 0)),
    # Anything that fits beats a host where nothing fits.
    (_host(0, 0), _host(15, 15)),
])
def test_host_pack_score_order(better, worse):
    assert packing.host_pack_score(better) > packing.host_pack_score(worse)


@pytest.mark.parametrize('better,worse', [
    (_host(0, 5), _host(1, 5)),
    (_host(2, 2), _host(3, 3)),
    (_host(14), _host(15)),
])
def test_host_spread_score_order(better, worse):
    assert packing.host_spread_score(better) > packing.host_spread_score(
        worse)


def test_host_scores_honour_min_share_and_nodes():
    host = _host(3, 0, prof=FAST)
    # With min_share 0.3 the used GPU refuses, so pack must open a new one.
    assert packing.host_pack_score(host, min_share=0.30) < 0.5
    assert packing.host_pack_score(host) >= 0.5
    assert packing.host_spread_score(host, allowed_nodes={7}) == (
        packing.NO_FIT_SCORE)
    assert packing.host_spread_score(host) == pytest.approx(6.0 / 6.2)


@pytest.mark.parametrize('loads,min_share,expected', [
    # A min-share newcomer joins the GPU a min-share resident already
    # limits (4 slots, 2 left) rather than cap a roomy one (6 left 3).
    ([load(GPU0, 2), load(GPU1, 1, resident_min_share=0.25)], 0.15, GPU1),
    # Without it the newcomer would cap GPU0 from 15 slots to 6.
    ([load(GPU0, 2), load(GPU1, 0)], 0.15, GPU0),
    # A plain newcomer fills the limited GPU (2 left) before the roomy one
    # (4 left), although the roomy one has more tenants.
    ([load(GPU0, 10), load(GPU1, 3, resident_min_share=0.15)], None, GPU1),
])
def test_pack_is_best_fit(loads, min_share, expected):
    choice = packing.choose_physical_gpu(loads, 'pack', min_share)
    assert choice.address == expected
    assert 'slots used with the new tenant' in choice.reason


def test_slots_counts_the_strictest_share():
    gpu = load(GPU0, 1, resident_min_share=0.25)
    assert packing.slots(gpu) == 4
    assert packing.slots(gpu, 0.5) == 2
    assert packing.slots(load(GPU0, 0)) == 15
    assert packing.slots(load(GPU0, 0, capacity=8)) == 8
