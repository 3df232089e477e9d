"""Every wrap of a Nova internal, in one module, installed explicitly.

Layer rule: Nova glue. This is the only module that replaces an attribute of
Nova's code at run time, and the one place that gives the driver's own
``Host`` object its libvirt event handler (:func:`install_event_handler`).
Nothing is wrapped when a module is imported: the compute side is installed
by ``GPULibvirtDriver.__init__`` (:func:`install_compute`), the scheduler
side by the ``__init__`` of our filters (:func:`install_scheduler`). Each
wrapper runs upstream's code unchanged for everything that is not ours,
never breaks the call it wraps over a problem of ours, and is installed at
most once per process (a mark on the wrapper; ``__wrapped__`` is upstream's
function).

The hooks (what to do besides upstream's call) are passed in by the
callers, so this module needs nothing from ``virt/`` or ``scheduler/``.
:data:`WRAPS` lists every wrap with the Nova version it was checked against
and the upstream hook that would replace it; the docs page
``doc/source/reference/nova-internals.rst`` lists the same rows and
``tests/unit/test_nova_wraps.py`` pins both.
"""

import collections
import functools
import importlib
import threading

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

_LOCK = threading.Lock()
MARK = '_nova_gpu_ext_wrap'

#: One wrap of a Nova internal.
Wrap = collections.namedtuple('Wrap', [
    'name',         # our name for it
    'module',       # Nova module that owns it
    'attr',         # attribute path in that module (Class.method)
    'side',         # 'compute' or 'scheduler'
    'nova',         # Nova version it was checked against
    'why',          # what we need that upstream gives no hook for
    'upstream',     # the upstream hook that would replace the wrap
])

WRAPS = (
    Wrap('pci_traits', 'nova.compute.pci_placement_translator',
         'update_provider_tree_for_pci', 'compute', '34.0.0',
         'the translator replaces the traits of the PCI providers after the '
         'driver set ours; we add ours back in the same update',
         'a driver call after the PCI translator in '
         'ResourceTracker._update_to_placement, or a translator that merges '
         'traits'),
    Wrap('numa_claim', 'nova.compute.claims', 'Claim._test_numa_topology',
         'compute', '34.0.0',
         'the claim fits a GPU guest\'s NUMA cells before the driver sees '
         'the guest; we steer the fit to the GPU\'s node',
         'a virt driver hook to constrain the NUMA fit of a claim (host '
         'cells allowed per instance)'),
    Wrap('allocation_candidates', 'nova.scheduler.client.report',
         'SchedulerReportClient.get_allocation_candidates', 'scheduler',
         '34.0.0',
         'filters never see the provider summaries of the request; we keep '
         'them for the thread that asked',
         'provider_summaries handed to filters (HostState or spec_obj)'),
    Wrap('claim_resources', 'nova.scheduler.client.report',
         'SchedulerReportClient.claim_resources', 'scheduler', '34.0.0',
         'a multi-create claims N times on one candidate list; we count each '
         'claim for the next instance',
         'provider_summaries updated by the scheduler after each claim'),
    Wrap('numa_consume', 'nova.scheduler.host_manager',
         'HostState._locked_consume_from_request', 'scheduler', '34.0.0',
         'Nova re-fits the guest unsteered over all cells; we narrow it to '
         'the cells the filter fitted',
         'a filter-provided NUMA fit that consume_from_request reuses'),
)

BY_NAME = {wrap.name: wrap for wrap in WRAPS}


def owner_of(wrap):
    """(object owning the attribute, attribute name) of ``wrap``."""
    owner = importlib.import_module(wrap.module)
    *path, attr = wrap.attr.split('.')
    for name in path:
        owner = getattr(owner, name)
    return owner, attr


def is_installed(name):
    owner, attr = owner_of(BY_NAME[name])
    return bool(getattr(getattr(owner, attr), MARK, False))


def _install(name, make):
    """Replace the attribute of wrap ``name`` by ``make(original)`` once."""
    owner, attr = owner_of(BY_NAME[name])
    with _LOCK:
        original = getattr(owner, attr)
        if getattr(original, MARK, False):
            return False
        wrapper = functools.wraps(original)(make(original))
        setattr(wrapper, MARK, name)
        wrapper.__wrapped__ = original
        setattr(owner, attr, wrapper)
    return True


