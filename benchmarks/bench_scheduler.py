"""Scheduling cost of GPUPlacementFilter with Nova's real scheduler (issue 12).

Runs Nova 34's ``SchedulerManager.select_destinations`` (request filters,
``GET /allocation_candidates``, ``HostManager`` reading compute nodes and
services from Nova's cell database, the filters, the weighers and the
placement claim) against the real placement service code running
in-process on its own database (Nova's functional ``PlacementFixture``).
Hosts are written straight into the databases: per host one compute node
(with the GPU summary our driver publishes in its stats) and service row in
Nova's cell DB, and in placement a root provider (VCPU, MEMORY_MB,
DISK_GB) with 8 (``--gpus``) child providers of 16 VGPU each, as Nova's
libvirt driver reports physical GPUs.

Two schedulers run in the same process on the same data, requests
interleaved: *upstream* (Nova's default filters and all weighers) and
*ours* (the same plus GPUExtHostFilter, GPUPlacementFilter and our three
weighers). Each request boots one ``resources:VGPU=1`` instance; its
allocation is deleted again outside the timing, so every request sees the
same (empty) fleet. ``[scheduler]
max_placement_results`` is lifted to hosts x GPUs so that every GPU of every
host is a candidate (the worst case of the issue).

Usage::

    .venv/bin/python benchmarks/bench_scheduler.py               # 100,300,1000
    .venv/bin/python benchmarks/bench_scheduler.py --hosts 300,1000 --gpus 8
    .venv/bin/python benchmarks/bench_scheduler.py --hosts 3 --requests 2 \\
        --no-plot                                                 # smoke

Prints median and p95 time per ``select_destinations`` and placement calls
per request, ours / upstream ratios and growth with the host count, and
writes benchmarks/bench_scheduler.png (matplotlib, imported lazily). Not a
timed test.
"""

import argparse
import gc
import os
import statistics
import sys
import threading
import time
import unittest

os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')
os.environ.setdefault('OS_TEST_TIMEOUT', '0')
from nova import monkey_patch  # noqa: E402
monkey_patch.patch()

GPUS_PER_HOST = 8
VGPUS_PER_GPU = 16
MDEV_TYPE = 'nvidia-35'
UPSTREAM_FILTERS = ['ComputeFilter', 'ComputeCapabilitiesFilter',
                    'ImagePropertiesFilter', 'ServerGroupAntiAffinityFilter',
                    'ServerGroupAffinityFilter']
OUR_FILTERS = ['GPUExtHostFilter', 'GPUPlacementFilter']
OUR_WEIGHERS = [
    'nova_gpu_ext.scheduler.weighers.GPUHostAvoidanceWeigher',
    'nova_gpu_ext.scheduler.weighers.GPUAffinityWeigher',
    'nova_gpu_ext.scheduler.weighers.GPUSharingWeigher',
]
RESULTS = {}


def p95(values):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]


class _Counter(object):
    """Placement requests made inside select_destinations, per thread."""

    def __init__(self):
        self.local = threading.local()
        self.calls = 0

    def wrap(self, cls, name):
        original = getattr(cls, name)
        counter = self

        def counted(*args, **kwargs):
            if getattr(counter.local, 'active', False):
                counter.calls += 1
            return original(*args, **kwargs)
        setattr(cls, name, counted)
        return original


