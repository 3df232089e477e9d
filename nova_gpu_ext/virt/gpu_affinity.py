"""Compute side of GPU-to-NUMA affinity and render-node binding.

Layer rule: adapter. Reads what the guest got (the PCI hostdevs and mdevs
that upstream's driver put in the guest config, the host topology), asks
the pure core (:mod:`nova_gpu_ext.core.affinity`) and applies the
answer to the ``LibvirtConfigGuest``:

* a GPU guest's NUMA cells are placed by Nova's claim, steered to the
  GPU's node (:mod:`.numa_claim`); here they are only checked: under
  ``required``/``socket`` a cell must be on the GPU's node/socket, otherwise
  the build is refused (and rescheduled), never silently cross-NUMA; a guest
  the claim left without a cell (policy ``legacy``, or ``preferred`` with no
  room) is not bound, as upstream;
* a guest that asks for a render node gets the least-used render node of
  its NUMA node, ``<graphics type='egl-headless'><gl rendernode/>`` and a
  virtio video model with ``accel3d``; the per-render-node guest limit is
  checked under a lock, so racing builds cannot exceed it.
"""

import dataclasses
import threading

from nova.virt import hardware
from nova.virt.libvirt import config as vconfig
from oslo_log import log as logging
from lxml import etree

from nova_gpu_ext.core import numa
from nova_gpu_ext import model
from nova_gpu_ext.core import affinity
from nova_gpu_ext.virt import guest_devices
from nova_gpu_ext.virt import guest_pci_layout
from nova_gpu_ext.virt import operations
from nova_gpu_ext.virt import xmlconfig

LOG = logging.getLogger(__name__)


#: raised when a GPU placement rule cannot hold on a new claim
Refused = operations.Refused


def node_capacities(topology):
    """Each node's size. The scheduler checked what is free (it knows the
    usage); the compute only refuses a guest larger than a whole node, so
    both sides agree on guests that can never fit a node."""
    return [affinity.node_capacity(n.id, n.socket, len(n.cpus), n.memory_mb,
                                   unknown_fits=True)
            for n in topology.numa_nodes]


def usable_node_cpus(topology, node_id, allowed, mode, instance):
    """The CPUs of ``node_id`` the guest may use (within ``allowed``, the
    CPU set Nova gives it, when there is one). None of them: refused under
    a strict binding on a new claim (:func:`operations.admit`), otherwise
    logged; returns the empty set then, and the guest is not bound."""
    cpus = set(topology.node(node_id).cpus)
    if allowed:
        cpus &= set(allowed)
    if not cpus:
        if mode == numa.STRICT:
            operations.admit(instance, 'none of the CPUs Nova may use for '
                             'this guest is on NUMA node %d' % node_id)
        LOG.warning('No usable CPU on NUMA node %d; guest not bound',
                    node_id, instance=instance)
    return cpus


def _cpus(cpus):
    return hardware.format_cpu_spec(cpus, allow_ranges=True)


def _guest_cells(instance):
    topology = getattr(instance, 'numa_topology', None)
    if not topology or not topology.cells:
        return []
    return [cell.id for cell in topology.cells]


