"""Domain capabilities of the simulated hosts (Nova's fakelibvirt).

Layer rule: simulation. fakelibvirt's default domain capabilities list
graphics ``sdl``, ``vnc`` and ``spice`` only; a Debian 12 host (QEMU 7.2,
libvirt 9.0, measured on this project's test machine) also lists
``egl-headless`` and ``dbus``. The harness gives every fake host that list;
:func:`without_egl_headless` takes it away from one host's connection.
"""

import fixtures
from nova.tests.fixtures import libvirt as fakelibvirt

_DEFAULT = fakelibvirt.Connection._domain_capability_devices_default
WITH_EGL = _DEFAULT.replace(
    "<value>spice</value>",
    "<value>spice</value>\n        <value>egl-headless</value>"
    "\n        <value>dbus</value>", 1)
assert WITH_EGL != _DEFAULT, 'fakelibvirt domain capabilities changed'


def use_host_like_domain_capabilities(test):
    test.useFixture(fixtures.MonkeyPatch(
        'nova.tests.fixtures.libvirt.Connection._domain_capability_devices',
        WITH_EGL))


def without_egl_headless(connection):
    """One fake host's QEMU without egl-headless (built without OpenGL)."""
    connection._domain_capability_devices = _DEFAULT
