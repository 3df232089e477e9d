"""Read a guest's tenant input from Nova objects, the same way everywhere.

Layer rule: adapter glue, no Nova imports (duck-typed over Nova's objects, like
:mod:`nova_gpu_ext.topology.host_facts`). The scheduler (``RequestSpec``: its
``flavor``, ``image``, ``pci_requests``) and the compute (``Instance``: its
``flavor`` and ``pci_requests``, and the ``ImageMeta`` of the build) hold the
same objects; both turn them into plain values here and hand them to the pure
:func:`nova_gpu_ext.core.inputs.resolve`.
"""

from nova_gpu_ext.core import inputs

#: InstancePCIRequest.source of a request that comes from a neutron port
NEUTRON_PORT = 1


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
