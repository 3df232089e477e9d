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

Also works around ``nova.test.TestCase._clear_attrs`` deleting the test
method attribute that pytest deletes again afterwards (see
``tests/functional/README.md``).
"""

# autopep8: off
from nova_gpu_ext.sim import concurrency ; concurrency.patch()  # noqa
# autopep8: on

import os  # noqa: E402
import tempfile  # noqa: E402

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


def pytest_configure(config):
    _fix_clear_attrs()
    _fix_api_paste_config()
    if ours():
        _swap_driver()


def pytest_report_header(config):
    from nova.virt import libvirt as libvirt_pkg
    return 'nova.virt.libvirt.LibvirtDriver = %s.%s (%s mode)' % (
        libvirt_pkg.LibvirtDriver.__module__,
        libvirt_pkg.LibvirtDriver.__qualname__, concurrency.mode())
