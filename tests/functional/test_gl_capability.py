"""Render-node guests go only to hosts whose QEMU can render with GL.

Two sample GPU hosts (same GPUs and render nodes); the first one's libvirt
domain capabilities lack ``egl-headless`` (a QEMU built without OpenGL).
The compute publishes that (host summary ``gl``, and no
``CUSTOM_GPU_EXT_EGL_HEADLESS`` trait on its provider), and
GPUPlacementFilter refuses it for a render-node flavor with the reason in
the scheduler log.
"""

from nova_gpu_ext.sim import fakecaps
from nova_gpu_ext.sim import samplehost
from nova_gpu_ext.virt import domcaps
from tests.functional import base


class GLCapabilityTest(base.GPUExtTestBase):

    sysfs_sample = None

    def setUp(self):
        super().setUp()
        samplehost.configure(self)
        samplehost.start_hosts(self, cpu_host=False)
        driver = self.computes['gpu-host-1'].driver
        fakecaps.without_egl_headless(driver._host.get_connection())
        # The driver asks the capabilities once per process (a real QEMU
        # does not change under a running compute); the fake one just did,
        # so forget what was read, as a restart would.
        driver._gpu_gl = domcaps.NOT_READ
        self.start_compute('gpu-host-2', host_info=samplehost.host_info(),
                           pci_info=samplehost.pci_info())
        self._run_periodics()

    def _traits(self, host):
        uuid = self._get_provider_uuid_by_host(host)
        return set(self._get_provider_traits(uuid))

    def test_host_without_egl_headless_not_chosen_for_render_node(self):
        self.assertNotIn(domcaps.EGL_TRAIT, self._traits('gpu-host-1'))
        self.assertIn(domcaps.EGL_TRAIT, self._traits('gpu-host-2'))
        flavor = self._create_flavor(memory_mb=2048, vcpu=2, extra_spec={
            'gpu:render_node': 'numa-local'})
        for _ in range(2):
            server = self._create_server(flavor_id=flavor, networks='none',
                                         expected_state='ACTIVE')
            self.assertEqual('gpu-host-2', server['OS-EXT-SRV-ATTR:host'])
        log = self.stdlog.logger.output
        self.assertIn('GPUPlacementFilter: host gpu-host-1 refused: the '
                      'host QEMU cannot render with a host GPU: no '
                      'egl-headless graphics in its libvirt domain '
                      'capabilities', log)

    def test_forced_onto_that_host_the_compute_refuses(self):
        # A forced host skips the filters: the compute's own check says why.
        flavor = self._create_flavor(memory_mb=2048, vcpu=2, extra_spec={
            'gpu:render_node': 'numa-local'})
        server = self._create_server(flavor_id=flavor, networks='none',
                                     az='nova:gpu-host-1',
                                     expected_state='ERROR')
        self.assertIn('egl-headless', str(server.get('fault')))


class MissingRenderDeviceTest(base.GPUExtTestBase):
    """sysfs lists the render nodes but /dev/dri has none of them (a
    compute in a container without /dev/dri): that host is not chosen."""

    sysfs_sample = None

    def setUp(self):
        super().setUp()
        samplehost.configure(self)
        samplehost.start_hosts(self, cpu_host=False)
        for name in ('renderD128', 'renderD129'):
            fakecaps.remove_device_node(self.sysfs_root, name)
        second = self.build_sysfs(None)
        samplehost.write_sysfs(second)
        self.flags(sysfs_root=second, group='gpu_ext')
        self.start_compute('gpu-host-2', host_info=samplehost.host_info(),
                           pci_info=samplehost.pci_info())
        self._run_periodics()

    def test_host_without_the_device_nodes_not_chosen(self):
        flavor = self._create_flavor(memory_mb=2048, vcpu=2, extra_spec={
            'gpu:render_node': 'numa-local'})
        server = self._create_server(flavor_id=flavor, networks='none',
                                     expected_state='ACTIVE')
        self.assertEqual('gpu-host-2', server['OS-EXT-SRV-ATTR:host'])
        log = self.stdlog.logger.output
        self.assertIn('GPUPlacementFilter: host gpu-host-1 refused: render '
                      'node renderD128: /dev/dri/renderD128 does not exist '
                      'on the host', log)
