"""Nova's functional harness with nova-gpu-ext in the path (simulated).

Layer rule: simulation. API, conductor, scheduler (with our filter),
placement and compute run in-process; the compute runs our driver on Nova's
fakelibvirt, and our discovery reads a fake sysfs tree built for the test.
Every domain XML the driver defines is captured (fakelibvirt re-renders
``XMLDesc()`` from a parsed subset, so assertions use what was defined).
"""

import os
import shutil
import subprocess
import sysconfig
import tempfile
import time

import fixtures
from lxml import etree
from nova import conf as nova_conf
from nova import context
from nova import objects
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.libvirt import test_vgpu
from nova.virt.libvirt import utils as libvirt_utils

from nova_gpu_ext.sim import fakecaps
from nova_gpu_ext.sim import sample_hosts
from nova_gpu_ext.virt import guest_devices

CONF = nova_conf.CONF

UPSTREAM_DRIVER = 'libvirt.LibvirtDriver'
OUR_DRIVER = 'gpu_ext.GPULibvirtDriver'
OUR_FILTERS = ('GPUExtHostFilter', 'GPUPlacementFilter')
OUR_WEIGHERS = (
    'nova_gpu_ext.scheduler.weighers.GPUHostAvoidanceWeigher',
    'nova_gpu_ext.scheduler.weighers.GPUAffinityWeigher',
    'nova_gpu_ext.scheduler.weighers.GPUSharingWeigher',
)


def validate_domain_xml(xml):
    """libvirt's schema check (``virt-xml-validate``): None when valid.

    Skipped (None) where libvirt-clients is not installed; ``.ci/run``
    installs it, so CI checks every XML the functional tests define.
    """
    tool = shutil.which('virt-xml-validate')
    if not tool:
        return None
    xml = _libvirt_numatune_order(xml)
    with tempfile.NamedTemporaryFile('w', suffix='.xml') as f:
        f.write(xml)
        f.flush()
        result = subprocess.run([tool, f.name, 'domain'],
                                capture_output=True, text=True)
    if result.returncode:
        return '%s\n%s' % (result.stdout + result.stderr, xml)
    return None


def _libvirt_numatune_order(xml):
    """fakelibvirt's ``XMLDesc()`` re-renders ``<numatune>`` with its
    ``<memnode>`` before ``<memory>`` and without its ``mode``, and Nova
    defines that text again on
    unrescue (the saved ``unrescue.xml``): put the children back in the
    order real libvirt writes them, so the schema check judges what Nova
    and our driver generate, not fakelibvirt's rendering."""
    if '<memnode' not in xml:
        return xml
    try:
        root = etree.fromstring(xml.encode())
    except etree.XMLSyntaxError:
        return xml
    for tune in root.findall('./numatune'):
        for memory in tune.findall('./memory'):
            tune.remove(memory)
            tune.insert(0, memory)
        for memnode in tune.findall('./memnode'):
            # dropped by the re-render; Nova always writes it
            if memnode.get('mode') is None:
                memnode.set('mode', 'strict')
    return etree.tostring(root, encoding='unicode')


def api_paste_ini():
    """Nova's api-paste.ini, installed under ``<prefix>/etc/nova/``."""
    for base in (sysconfig.get_path('data'), '/usr/local', '/usr', '/'):
        path = os.path.join(base, 'etc', 'nova', 'api-paste.ini')
        if os.path.exists(path):
            return path
    raise RuntimeError('api-paste.ini of the installed nova not found')


