"""pytest plugin: run Nova's own libvirt functional tests on our driver.

Usage (what ``tox -e nova-functional`` runs)::

    python -m pytest -p tests.nova_functional.plugin --pyargs \
        nova.tests.functional.libvirt.test_vgpu ...

Every compute those tests start loads ``compute_driver =
libvirt.LibvirtDriver``, imported as ``nova.virt.libvirt.LibvirtDriver``;
this plugin replaces that name with a subclass of
:class:`nova_gpu_ext.virt.driver.GPULibvirtDriver` before any test module
is imported, so Nova's tests exercise our overrides (spawn, reboots,
rescue, moves, live migration, provider tree, resource stats) on every
flow they cover. With ``NOVA_GPU_EXT_DRIVER=upstream`` nothing is
replaced: the same run on upstream's driver, for comparison.

Our host discovery reads an empty sysfs tree here (Nova's tests forbid
sysfs access, and their fake hosts have no sysfs of ours): the GPUs they
define are unknown to our topology, so no binding is added, and what is
compared is that our driver is a drop-in replacement on Nova's flows.

``--upstream-record=PATH`` writes every test's outcome to PATH (run it on
upstream's driver: ``tox -e nova-functional-upstream``);
``--compare-upstream=PATH`` checks this run against such a record (see
:mod:`tests.nova_functional.record`): the run fails when a test that
passes upstream does not pass here, and only then (a test that fails
upstream too does not fail the run). Both work under pytest-xdist: the
controller gathers the workers' reports.

Also works around ``nova.test.TestCase._clear_attrs`` deleting the test
method attribute that pytest deletes again afterwards (see
``tests/functional/README.md``).
"""

# autopep8: off
from nova_gpu_ext.sim import concurrency ; concurrency.patch()  # noqa
# autopep8: on

import os  # noqa: E402
import tempfile  # noqa: E402

import pytest  # noqa: E402

from tests.nova_functional import record  # noqa: E402

DRIVER_ENV = 'NOVA_GPU_EXT_DRIVER'


def ours():
    return os.environ.get(DRIVER_ENV, 'ours') != 'upstream'


def _swap_driver():
    import nova.virt.libvirt as libvirt_pkg

    from nova_gpu_ext.virt import driver as gpu_driver
    empty_sysfs = tempfile.mkdtemp(prefix='nova-gpu-ext-empty-sysfs-')

    class NovaFunctionalGPUDriver(gpu_driver.GPULibvirtDriver):
        """Ours, on an empty sysfs (see the module docstring)."""

        def __init__(self, virtapi, read_only=False):
            super().__init__(virtapi, read_only=read_only)
            self._sysfs_root = empty_sysfs
            self._dev_root = os.path.join(empty_sysfs, 'dev')

    libvirt_pkg.LibvirtDriver = NovaFunctionalGPUDriver
    return NovaFunctionalGPUDriver


def _fix_clear_attrs():
    from nova import test

    def _clear_attrs(self):
        for key in [k for k in self.__dict__ if k[0] != '_']:
            if key not in ('id', self._testMethodName):
                del self.__dict__[key]

    test.TestCase._clear_attrs = _clear_attrs


def _fix_api_paste_config():
    # Nova's ConfFixture looks for api-paste.ini under site-packages; the
    # wheel installs it under <prefix>/etc/nova/.
    from nova.tests.fixtures import conf as conf_fixture

    from nova_gpu_ext.sim import harness
    original = conf_fixture.ConfFixture.setUp
    path = harness.api_paste_ini()

    def setUp(self):
        original(self)
        self.conf.set_default('api_paste_config', path, group='wsgi')

    conf_fixture.ConfFixture.setUp = setUp


def pytest_addoption(parser):
    group = parser.getgroup('nova-gpu-ext')
    group.addoption('--upstream-record', metavar='PATH',
                    help="write each test's outcome to PATH (JSON); the other "
                    "tests' entries already in PATH are kept")
    group.addoption('--compare-upstream', metavar='PATH',
                    help='fail only when a test that passes in the record '
                    'PATH does not pass here')
    group.addoption('--verdict-file', metavar='PATH',
                    help="with --compare-upstream: write the comparison's "
                    'verdict (and the tests to retry) to PATH for '
                    'python -m tests.nova_functional.retry')


def pytest_configure(config):
    _fix_clear_attrs()
    _fix_api_paste_config()
    if ours():
        _swap_driver()
    if (config.getoption('upstream_record')
            or config.getoption('compare_upstream')):
        config.pluginmanager.register(_Outcomes(config), 'nova-gpu-ext-rec')


def _nova_version():
    from importlib import metadata
    return metadata.version('nova')


class _Outcomes:
    """Gathers outcomes (in the xdist controller too) and records/compares."""

    def __init__(self, config):
        self.config = config
        self.collected = set()
        self.results = {}
        self.nodeids = {}
        self.lines = []
        verdict = config.getoption('verdict_file')
        if verdict and os.path.exists(verdict):
            os.unlink(verdict)

    def pytest_collection_finish(self, session):
        self.collected.update(record.key_of(i.nodeid) for i in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids):
        self.collected.update(record.key_of(i) for i in ids)

    def pytest_runtest_logreport(self, report):
        if hasattr(self.config, 'workerinput'):
            return
        key = record.key_of(report.nodeid)
        self.nodeids[key] = report.nodeid
        record.merge(self.results, key,
                     record.phase_outcome(report.when, report.outcome))

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session, exitstatus):
        if hasattr(self.config, 'workerinput'):
            return
        if exitstatus not in (pytest.ExitCode.OK,
                              pytest.ExitCode.TESTS_FAILED):
            return
        path = self.config.getoption('upstream_record')
        if path:
            old = record.load(path) if os.path.exists(path) else None
            saved = record.save(path, record.make_record(
                _nova_version(), self.results), merge_with=old)
            self.lines.append('upstream record %s written: nova %s, %s'
                              % (path, saved['nova'], saved['summary']))
            session.exitstatus = pytest.ExitCode.OK
        path = self.config.getoption('compare_upstream')
        if path:
            problems, notes = record.compare(
                record.load(path), _nova_version(), self.collected,
                self.results)
            self.lines.extend(notes)
            self.lines.extend('REGRESSION: ' + p for p in problems)
            self.lines.append(
                'compared with upstream (%s): %d tests, %d not as upstream'
                % (path, len(self.collected), len(problems)))
            session.exitstatus = (pytest.ExitCode.TESTS_FAILED if problems
                                  else pytest.ExitCode.OK)
            verdict = self.config.getoption('verdict_file')
            if verdict:
                record.save_verdict(verdict, record.verdict(
                    problems, self.results, self.nodeids))

    def pytest_terminal_summary(self, terminalreporter):
        if self.lines:
            terminalreporter.section('nova-gpu-ext: upstream comparison')
            for line in self.lines:
                terminalreporter.write_line(line)


def pytest_report_header(config):
    from nova.virt import libvirt as libvirt_pkg
    return 'nova.virt.libvirt.LibvirtDriver = %s.%s (%s mode)' % (
        libvirt_pkg.LibvirtDriver.__module__,
        libvirt_pkg.LibvirtDriver.__qualname__, concurrency.mode())
