"""How host GPU facts travel from nova-compute to the scheduler.

Layer rule: adapter glue, no Nova imports. The compute side calls
:func:`discover` (never raises) and publishes :func:`host_summary` in the
compute node's ``stats`` under :data:`STATS_KEY` (a typed
:class:`~nova_gpu_ext.core.summary.HostSummary`, the only code that knows its
keys), and :func:`provider_traits` on the physical GPU resource providers.
The scheduler side reads the summary back with :func:`summary_from_stats`.
Both sides therefore work from the same facts, read once on the host.
"""

import collections
import dataclasses

from oslo_log import log as logging

from nova_gpu_ext.core import summary as host_summary_core
from nova_gpu_ext.core import summary_build
from nova_gpu_ext import model
from nova_gpu_ext.topology import discover as discovery
from nova_gpu_ext.topology import paths
from nova_gpu_ext.topology import health
from nova_gpu_ext.topology import summary
from nova_gpu_ext.core import decide

LOG = logging.getLogger(__name__)

STATS_KEY = host_summary_core.STATS_KEY
TRAIT_PREFIX = 'CUSTOM_GPU_'

EMPTY_HOST = model.HostTopology(numa_nodes=(), gpus=())


def discover(sysfs_root, dev_root='/dev', previous=None):
    """Discover the host's topology; on any failure keep what we knew."""
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
    """The :class:`HostSummary` of a discovered host."""
    return summary_build.from_topology(topology)


def provider_names(gpu, nodename):
    """The names Nova gives the placement providers of one GPU function.

    ``<nodename>_<libvirt pci name>`` for an mdev parent
    (``LibvirtDriver._ensure_pgpu_providers``: ``pci_0000_3b_00_0``) and
    ``<nodename>_<PCI address in upper case>`` for PCI-in-placement
    (``pci_placement_translator``: ``0000:3B:00.0``).
    """
    return ('%s_%s' % (nodename, gpu.address.libvirt_name),
            '%s_%s' % (nodename, gpu.address.upper))


def provider_traits(topology, nodename):
    """Traits per physical GPU resource provider name.

    Both provider names of each physical GPU (:func:`provider_names`), and
    those of its VFs that offer mdev types (SR-IOV vGPU: Nova makes each
    such VF an mdev parent with its own provider), get the GPU's traits;
    the caller sets them only on providers that exist.
    """
    out = {}
    for gpu in topology.gpus:
        if gpu.kind is model.GPUKind.VF and not gpu.mdev_types:
            continue
        traits = set(summary.gpu_traits(topology, gpu))
        if not traits:
            continue
        for name in provider_names(gpu, nodename):
            out[name] = traits
    # A GPU that vanished or failed is no longer discovered; its provider
    # (while Nova keeps it) says so.
    for entry in topology.health:
        if topology.gpu(entry.address) is None and health.traits(entry):
            address = model.PCIAddress.parse(entry.address)
            for name in ('%s_%s' % (nodename, address.libvirt_name),
                         '%s_%s' % (nodename, address.upper)):
                out[name] = health.traits(entry)
    return out


def gpu_entry(topology, gpu, uuids=None):
    """One physical GPU's summary entry (:class:`GPUSummary`), VFs' mdev
    types included, as the compute publishes it (without what only the
    driver knows)."""
    return add_vf_providers(summary_build.gpu_from_model(gpu), topology,
                            uuids or {})


