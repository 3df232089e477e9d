"""Options of time-slice sharing and pack/spread placement of shared GPUs.

Layer rule: options only. Static options live in ``[gpu_ext]``; per-type
sharing parameters live in dynamic groups ``[gpu_sharing_<type>]``,
registered on demand the way Nova registers ``[mdev_<type>]`` groups
(``nova/conf/devices.py`` ``register_dynamic_opts``). :func:`profile_for`
is the one adapter from CONF to the pure core's
:class:`~nova_gpu_ext.core.sharing.SharingProfile`; nothing else reads
these options.

``<type>`` is the name the adapters use for a kind of shared GPU: an mdev
type (``nvidia-35``, ``i915-GVTg_V5_4``) or the PCI ``vendor:device`` of a
VF in lower-case hex (``1002:6865``). Example::

    [gpu_ext]
    sharing_default_placement = spread
    timeout_margin = 0.75

    [gpu_sharing_nvidia-35]
    slice_ms = 2
    switch_ms = 0.1
    max_tenants = 16

    [gpu_sharing_1002:6865]
    slice_ms = 6
    switch_ms = 0.2

Public API::

    register_opts(conf)                  # the static [gpu_ext] options
    list_opts()                          # the same, for the generator
    register_dynamic_opts(conf, types=None)   # each group once
    profile_for(conf, type_name) -> SharingProfile
"""

from __future__ import annotations

from typing import Iterable, Optional

from oslo_config import cfg

from nova_gpu_ext.conf import base
from nova_gpu_ext.core import sharing

GROUP_PREFIX = 'gpu_sharing_'

SHARING_OPTS = [
    cfg.StrOpt(
        'sharing_default_placement',
        default='spread',
        choices=[
            ('spread', 'Use the physical GPU where the new tenant gets the '
                       'largest share (the least loaded one).'),
            ('pack', 'Fill one physical GPU before using the next.'),
        ],
        help="""
Which physical GPU supplies a shared GPU (SR-IOV VF or mdev) when the flavor
has no ``gpu:placement`` extra spec, on the host and across hosts.

``spread`` is the default because it is what a guest that asked for a GPU
expects: the best performance it can get (vSphere's default, "best
performance", does the same), and it keeps the fewest tenants on each GPU,
so the fewest guests are hit by one noisy neighbour or one GPU reset.
``pack`` trades that for capacity of whole GPUs: choose it when passthrough
or large requests need physical GPUs with no tenant.

Possible values:

* ``spread``: the physical GPU where the new tenant gets the largest share.
* ``pack``: the most loaded physical GPU that still admits the tenant.

Related options:

* The flavor extra spec ``gpu:placement`` overrides this per flavor.
* ``timeout_margin`` and the ``[gpu_sharing_<type>]`` groups bound how many
  tenants either strategy puts on one GPU.
"""),
    cfg.IntOpt(
        'guest_timeout_ms',
        default=2000,
        min=1,
        help="""
The guest GPU driver's timeout, in milliseconds: how long a guest may wait
for its turn on a time-sliced GPU before its driver resets the GPU.

Windows resets the display driver (TDR) after 2 s by default
(``TdrDelay``); a tenant is admitted on a physical GPU only while the
worst-case wait between its turns stays within this times
``timeout_margin``.

Possible values:

* A positive number of milliseconds.

Related options:

* ``timeout_margin``
* ``guest_timeout_ms`` in a ``[gpu_sharing_<type>]`` group overrides this
  for one type.
"""),
    cfg.FloatOpt(
        'timeout_margin',
        default=0.75,
        min=0.01,
        max=1.0,
        help="""
Fraction of the guest timeout that the worst-case wait between a tenant's
turns may use.

The wait is computed from slice length and switch cost alone; preemption
latency (a long shader finishes its slice late), host interrupts and the
guest's own submission delay come on top and are not modelled. The default
0.75 keeps a quarter of the timeout for them, which also refuses the case
the sharing model was written for: 16 tenants with 100 ms slices wait 1.6 s,
inside a 2 s timeout but "already at the edge". 1.0 admits right up to the
computed bound.

Possible values:

* A number greater than 0 and at most 1.0.

Related options:

* ``guest_timeout_ms``
"""),
    cfg.FloatOpt(
        'default_slice_ms',
        default=6.0,
        min=0.001,
        help="""
Length of one tenant's time slice on a shared physical GPU, in
milliseconds, for types without a ``[gpu_sharing_<type>]`` ``slice_ms``.

The default is the published SR-IOV measurement (6 ms slices, about 0.2 ms
per switch, 96.7 % efficiency). Set the real value of your GPUs and their
scheduler in the per-type groups.

Possible values:

* A positive number of milliseconds.

Related options:

* ``default_switch_ms``
* ``slice_ms`` in ``[gpu_sharing_<type>]``
"""),
    cfg.FloatOpt(
        'default_switch_ms',
        default=0.2,
        min=0.0,
        help="""
Cost of one context (world) switch between tenants of a shared physical
GPU, in milliseconds, for types without a ``[gpu_sharing_<type>]``
``switch_ms``.

Scheduling efficiency is slice / (slice + switch): 6 ms / 0.2 ms keeps
96.7 % of the GPU busy, 1 ms / 0.5 ms wastes a third.

Possible values:

* Zero or a positive number of milliseconds.

Related options:

* ``default_slice_ms``
* ``switch_ms`` in ``[gpu_sharing_<type>]``
"""),
    cfg.ListOpt(
        'sharing_types',
        default=[],
        help="""
Types of shared GPU that have a ``[gpu_sharing_<type>]`` group, registered
at service start (the way ``[devices] enabled_mdev_types`` declares the
``[mdev_<type>]`` groups).

Groups are also registered on demand the first time a type is looked up,
so this list matters only to tools that read the groups before any lookup.
The types of ``[devices] enabled_mdev_types`` are always registered.

Possible values:

* A list of mdev type names (``nvidia-35``) and VF ``vendor:device`` ids in
  lower-case hex (``1002:6865``).

Related options:

* ``[devices] enabled_mdev_types``
"""),
    cfg.FloatOpt(
        'gpu_sharing_weight_multiplier',
        default=1.0,
        help="""
Multiplier for ``GPUSharingWeigher``.

The weigher applies the flavor's pack or spread choice across hosts, as
``GPUPlacementFilter`` applies it within a host: under ``pack`` it prefers
hosts whose partly used GPU the tenant fills best (keeping hosts with whole
GPUs free), under ``spread`` the host where the tenant gets the largest
share of a GPU. Hosts can override it with the aggregate metadata key of the
same name.

Possible values:

* A positive number: apply pack/spread across hosts (the larger, the
  stronger compared with the other weighers).
* 0.0: disable the weigher (pack/spread then only chooses the GPU within
  the host the other weighers chose).

Related options:

* ``[gpu_ext] sharing_default_placement``.
* ``[filter_scheduler] weight_classes`` must list
  ``nova_gpu_ext.scheduler.weighers.GPUSharingWeigher``; it reads what
  ``GPUPlacementFilter`` computed, so that filter must be enabled too.
"""),
]

