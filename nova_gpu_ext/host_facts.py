"""How host GPU facts travel from nova-compute to the scheduler.

Layer rule: adapter glue, no Nova imports. The compute side calls
:func:`discover` (never raises) and publishes :func:`host_summary` in the
compute node's ``stats`` under :data:`STATS_KEY`, and :func:`provider_traits`
on the physical GPU resource providers. The scheduler side reads the summary
back with :func:`summary_from_stats`. Both sides therefore work from the same
facts, read once on the host.
"""

import json

from oslo_log import log as logging

from nova_gpu_ext import model

LOG = logging.getLogger(__name__)

STATS_KEY = 'gpu_ext'
TRAIT_PREFIX = 'CUSTOM_GPU_'

EMPTY_HOST = model.HostTopology(numa_nodes=(), gpus=())


def discover(sysfs_root, dev_root='/dev', previous=None):
    """Discover the host's topology; on any failure keep what we knew."""
    from nova_gpu_ext.topology import discover as discovery
    from nova_gpu_ext.topology import paths
    try:
        topology = discovery.discover_host(
            paths.SysfsPaths(sysfs_root, dev_root=dev_root),
            previous=previous)
    except Exception:  # a strange sysfs must never stop nova-compute
        LOG.exception('GPU topology discovery failed under %s; keeping the '
                      'previous view of this host', sysfs_root)
        return previous if previous is not None else EMPTY_HOST
    log_changes(previous, topology)
    return topology


def log_changes(previous, topology):
    """Log GPU health problems and unknown NUMA nodes once, when they
    change (discovery runs on every resource update)."""
    from nova_gpu_ext.topology import health
    for address, new, cleared in health.changes(
            previous.health if previous is not None else (),
            topology.health):
        for message in new:
            LOG.warning('GPU %s: %s', address, message)
        for message in cleared:
            LOG.info('GPU %s: no longer %s', address, message)
    seen = set(previous.warnings) if previous is not None else set()
    for message in topology.warnings:
        if 'NUMA node' in message and message not in seen:
            LOG.warning('%s', message)


def host_summary(topology):
    from nova_gpu_ext.topology import summary
    return summary.host_summary(topology)


def provider_traits(topology, nodename):
    """Traits per physical GPU resource provider name.

    Nova names a physical GPU's provider ``<nodename>_<libvirt pci name>``
    (``_ensure_pgpu_providers``); PCI-in-placement names a device's provider
    ``<nodename>_<pci address>``. Both get the same traits; the caller sets
    them only on providers that exist.
    """
    from nova_gpu_ext.topology import summary
    out = {}
    for gpu in topology.gpus:
        traits = set(summary.gpu_traits(topology, gpu))
        if not traits:
            continue
        out['%s_%s' % (nodename, gpu.address.libvirt_name)] = traits
        out['%s_%s' % (nodename, gpu.address)] = traits
    # A GPU that vanished or failed is no longer discovered; its provider
    # (while Nova keeps it) says so.
    from nova_gpu_ext.topology import health
    for entry in topology.health:
        if topology.gpu(entry.address) is None and health.traits(entry):
            address = model.PCIAddress.parse(entry.address)
            traits = health.traits(entry)
            out['%s_%s' % (nodename, address.libvirt_name)] = traits
            out['%s_%s' % (nodename, address)] = traits
    return out


def summary_from_stats(stats):
    """The host summary a compute published, or None (not our driver)."""
    raw = (stats or {}).get(STATS_KEY)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        LOG.warning('Ignoring an unreadable %s entry in compute node stats',
                    STATS_KEY)
        return None
