"""Compose the readers into one :class:`~nova_gpu_ext.model.HostTopology`.

Layer rule: adapter (I/O) through :class:`SysfsPaths`. This is where the
kernel's raw facts get their meaning, on purpose and in one place:

* ``numa_node`` = -1 on a host with one NUMA node means node 0 (there is no
  other); on a multi-node host it means *unknown* (``None``), and the
  affinity policy decides what unknown is worth, as Nova's ``legacy`` does.
* A GPU's socket is the socket of its NUMA node.
* A function is a VF when it has ``physfn``, a PF when it can have VFs, an
  mdev parent when it offers mdev types, otherwise a whole GPU.
* Each unreadable fact becomes one warning in ``HostTopology.warnings``; so
  does each situation an operator should know about (unknown NUMA node,
  IOMMU group shared with other devices).
"""

import dataclasses
import os
import time

from oslo_log import log as logging

from nova_gpu_ext import model
from nova_gpu_ext.topology import bars
from nova_gpu_ext.topology import drm
from nova_gpu_ext.topology import health
from nova_gpu_ext.topology import mdev
from nova_gpu_ext.topology import numa
from nova_gpu_ext.topology import pci
from nova_gpu_ext.topology import sriov
from nova_gpu_ext.topology import sysfs_reader

LOG = logging.getLogger(__name__)


def resolve_numa_node(raw, nodes, reader, what):
    """The NUMA node a device is on, ``None`` when unknown."""
    node_ids = {node.id for node in nodes}
    if raw is None or raw < 0:
        if len(node_ids) == 1:
            return next(iter(node_ids))
        if raw is not None and len(node_ids) > 1:
            reader.warn('%s reports no NUMA node (numa_node=-1) on a host '
                        'with %d NUMA nodes: its locality is unknown' %
                        (what, len(node_ids)))
        elif len(node_ids) > 1:
            reader.warn('%s has no readable numa_node on a host with %d '
                        'NUMA nodes: its locality is unknown' %
                        (what, len(node_ids)))
        return None
    if node_ids and raw not in node_ids:
        reader.warn('%s reports NUMA node %d, which the host does not '
                    'have' % (what, raw))
        return None
    return raw


def read_upstream(paths, address, reader=None):
    """The bridges above a device, from where its sysfs directory is."""
    real = (reader.realpath(paths.pci_device_dir(str(address)))
            if reader is not None
            else os.path.realpath(paths.pci_device_dir(str(address))))
    if real is None:
        return ()
    parts = real.split(os.sep)
    for i, part in enumerate(parts):
        if part.startswith('pci') and ':' in part:
            return tuple(parts[i:-1])
    return ()


def _kind(sriov_facts, mdev_types):
    if sriov_facts.physfn is not None:
        return model.GPUKind.VF
    if sriov_facts.totalvfs:
        return model.GPUKind.PF
    if mdev_types:
        return model.GPUKind.MDEV_PARENT
    return model.GPUKind.WHOLE


def _iommu_warning(function, peers):
    same_device = [p for p in peers
                   if (p.domain, p.bus, p.slot) == (
                       function.address.domain, function.address.bus,
                       function.address.slot)]
    others = [p for p in peers if p not in same_device]
    if others:
        return ('GPU %s shares IOMMU group %s with other devices (%s): they '
                'would have to be passed through with it' % (
                    function.address, function.iommu_group,
                    ', '.join(str(p) for p in others)))
    return None


