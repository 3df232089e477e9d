"""Drop-in rule, counted: a plain guest costs nothing more on our driver.

Four computes run in one harness, two on upstream's ``LibvirtDriver`` and
two on ``GPULibvirtDriver``, all on the same fake host (the sample GPU host
of the fake sysfs, so our driver finds GPUs and render nodes there). A
guest without a GPU goes through the same operations on each pair: build,
hard reboot, cold migration with confirm, cold migration with revert, live
migration, live migration rolled back. Every call the compute side makes
is counted by kind:

* ``sql``: each SQL statement (SQLAlchemy's ``before_cursor_execute``, so
  both Nova databases and every object path are seen);
* ``rpc``: each ``call``/``cast`` of an oslo.messaging RPC client;
* ``placement``: each ``get``/``put``/``post``/``delete`` of Nova's report
  client;
* ``libvirt``: each public method of fakelibvirt's ``Connection``,
  ``Domain`` and ``NodeDevice``;
* ``sysfs``: each path built by our ``SysfsPaths`` and each ``open`` of a
  file under the configured sysfs root.

"Compute side" is a call with nova-compute's manager, a virt driver or
nova-gpu-ext on its stack (the API polling the server's state, the
conductor and the scheduler are the same code for both pairs, and their
polling depends on timing). Each operation must make exactly the same
calls on our pair as on upstream's.

A compute with no GPU is started on each driver as well, and its resource
update run twice: ours may do one discovery of the host (sysfs) per update,
publish its trait and the (empty) host summary in the compute node's stats
(one more save of the compute node's row at most), and makes no libvirt
call upstream does not (no per-domain work).
"""

import builtins
import collections
import re
import sys
import threading
import time
from unittest import mock

import fixtures
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.libvirt import base as base_libvirt
import sqlalchemy
from sqlalchemy import event

from tests.functional import base

PAIRS = {'upstream': ('up-1', 'up-2'), 'ours': ('our-1', 'our-2')}
DRIVERS = {'upstream': base.UPSTREAM_DRIVER, 'ours': base.OUR_DRIVER}
COMPUTE_FILES = ('/nova/compute/manager.py', '/nova/virt/',
                 '/nova_gpu_ext/', '/nova/compute/resource_tracker.py')
QUIET = 0.4
#: ComputeManager's resource update (run in a pool thread per node)
RESOURCE_UPDATE = ('update_available_resource',
                   '_update_available_resource_for_node')
UUID = re.compile('[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-'
                  '[0-9a-f]{12}')


def _compute_side():
    """'guest' for a call nova-compute makes for a guest's operation,
    'resources' for one of its resource update (the periodic, which Nova
    also runs at the end of a live migration), None for others' calls (the
    placement service nova-compute calls is counted as ``placement``)."""
    frame = sys._getframe(2)
    side = None
    while frame is not None:
        name = frame.f_code.co_filename
        if '/site-packages/placement/' in name:
            return None
        if frame.f_code.co_name in RESOURCE_UPDATE and \
                name.endswith('/nova/compute/manager.py'):
            return 'resources'
        if side is None and any(part in name for part in COMPUTE_FILES):
            side = 'guest'
        frame = frame.f_back
    return side


