"""Discovery cost on a large generated host (issue: < 50 ms per discovery).

Builds a fake sysfs tree with 16 GPUs (SR-IOV PFs) and 16 VFs each (256 VFs)
plus render nodes, then times ``discover_host`` (median and p90 of N runs,
after one warm-up run, as nova-compute calls it on every resource update).
For scale it also times what every host pays anyway: listing the PCI bus
and reading each function's ``class`` (the floor of any sysfs discovery).

    python benchmarks/bench_discovery.py [--gpus 16] [--vfs 16] [--runs 50]
"""

import argparse
import os
import statistics
import tempfile
import time

from nova_gpu_ext.topology import discover
from nova_gpu_ext.sim import sample_hosts
from nova_gpu_ext.topology import paths as sysfs_paths

TARGET_MS = 50.0


def floor_scan(root):
    """List the PCI bus and read every class file: the minimum work."""
    base = os.path.join(root, 'bus', 'pci', 'devices')
    for name in os.listdir(base):
        with open(os.path.join(base, name, 'class')) as f:
            f.read()


def timed(func, runs):
    func()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9) - 1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--gpus', type=int, default=16)
    parser.add_argument('--vfs', type=int, default=16)
    parser.add_argument('--runs', type=int, default=50)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        sample_hosts.generated(root, gpus=args.gpus, vfs_per_gpu=args.vfs)
        paths = sysfs_paths.SysfsPaths(root)
        topology = discover.discover_host(paths)
        median, p90 = timed(lambda: discover.discover_host(paths), args.runs)
        floor_median, floor_p90 = timed(lambda: floor_scan(root), args.runs)
    functions = len(topology.gpus)
    print('host: %d GPUs x %d VFs = %d display functions, %d render nodes, '
          '%d NUMA nodes' % (args.gpus, args.vfs, functions,
                             len(topology.render_nodes),
                             len(topology.numa_nodes)))
    print('%-34s %10s %10s' % ('', 'median ms', 'p90 ms'))
    print('%-34s %10.1f %10.1f' % ('discover_host (full model)', median, p90))
    print('%-34s %10.1f %10.1f' % ('floor: list bus + read class',
                                   floor_median, floor_p90))
    print('ratio full/floor: %.1fx; per function: %.0f us; target < %.0f ms: '
          '%s' % (median / floor_median, median * 1000 / functions, TARGET_MS,
                  'met' if median < TARGET_MS else 'NOT met'))
    return 0 if median < TARGET_MS else 1


if __name__ == '__main__':
    raise SystemExit(main())
