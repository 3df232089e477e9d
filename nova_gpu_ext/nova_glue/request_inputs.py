"""Read a guest's tenant input from Nova objects, the same way everywhere.

Layer rule: adapter glue, no Nova imports (duck-typed over Nova's objects, like
:mod:`nova_gpu_ext.topology.host_facts`). The scheduler (``RequestSpec``: its
``flavor``, ``image``, ``pci_requests``) and the compute (``Instance``: its
``flavor`` and ``pci_requests``, and the ``ImageMeta`` of the build) hold the
same objects; both turn them into plain values here and hand them to the pure
:func:`nova_gpu_ext.core.inputs.resolve`.
"""

from nova_gpu_ext.core import inputs
from nova_gpu_ext.core import spec

#: InstancePCIRequest.source of a request that comes from a neutron port
NEUTRON_PORT = 1

#: the attribute (not a field: never saved) a parsed request is kept in
_PARSED = '_gpu_ext_parsed_request'


def flavor_request(holder, flavor, on_error=None):
    """The ``gpu:`` request of ``flavor``, parsed once per call chain: kept
    on ``holder`` (the instance being built, moved or rebooted) with the
    extra specs it was parsed from, so that the claim, the guest config and
    the boot telemetry of one build share one parse, and a resize's new
    flavor is parsed anew."""
    extra = dict(getattr(flavor, 'extra_specs', None) or {}) \
        if flavor is not None else {}
    key = tuple(sorted(extra.items()))
    cached = getattr(holder, _PARSED, None)
    if isinstance(cached, tuple) and cached[0] == key:
        return cached[1]
    request = spec.parse(extra, on_error=on_error)
    try:
        setattr(holder, _PARSED, (key, request))
    except Exception:       # an object that takes no attributes: no cache
        pass
    return request


def field(obj, name, default=None):
    """An attribute of a Nova object, or ``default`` when unset (an unset
    versioned-object field raises instead of returning None)."""
    if obj is None:
        return default
    is_set = getattr(obj, 'obj_attr_is_set', None)
    try:
        if is_set is not None and not is_set(name):
            return default
        value = getattr(obj, name, default)
    except Exception:   # lazy-load of an unset field
        return default
    return default if value is None else value


def image_properties(image_meta):
    """The image properties :mod:`inputs` reads, as a plain dict."""
    props = field(image_meta, 'properties')
    out = {}
    if props is None:
        return out
    for name in inputs.IMAGE_PROPERTIES:
        if isinstance(props, dict):
            value = props.get(name)
        else:
            value = field(props, name)
        if value is not None:
            out[name] = value
    return out


def port_policies(pci_requests):
    """``(port id, numa_policy)`` of the PCI requests made for ports."""
    out = []
    for request in field(pci_requests, 'requests', ()) or ():
        alias = field(request, 'alias_name')
        policy = field(request, 'numa_policy')
        if alias is None and policy:
            out.append((field(request, 'requester_id', '?'), policy))
    return tuple(out)


def resolve(extra_specs, image_meta, pci_requests, default_policy, request):
    """:func:`inputs.resolve` over the Nova objects of one guest."""
    return inputs.resolve(
        extra_specs or {}, image_properties(image_meta),
        port_policies(pci_requests), default_policy, request=request)
