"""Host GL capability from libvirt's domain capabilities, for the scheduler.

Layer rule: adapter. :func:`parse` and :func:`refusal` are pure;
:func:`read` asks libvirt (``getDomainCapabilities``) once per resource
update. What a render-node guest needs from the host's QEMU:

* ``<graphics type='egl-headless'>`` (domain capabilities
  ``devices/graphics/enum[@name='type']``): GL rendering on a host render
  node without a local display;
* a ``virtio`` video model (``devices/video/enum[@name='modelType']``),
  which gets ``<acceleration accel3d='yes'/>``.

The compute publishes the result in its host summary (``gl`` key of the
``gpu_ext`` stats) and as the trait :data:`EGL_TRAIT` on its compute node
provider; GPUPlacementFilter refuses a render-node request on a host that
published ``gl`` without them, with the reason in the scheduler log, so
the build does not fail late in QEMU and reschedule. A host that published
no ``gl`` entry (an older compute) is not refused for it.

The render nodes themselves: sysfs can list a ``renderD*`` whose device node
(``/dev/dri/renderD*``, made by udev) is missing, e.g. in a container
without ``/dev/dri``; libvirt then fails the start ("cannot open directory
'/dev/dri'"). The compute publishes ``present`` per render node and claims
only present ones; the filter skips the others and says so.

libvirt 9.0's domain capabilities do not say whether QEMU was built with
virgl (``accel3d``): a host whose QEMU has egl-headless but no virgl still
passes here; see the operator guide.
"""

import dataclasses
import os
from typing import Optional

from lxml import etree
from oslo_log import log as logging
import nova.conf
from nova.objects import fields

from nova_gpu_ext.virt import operations

LOG = logging.getLogger(__name__)

#: trait on the compute node provider of a host that can do egl-headless GL
EGL_TRAIT = 'CUSTOM_GPU_EXT_EGL_HEADLESS'


def parse(xml: str) -> dict:
    """``{'egl_headless': bool, 'virtio_video': bool}`` of a domcaps XML."""
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)

    def values(path):
        return {v.text for v in root.iterfind(path + '/value')}
    graphics = values("devices/graphics[@supported='yes']/enum[@name='type']")
    video = values("devices/video[@supported='yes']/enum[@name='modelType']")
    return {'egl_headless': 'egl-headless' in graphics,
            'virtio_video': 'virtio' in video}


def read(conn, arch: str, virt_type: str) -> Optional[dict]:
    """The host's GL facts, or None when libvirt cannot say (logged)."""
    try:
        xml = conn.getDomainCapabilities(None, arch, None, virt_type, 0)
        return parse(xml)
    except Exception:
        LOG.warning('nova-gpu-ext: cannot read the domain capabilities for '
                    '%s/%s; GL capability not published', arch, virt_type,
                    exc_info=True)
        return None


def refusal(gl: Optional[dict]) -> Optional[str]:
    """Why a host cannot serve a render-node guest, or None."""
    if not gl:
        return None
    missing = []
    if not gl.get('egl_headless'):
        missing.append("egl-headless graphics")
    if not gl.get('virtio_video'):
        missing.append('virtio video')
    if not missing:
        return None
    return ('the host QEMU cannot render with a host GPU: no %s in its '
            'libvirt domain capabilities' % ' and no '.join(missing))


def traits(gl: Optional[dict]) -> set:
    return {EGL_TRAIT} if gl and refusal(gl) is None else set()


def host_gl(driver) -> Optional[dict]:
    """The GL facts of the driver's host (its arch and virt type)."""
    conf = nova.conf.CONF
    try:
        connection = driver._host.get_connection()
    except Exception:   # no libvirt connection: nothing known, never raise
        return None
    return read(connection, fields.Architecture.from_host(),
                conf.libvirt.virt_type)


def check_render_node_host(driver, instance):
    """Refuse (reschedule) a render-node guest on a host without GL."""
    why = refusal(host_gl(driver))
    if why:
        raise operations.Refused(reason='render node: %s' % why)


def device_exists(driver, path: str) -> bool:
    """Does the device node exist on the driver's host? (The simulated
    hosts replace this: their nodes live in the fake tree.)"""
    return os.path.exists(path)


def with_present_render_nodes(driver, topology):
    """The topology with only the render nodes whose device node exists."""
    present = tuple(r for r in topology.render_nodes
                    if device_exists(driver, r.path))
    if len(present) == len(topology.render_nodes):
        return topology
    for r in topology.render_nodes:
        if r not in present:
            LOG.warning('nova-gpu-ext: render node %s is in sysfs but %s '
                        'does not exist; not used', r.name, r.path)
    return dataclasses.replace(topology, render_nodes=present)
