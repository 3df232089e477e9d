"""How two GPUs are connected, in ``nvidia-smi topo -m``'s words.

Layer rule: pure (no I/O). Works from ``GPU.upstream`` (the PCI path
discovery read) and the GPUs' NUMA nodes:

* ``PIX``: both behind one PCIe switch port pair (a single bridge apart);
* ``PXB``: behind the same switch tree, several bridges apart;
* ``PHB``: same root complex (host bridge), no switch in common;
* ``NODE``: different root complexes of the same NUMA node;
* ``SYS``: different NUMA nodes (traffic crosses the socket interconnect);
* ``?``: locality unknown.
"""

from nova_gpu_ext import model


def relation(a: model.GPU, b: model.GPU) -> str:
    if a.address == b.address:
        return 'X'
    if a.numa_node is None or b.numa_node is None:
        return '?'
    if a.numa_node != b.numa_node:
        return 'SYS'
    if not a.upstream or not b.upstream or a.upstream[0] != b.upstream[0]:
        return 'NODE'
    common = 0
    for x, y in zip(a.upstream, b.upstream):
        if x != y:
            break
        common += 1
    bridges_apart = (len(a.upstream) - common) + (len(b.upstream) - common)
    if common <= 2:
        # Only the root complex (and at most its root port) in common.
        return 'PHB'
    return 'PIX' if bridges_apart <= 2 else 'PXB'


def gpu_matrix(topology: model.HostTopology) -> list[list[str]]:
    gpus = topology.physical_gpus()
    return [[relation(a, b) for b in gpus] for a in gpus]
