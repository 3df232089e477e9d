"""All nova-gpu-ext options, in the ``[gpu_ext]`` group and friends.

Layer rule: options live only in this package, one module per concern, each
with ``register_opts(conf)`` and ``list_opts()``. Nova processes (compute,
scheduler, API) call :func:`register_opts` once; the core never reads CONF.
"""

import importlib

from oslo_config import cfg

# One module per concern; each adds its options to the [gpu_ext] group (or
# its own groups) and lists them for oslo-config-generator.
_MODULES = (
    'base',
    'topology',
    'affinity',
    'sharing',
    'fast_boot',
    'telemetry',
)

CONF = cfg.CONF


def _modules():
    mods = []
    for name in _MODULES:
        try:
            mods.append(importlib.import_module('%s.%s' % (__name__, name)))
        except ModuleNotFoundError as exc:
            # A concern that has not landed yet; everything else still works.
            if exc.name != '%s.%s' % (__name__, name):
                raise
    return mods


def register_opts(conf=CONF):
    for mod in _modules():
        mod.register_opts(conf)


def list_opts():
    """Entry point for ``oslo-config-generator --namespace nova_gpu_ext``."""
    groups = {}
    for mod in _modules():
        for group, opts in mod.list_opts():
            key = group.name if isinstance(group, cfg.OptGroup) else group
            groups.setdefault(key, (group, []))[1].extend(opts)
    return [(group, opts) for group, opts in groups.values()]


def _get(conf, name, default):
    try:
        return getattr(conf.gpu_ext, name)
    except (cfg.NoSuchOptError, AttributeError):
        return default


def enabled_tweak_names(conf=CONF):
    """Names of the tweaks the operator allows; None means all."""
    names = _get(conf, 'enabled_tweaks', None)
    return None if names is None else set(names)


def fast_boot_default(conf=CONF):
    return _get(conf, 'fast_boot_default', True)


def tweak_settings(conf=CONF):
    """Every [gpu_ext] option value by name, for the tweaks to read."""
    out = {}
    for _group, opts in list_opts():
        for opt in opts:
            out[opt.dest] = _get(conf, opt.dest, opt.default)
    return out


register_opts(CONF)