# The per-type options. None means "use the [gpu_ext] default".
DYNAMIC_OPTS = [
    cfg.FloatOpt(
        'slice_ms', default=None, min=0.001,
        help='Time slice of this type in milliseconds. Default: '
             '[gpu_ext] default_slice_ms.'),
    cfg.FloatOpt(
        'switch_ms', default=None, min=0.0,
        help='Context switch cost of this type in milliseconds. Default: '
             '[gpu_ext] default_switch_ms.'),
    cfg.IntOpt(
        'max_tenants', default=None, min=1,
        help='Most tenants on one physical GPU of this type, whatever the '
             'timeout allows. Default: no limit but the timeout and the '
             "device's instances."),
    cfg.IntOpt(
        'guest_timeout_ms', default=None, min=1,
        help="Guest driver timeout of this type's guests in milliseconds. "
             'Default: [gpu_ext] guest_timeout_ms.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(base.gpu_ext_group)
    conf.register_opts(SHARING_OPTS, group=base.gpu_ext_group)


def list_opts():
    return [(base.gpu_ext_group, SHARING_OPTS)]


def group_name(type_name: str) -> str:
    """``nvidia-35`` -> ``gpu_sharing_nvidia-35``."""
    name = type_name.strip()
    if not name:
        raise ValueError('a shared GPU type name must not be empty')
    return GROUP_PREFIX + name


def register_dynamic_opts(conf: cfg.ConfigOpts,
                          types: Optional[Iterable[str]] = None) -> None:
    """Register ``[gpu_sharing_<type>]`` for each type.

    ``types`` None: ``[gpu_ext] sharing_types`` plus ``[devices]
    enabled_mdev_types`` when Nova's options are registered. Safe to call
    again (oslo.config ignores an identical re-registration), also after
    the configuration files were parsed: values are read lazily.
    """
    if types is None:
        types = list(conf.gpu_ext.sharing_types)
        try:
            types.extend(conf.devices.enabled_mdev_types)
        except (cfg.NoSuchOptError, cfg.NoSuchGroupError, AttributeError):
            pass
    for type_name in types:
        _register_group(conf, group_name(type_name))


def _register_group(conf: cfg.ConfigOpts, name: str) -> None:
    """Register one ``[gpu_sharing_<type>]`` group unless it is there.

    Every ``register_opts`` call clears oslo.config's value cache (and
    re-registering identical options still costs that), so a group that
    already holds our options is left alone: the check is two dictionary
    lookups.
    """
    if name in conf:
        group = conf[name]
        if all(opt.dest in group for opt in DYNAMIC_OPTS):
            return
    conf.register_opts(DYNAMIC_OPTS, group=name)


def profile_for(conf: cfg.ConfigOpts,
                type_name: str) -> sharing.SharingProfile:
    """The sharing profile of ``type_name``: its group over the defaults.

    Registers the type's group the first time only (never in the
    scheduler's hot path afterwards); the scheduler calls this once per
    type per request (``nova_gpu_ext.scheduler.usage.profile``), so option
    changes apply from the next request.
    """
    name = group_name(type_name)
    _register_group(conf, name)
    group = conf[name]
    gpu_ext = conf.gpu_ext

    def pick(value, default):
        return default if value is None else value

    return sharing.SharingProfile(
        slice_ms=float(pick(group.slice_ms, gpu_ext.default_slice_ms)),
        switch_ms=float(pick(group.switch_ms, gpu_ext.default_switch_ms)),
        max_tenants=group.max_tenants,
        guest_timeout_ms=float(pick(group.guest_timeout_ms,
                                    gpu_ext.guest_timeout_ms)),
        margin=float(gpu_ext.timeout_margin),
    )
