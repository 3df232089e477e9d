"""What the compute knows and reports of its GPUs.

Layer rule: thin adapter (compute side). Host facts come from
:mod:`nova_gpu_ext.topology.host_facts` (which reads through ``topology/``);
this module adds what only the driver knows (placement provider UUIDs, mdevs in
use, render-node guests, GL support) and hands it to Nova: the compact host
summary in the compute node ``stats`` (``HostState.stats`` for the scheduler)
and traits on the provider tree. Called by
:class:`~nova_gpu_ext.virt.driver.GPULibvirtDriver`'s
``get_available_resource`` and ``update_provider_tree``.
"""

import copy
import dataclasses

from nova.virt.libvirt import driver as libvirt_driver
from oslo_log import log as logging

from nova_gpu_ext.topology import host_facts
from nova_gpu_ext.virt import domcaps
from nova_gpu_ext.virt import guest_devices
from nova_gpu_ext.virt import operations
from nova_gpu_ext.virt import pci_traits
from nova_gpu_ext.virt import sharing_claim

LOG = logging.getLogger(__name__)

#: Trait on the compute node provider of every host that runs this driver.
DRIVER_TRAIT = 'CUSTOM_GPU_EXT'
#: Key of the host summary in ComputeNode.stats.
STATS_KEY = host_facts.STATS_KEY


def refresh_topology(driver):
    """Discover the host again (never raises into nova-compute); new PCI
    functions clear upstream's cached PCI device list."""
    before = driver._gpu_topology
    driver._gpu_topology = host_facts.discover(
        driver._sysfs_root, driver._dev_root, previous=before)
    if before is not None and operations.new_functions(
            before, driver._gpu_topology):
        # Upstream caches the PCI device list for the life of the process
        # (functools.cache): VFs created since would stay invisible to
        # Nova's PCI tracker.
        LOG.info('nova-gpu-ext: new PCI functions on the host (VFs '
                 'created?); reading the PCI devices from libvirt again')
        driver._clear_pci_devices_cache()
    return driver._gpu_topology


def clear_pci_devices_cache():
    libvirt_driver.LibvirtDriver._get_pci_passthrough_devices.cache_clear()


def mdevs_in_use_by_parent(driver):
    """Count of assigned mdevs per parent PCI address."""
    try:
        assigned = driver._get_all_assigned_mediated_devices()
        if not assigned:
            return {}
        counts = {}
        for mdev in driver._get_mediated_devices():
            if mdev['uuid'] in assigned:
                key = guest_devices.libvirt_name_to_address(mdev['parent'])
                counts[key] = counts.get(key, 0) + 1
        return counts
    except Exception:
        LOG.debug('Cannot count mediated devices in use', exc_info=True)
        return {}


def host_summary(driver, topology):
    """The published summary (:class:`HostSummary`) plus what only the
    driver knows: provider UUIDs, mdevs in use per GPU, guests per render
    node, GL support."""
    summary = host_facts.host_summary(topology)
    # Devices in use per physical GPU (an mdev on its parent, on the PF for
    # SR-IOV vGPU; a VF on its PF), with the builds in flight.
    in_use = driver.sharing_claims.in_use(driver, topology)
    gpus = []
    for entry in summary.gpus:
        changes = {}
        uuid = driver._gpu_provider_uuids.get(entry.addr)
        if uuid:
            changes['rp'] = uuid
        entry = host_facts.add_vf_providers(entry, topology,
                                            driver._gpu_provider_uuids)
        if entry.mdev_types is not None or entry.is_pf:
            changes['used'] = in_use.get(entry.addr, 0)
        if entry.mdev_types is not None:
            # The type Nova allocates on this parent ([devices]).
            nova_type = sharing_claim.nova_vgpu_type(driver, topology,
                                                     entry.addr)
            if nova_type:
                changes['type'] = nova_type
        min_share = driver.sharing_claims.resident_min_share(entry.addr)
        if min_share is not None:
            changes['min_share'] = min_share
        gpus.append(dataclasses.replace(entry, **changes))
    counts = driver.render_nodes.counts()
    render_nodes = tuple(dataclasses.replace(
        render, guests=counts.get(render.name, 0),
        present=domcaps.device_exists(driver, render.path))
        for render in summary.render_nodes or ())
    return dataclasses.replace(summary, gpus=tuple(gpus),
                               render_nodes=render_nodes,
                               gl=domcaps.host_gl(driver))


def add_stats(driver, data):
    """``get_available_resource``: the host summary in ``stats``."""
    topology = driver._refresh_gpu_topology()
    data.setdefault('stats', {})[STATS_KEY] = driver.gpu_host_summary(
        topology).to_stats()


def update_provider_tree(driver, provider_tree, nodename, enabled):
    """After upstream's ``update_provider_tree``: our traits (the driver,
    GL, each physical GPU's NUMA node and socket, health)."""
    if not enabled:
        provider_tree.remove_traits(nodename, DRIVER_TRAIT)
        return
    provider_tree.add_traits(nodename, DRIVER_TRAIT)
    gl_traits = domcaps.traits(domcaps.host_gl(driver))
    provider_tree.remove_traits(nodename, *({domcaps.EGL_TRAIT} - gl_traits))
    provider_tree.add_traits(nodename, *gl_traits)
    driver._gpu_provider_uuids = pci_traits.update_gpu_providers(
        provider_tree, driver.gpu_topology, nodename)
    # Upstream keeps a private copy for spawn() (_allocate_mdevs); keep it
    # in step.
    driver.provider_tree = copy.deepcopy(provider_tree)