class GPUExtTestBase(test_vgpu.VGPUTestBase):
    """Servers test base whose computes run ``GPULibvirtDriver``.

    Inherits the vGPU base so that mdev creation is faked the same way as
    in Nova's own vGPU tests.
    """

    ADDITIONAL_FILTERS = list(OUR_FILTERS)
    #: the compute driver that ``start_compute`` starts
    compute_driver = OUR_DRIVER
    #: a sample host name from ``nova_gpu_ext.sim.fake_sysfs``
    sysfs_sample = 'virgl_2node'
    #: what the real lab runs (Debian 12: libvirt 9.0.0, QEMU 7.2.0), so
    #: version-gated tweaks behave in the harness as on the lab's libvirt
    FAKE_LIBVIRT_VERSION = 9000000
    #: the compute_driver of a host that runs upstream's driver
    UPSTREAM_DRIVER = UPSTREAM_DRIVER
    FAKE_QEMU_VERSION = 7002000

    def setUp(self):
        # The API service starts inside super().setUp(): these must be set
        # first (the conf fixture resets all overrides at cleanup).
        CONF.set_override('api_paste_config', api_paste_ini(), group='wsgi')
        CONF.set_override(
            'available_filters',
            ['nova.scheduler.filters.all_filters'] + [
                'nova_gpu_ext.scheduler.filters.' + name
                for name in OUR_FILTERS],
            group='filter_scheduler')
        CONF.set_override(
            'weight_classes',
            ['nova.scheduler.weights.all_weighers'] + list(OUR_WEIGHERS),
            group='filter_scheduler')
        super().setUp()
        fakecaps.use_host_like_domain_capabilities(self)
        self.sysfs_root = self.build_sysfs(self.sysfs_sample)
        self.flags(sysfs_root=self.sysfs_root, dev_root='/dev',
                   group='gpu_ext')
        # Boot phase records of this test (never under Nova's state_path).
        self.flags(state_dir=self.useFixture(fixtures.TempDir()).path,
                   group='gpu_ext')
        self.defined_xml = {}
        original_define = fakelibvirt.Connection.defineXML
        captured = self.defined_xml

        self.invalid_xml = []
        invalid = self.invalid_xml

        def define_xml(conn, xml):
            dom = original_define(conn, xml)
            captured[dom.UUIDString()] = xml
            problem = validate_domain_xml(xml)
            if problem:
                invalid.append(problem)
            return dom

        # Every XML the drivers define must pass libvirt's schema.
        self.addCleanup(self._assert_xml_valid)

        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Connection.defineXML', define_xml))
        # Live migration starts the guest on the destination from the XML
        # the source sent (createXML), not through defineXML.
        self.created_xml = {}
        original_create = fakelibvirt.Connection.createXML
        created = self.created_xml

        def create_xml(conn, xml, flags):
            dom = original_create(conn, xml, flags)
            created[dom.UUIDString()] = xml
            return dom

        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Connection.createXML', create_xml))

    def _assert_xml_valid(self):
        if self.invalid_xml:
            self.fail('virt-xml-validate refused domain XML:\n' +
                      '\n\n'.join(self.invalid_xml))

    def build_sysfs(self, sample):
        """A fake sysfs tree: a named sample host, or empty for None."""
        root = self.useFixture(fixtures.TempDir()).path
        if sample:
            sample_hosts.SAMPLE_HOSTS[sample](root)
        return root

    def _setup_compute_service(self):
        self.flags(compute_driver=self.compute_driver)

    def start_compute(self, hostname='compute1', *args, driver=None,
                      **kwargs):
        """Start a compute running ``driver`` (default: ours)."""
        self.flags(compute_driver=driver or self.compute_driver)
        # After hostname: host_info, pci_info, mdev_info, vdpa_info,
        # libvirt_version, qemu_version (Nova's restart passes them so).
        if len(args) < 5:
            kwargs.setdefault('libvirt_version', self.FAKE_LIBVIRT_VERSION)
        if len(args) < 6:
            kwargs.setdefault('qemu_version', self.FAKE_QEMU_VERSION)
        return super().start_compute(hostname, *args, **kwargs)

    def _clear_attrs(self):
        # nova.test.TestCase deletes public attributes after each test; under
        # pytest that includes the test method pytest deletes afterwards.
        for key in [k for k in self.__dict__ if k[0] != '_']:
            if key not in ('id', self._testMethodName):
                del self.__dict__[key]

    def wait_until_settled(self, server, timeout=30.0):
        """The server once it is ACTIVE or ERROR (or ``timeout`` passed);
        a refused build is a result here, not a failure."""
        deadline = time.monotonic() + timeout
        while True:
            server = self.api.get_server(server['id'])
            if server['status'] in ('ACTIVE', 'ERROR') or \
                    time.monotonic() > deadline:
                return server
            time.sleep(0.05)

    def mdev_parents(self, server):
        """{mdev UUID: PCI address of its physical GPU} for a server."""
        driver = self.computes[server['OS-EXT-SRV-ATTR:host']].driver
        instance = objects.Instance.get_by_uuid(
            context.get_admin_context(), server['id'])
        return {
            mdev: guest_devices.libvirt_name_to_address(
                driver._get_mediated_device_information(
                    libvirt_utils.mdev_uuid2name(mdev))['parent'])
            for mdev in driver._get_all_assigned_mediated_devices(instance)}

    def domain_xml(self, server):
        """The XML the driver defined for a server (latest definition)."""
        return self.defined_xml[server['id']]


def run_case(case, quiet=True):
    """Run one test case outside a test runner (the XML dump scripts):
    Nova's warnings silenced when ``quiet``, tracebacks to stderr; True
    when it passed."""
    import logging as std_logging
    import sys
    import unittest
    if quiet:
        std_logging.disable(std_logging.WARNING)
    result = unittest.TestResult()
    case.run(result)
    std_logging.disable(std_logging.NOTSET)
    for _test, trace in result.errors + result.failures:
        sys.stderr.write(trace)
    return not (result.errors or result.failures)
