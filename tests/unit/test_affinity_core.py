"""The NUMA affinity core: every policy, on table-driven cases."""

import pytest

from nova_gpu_ext.core import numa
from nova_gpu_ext.core import affinity as a

NODES = [a.NodeCapacity(0, 0, free_cpus=8, free_memory_mb=16384,
                        total_cpus=8, total_memory_mb=16384),
         a.NodeCapacity(1, 0, free_cpus=8, free_memory_mb=4096,
                        total_cpus=8, total_memory_mb=16384),
         a.NodeCapacity(2, 1, free_cpus=8, free_memory_mb=16384,
                        total_cpus=8, total_memory_mb=16384)]
GPU0 = a.GPUSlot('0000:81:00.0', 0, 0)
GPU1 = a.GPUSlot('0000:82:00.0', 1, 0)
GPU2 = a.GPUSlot('0000:c1:00.0', 2, 1)
UNKNOWN = a.GPUSlot('0000:41:00.0', None, None)


@pytest.mark.parametrize('policy,gpu,ok,node,binding,local', [
    # fits on the GPU's node
    ('required', GPU0, True, 0, a.STRICT, True),
    ('socket', GPU0, True, 0, a.STRICT, True),
    ('preferred', GPU0, True, 0, a.PREFERRED, True),
    ('legacy', GPU0, True, None, None, False),
    # the GPU's node is too full (4 GiB free, 8 GiB asked)
    ('required', GPU1, False, None, None, False),
    ('socket', GPU1, True, 0, a.STRICT, False),     # node 0: same socket
    ('preferred', GPU1, True, None, None, False),   # never refused
    # unknown NUMA node
    ('required', UNKNOWN, False, None, None, False),
    ('socket', UNKNOWN, False, None, None, False),
    ('preferred', UNKNOWN, True, None, None, False),
])
def test_choose_node(policy, gpu, ok, node, binding, local):
    choice = a.choose_node(a.GuestNeeds(4, 8192, policy), gpu, NODES)
    assert (choice.ok, choice.node, choice.binding, choice.local) == (
        ok, node, binding, local), choice.reason


def test_refusals_say_why():
    choice = a.choose_node(a.GuestNeeds(4, 8192, 'required'), GPU1, NODES)
    assert choice.reason == ('GPU 0000:82:00.0 on node 1: 4096 MiB free < '
                             '8192 MiB')
    choice = a.choose_node(a.GuestNeeds(4, 8192, 'required'), UNKNOWN, NODES)
    assert 'NUMA node unknown, policy required needs it' in choice.reason


def test_socket_refused_when_no_node_of_the_socket_fits():
    full = [a.NodeCapacity(0, 0, 1, 100), a.NodeCapacity(1, 0, 1, 100),
            a.NodeCapacity(2, 1, 8, 16384)]
    choice = a.choose_node(a.GuestNeeds(4, 8192, 'socket'), GPU1, full)
    assert not choice.ok
    assert 'no other node of socket 0 fits' in choice.reason


def test_rank_local_first_then_tightest():
    roomy = [a.NodeCapacity(0, 0, 8, 16384, 8, 16384),
             a.NodeCapacity(1, 0, 8, 9000, 8, 16384)]
    accepted, refused = a.rank(a.GuestNeeds(2, 8192, 'preferred'),
                               [GPU0, GPU1, UNKNOWN], roomy)
    # Both local; node 1 is left fuller, so GPU1 first; unknown last.
    assert [c.gpu.address for c in accepted] == [
        GPU1.address, GPU0.address, UNKNOWN.address]
    assert refused == []
    assert a.host_score(accepted) > 1.0
    assert a.host_score([]) == 0.0


def test_render_node_on_a_node_where_the_guest_fits_least_used_first():
    renders = [a.RenderSlot('renderD128', '/dev/dri/renderD128', 0, 3),
               a.RenderSlot('renderD129', '/dev/dri/renderD129', 1, 0),
               a.RenderSlot('renderD130', '/dev/dri/renderD130', 2, 1)]
    choice = a.choose_render_node(renders, a.GuestNeeds(4, 8192, 'required'),
                                  NODES)
    # renderD129's node 1 is too full for 8 GiB; renderD130 beats D128.
    assert (choice.ok, choice.render.name, choice.node) == (
        True, 'renderD130', 2)
    only = a.choose_render_node(renders, a.GuestNeeds(1, 1024, 'required'),
                                NODES, only_node=0)
    assert only.render.name == 'renderD128'


def test_render_node_limit_and_fallbacks():
    renders = [a.RenderSlot('renderD128', '/dev/dri/renderD128', 0, 1, 1),
               a.RenderSlot('renderD129', '/dev/dri/renderD129', 1, 0, 1)]
    big = a.GuestNeeds(4, 8192, 'required')
    refused = a.choose_render_node(renders, big, NODES)
    assert not refused.ok and 'renderD129 node 1 0/1' in refused.reason
    loose = a.choose_render_node(renders, a.GuestNeeds(4, 8192, 'preferred'),
                                 NODES)
    assert loose.ok and loose.node is None and loose.render.name == \
        'renderD129'
    full = [a.RenderSlot('renderD128', '/dev/dri/renderD128', 0, 2, 2)]
    assert 'guest limit' in a.choose_render_node(
        full, a.GuestNeeds(1, 1024, 'preferred'), NODES).reason
    assert a.choose_render_node(
        [], a.GuestNeeds(1, 1024, 'preferred'), NODES).reason == \
        'the host has no render node'


@pytest.mark.parametrize('gpu,pci,uses_pci,default,expected', [
    ('required', 'legacy', True, 'preferred', 'required'),
    (None, 'socket', True, 'preferred', 'socket'),
    (None, 'socket', False, 'preferred', 'preferred'),
    (None, None, True, 'legacy', 'legacy'),
    (None, 'bogus', True, 'preferred', 'preferred'),
    # gpu: only narrows Nova's PCI policy of a PCI-alias GPU
    ('preferred', 'required', True, 'preferred', 'required'),
    ('legacy', 'socket', True, 'preferred', 'socket'),
    # Nova's word does not apply to a vGPU or a resources:CUSTOM_* class
    (None, 'required', False, 'preferred', 'preferred'),
])
def test_effective_policy(gpu, pci, uses_pci, default, expected):
    assert numa.resolve(gpu, pci, uses_pci, default=default).policy == \
        expected