def add_vf_providers(entry, topology, uuids):
    """SR-IOV vGPU: a PF whose VFs are mdev parents is one physical GPU.

    Nova makes a provider per VF; the PF's entry (returned changed) lists
    them (``vf_rps``) and sums their mdev types, mdevs and the mdevs in
    use, so the scheduler's bound and pack/spread are per physical GPU, as
    at the compute (``sharing_claim``).
    """
    gpu = topology.gpu(entry.addr)
    if gpu is None or not gpu.vfs:
        return entry
    vfs = [topology.gpu(v) for v in gpu.vfs]
    vfs = [v for v in vfs if v is not None and v.mdev_types]
    if not vfs:
        return entry
    types = dict(entry.mdev_types or {})
    by_type = dict(entry.mdevs_by_type or {})
    mig = set(entry.mig_types or ())
    for vf in vfs:
        mig.update(t.name for t in vf.mdev_types
                   if summary_build.is_mig_backed(t))
        for t in vf.mdev_types:
            types[t.name] = (types.get(t.name) or 0) + (
                t.available_instances or 0)
        for m in vf.mdevs:
            if m.type_name:
                by_type[m.type_name] = by_type.get(m.type_name, 0) + 1
    return dataclasses.replace(
        entry, mdev_types=types, mdevs_by_type=by_type,
        mig_types=tuple(sorted(mig)) if mig else entry.mig_types,
        mdevs=sum(by_type.values()),
        vf_rps=tuple(uuids[str(v.address)] for v in vfs
                     if str(v.address) in uuids))


def summary_from_stats(stats):
    """The host summary a compute published, or None (not our driver).

    Any version, or a damaged one, comes back typed
    (:meth:`HostSummary.from_stats`); what had to be dropped marks it
    partial and is logged once per distinct value.
    """
    summary = host_summary_core.HostSummary.from_stats(stats)
    if summary is not None and summary.problems:
        _warn_once(stats.get(STATS_KEY), summary.problems)
    return summary


def gpu_facts(entry, tenants, profile_for, resident_min_share=None):
    """The decision's view (:class:`decide.GPUFacts`) of one published GPU.

    ``entry`` is a :class:`GPUSummary` (:func:`gpu_entry`, plus ``used``
    and ``type`` from the driver); ``tenants`` the instances in use, counted by
    the caller (placement's usage at the scheduler, libvirt's domains and
    the claims in flight at the compute, ``--tenants`` in explain);
    ``profile_for(type_name)`` the sharing profile of a type. One place
    says what a GPU's type and capacity are, for all three callers:

    * an mdev parent (the PF of a time-sliced vGPU, or a PF whose VFs carry
      the mdev types, SR-IOV vGPU): the type Nova allocates on it
      (``type``, else the first it offers); created = its mdevs of that
      type, used or free; available = the type's ``available_instances``;
    * an SR-IOV PF whose VFs are the tenants' PCI devices: typed by the
      PF's ``vendor:device``; created = its enabled VFs;
    * anything else is a whole GPU.

    A MIG-backed vGPU type (``mig_types``) is not time-sliced: its bound is
    the instances the GPU's MIG layout offers, nothing more.
    """
    common = dict(address=entry.addr, numa_node=entry.node,
                  socket=entry.socket)
    mdev_types = entry.mdev_types or {}
    if mdev_types:
        type_name = entry.type
        if type_name not in mdev_types:
            type_name = next(iter(sorted(mdev_types)))
        by_type = entry.mdevs_by_type
        created = (by_type.get(type_name, 0) if by_type is not None
                   else entry.mdevs or 0)
        available = mdev_types.get(type_name) or 0
        if type_name in (entry.mig_types or ()):
            # MIG-backed vGPU: dedicated GPU instances, no time-slicing.
            return decide.GPUFacts(
                shared=True, time_sliced=False, created=created,
                available=available, tenants=tenants,
                profile=profile_for(type_name), type_name=type_name,
                **common)
    elif entry.is_pf and entry.vfs:
        type_name = '%s:%s' % (entry.vendor, entry.device)
        created, available = entry.vfs, 0
    else:
        return decide.GPUFacts(tenants=tenants, **common)
    return decide.GPUFacts(
        shared=True, created=created, available=available, tenants=tenants,
        profile=profile_for(type_name), type_name=type_name,
        resident_min_share=resident_min_share, **common)


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
