"""Read NUMA nodes: CPUs, memory, distances, sockets, free huge pages.

Layer rule: adapter (I/O) through :class:`SysfsPaths`; see the package
docstring for the error rule.
"""

import os
import re

from nova_gpu_ext import model
from nova_gpu_ext.topology import sysfs_reader as sr

_NODE_RE = re.compile(r'^node(\d+)$')
_MEMTOTAL_RE = re.compile(r'MemTotal:\s*(\d+)\s*kB')
_HUGEPAGES_RE = re.compile(r'^hugepages-(\d+)kB$')


def read_node_ids(paths, reader):
    ids = []
    for name in reader.listdir(paths.nodes_dir):
        match = _NODE_RE.match(name)
        if match:
            ids.append(int(match.group(1)))
    return sorted(ids)


def parse_memtotal_mb(text):
    match = _MEMTOTAL_RE.search(text)
    if not match:
        raise ValueError(text)
    return int(match.group(1)) // 1024


def parse_distances(text):
    return tuple(int(v) for v in text.split())


def read_socket(paths, reader, cpus):
    """The physical package of a node's first CPU, or None."""
    for cpu in sorted(cpus)[:1]:
        return reader.parsed(
            os.path.join(paths.cpu_dir(cpu), 'topology',
                         'physical_package_id'),
            sr.parse_int, what='a socket id')
    return None


def read_hugepages_free(paths, reader, node_id):
    base = os.path.join(paths.node_dir(node_id), 'hugepages')
    free = []
    for name in reader.listdir(base):
        match = _HUGEPAGES_RE.match(name)
        if not match:
            continue
        count = reader.parsed(os.path.join(base, name, 'free_hugepages'),
                              sr.parse_count, what='a page count')
        if count is not None:
            free.append((int(match.group(1)), count))
    return tuple(sorted(free))


def read_node(paths, reader, node_id):
    node_dir = paths.node_dir(node_id)
    cpus = reader.parsed(os.path.join(node_dir, 'cpulist'),
                         sr.parse_cpulist, required=True, what='a CPU list')
    cpus = cpus if cpus is not None else frozenset()
    return model.NUMANode(
        id=node_id,
        cpus=cpus,
        memory_mb=reader.parsed(os.path.join(node_dir, 'meminfo'),
                                parse_memtotal_mb, what='MemTotal'),
        socket=read_socket(paths, reader, cpus),
        distances=reader.parsed(os.path.join(node_dir, 'distance'),
                                parse_distances, what='distances') or (),
        hugepages_free=read_hugepages_free(paths, reader, node_id),
    )


def read_numa_nodes(paths, reader):
    """All NUMA nodes; a host without the node directory has none."""
    return tuple(read_node(paths, reader, node_id)
                 for node_id in read_node_ids(paths, reader))
