"""Issue 10, second pass: the pure rules added for render-node guests,
multi-create, the node-size rule and the claim's policy, and the Nova
internals they rely on (pinned: each test fails when Nova changes them;
listed in doc/source/reference/nova-internals.rst, Issue 10)."""

import pytest

from nova_gpu_ext.placement import numa_books as nb

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
    steering = nb.steer_render(policy, cells, [0, 1, 2, 3], SOCKETS, nodes)
    assert (steering.subsets, steering.anywhere) == (subsets, anywhere), \
        steering.reason
