"""Shim so that ``compute_driver = gpu_ext.GPULibvirtDriver`` loads our driver.

Nova imports every compute driver as ``nova.virt.<compute_driver>``. This
package is the only file nova-gpu-ext ships under the ``nova`` name; there is
deliberately no ``nova/__init__.py`` or ``nova/virt/__init__.py`` here, so the
real Nova package always wins.
"""

from nova_gpu_ext.virt.driver import GPULibvirtDriver  # noqa: F401