class SchedulerBench(object):
    """Built inside a Nova TestCase (databases, conf, placement fixture)."""

    def __init__(self, test, requests):
        from nova import context
        self.test = test
        self.requests = requests
        self.ctxt = context.get_admin_context()
        self.hosts = 0
        self.next_rp_id = 1
        self.next_inv_id = 1
        self.counter = _Counter()
        from nova.scheduler.client import report
        for name in ('get', 'put', 'post', 'delete'):
            self.counter.wrap(report.SchedulerReportClient, name)
        self.client = report.report_client_singleton()
        # Placement syncs the standard resource classes on first use.
        self.client.get('/resource_classes', version='1.2')
        self.rc_ids = dict(self._placement_sql(
            'SELECT name, id FROM resource_classes'))
        # Nova asks for root_required=OWNER_NOVA (placement syncs os-traits).
        self.client.get('/traits?name=in:OWNER_NOVA,COMPUTE_NODE',
                        version='1.6')
        self.root_traits = [tid for (tid,) in self._placement_sql(
            "SELECT id FROM traits WHERE name IN ('OWNER_NOVA', "
            "'COMPUTE_NODE')")]

    # -- population ---------------------------------------------------------

    @staticmethod
    def _engine():
        from placement import db_api
        return db_api.placement_context_manager.writer.get_engine()

    def _placement_sql(self, statement, rows=None):
        import sqlalchemy as sa
        with self._engine().begin() as conn:
            result = conn.execute(sa.text(statement), rows or {})
            return result.fetchall() if result.returns_rows else None

    def add_hosts(self, count):
        from nova import objects
        from nova_gpu_ext.core import summary as host_summary
        from oslo_utils import uuidutils
        import sqlalchemy as sa
        providers, inventories, traits, now = [], [], [], None
        for i in range(self.hosts, self.hosts + count):
            name = 'gpu-host-%04d' % i
            root_uuid = uuidutils.generate_uuid()
            root_id = self.next_rp_id
            self.next_rp_id += 1
            providers.append(dict(id=root_id, uuid=root_uuid, name=name,
                                  root=root_id, parent=None))
            traits.extend(dict(rp=root_id, trait=t) for t in self.root_traits)
            for rc, total in (('VCPU', 64), ('MEMORY_MB', 262144),
                              ('DISK_GB', 4000)):
                inventories.append(self._inventory(root_id, rc, total))
            gpus = []
            for g in range(GPUS_PER_HOST):
                addr = '0000:%02x:00.0' % (0x3b + g * 0x10)
                gpu_uuid = uuidutils.generate_uuid()
                gpu_id = self.next_rp_id
                self.next_rp_id += 1
                providers.append(dict(
                    id=gpu_id, uuid=gpu_uuid,
                    name='%s_pci_%s' % (name, addr.replace(':', '_')
                                        .replace('.', '_')),
                    root=root_id, parent=root_id))
                inventories.append(self._inventory(gpu_id, 'VGPU',
                                                   VGPUS_PER_GPU))
                node = 2 * g // GPUS_PER_HOST
                gpus.append(host_summary.GPUSummary(
                    addr=addr, kind='mdev', node=node, socket=node,
                    vendor='10de', device='1eb8', rp=gpu_uuid, used=0,
                    mdevs=0, mdev_types={MDEV_TYPE: VGPUS_PER_GPU}))
            summary = host_summary.HostSummary(
                gpus=tuple(gpus), render_nodes=(),
                nodes=tuple(host_summary.NodeSummary(n, n, 32, 131072)
                            for n in (0, 1)))
            service = objects.Service(self.ctxt, host=name,
                                      binary='nova-compute', topic='compute',
                                      report_count=0)
            service.create()
            objects.ComputeNode(
                self.ctxt, uuid=root_uuid, host=name,
                hypervisor_hostname=name, service_id=service.id,
                vcpus=64, memory_mb=262144, local_gb=4000, vcpus_used=0,
                memory_mb_used=0, local_gb_used=0, free_ram_mb=262144,
                free_disk_gb=4000, current_workload=0, running_vms=0,
                hypervisor_type='QEMU', hypervisor_version=7002000,
                cpu_info='{}', disk_available_least=4000,
                cpu_allocation_ratio=4.0, ram_allocation_ratio=1.0,
                disk_allocation_ratio=1.0,
                stats={host_summary.STATS_KEY: summary.to_stats()},
                supported_hv_specs=[]).create()
        engine = self._engine()
        with engine.begin() as conn:
            conn.execute(sa.text(
                'INSERT INTO resource_providers (id, uuid, name, generation,'
                ' root_provider_id, parent_provider_id, created_at) VALUES '
                '(:id, :uuid, :name, 1, :root, :parent, :now)'),
                [dict(p, now=now) for p in providers])
            conn.execute(sa.text(
                'INSERT INTO inventories (id, resource_provider_id, '
                'resource_class_id, total, reserved, min_unit, max_unit, '
                'step_size, allocation_ratio) VALUES (:id, :rp, :rc, :total, '
                '0, 1, :total, 1, 1.0)'), inventories)
            conn.execute(sa.text(
                'INSERT INTO resource_provider_traits (resource_provider_id,'
                ' trait_id) VALUES (:rp, :trait)'), traits)
        self.hosts += count

    def _inventory(self, rp_id, rc, total):
        row = dict(id=self.next_inv_id, rp=rp_id, rc=self.rc_ids[rc],
                   total=total)
        self.next_inv_id += 1
        return row

    # -- measurement --------------------------------------------------------

    def scheduler(self, ours):
        from nova.scheduler import manager
        filters = UPSTREAM_FILTERS + (OUR_FILTERS if ours else [])
        weighers = ['nova.scheduler.weights.all_weighers'] + (
            OUR_WEIGHERS if ours else [])
        self.test.flags(
            available_filters=['nova.scheduler.filters.all_filters'] + [
                'nova_gpu_ext.scheduler.filters.' + f for f in OUR_FILTERS],
            enabled_filters=filters, weight_classes=weighers,
            group='filter_scheduler')
        return manager.SchedulerManager()

    def spec(self, flavor):
        from nova import objects
        from oslo_utils import uuidutils
        uuid = uuidutils.generate_uuid()
        image = objects.ImageMeta.from_dict({'properties': {}})
        spec = objects.RequestSpec.from_components(
            self.ctxt, uuid, image, flavor, None,
            objects.InstancePCIRequests(requests=[]), {}, None, 'nova')
        spec.project_id = self.ctxt.project_id or 'bench-project'
        spec.user_id = self.ctxt.user_id or 'bench-user'
        return uuid, spec

    def run_once(self, mgr, flavor, legacy=False):
        from nova_gpu_ext.scheduler import usage
        uuid, spec = self.spec(flavor)
        lookups = [0]
        original = usage.RequestUsage.summary_used

        def counted_used(state, rp_uuid):
            lookups[0] += 1
            if legacy:
                return _legacy_usage(rp_uuid, None)
            return original(state, rp_uuid)
        usage.RequestUsage.summary_used = counted_used
        self.counter.calls = 0
        self.counter.local.active = True
        start = time.perf_counter()
        try:
            mgr.select_destinations(
                self.ctxt, spec_obj=spec, instance_uuids=[uuid],
                return_objects=True, return_alternates=True)
        finally:
            elapsed = time.perf_counter() - start
            self.counter.local.active = False
            usage.RequestUsage.summary_used = original
        calls = self.counter.calls
        self.client.delete('/allocations/%s' % uuid, version='1.28')
        return elapsed, calls, lookups[0]

    def measure(self, managers, flavor, before):
        self.test.flags(max_placement_results=self.hosts * GPUS_PER_HOST,
                        group='scheduler')
        runs = [(name, mgr, False) for name, mgr in managers.items()]
        if before:
            runs.append(('before', managers['ours'], True))
        for _, mgr, legacy in runs:        # warm-up: caches, imports
            self.run_once(mgr, flavor, legacy)
        # The fleet, both databases and in-process placement are one heap
        # here (not in a real scheduler): Python's full collections scanned
        # it about 4 times per request at 1000 hosts (~1 s of a 4.5 s
        # request), landing in either scheduler's request at random. Frozen,
        # the collections see only what the requests allocate.
        gc.collect()
        gc.freeze()
        samples = {name: [] for name, _, _ in runs}
        for _ in range(self.requests):
            for name, mgr, legacy in runs:
                samples[name].append(self.run_once(mgr, flavor, legacy))
        RESULTS[self.hosts] = {
            name: {'times': [t for t, _, _ in s],
                   'calls': [c for _, c, _ in s],
                   'lookups': [u for _, _, u in s]}
            for name, s in samples.items()}
        RESULTS[self.hosts]['own'] = self.own_code(managers['ours'], flavor)

    def own_code(self, mgr, flavor):
        """Time spent in nova-gpu-ext's filters and weighers per request,
        measured in extra requests after the samples (the timers would
        slow the sampled ones): what our code adds, without the run-to-run
        noise of Nova's database reads and placement."""
        from nova_gpu_ext.scheduler import filters
        from nova_gpu_ext.scheduler import weighers
        spent = [0.0]
        patched = []

        def timed(cls, name):
            original = cls.__dict__[name]

            def wrapper(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    spent[0] += time.perf_counter() - start
            setattr(cls, name, wrapper)
            patched.append((cls, name, original))

        timed(filters.GPUExtHostFilter, 'host_passes')
        timed(filters.GPUPlacementFilter, 'host_passes')
        for name in ('GPUHostAvoidanceWeigher', 'GPUAffinityWeigher',
                     'GPUSharingWeigher'):
            cls = getattr(weighers, name)
            owner = next(k for k in cls.__mro__ if '_weigh_object' in
                         k.__dict__)
            if not any(c is owner for c, _, _ in patched):
                timed(owner, '_weigh_object')
        out = []
        try:
            for _ in range(max(3, self.requests // 3)):
                spent[0] = 0.0
                self.run_once(mgr, flavor)
                out.append(spent[0])
        finally:
            for cls, name, original in patched:
                setattr(cls, name, original)
        return out


def _legacy_usage(rp_uuid, default):
    """What GPUPlacementFilter did before issue 12: one GET per GPU."""
    from nova import context as nova_context
    from nova.scheduler.client import report
    response = report.report_client_singleton().get(
        '/resource_providers/%s/usages' % rp_uuid, version='1.9',
        global_request_id=nova_context.get_admin_context().global_id)
    if response:
        return sum(response.json()['usages'].values())
    return default


def make_test_case(host_counts, requests, before_max_hosts):
    from nova import test

    class BenchCase(test.TestCase):
        def test_bench(self):
            import logging
            from nova import objects
            from nova.tests.functional import fixtures as func_fixtures
            from nova_gpu_ext import conf as gpu_conf
            gpu_conf.register_opts(gpu_conf.CONF)
            self.useFixture(func_fixtures.PlacementFixture())
            logging.getLogger().setLevel(logging.WARNING)
            self.flags(service_down_time=10 ** 7)
            self.flags(enabled=True, group='gpu_ext')
            self.flags(enabled_mdev_types=[MDEV_TYPE], group='devices')
            bench = SchedulerBench(self, requests)
            flavor = objects.Flavor(
                id=1, flavorid='1', name='vgpu', memory_mb=1024, vcpus=1,
                root_gb=1, ephemeral_gb=0, swap=0, rxtx_factor=1.0,
                vcpu_weight=0, disabled=False, is_public=True,
                extra_specs={'resources:VGPU': '1'})
            managers = {'upstream': bench.scheduler(ours=False),
                        'ours': bench.scheduler(ours=True)}
            for count in host_counts:
                started = time.perf_counter()
                bench.add_hosts(count - bench.hosts)
                print('  %d hosts populated in %.1f s; measuring' % (
                    count, time.perf_counter() - started),
                    file=sys.stderr, flush=True)
                bench.measure(managers, flavor, count <= before_max_hosts)

    return BenchCase('test_bench')


def report_table(host_counts):
    lines = ['| hosts x GPUs | upstream median / p95 (ms) | ours median / '
             'p95 (ms) | time ratio (median) | placement calls upstream / '
             'ours | GPU usage look-ups (ours) | in our filters and '
             'weighers (ms, median) |', '|---|---|---|---|---|---|---|']
    for n in host_counts:
        r = RESULTS[n]
        up, ours = r['upstream'], r['ours']
        own = 1000 * statistics.median(r['own'])
        lines.append('| %d x %d | %.0f / %.0f | %.0f / %.0f | %.2fx | '
                     '%s / %s | %s | %.0f (%.1f%% of upstream) |' % (
                         n, GPUS_PER_HOST,
                         1000 * statistics.median(up['times']),
                         1000 * p95(up['times']),
                         1000 * statistics.median(ours['times']),
                         1000 * p95(ours['times']),
                         statistics.median(ours['times']) /
                         statistics.median(up['times']),
                         _calls(up['calls']), _calls(ours['calls']),
                         _calls(ours['lookups']), own,
                         100 * own / (1000 * statistics.median(up['times']))))
    before = [n for n in host_counts if 'before' in RESULTS[n]]
    if before:
        lines.append('')
        lines.append('Before issue 12 (one GET /resource_providers/{uuid}/'
                     'usages per GPU), same run:')
        lines.append('')
        lines.append('| hosts x GPUs | median / p95 (ms) | vs upstream | '
                     'placement calls |')
        lines.append('|---|---|---|---|')
        for n in before:
            b = RESULTS[n]['before']
            lines.append('| %d x %d | %.0f / %.0f | %.2fx | %s |' % (
                n, GPUS_PER_HOST, 1000 * statistics.median(b['times']),
                1000 * p95(b['times']), statistics.median(b['times']) /
                statistics.median(RESULTS[n]['upstream']['times']),
                _calls(b['calls'])))
    first, last = host_counts[0], host_counts[-1]
    if last != first:
        growth = []
        for name in ('upstream', 'ours'):
            t0 = statistics.median(RESULTS[first][name]['times'])
            t1 = statistics.median(RESULTS[last][name]['times'])
            c0 = statistics.median(RESULTS[first][name]['calls'])
            c1 = statistics.median(RESULTS[last][name]['calls'])
            growth.append('%s: time x%.2f, placement calls x%.2f' % (
                name, t1 / t0, c1 / c0))
        lines.append('')
        lines.append('Growth from %d to %d hosts (%.0fx hosts): %s.' % (
            first, last, last / first, '; '.join(growth)))
    return '\n'.join(lines)


def _calls(values):
    low, high = min(values), max(values)
    return str(low) if low == high else '%d-%d' % (low, high)


def plot(host_counts, path):
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot
    fig, ax = pyplot.subplots(figsize=(6, 4))
    for name, label, color in (
            ('upstream', 'Nova filters and weighers', 'tab:blue'),
            ('ours', 'the same + nova-gpu-ext', 'tab:green')):
        medians = [1000 * statistics.median(RESULTS[n][name]['times'])
                   for n in host_counts]
        highs = [1000 * p95(RESULTS[n][name]['times']) for n in host_counts]
        ax.plot(host_counts, medians, marker='o', color=color,
                label=label + ' (median)')
        ax.plot(host_counts, highs, linestyle=':', alpha=0.6, color=color,
                label=label + ' (p95)')
    ax.set_xlabel('hosts (%d shared GPUs each)' % GPUS_PER_HOST)
    ax.set_ylabel('ms per select_destinations')
    ax.set_title('Nova 34 scheduler + placement, one vGPU request')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None):
    global GPUS_PER_HOST
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--hosts', default='100,300,1000',
                        help='comma-separated host counts (increasing)')
    parser.add_argument('--gpus', type=int, default=GPUS_PER_HOST,
                        help='physical GPUs (vGPU providers) per host')
    parser.add_argument('--requests', type=int, default=15,
                        help='measured requests per scheduler and size')
    parser.add_argument('--plot', default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), 'bench_scheduler.png'))
    parser.add_argument('--no-plot', action='store_true')
    parser.add_argument('--before-max-hosts', type=int, default=0,
                        help='also time the pre-issue-12 filter (one '
                             'placement GET per GPU) up to this many hosts')
    args = parser.parse_args(argv)
    GPUS_PER_HOST = args.gpus
    host_counts = sorted(int(h) for h in args.hosts.split(','))
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=0).run(
        make_test_case(host_counts, args.requests, args.before_max_hosts))
    if not result.wasSuccessful():
        return 1
    print(report_table(host_counts))
    if not args.no_plot:
        plot(host_counts, args.plot)
        print('\nplot: %s' % args.plot)
    return 0


if __name__ == '__main__':
    sys.exit(main())
