"""The scheduler's view of a request and a host, for nova-gpu-ext.

Layer rule: adapter. Turns a ``RequestSpec`` and a ``HostState`` into the
core's inputs (``specs.GPURequest``, the published host summary), the same
way the compute driver does, so both sides decide from the same facts.
"""

from oslo_log import log as logging

from nova_gpu_ext.topology import host_facts
from nova_gpu_ext.nova_glue import request_inputs
from nova_gpu_ext.core import spec as specs
from nova_gpu_ext.core import affinity

LOG = logging.getLogger(__name__)


#: attributes our scheduler code keeps on Nova's objects: the decoded host
#: summary on a ``HostState`` and the parsed request on a ``RequestSpec``
SUMMARY_ATTRIBUTE = '_gpu_ext_summary'
REQUEST_ATTRIBUTE = '_gpu_ext_request'


def gpu_request(spec_obj):
    """The flavor's ``gpu:`` request; invalid entries are logged, ignored.

    The API refuses invalid ``gpu:`` specs; a flavor created before the
    validators were installed (or below microversion 2.86) can still hold
    one, and the compute driver ignores it the same way. Parsed once per
    ``RequestSpec`` and flavor (see :func:`_request_view`).
    """
    return _request_view(spec_obj).request


def resolved(spec_obj, request, default_policy):
    """The effective request (flavor bounds, image and port input) for
    this ``RequestSpec``; see :mod:`nova_gpu_ext.core.inputs`.
    Resolved once per request, not per host."""
    view = _request_view(spec_obj)
    if view.request is not request:
        return _resolve(spec_obj, request, default_policy)
    return view.resolved(spec_obj, default_policy)


def _resolve(spec_obj, request, default_policy):
    flavor = getattr(spec_obj, 'flavor', None)
    return request_inputs.resolve(
        getattr(flavor, 'extra_specs', None),
        request_inputs.field(spec_obj, 'image'),
        request_inputs.field(spec_obj, 'pci_requests'),
        default_policy, request)


class _RequestView(object):
    """One ``RequestSpec``'s input as our filters and weighers read it.

    Nova runs every filter and weigher once per host with the same
    ``RequestSpec``: the flavor is parsed and the image and port input
    resolved once, while the inputs they were read from are the same
    objects (a resize or a rebuild that sets a new flavor, image or PCI
    requests on the spec gets a new view).
    """

    def __init__(self, spec_obj):
        flavor = getattr(spec_obj, 'flavor', None)
        extra_specs = getattr(flavor, 'extra_specs', None) or {}
        self.key = self._key(spec_obj)
        self.extra_specs = dict(extra_specs)
        self.request = specs.parse(
            extra_specs,
            on_error=lambda exc: LOG.warning(
                'Ignoring invalid flavor extra spec: %s', exc))
        self._resolved = {}
        self._spec_obj_id = id(spec_obj)

    @staticmethod
    def _key(spec_obj):
        flavor = _stored(spec_obj, 'flavor')
        return (flavor, _stored(flavor, 'extra_specs'),
                _stored(spec_obj, 'image'), _stored(spec_obj, 'pci_requests'))

    def matches(self, spec_obj):
        if id(spec_obj) != self._spec_obj_id:
            return False        # a copy of the spec (deepcopy, obj_clone)
        key = self._key(spec_obj)
        if any(a is not b for a, b in zip(key, self.key)):
            return False
        # The same dict may have been changed in place.
        return (key[1] or {}) == self.extra_specs

    def resolved(self, spec_obj, default_policy):
        try:
            return self._resolved[default_policy]
        except KeyError:
            pass
        value = self._resolved[default_policy] = _resolve(
            spec_obj, self.request, default_policy)
        return value


def _stored(obj, name):
    """The value an object holds for ``name`` (a versioned object's field,
    ``_obj_<name>``, or a plain attribute), without lazy-loading: asked
    for every host, it is only compared by identity."""
    values = getattr(obj, '__dict__', None) or {}
    if '_obj_' + name in values:
        return values['_obj_' + name]
    if hasattr(obj, 'obj_attr_is_set'):
        return None                 # an unset field
    return getattr(obj, name, None)


def _request_view(spec_obj):
    view = getattr(spec_obj, REQUEST_ATTRIBUTE, None)
    if view is None or not view.matches(spec_obj):
        view = _RequestView(spec_obj)
        try:
            setattr(spec_obj, REQUEST_ATTRIBUTE, view)
        except AttributeError:      # an object that takes no attributes
            return view
    return view


#: decoded summaries by (host, node): Nova 34's HostManager builds new
#: HostState objects for every request, the decoded value outlives them
_DECODED = {}
#: more hosts than any cell has; past it the cache starts again
_DECODED_MAX = 100000


def host_summary(host_state):
    """What the host's nova-gpu-ext driver published
    (:class:`~nova_gpu_ext.core.summary.HostSummary`), or None.

    Decoded once per value: kept on the ``HostState`` (every filter and
    weigher of a request) and in this process by the host's (host, node)
    with the stats value it was decoded from (the next requests, whose
    ``HostState`` objects Nova builds anew), until the compute publishes
    a different value.
    """
    stats = getattr(host_state, 'stats', None)
    raw = stats.get(host_facts.STATS_KEY) if isinstance(stats, dict) \
        else None
    cached = getattr(host_state, SUMMARY_ATTRIBUTE, None)
    if cached is not None and (cached[0] is raw or (
            isinstance(raw, str) and cached[0] == raw)):
        return cached[1]
    key = (getattr(host_state, 'host', None),
           getattr(host_state, 'nodename', None))
    cached = _DECODED.get(key)
    if cached is not None and isinstance(raw, str) and cached[0] == raw:
        summary = cached[1]
    else:
        summary = host_facts.summary_from_stats(stats)
        if isinstance(raw, str):
            if len(_DECODED) >= _DECODED_MAX:
                _DECODED.clear()
            _DECODED[key] = (raw, summary)
    try:
        setattr(host_state, SUMMARY_ATTRIBUTE, (raw, summary))
    except AttributeError:
        pass
    return summary


def node_capacities(host_state, summary):
    """Free CPUs and memory per NUMA node, as the scheduler knows them.

    From the host's NUMA topology: Nova's per-cell usage, which counts
    every guest with a NUMA topology, and every GPU guest nova-gpu-ext
    places is one (a one-cell topology claimed by Nova, see
    ``nova_gpu_ext.virt.numa_claim``), with the host's CPU and RAM
    allocation ratios as Nova's fit applies them
    (``numa_fit_instance_to_host`` with ``NUMATopologyLimits``).
    """
    sockets = summary.node_sockets
    cells = getattr(getattr(host_state, 'numa_topology', None), 'cells',
                    None) or ()
    ratio = getattr(host_state, 'cpu_allocation_ratio', 1.0) or 1.0
    ram_ratio = getattr(host_state, 'ram_allocation_ratio', 1.0) or 1.0
    out = []
    for cell in cells:
        # The guests sized here float over the shared CPUs (``cpuset``);
        # pinned guests' CPUs (``pcpuset``) are not theirs.
        out.append(affinity.node_capacity(
            cell.id, sockets.get(cell.id), len(cell.cpuset), cell.memory,
            cell.cpu_usage, cell.memory_usage, ratio, ram_ratio))
    if not out:
        for node in summary.nodes:
            out.append(affinity.node_capacity(
                node.id, node.socket, node.cpus or 0, node.mem_mb))
    return out
