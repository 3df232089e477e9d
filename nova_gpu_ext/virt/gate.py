"""Is this guest ours? Decided once, cheaply, from what Nova passed in.

Layer rule: adapter (compute side), and the drop-in rule's door. Every
method ``GPULibvirtDriver`` overrides asks :func:`is_candidate` first and,
for a guest that is not a GPU guest (and for every guest with ``[gpu_ext]
enabled = false`` or a flavor with ``gpu:enabled=false``), runs upstream's
code only: no database, RPC, placement or libvirt call, no sysfs read and
no exception path of ours.

The question is answered from attributes Nova already loaded, read the way
Nova reads them (``obj_attr_is_set``, never a lazy load, never raising):

* the flavor's extra specs: a ``gpu:`` key, ``resources*:VGPU``, a
  ``resources*:CUSTOM_*`` class (a GPU by PCI-in-placement or an operator's
  class: only the devices the guest gets tell), ``pci_passthrough:alias``;
* ``instance.pci_requests`` when loaded (a port or an alias asked a PCI
  device);
* mdevs Nova passed to the method.

A candidate may still turn out to have no GPU device (a NIC alias): the
guest config code then keeps upstream's XML, as before. Code that must
undo something of ours (release a render node, a sharing claim, a mark)
asks its own books by UUID (:func:`uuid_of`), which costs a dict lookup.
"""

from nova import exception
from oslo_log import log as logging

from nova_gpu_ext import conf as gpu_conf
from nova_gpu_ext.core import spec as specs

LOG = logging.getLogger(__name__)
CONF = gpu_conf.CONF

_FALSE = ('false', '0', 'no', 'off', 'n', 'f')


def _DEVICE_RESOURCE(key):
    # The parser's own patterns (``resources*:VGPU``, ``resources*:CUSTOM_*``)
    return bool(specs._VGPU_RE.match(key) or specs._CUSTOM_RC_RE.match(key))


def field(obj, name, default=None):
    """``obj.name`` when it is loaded, else ``default``: never a lazy load
    and never an exception (Nova objects, plain objects, None)."""
    if obj is None:
        return default
    try:
        is_set = getattr(obj, 'obj_attr_is_set', None)
        if is_set is not None:
            if not is_set(name):
                return default
            return getattr(obj, name)
        return getattr(obj, name, default)
    except Exception:
        return default


def uuid_of(instance):
    """The instance's UUID, or None when it is not set."""
    if isinstance(instance, str):
        return instance
    return field(instance, 'uuid')


def extra_specs(instance, flavor=None):
    """The flavor's extra specs as loaded (``{}`` when not loaded)."""
    if flavor is None:
        flavor = field(instance, 'flavor')
    specs_ = field(flavor, 'extra_specs')
    return specs_ if isinstance(specs_, dict) else dict(specs_ or {})


def asks_gpu(extra):
    """Does a flavor with these extra specs ask anything of ours? (a plain
    scan of its keys; ``gpu:enabled=false`` says no)."""
    if not extra:
        return False
    if str(extra.get('gpu:enabled', 'true')).strip().lower() in _FALSE:
        return False
    for key in extra:
        if key.startswith(specs.PREFIX) or key == 'pci_passthrough:alias' \
                or _DEVICE_RESOURCE(key):
            return True
    return False


def is_candidate(instance, flavor=None, mdevs=None):
    """Does our code have anything to do for this guest? False returns to
    upstream's code at once; never raises."""
    try:
        if not CONF.gpu_ext.enabled:
            return False
        extra = extra_specs(instance, flavor)
        if str(extra.get('gpu:enabled', 'true')).strip().lower() in _FALSE:
            return False
        if asks_gpu(extra) or mdevs:
            return True
        requests = field(field(instance, 'pci_requests'), 'requests')
        return bool(requests)
    except Exception:
        LOG.debug('nova-gpu-ext: cannot tell a GPU guest; upstream only',
                  exc_info=True)
        return False


def guarded(what, instance, fallback, function, *args, **kwargs):
    """``function(*args, **kwargs)``, or ``fallback`` when it fails with an
    error of ours (logged): upstream's result stands.
    ``ComputeResourcesUnavailable`` (our ``Refused``: a GPU rule that
    cannot hold on a new claim) passes: Nova reschedules, as for its own."""
    try:
        return function(*args, **kwargs)
    except exception.ComputeResourcesUnavailable:
        raise
    except Exception:
        LOG.exception('nova-gpu-ext: %s failed; keeping upstream\'s '
                      'behaviour', what, instance=instance)
        return fallback
