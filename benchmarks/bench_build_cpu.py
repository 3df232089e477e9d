"""Compute-side CPU time of a build: our driver / upstream's, in one run.

Usage::

    python benchmarks/bench_build_cpu.py [--builds N]

Simulation (Nova's in-process functional harness, fakelibvirt, Nova's real
compute manager and libvirt driver code): the built-in sample GPU host runs
``GPULibvirtDriver`` and its "upstream twin" (same fake hardware) runs
upstream's ``LibvirtDriver``. The same flavors are built ``N`` times on
each, alternating, each server deleted again. For every build the CPU time
of the thread that runs ``ComputeManager._build_and_run_instance`` (the
compute's whole build: claim, guest config, define, start) is measured
with ``time.thread_time`` (native threading: one OS thread per build).

Printed: median CPU ms per build on each driver and the ratio ours /
upstream, for a plain guest (the drop-in rule's target: <= 1.01) and for a
vGPU guest (what a GPU guest pays for NUMA binding, sharing admission and
the tweaks).
"""

# autopep8: off
from nova_gpu_ext.sim import concurrency ; concurrency.patch()  # noqa
# autopep8: on

import argparse  # noqa: E402
import logging as std_logging  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402

from nova_gpu_ext.sim import harness  # noqa: E402
from nova_gpu_ext.sim import samplehost  # noqa: E402

FLAVORS = [('plain', 1024, 2, {}), ('vgpu', 2048, 2, {'resources:VGPU': '1'})]


class Job:
    builds = 10
    cpu = {}        # (flavor, variant) -> [CPU seconds]


class BuildScenario(harness.GPUExtTestBase):
    sysfs_sample = None

    def setUp(self):
        super().setUp()
        samplehost.configure(self)
        from nova.compute import manager
        original = manager.ComputeManager._build_and_run_instance
        self.current = threading.local()
        samples = self.samples = []

        def timed(mgr, *args, **kwargs):
            start = time.thread_time()
            try:
                return original(mgr, *args, **kwargs)
            finally:
                samples.append((mgr.host, time.thread_time() - start))
        self.stub_out('nova.compute.manager.ComputeManager.'
                      '_build_and_run_instance', timed)

    def runTest(self):
        hosts = samplehost.start_hosts(self)
        twin = samplehost.start_upstream_twin(self)
        variants = (('upstream', twin), ('ours', hosts['gpu']))
        for flavor, memory_mb, vcpus, specs in FLAVORS:
            flavor_id = self._create_flavor(
                name=flavor, memory_mb=memory_mb, vcpu=vcpus, disk=1,
                ephemeral=0, extra_spec=specs)
            # One untimed build each first (imports, caches).
            for i in range(Job.builds + 1):
                # Alternate who builds first: each build leaves rows in the
                # databases, which the next one reads.
                for variant, host in variants[::1 if i % 2 else -1]:
                    del self.samples[:]
                    server = self._create_server(
                        name='%s-%s-%d' % (flavor, variant, i),
                        flavor_id=flavor_id, host=host, networks='none',
                        expected_state='ACTIVE')
                    self._delete_server(server)
                    cpu = [t for h, t in self.samples if h == host]
                    if i and cpu:
                        Job.cpu.setdefault((flavor, variant), []).append(
                            cpu[0])


def main(argv=None):
    parser = argparse.ArgumentParser(prog='bench_build_cpu.py')
    parser.add_argument('--builds', type=int, default=10)
    args = parser.parse_args(argv)
    Job.builds = args.builds
    Job.cpu = {}
    std_logging.disable(std_logging.WARNING)
    result = unittest.TestResult()
    BuildScenario('runTest').run(result)
    std_logging.disable(std_logging.NOTSET)
    for _test, trace in result.errors + result.failures:
        sys.stderr.write(trace)
    if result.errors or result.failures:
        return 1
    print('compute-side CPU per build (median of %d, ms)' % Job.builds)
    print('%-8s %10s %10s %8s' % ('guest', 'upstream', 'ours', 'ratio'))
    for flavor, *_ in FLAVORS:
        up = statistics.median(Job.cpu[(flavor, 'upstream')]) * 1000
        ours = statistics.median(Job.cpu[(flavor, 'ours')]) * 1000
        print('%-8s %10.1f %10.1f %8.3f' % (flavor, up, ours, ours / up))
    return 0


if __name__ == '__main__':
    sys.exit(main())