def discover_host(paths, previous=None):
    """Read the whole host under ``paths``; never raises for its content.

    ``previous`` (the last topology of this host) lets GPU health notice
    GPUs that vanished and AER counters that rose.
    """
    started = time.monotonic()
    reader = sysfs_reader.SysfsReader()
    nodes = numa.read_numa_nodes(paths, reader)
    functions = pci.read_display_functions(paths, reader)
    mdevs_by_parent = mdev.read_mdevs(paths, reader)
    drm_nodes = drm.read_drm_nodes(paths, reader)
    socket_of = {node.id: node.socket for node in nodes}

    render_nodes = []
    drm_by_pci = {}
    for node in drm_nodes:
        if node.pci_address is not None:
            drm_by_pci.setdefault(node.pci_address, []).append(node)
        if node.name.startswith('renderD'):
            numa_node = (resolve_numa_node(
                node.numa_node, nodes, reader, 'Render node %s' % node.name)
                if node.pci_address is not None else None)
            render_nodes.append(model.RenderNode(
                name=node.name, path=node.path, pci_address=node.pci_address,
                numa_node=numa_node, driver=node.driver))

    gpus = []
    ignored = []
    pfs = {}
    vfs_of = {}
    # PFs before VFs, so that each VF finds its PF's locality.
    for function in sorted(functions, key=lambda f: f.is_vf):
        if model.is_console_display(function.vendor_id,
                                    function.device_id or 0):
            ignored.append('%s %s %04x:%04x (console display, not a GPU)' % (
                function.address,
                model.VENDOR_NAMES.get(function.vendor_id, 'vendor'),
                function.vendor_id, function.device_id or 0))
            continue
        what = 'GPU %s' % function.address
        sriov_facts = sriov.read_sriov(reader, function.path,
                                       function.entries)
        mdev_types = mdev.read_mdev_types(reader, function.path,
                                          function.entries)
        local_cpus = function.local_cpus
        vendor_id = function.vendor_id
        if sriov_facts.physfn is not None:
            if sriov_facts.physfn not in pfs:
                reader.warn('VF %s: its PF %s is not a GPU we could read' % (
                    function.address, sriov_facts.physfn))
                continue
            # A VF is where its PF is (the kernel copies numa_node), and
            # has its PF's vendor.
            numa_node, local_cpus, vendor_id = pfs[sriov_facts.physfn]
            vfs_of.setdefault(sriov_facts.physfn, []).append(
                function.address)
        else:
            numa_node = resolve_numa_node(
                function.numa_node, nodes, reader,
                '%s (%s/numa_node)' % (what, function.path))
        if sriov_facts.totalvfs:
            pfs[function.address] = (numa_node, local_cpus, vendor_id)
        peers = ()
        if function.iommu_group is not None:
            peers = tuple(
                p for p in pci.read_iommu_group_members(
                    paths, reader, function.iommu_group)
                if p != function.address)
            warning = _iommu_warning(function, peers)
            if warning:
                reader.warn(warning)
        render = card = None
        for node in drm_by_pci.get(function.address, ()):
            if node.name.startswith('renderD') and render is None:
                render = node.path
            elif node.name.startswith('card') and card is None:
                card = node.path
        upstream = ()
        if sriov_facts.physfn is None:
            upstream = read_upstream(paths, function.address, reader)
        gpus.append(model.GPU(
            address=function.address,
            vendor_id=vendor_id,
            device_id=function.device_id if function.device_id is not None
            else 0,
            pci_class=function.pci_class,
            kind=_kind(sriov_facts, mdev_types),
            numa_node=numa_node,
            socket=socket_of.get(numa_node) if numa_node is not None
            else None,
            local_cpus=local_cpus,
            iommu_group=function.iommu_group,
            iommu_peers=peers,
            driver=function.driver,
            link_speed=function.link_speed,
            link_width=function.link_width,
            physfn=sriov_facts.physfn,
            vfs=sriov_facts.vfs,
            sriov_totalvfs=sriov_facts.totalvfs,
            sriov_numvfs=sriov_facts.numvfs,
            mdev_types=mdev_types,
            mdevs=mdevs_by_parent.get(function.address, ()),
            render_node=render,
            card_node=card,
            upstream=upstream,
            bars=bars.read_bars(paths, str(function.address), reader),
        ))

    gpus = [dataclasses.replace(g, vfs=tuple(sorted(vfs_of[g.address])))
            if g.address in vfs_of else g for g in gpus]
    gpu_health = health.read_health(
        paths, reader, gpus, previous.health if previous is not None else ())
    # before the topology: its warnings are the reader's so far
    address_limits = bars.read_address_limits(paths, reader)
    topology = model.HostTopology(
        numa_nodes=nodes, gpus=model.sorted_gpus(gpus),
        render_nodes=tuple(render_nodes), warnings=tuple(reader.warnings),
        ignored=tuple(ignored), health=gpu_health,
        address_limits=address_limits)
    LOG.debug('Discovered %d GPU function(s), %d NUMA node(s), %d render '
              'node(s) under %s in %.1f ms (%d warning(s))', len(gpus),
              len(nodes), len(render_nodes), paths.root,
              (time.monotonic() - started) * 1000, len(reader.warnings))
    return topology