class RenderNodeTracker:
    """Which guest uses which render node on this host, under a lock."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_instance = {}

    def counts(self):
        with self._lock:
            out = {}
            for name in self._by_instance.values():
                out[name] = out.get(name, 0) + 1
            return out

    def claim(self, instance_uuid, topology, needs, limit, only_node=None):
        """Choose and record a render node atomically."""
        with self._lock:
            self._by_instance.pop(instance_uuid, None)
            counts = {}
            for name in self._by_instance.values():
                counts[name] = counts.get(name, 0) + 1
            slots = [affinity.RenderSlot(r.name, r.path, r.numa_node,
                                         counts.get(r.name, 0), limit)
                     for r in topology.render_nodes]
            choice = affinity.choose_render_node(
                slots, needs, node_capacities(topology), only_node=only_node)
            if choice.ok:
                self._by_instance[instance_uuid] = choice.render.name
            return choice

    def keep(self, instance_uuid, topology, needs, limit, only_node=None):
        """A guest restarting in place keeps the render node it has (when
        the host still has it), whatever the limit; a guest that has none
        recorded gets one chosen as by :meth:`claim`, the limit ignored.
        ``ok`` is False when the render node it keeps is over ``limit``
        (the caller warns)."""
        with self._lock:
            name = self._by_instance.get(instance_uuid)
            render = {r.name: r for r in topology.render_nodes}.get(name)
            if render is not None:
                others = sum(1 for u, n in self._by_instance.items()
                             if n == name and u != instance_uuid)
                slot = affinity.RenderSlot(render.name, render.path,
                                           render.numa_node, others, limit)
                over = not affinity.has_room(others, limit)
                return affinity.RenderChoice(
                    not over, slot, render.numa_node,
                    'render node %s kept (%d guest(s) with it, limit %s)' % (
                        name, others + 1, limit or 'none'))
        choice = self.claim(instance_uuid, topology, needs, 0,
                            only_node=only_node)
        if choice.ok and not affinity.has_room(choice.render.guests, limit):
            return dataclasses.replace(choice, ok=False, reason=(
                'render node %s has %d guest(s) with this one, limit %d' % (
                    choice.render.name, choice.render.guests + 1, limit)))
        return choice

    def retain(self, instance_uuids):
        """Forget every guest not in ``instance_uuids``."""
        with self._lock:
            for uuid in [u for u in self._by_instance
                         if u not in instance_uuids]:
                del self._by_instance[uuid]

    def of(self, instance_uuid):
        """The render node recorded for a guest, or None."""
        with self._lock:
            return self._by_instance.get(instance_uuid)

    def release(self, instance_uuid):
        with self._lock:
            return self._by_instance.pop(instance_uuid, None)

    def record(self, instance_uuid, name):
        with self._lock:
            self._by_instance[instance_uuid] = name


def _add_render_node(guest, render, display):
    if display == 'none':
        # GL through egl-headless only: no remote console.
        for dev in list(guest.devices):
            if isinstance(dev, vconfig.LibvirtConfigGuestGraphics) and \
                    dev.type in ('vnc', 'spice'):
                guest.devices.remove(dev)
    graphics = None
    if display == 'spice-gl':
        for dev in guest.devices:
            if isinstance(dev, vconfig.LibvirtConfigGuestGraphics) and \
                    dev.type == 'spice':
                graphics = xmlconfig.promote(dev, xmlconfig.GuestGraphicsGL)
    if graphics is None:
        graphics = xmlconfig.GuestGraphicsGL()
        graphics.type = 'egl-headless'
        guest.add_device(graphics)
    graphics.rendernode = render.path
    video = None
    for dev in guest.devices:
        if isinstance(dev, vconfig.LibvirtConfigGuestVideo):
            video = dev
    if video is None:
        video = vconfig.LibvirtConfigGuestVideo()
        guest.add_device(video)
    video = xmlconfig.promote(video, xmlconfig.GuestVideoAccel3D)
    video.type = 'virtio'
    video.accel3d = True
    return 'graphics %s gl rendernode=%s, video virtio accel3d' % (
        graphics.type, render.path)


def apply(driver, guest, instance, request, topology, policy,
          render_tracker, render_limit):
    """Apply affinity and render node; return lines saying what changed.

    Raises :class:`Refused` when a ``required``/``socket`` rule cannot hold.
    """
    changes = []
    needs = affinity.GuestNeeds(instance.flavor.vcpus,
                                instance.flavor.memory_mb, policy)
    cells = _guest_cells(instance)
    gpus = guest_devices.physical_gpu_addresses(driver, guest, topology)
    if gpus:
        first = topology.gpu(gpus[0])
        slot = affinity.GPUSlot(gpus[0], first.numa_node, first.socket)
        # The claim fits a one-cell topology for every GPU it can see
        # (numa_claim.plan: a vGPU, a PCI alias of a host GPU, a
        # resources:CUSTOM_* class on a GPU's provider).
        claimed = request.wants_devices
        if cells:
            _check_cells(first, cells, topology, policy, instance)
            changes.extend(expose_device_locality(guest, topology, instance,
                                                  driver))
        elif claimed and numa.applies(policy) and not numa.refuses(policy):
            # Nova's claim gave the guest no cell (numa_claim): no node
            # had room for it; an unbound guest is not in anyone's books.
            changes.append('numa: not bound (no NUMA node had room for the '
                           'guest as one cell; policy %s)' % policy)
        else:
            # No cell from Nova's claim: policy legacy (upstream's
            # behaviour), or a guest the claim did not steer. The rule is
            # still checked; the guest is not bound (Nova's books place a
            # GPU guest's NUMA cells, the claim's steered fit).
            choice = affinity.choose_node(needs, slot,
                                          node_capacities(topology))
            if not choice.ok:
                operations.admit(instance, choice.reason)
            for other in gpus[1:]:
                gpu = topology.gpu(other)
                if numa.every_gpu_on_one_node(policy) and \
                        choice.node is not None and \
                        gpu.numa_node != choice.node:
                    operations.admit(instance, 'GPU %s is on node %s, not on '
                                     'node %d with GPU %s' % (
                                         other, gpu.numa_node,
                                         choice.node, gpus[0]))
            if choice.node is None:
                changes.append('numa: not bound (%s)' % choice.reason)
    if request.wants_render_node:
        only = cells[0] if len(cells) == 1 else None
        claim = (render_tracker.claim if operations.is_new_claim(instance)
                 else render_tracker.keep)
        choice = claim(instance.uuid, topology, needs, render_limit,
                       only_node=only)
        if not choice.ok:
            operations.admit(instance, 'render node: %s' % choice.reason)
        if choice.render is not None:
            changes.append('render node: %s (%s)' % (
                _add_render_node(guest, choice.render, request.display),
                choice.reason))
    return changes


def expose_device_locality(guest, topology, instance, driver):
    """Expander buses per guest NUMA cell (:mod:`.guest_pci_layout`)."""
    return guest_pci_layout.expose_device_locality(guest, topology,
                                                   instance, driver)


def _check_cells(gpu, cells, topology, policy, instance):
    """Nova placed the guest's cells (the claim): do they keep the rule
    (:func:`numa.check_cells`)?"""
    kept, refuse = numa.check_cells(
        policy, gpu.numa_node, gpu.socket, cells,
        {n.id: n.socket for n in topology.numa_nodes})
    if kept:
        return
    reason = ('GPU %s is on NUMA node %s but the guest\'s cells are on %s' %
              (gpu.address, gpu.numa_node, cells))
    if refuse:
        operations.admit(instance, reason + ' (policy %s)' % policy)
        return
    LOG.warning('%s (policy %s: accepted)', reason, policy,
                instance=instance)


def render_node_of(xml):
    """The render node a defined domain uses, from its XML (restart)."""
    try:
        root = etree.fromstring(xml.encode() if isinstance(xml, str)
                                else xml)
    except Exception:
        return None
    for gl in root.iterfind('./devices/graphics/gl'):
        if gl.get('rendernode'):
            return gl.get('rendernode').rsplit('/', 1)[-1]
    return None


__all__ = ['apply', 'Refused', 'RenderNodeTracker', 'render_node_of',
           'model']


# -- live migration -----------------------------------------------------------
#
# The destination decides its own render node and NUMA node in
# pre_live_migration; the source writes them into the XML it sends. How the
# decision travels: nova_gpu_ext.virt.live_migration (system metadata, not
# Nova's target_mdevs).

MIGRATE_PREFIX = 'gpu_ext:'


def encode_migration(render_path, node, cpus, mode):
    out = {}
    if render_path:
        out[MIGRATE_PREFIX + 'render_node'] = render_path
    if node is None:
        # The destination binds nowhere: the source's binding must not
        # travel with the guest.
        out[MIGRATE_PREFIX + 'unbind'] = '1'
    else:
        out[MIGRATE_PREFIX + 'numa_node'] = str(node)
        out[MIGRATE_PREFIX + 'cpuset'] = _cpus(cpus)
        out[MIGRATE_PREFIX + 'numa_mode'] = mode
    return out


def rewrite_migration_xml(xml, decision):
    """The source's domain XML with the destination's choices in it."""
    if not decision:
        return xml
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
    render = decision.get('render_node')
    if render:
        devices = root.find('./devices')
        gls = root.findall('./devices/graphics/gl')
        if gls:
            for gl in gls:
                gl.set('rendernode', render)
        elif devices is not None:
            graphics = etree.SubElement(devices, 'graphics',
                                        type='egl-headless')
            etree.SubElement(graphics, 'gl', rendernode=render)
    node = decision.get('numa_node')
    if decision.get('unbind'):
        # <vcpu cpuset> is Nova's to rewrite (dst_cpu_shared_set_info).
        for tune in root.findall('./numatune'):
            root.remove(tune)
    if node is not None:
        vcpu = root.find('./vcpu')
        if vcpu is not None and decision.get('cpuset'):
            vcpu.set('cpuset', decision['cpuset'])
        tune = root.find('./numatune')
        if tune is None:
            tune = etree.SubElement(root, 'numatune')
        memory = tune.find('./memory')
        if memory is None:
            memory = etree.SubElement(tune, 'memory')
        memory.set('mode', decision.get('numa_mode') or numa.STRICT)
        memory.set('nodeset', node)
    return etree.tostring(root, encoding='unicode')


class MigratingGuest:
    """A Guest whose migratable XML carries the destination's choices."""

    def __init__(self, guest, decision):
        self._guest = guest
        self._decision = decision

    def get_xml_desc(self, *args, **kwargs):
        xml = self._guest.get_xml_desc(*args, **kwargs)
        if kwargs.get('dump_migratable'):
            return rewrite_migration_xml(xml, self._decision)
        return xml

    def __getattr__(self, name):
        return getattr(self._guest, name)
