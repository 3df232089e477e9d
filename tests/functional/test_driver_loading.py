"""The shim loads our driver the way nova-compute loads any driver."""

from nova.virt import driver as virt_driver

from nova_gpu_ext.virt import driver as gpu_driver
from tests.functional import base


class DriverLoadingTest(base.GPUExtTestBase):

    def test_load_compute_driver_returns_ours(self):
        loaded = virt_driver.load_compute_driver(
            None, 'gpu_ext.GPULibvirtDriver')
        self.assertIsInstance(loaded, gpu_driver.GPULibvirtDriver)