def install_compute(reapply_traits, claim_with_plan):
    """The compute's wraps (``GPULibvirtDriver.__init__``; idempotent).

    ``reapply_traits(provider_tree, nodename)`` runs after Nova's PCI
    translator; ``claim_with_plan(claim, compute_node, limit, plan)`` fits
    a GPU guest's cells when the claim's driver (``_gpu_numa_plan``) returns
    a plan for it, upstream's code runs otherwise.
    """
    def pci_traits(original):
        def update_provider_tree_for_pci(provider_tree, nodename, *args,
                                         **kwargs):
            result = original(provider_tree, nodename, *args, **kwargs)
            try:
                reapply_traits(provider_tree, nodename)
            except Exception:   # never break the resource update
                LOG.exception('Cannot add GPU traits to the PCI providers '
                              'of %s', nodename)
            return result
        return update_provider_tree_for_pci

    def numa_claim(original):
        def _test_numa_topology(self, compute_node, limit):
            driver = getattr(getattr(self, 'tracker', None), 'driver', None)
            planner = getattr(driver, '_gpu_numa_plan', None)
            plan = None
            if planner is not None:
                try:
                    plan = planner(self)
                except Exception:
                    LOG.exception('nova-gpu-ext: cannot plan the NUMA claim; '
                                  'using upstream\'s', instance=self.instance)
            if plan is None:
                return original(self, compute_node, limit)
            return claim_with_plan(self, compute_node, limit, plan)
        return _test_numa_topology

    _install('pci_traits', pci_traits)
    _install('numa_claim', numa_claim)


def install_scheduler(on_candidates, on_claim, fitted_for, consume):
    """The scheduler's wraps (our filters' ``__init__``; idempotent).

    ``on_candidates(context, result)`` sees what
    ``get_allocation_candidates`` returned, ``on_claim(alloc_request, ok)``
    each claim; ``fitted_for(host_state, spec_obj)`` says which cells the
    filter fitted (None: upstream's consume) and ``consume(original,
    host_state, spec_obj, fitted, synthetic)`` consumes them.
    """
    def allocation_candidates(original):
        def get_allocation_candidates(self, context, resources):
            result = original(self, context, resources)
            try:
                on_candidates(context, result)
            except Exception:   # never break scheduling over our view
                LOG.debug('Cannot keep the provider summaries',
                          exc_info=True)
            return result
        return get_allocation_candidates

    def claim_resources(original):
        def claim_resources(self, context, consumer_uuid, alloc_request,
                            *args, **kwargs):
            ok = original(self, context, consumer_uuid, alloc_request,
                          *args, **kwargs)
            try:
                on_claim(alloc_request, ok)
            except Exception:
                LOG.debug('Cannot count the claim of %s', consumer_uuid,
                          exc_info=True)
            return ok
        return claim_resources

    def numa_consume(original):
        def _locked_consume_from_request(self, spec_obj):
            recorded = fitted_for(self, spec_obj)
            if recorded is None or recorded[0] is None or \
                    not self.numa_topology:
                return original(self, spec_obj)
            return consume(original, self, spec_obj, *recorded)
        return _locked_consume_from_request

    _install('allocation_candidates', allocation_candidates)
    _install('claim_resources', claim_resources)
    _install('numa_consume', numa_consume)


def install_event_handler(host):
    """Give the driver's own ``host`` (a ``nova.virt.libvirt.host.Host`` not
    yet initialized) a :class:`.libvirt_events.QueuedEventHandler`, in
    native threading mode only (eventlet mode already queues); called by
    ``GPULibvirtDriver.__init__`` when :func:`.libvirt_events.wanted`.
    Replaces no attribute of Nova's code. Returns whether it did."""
    # Lazy: the scheduler side imports this module too, and needs no
    # libvirt driver module.
    from nova import utils
    from nova.virt.libvirt import host as nova_host

    from nova_gpu_ext.nova_glue import libvirt_events
    current = getattr(host, '_event_handler', None)
    if current is None or not utils.concurrency_mode_threading() or \
            type(current) is not nova_host._ThreadingLibvirtEventHandler:
        return False
    host._event_handler = libvirt_events.QueuedEventHandler(
        current._conn_event_handler, current._lifecycle_event_handler,
        lambda: host._wrapped_conn)
    return True
