"""How host GPU facts travel from nova-compute to the scheduler.

Layer rule: adapter glue, no Nova imports. The compute side calls
:func:`discover` (never raises) and publishes :func:`host_summary` in the
compute node's ``stats`` under :data:`STATS_KEY`, and :func:`provider_traits`
on the physical GPU resource providers. The scheduler side reads the summary
back with :func:`summary_from_stats`. Both sides therefore work from the same
facts, read once on the host.
"""

import collections
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
        return discovery.discover_host(
            paths.SysfsPaths(sysfs_root, dev_root=dev_root))
    except Exception:  # a strange sysfs must never stop nova-compute
        LOG.exception('GPU topology discovery failed under %s; keeping the '
                      'previous view of this host', sysfs_root)
        return previous if previous is not None else EMPTY_HOST


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
    return out


def summary_from_stats(stats):
    """The host summary a compute published, or None (not our driver).

    Any version, or a damaged one, comes back in the shape the scheduler
    reads (:func:`nova_gpu_ext.summary_compat.normalize`); what had to be
    dropped marks it partial and is logged once per distinct value.
    """
    from nova_gpu_ext import summary_compat
    raw = stats.get(STATS_KEY) if isinstance(stats, dict) else None
    if not raw:
        return None
    if isinstance(raw, dict):
        decoded = raw
    else:
        try:
            decoded = json.loads(raw)
        except (TypeError, ValueError):
            decoded = _UNREADABLE
    if decoded is _UNREADABLE:
        summary, problems = summary_compat.unusable('not JSON'), ['not JSON']
    else:
        summary, problems = summary_compat.normalize(decoded)
    if problems:
        _warn_once(raw, problems)
    return summary


_UNREADABLE = object()
_WARNED = collections.OrderedDict()


def _warn_once(raw, problems):
    key = hash(raw if isinstance(raw, (str, bytes)) else repr(raw))
    if key in _WARNED:
        return
    _WARNED[key] = None
    while len(_WARNED) > 256:
        _WARNED.popitem(last=False)
    LOG.warning('A compute published a %s summary the scheduler cannot '
                'fully read (%s); its hosts pass the GPU filters and the '
                'compute enforces the rules', STATS_KEY,
                '; '.join(problems)[:500])
