"""Domain XML tweaks: small plugins that change the guest config Nova built.

Layer rule: adapter. A tweak is a :class:`DomainTweak` subclass registered in
the ``nova_gpu_ext.domain_tweaks`` entry-point namespace. It receives the
``LibvirtConfigGuest`` that upstream's driver built and a
:class:`TweakContext`, and changes only what its name says. Policy (whether
it runs for this guest) is decided by :func:`select` from options, the
flavor and the host's versions, so each tweak stays a few lines.
"""

import abc
import dataclasses
from typing import Any, Optional

from oslo_log import log as logging
from stevedore import extension

from nova_gpu_ext.core import spec as specs

LOG = logging.getLogger(__name__)

NAMESPACE = 'nova_gpu_ext.domain_tweaks'


@dataclasses.dataclass
class TweakContext:
    """What a tweak may look at. Never changed by a tweak."""

    instance: Any
    request: specs.GPURequest
    libvirt_version: int = 0          # as libvirt reports: 9000000 = 9.0.0
    qemu_version: int = 0
    # The host topology (nova_gpu_ext.model.HostTopology) or None.
    host: Any = None
    # The placement decision for this guest (NUMA node, devices) or None.
    decision: Any = None
    # Tweak settings from [gpu_ext] options, by option name.
    settings: dict = dataclasses.field(default_factory=dict)
    image_meta: Any = None
    flavor: Any = None
    # Is this a GPU guest (specs.gpu_guest: a GPU among its devices, a vGPU
    # or a render node)? None: judge by the flavor alone.
    gpu_guest: Optional[bool] = None


class DomainTweak(abc.ABC):
    """One named change to the domain XML."""

    #: the name used in options, in ``gpu:tweak:<name>`` and in logs
    name: str = ''
    #: one line for ``nova-gpu-ext tweaks`` and the docs
    summary: str = ''
    #: minimum versions, as libvirt encodes them (major*1e6 + minor*1e3)
    min_libvirt_version: int = 0
    min_qemu_version: int = 0
    #: applied to GPU guests unless switched off
    default_for_gpu_guests: bool = True
    #: a correctness fix, not a boot-time saving: applied to every GPU
    #: guest whatever ``gpu:fast_boot`` / ``fast_boot_default`` say (the
    #: option ``enabled_tweaks`` and ``gpu:tweak:<name>`` still switch it)
    independent_of_fast_boot: bool = False

    def supported(self, ctx: TweakContext) -> Optional[str]:
        """Return why the host cannot take this tweak, or None."""
        if ctx.libvirt_version and ctx.libvirt_version < \
                self.min_libvirt_version:
            return 'libvirt %s < %s' % (
                _version(ctx.libvirt_version),
                _version(self.min_libvirt_version))
        if ctx.qemu_version and ctx.qemu_version < self.min_qemu_version:
            return 'QEMU %s < %s' % (
                _version(ctx.qemu_version), _version(self.min_qemu_version))
        return None

    @abc.abstractmethod
    def apply(self, guest, ctx: TweakContext) -> list[str]:
        """Change ``guest`` in place; return what changed, one line each.

        Return an empty list when there was nothing to change.
        """


def _version(number: int) -> str:
    return '%d.%d.%d' % (number // 1000000, number // 1000 % 1000,
                         number % 1000)


_LOADED: Optional[dict] = None


def load_tweaks() -> dict:
    """All installed tweaks by name (loaded once per process)."""
    global _LOADED
    if _LOADED is None:
        def _failed(_mgr, entry_point, err):
            LOG.warning('Could not load domain tweak %s: %s',
                        entry_point.name, err)
        mgr = extension.ExtensionManager(
            NAMESPACE, invoke_on_load=True,
            on_load_failure_callback=_failed)
        _LOADED = {ext.name: ext.obj for ext in mgr}
    return _LOADED


def select(tweaks: dict, ctx: TweakContext, enabled_names,
           fast_boot_default: bool = True) -> list:
    """Choose the tweaks for one guest, in a stable order.

    A tweak runs when nova-gpu-ext is enabled for the flavor, the tweak is
    enabled in the options (``enabled_names``; None means all), and either
    the flavor switches it on (``gpu:tweak:<name>=true``) or it is a GPU
    guest's default and the flavor did not switch it or fast boot off.
    """
    request = ctx.request
    if not request.enabled:
        return []
    chosen = []
    for name in sorted(tweaks):
        tweak = tweaks[name]
        if enabled_names is not None and name not in enabled_names:
            continue
        flavor_switch = request.tweak(name)
        if flavor_switch is None and tweak.independent_of_fast_boot:
            gpu_guest = ctx.gpu_guest
            wanted = request.is_gpu_guest if gpu_guest is None else gpu_guest
        elif flavor_switch is None:
            fast_boot = request.fast_boot
            if fast_boot is None:
                gpu_guest = ctx.gpu_guest
                if gpu_guest is None:
                    gpu_guest = request.is_gpu_guest
                fast_boot = fast_boot_default and gpu_guest
            wanted = fast_boot and tweak.default_for_gpu_guests
        else:
            wanted = flavor_switch
        if wanted:
            chosen.append(tweak)
    return chosen