class CallCounter:
    """Counts compute-side calls by (kind, name)."""

    def __init__(self):
        self.counts = collections.Counter()
        self.last = time.monotonic()
        self._lock = threading.Lock()
        self.sysfs_root = None
        #: which calls are counted ('guest', 'resources')
        self.sides = ('guest', 'resources')
        #: count only this thread's calls (None: every thread)
        self.only_thread = None

    def record(self, kind, name):
        if _compute_side() not in self.sides:
            return
        if self.only_thread is not None and \
                threading.get_ident() != self.only_thread:
            return
        with self._lock:
            self.counts[(kind, name)] += 1
            self.last = time.monotonic()

    def take(self):
        """The counts since the last take, once calls stopped coming."""
        deadline = time.monotonic() + 10
        while time.monotonic() - self.last < QUIET and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            out, self.counts = self.counts, collections.Counter()
        return out

    # -- the wraps --------------------------------------------------------

    def wrap_methods(self, test, cls, kind, names=None):
        for name in names or [n for n in vars(cls) if not n.startswith('_')]:
            original = vars(cls).get(name)
            if not callable(original) or isinstance(original, type):
                continue
            test.useFixture(fixtures.MonkeyPatch(
                '%s.%s.%s' % (cls.__module__, cls.__qualname__, name),
                self._counting(original, kind, cls.__name__ + '.' + name)))

    def _counting(self, original, kind, label):
        counter = self

        def counted(*args, **kwargs):
            counter.record(kind, label)
            return original(*args, **kwargs)
        return counted

    def install(self, test):
        def on_sql(conn, cursor, statement, parameters, context, many):
            self.record('sql', ' '.join(statement.split())[:90])
        event.listen(sqlalchemy.engine.Engine, 'before_cursor_execute',
                     on_sql)
        test.addCleanup(event.remove, sqlalchemy.engine.Engine,
                        'before_cursor_execute', on_sql)
        from oslo_messaging.rpc import client as rpc_client
        for method in ('call', 'cast'):
            original = getattr(rpc_client._BaseCallContext, method)

            def counted(ctx, context, name, *args, __method=method,
                        __original=original, **kwargs):
                self.record('rpc', '%s %s' % (__method, name))
                return __original(ctx, context, name, *args, **kwargs)
            test.useFixture(fixtures.MonkeyPatch(
                'oslo_messaging.rpc.client._BaseCallContext.' + method,
                counted))
        from nova.scheduler.client import report
        for method in ('get', 'put', 'post', 'delete'):
            original = getattr(report.SchedulerReportClient, method)

            def counted(client, url, *args, __method=method,
                        __original=original, **kwargs):
                self.record('placement', '%s %s' % (
                    __method.upper(), UUID.sub('<uuid>', url.split('?')[0])))
                return __original(client, url, *args, **kwargs)
            test.useFixture(fixtures.MonkeyPatch(
                'nova.scheduler.client.report.SchedulerReportClient.' +
                method, counted))
        for cls in (fakelibvirt.Connection, fakelibvirt.Domain,
                    fakelibvirt.NodeDevice):
            self.wrap_methods(test, cls, 'libvirt')
        from nova_gpu_ext.topology import paths
        self.wrap_methods(test, paths.SysfsPaths, 'sysfs', ['sys'])
        real_open = builtins.open

        def counting_open(file, *args, **kwargs):
            if self.sysfs_root and isinstance(file, str) and \
                    file.startswith(self.sysfs_root):
                self.record('sysfs', 'open')
            return real_open(file, *args, **kwargs)
        test.useFixture(fixtures.MonkeyPatch('builtins.open', counting_open))


def diff(upstream, ours):
    lines = []
    for key in sorted(set(upstream) | set(ours)):
        if upstream[key] != ours[key]:
            lines.append('  %s %s: upstream %d, ours %d' % (
                key[0], key[1], upstream[key], ours[key]))
    return '\n'.join(lines)


class PlainGuestCallsTest(base.GPUExtTestBase):
    """The same plain guest's life on each pair of computes."""

    ADDITIONAL_FILTERS = base.GPUExtTestBase.ADDITIONAL_FILTERS + [
        'NUMATopologyFilter']

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain.migrateToURI3',
            self._migrate_stub))
        self.flags(allow_resize_to_same_host=False)
        for pair in PAIRS:
            for host in PAIRS[pair]:
                self.start_compute(
                    host, driver=DRIVERS[pair],
                    host_info=fakelibvirt.HostInfo(
                        cpu_nodes=2, cpu_sockets=1, cpu_cores=2,
                        cpu_threads=2, kB_mem=16 * 1024 * 1024))
        self.flavor = self._create_flavor(memory_mb=1024, vcpu=2)
        self.counter = CallCounter()
        self.counter.sysfs_root = self.sysfs_root
        # The guest's path only: these hosts have GPUs, and a resource
        # update (the periodic's work, which Nova runs again at the end of
        # a live migration) reports them; NoGPUComputeStartTest counts a
        # GPU-less host's resource updates.
        self.counter.sides = ('guest',)
        self.counter.install(self)
        self.migration = None

    def _migrate_stub(self, domain, destination, params, flags):
        source, dest, fail = self.migration
        conn = self.computes[source].driver._host.get_connection()
        dom = conn.lookupByUUIDString(domain.UUIDString())
        if fail:
            dom.fail_job()
            return
        self.computes[dest].driver._host.get_connection().createXML(
            params['destination_xml'],
            'fake-createXML-doesnt-care-about-flags')
        dom.complete_job()

    def _life(self, pair):
        """{operation: Counter} of one plain guest's life on ``pair``."""
        first, second = PAIRS[pair]
        counts = {}
        self.counter.take()
        server = self._create_server(
            flavor_id=self.flavor, host=first, networks='none',
            expected_state='ACTIVE')
        counts['build'] = self.counter.take()
        self._reboot_server(server, hard=True)
        counts['hard reboot'] = self.counter.take()
        server = self._migrate_server(server, host=second)
        self._confirm_resize(server)
        counts['cold migration + confirm'] = self.counter.take()
        server = self._migrate_server(server, host=first)
        self._revert_resize(server)
        counts['cold migration + revert'] = self.counter.take()
        self.migration = (second, first, False)
        self._live_migrate(server, 'completed', host=first)
        counts['live migration'] = self.counter.take()
        self.migration = (first, second, True)
        self._live_migrate(server, 'failed', host=second)
        self.assertEqual(first, self.api.get_server(server['id'])[
            'OS-EXT-SRV-ATTR:host'])
        counts['live migration rolled back'] = self.counter.take()
        self._delete_server(server)
        counts['delete'] = self.counter.take()
        return counts

    def test_plain_guest_makes_no_extra_call(self):
        upstream = self._life('upstream')
        ours = self._life('ours')
        problems = []
        for operation in upstream:
            # The counter saw work (the wraps are in place).
            self.assertTrue(upstream[operation], operation)
            if upstream[operation] != ours[operation]:
                problems.append('%s:\n%s' % (operation, diff(
                    upstream[operation], ours[operation])))
        self.assertEqual([], problems, '\n'.join(problems))


