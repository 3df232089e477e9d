"""Domain capabilities of the simulated hosts (Nova's fakelibvirt).

Layer rule: simulation. fakelibvirt's default domain capabilities list
graphics ``sdl``, ``vnc`` and ``spice`` only; a Debian 12 host (QEMU 7.2,
libvirt 9.0, measured on this project's test machine) also lists
``egl-headless`` and ``dbus``. The harness gives every fake host that list;
:func:`without_egl_headless` takes it away from one host's connection.
"""

import os

import fixtures
from nova.tests.fixtures import libvirt as fakelibvirt

_DEFAULT = fakelibvirt.Connection._domain_capability_devices_default
WITH_EGL = _DEFAULT.replace(
    "<value>spice</value>",
    "<value>spice</value>\n        <value>egl-headless</value>"
    "\n        <value>dbus</value>", 1)
assert WITH_EGL != _DEFAULT, 'fakelibvirt domain capabilities changed'


def fake_device_exists(driver, path):
    """Device nodes of a simulated host: ``/dev/...`` of the driver is
    ``<its fake sysfs root>/_dev/...`` (where the fake sysfs writer puts
    them), or the real path when the host has it."""
    dev_root = driver._dev_root or '/dev'
    if path.startswith(dev_root.rstrip('/') + '/'):
        fake = os.path.join(driver._sysfs_root, '_dev',
                            os.path.relpath(path, dev_root))
        if os.path.exists(fake):
            return True
    return os.path.exists(path)


def use_host_like_domain_capabilities(test):
    """Domain capabilities and device nodes as a real GPU host has them."""
    test.useFixture(fixtures.MonkeyPatch(
        'nova.tests.fixtures.libvirt.Connection._domain_capability_devices',
        WITH_EGL))
    test.useFixture(fixtures.MonkeyPatch(
        'nova_gpu_ext.virt.domcaps.device_exists', fake_device_exists))


def remove_device_node(sysfs_root, name):
    """Take one render node's device node away (sysfs still lists it)."""
    os.unlink(os.path.join(sysfs_root, '_dev', 'dri', name))


def without_egl_headless(connection):
    """One fake host's QEMU without egl-headless (built without OpenGL)."""
    connection._domain_capability_devices = _DEFAULT