class NoEffectKeyTest(base.GPUExtTestBase):
    """A gpu: key that can do nothing for the guest is said once, at INFO,
    for its build."""

    def test_policy_without_gpu_said_once(self):
        self.start_compute('our-1', host_info=fakelibvirt.HostInfo(
            cpu_nodes=2, cpu_sockets=1, cpu_cores=2, cpu_threads=2,
            kB_mem=16 * 1024 * 1024))
        flavor = self._create_flavor(
            memory_mb=1024, vcpu=2,
            extra_spec={'gpu:numa_affinity_policy': 'required'})
        from nova_gpu_ext.virt import guest_config
        with mock.patch.object(guest_config.LOG, 'info',
                               wraps=guest_config.LOG.info) as info:
            server = self._create_server(flavor_id=flavor, networks='none',
                                         expected_state='ACTIVE')
            self._reboot_server(server, hard=True)
        lines = [line for line in self.stdlog.logger.output.splitlines()
                 if 'had no effect' in line]
        self.assertEqual(1, len(lines), lines)
        self.assertIn('INFO', lines[0])
        self.assertIn('gpu:numa_affinity_policy=required had no effect: '
                      'the guest has no GPU device and no render node',
                      lines[0])
        said = [c for c in info.call_args_list if 'no effect' in c[0][0]]
        self.assertEqual([server['id']],
                         [c[1]['instance'].uuid for c in said])


class NoGPUComputeStartTest(base.GPUExtTestBase):
    """A compute with no GPU starts as upstream's does."""

    sysfs_sample = None

    def test_start_makes_no_extra_call_but_one_discovery(self):
        self.sysfs_root = self.build_sysfs(None)
        self.flags(sysfs_root=self.sysfs_root, group='gpu_ext')
        counter = CallCounter()
        counter.sysfs_root = self.sysfs_root
        # The start and the two updates run in this thread; a periodic
        # task of a compute started earlier, racing in its own thread in
        # native threading mode, is not this compute's start.
        counter.only_thread = threading.get_ident()
        counter.install(self)
        counts = {}
        from nova import context
        for pair, host in (('upstream', 'up-1'), ('ours', 'our-1')):
            counter.take()
            self.start_compute(host, driver=DRIVERS[pair])
            compute = self.computes[host]
            # The resource periodic, twice (the first run after start and
            # one more), of this compute only.
            for _ in range(2):
                compute.manager.update_available_resource(
                    context.get_admin_context())
            counts[pair] = counter.take()
        # The compute node's row is updated as often (ours writes the
        # stats in the same UPDATE).
        upstream, ours = [collections.Counter({
            (k[0], 'UPDATE compute_nodes' if k[1].startswith(
                'UPDATE compute_nodes SET') else k[1]): 0
            for k in c}) for c in (counts['upstream'], counts['ours'])]
        for merged, raw in ((upstream, counts['upstream']),
                            (ours, counts['ours'])):
            for k, v in raw.items():
                merged[(k[0], 'UPDATE compute_nodes' if k[1].startswith(
                    'UPDATE compute_nodes SET') else k[1])] += v
        # What ours publishes: the driver's trait (once) and the host
        # summary in the compute node's stats, whose change the resource
        # tracker saves (one compute node save at most).
        published = {('placement', 'PUT /traits/CUSTOM_GPU_EXT'),
                     ('sql', 'BEGIN'), ('sql', 'UPDATE compute_nodes'),
                     ('sql', 'SELECT compute_nodes.id AS compute_nodes_id, '
                      'compute_nodes.service_id AS compute_nodes_ser')}
        extra = {k for k in set(ours) | set(upstream)
                 if ours[k] != upstream[k] and k[0] != 'sysfs'}
        self.assertLessEqual(extra, published, diff(upstream, ours))
        for key in published:
            self.assertLessEqual(ours[key] - upstream[key], 1, key)
        self.assertEqual(
            {k: v for k, v in upstream.items() if k[0] == 'libvirt'},
            {k: v for k, v in ours.items() if k[0] == 'libvirt'},
            diff(upstream, ours))


# The same tests under eventlet are run by the eventlet tox run; the mixin
# import keeps Nova's live-migration helpers' module loaded the same way.
assert base_libvirt.LibvirtMigrationMixin
