"""The ``gpu:`` flavor extra-spec table and its one parser.

Layer rule: pure core. No Nova, no I/O, no CONF. The API validators
(``nova_gpu_ext.api.extra_specs``), the scheduler filters and weighers, the
driver and the CLI all read flavor extra specs through :func:`parse`, so they
can never disagree about what a flavor asks for. Option defaults come in as
arguments (``defaults``), never from CONF.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Iterable, Mapping, Optional

from nova_gpu_ext.core import numa

PREFIX = 'gpu:'

NUMA_POLICIES = numa.WORDS
RENDER_NODE_MODES = ('numa-local', 'none')
DISPLAY_MODES = ('egl-headless', 'none')
#: values refused with a reason (the API answers 400 with it)
SPICE_GL_REFUSED = (
    'QEMU refuses SPICE with GL unless SPICE listens only on a local UNIX '
    'socket ("SPICE GL support is local-only for now and incompatible with '
    '-spice port/tls-port", QEMU 7.2), and Nova\'s SPICE console listens on '
    'TCP for its proxy; use egl-headless (GL rendering next to the usual '
    'console) or none')
PLACEMENTS = ('pack', 'spread')

_TRUE = ('1', 't', 'true', 'on', 'y', 'yes')
_FALSE = ('0', 'f', 'false', 'off', 'n', 'no')


class InvalidExtraSpec(ValueError):
    """A ``gpu:`` extra spec is unknown or has a bad value.

    The message always names the key and what it accepts.
    """


@dataclasses.dataclass(frozen=True)
class SpecKey:
    """One row of the spec table."""

    name: str                     # without the prefix; may hold {param}
    description: str
    type: type                    # str, int or bool
    enum: tuple[str, ...] = ()
    min: Optional[int] = None
    max: Optional[int] = None
    # For parameterised keys: name -> regex of the parameter.
    parameters: tuple[tuple[str, str], ...] = ()
    # Values that look plausible but cannot work: value -> why.
    refused: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        return PREFIX + self.name

    @property
    def key_regex(self) -> str:
        regex = re.escape(self.key)
        for pname, pattern in self.parameters:
            regex = regex.replace(re.escape('{%s}' % pname),
                                  '(?P<%s>%s)' % (pname, pattern))
        return regex

    def allowed(self) -> str:
        """Human text of the allowed values, for error messages and docs."""
        if self.enum:
            return 'one of: %s' % ', '.join(self.enum)
        if self.type is bool:
            return 'a boolean (true or false)'
        if self.type is int:
            lo = '' if self.min is None else ' >= %d' % self.min
            hi = '' if self.max is None else ' <= %d' % self.max
            sep = ' and' if lo and hi else ''
            return 'an integer%s%s%s' % (lo, sep, hi)
        return 'a string'

    def coerce(self, value: str, key: Optional[str] = None) -> Any:
        """Return the typed value or raise InvalidExtraSpec (naming
        ``key``, the key as written, when given)."""
        text = str(value).strip()
        why = dict(self.refused).get(text)
        if why:
            raise InvalidExtraSpec(
                "Value %r of extra spec '%s' is not supported: %s (expected "
                "%s)." % (value, self.key, why, self.allowed()))
        if self.type is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
        elif self.type is int:
            try:
                number = int(text)
            except ValueError:
                number = None
            if number is not None and (
                    (self.min is None or number >= self.min) and
                    (self.max is None or number <= self.max)):
                return number
        elif not self.enum or text in self.enum:
            return text
        raise InvalidExtraSpec(
            "Invalid value %r for extra spec '%s': expected %s." % (
                value, key or self.key, self.allowed()))


# Tweak names are defined by the domain tweak plugins; the key accepts any
# well-formed name and the driver reports unknown ones.
TWEAK_NAME_PATTERN = r'[a-z][a-z0-9_]{0,63}'

SPEC_TABLE: tuple[SpecKey, ...] = (
    SpecKey(
        name='enabled',
        description=(
            'Opt this flavor in or out of every nova-gpu-ext change. With '
            'false, servers of this flavor get exactly the upstream libvirt '
            'driver behaviour and domain XML.'),
        type=bool),
    SpecKey(
        name='numa_affinity_policy',
        description=(
            "How strictly the guest's vCPUs and memory must share a NUMA "
            'node with its GPU (whole GPU, SR-IOV VF or mdev vGPU): '
            '`required` same node or no placement; `socket` same socket; '
            '`preferred` same node when possible; `legacy` as Nova does for '
            'PCI devices (same node when the device reports one). The words '
            'of hw:pci_numa_affinity_policy.'),
        type=str, enum=NUMA_POLICIES),
    SpecKey(
        name='render_node',
        description=(
            'Bind a host DRM render node (/dev/dri/renderD*) for host-GPU '
            'rendering (virgl): `numa-local` picks one on the NUMA node of '
            'the guest; `none` binds none.'),
        type=str, enum=RENDER_NODE_MODES),
    SpecKey(
        name='display',
        description=(
            'Display of a host-GPU-rendered guest: `egl-headless` (GL '
            'rendering next to the usual VNC/SPICE console, the default) or '
            '`none` (egl-headless only, no VNC/SPICE console: a guest that '
            'renders or computes without a remote screen). `spice-gl` is '
            'refused: QEMU allows SPICE GL only on a local UNIX socket, and '
            "Nova's SPICE console listens on TCP."),
        type=str, enum=DISPLAY_MODES,
        refused=(('spice-gl', SPICE_GL_REFUSED),)),
    SpecKey(
        name='placement',
        description=(
            'Which physical GPU supplies a shared GPU (VF or mdev): `pack` '
            'fills one physical GPU before the next, keeping whole GPUs free; '
            '`spread` uses the least loaded physical GPU.'),
        type=str, enum=PLACEMENTS),
    SpecKey(
        name='min_share_percent',
        description=(
            'Smallest share of a time-sliced physical GPU this guest '
            'accepts, in percent; a physical GPU with too many tenants for it '
            'is not chosen.'),
        type=int, min=1, max=100),
    SpecKey(
        name='fast_boot',
        description=(
            'Apply the fast-boot domain XML tweaks to this flavor. GPU '
            'flavors get them by default; set false to opt out, or true to '
            'opt a GPU-less flavor in.'),
        type=bool),
    SpecKey(
        name='tweak:{name}',
        description=(
            'Switch one domain XML tweak on or off for this flavor, by its '
            'name (see `nova-gpu-ext tweaks`).'),
        type=bool, parameters=(('name', TWEAK_NAME_PATTERN),)),
)


def find_key(key: str) -> tuple[SpecKey, dict[str, str]]:
    """Return the table row for a ``gpu:`` key and its parameters."""
    for row in SPEC_TABLE:
        match = re.fullmatch(row.key_regex, key)
        if match:
            return row, match.groupdict()
    known = ', '.join(row.key for row in SPEC_TABLE)
    raise InvalidExtraSpec(
        "Unknown extra spec '%s' in the %s namespace; known keys: %s." % (
            key, PREFIX.rstrip(':'), known))


def validate(key: str, value: str,
             known_tweaks: Optional[Iterable[str]] = None) -> Any:
    """Validate one ``gpu:`` extra spec; return its typed value.

    With ``known_tweaks`` (the installed tweak names), a ``gpu:tweak:<name>``
    key whose name is not among them is refused, naming the installed
    ones: a typo must not leave an operator believing a tweak is off.
    """
    row, params = find_key(key)
    if known_tweaks is not None and 'name' in params:
        names = sorted(known_tweaks)
        if params['name'] not in names:
            raise InvalidExtraSpec(
                "Unknown tweak '%s' in extra spec '%s'; installed tweaks: "
                "%s." % (params['name'], key, ', '.join(names) or 'none'))
    return row.coerce(value, key)


# -- what a flavor asks for --------------------------------------------------

_VGPU_RE = re.compile(r'^resources[a-zA-Z0-9_-]*:VGPU$')
_CUSTOM_RC_RE = re.compile(r'^resources[a-zA-Z0-9_-]*:(CUSTOM_[A-Z0-9_]+)$')


@dataclasses.dataclass(frozen=True)
class GPURequest:
    """What one flavor asks of nova-gpu-ext, parsed from its extra specs.

    ``None`` means the flavor did not say; the caller applies its option
    default. Device counts come from Nova's own extra specs.
    """

    enabled: bool = True
    numa_affinity_policy: Optional[str] = None
    render_node: Optional[str] = None
    display: Optional[str] = None
    placement: Optional[str] = None
    min_share_percent: Optional[int] = None
    fast_boot: Optional[bool] = None
    tweaks: tuple[tuple[str, bool], ...] = ()
    vgpus: int = 0
    pci_aliases: tuple[tuple[str, int], ...] = ()
    custom_resources: tuple[tuple[str, int], ...] = ()
    # The gpu: keys the flavor set (for "does it need our driver?").
    gpu_keys: tuple[str, ...] = ()

    @property
    def wants_devices(self) -> bool:
        """Does the flavor ask for a GPU-like device (vGPU or PCI)?"""
        return bool(self.vgpus or self.pci_aliases or self.custom_resources)

    @property
    def min_share(self) -> Optional[float]:
        """``gpu:min_share_percent`` as the fraction the sharing core
        takes, or None."""
        if not self.min_share_percent:
            return None
        return self.min_share_percent / 100.0

    @property
    def wants_render_node(self) -> bool:
        return self.render_node == 'numa-local'

    @property
    def is_gpu_guest(self) -> bool:
        """A GPU guest by the flavor alone: a vGPU or a render node.

        A PCI alias or a ``resources:CUSTOM_*`` class may be a GPU or not
        (a NIC, a licence): only the devices the guest got tell, see
        :func:`gpu_guest`. Those flavors are :attr:`may_use_gpu`.
        """
        return self.enabled and bool(self.vgpus or self.wants_render_node)

    @property
    def may_use_gpu(self) -> bool:
        """The flavor asks for something that may be a GPU (the scheduler
        then maps its allocation candidates to GPUs, if any)."""
        return self.enabled and (self.wants_devices or self.wants_render_node)

    def tweak(self, name: str) -> Optional[bool]:
        """The flavor's switch for one tweak, or None when not set."""
        return dict(self.tweaks).get(name)


#: ``gpu:`` keys that do nothing for a guest with no GPU device and no
#: render node (``gpu:render_node=none`` included).
NO_EFFECT_WITHOUT_GPU = ('gpu:numa_affinity_policy', 'gpu:placement',
                         'gpu:min_share_percent', 'gpu:display',
                         'gpu:render_node')


def no_effect_keys(request: GPURequest, gpu_devices: int) -> list[str]:
    """The flavor's ``gpu:`` keys that can have no effect on a guest with
    ``gpu_devices`` GPU devices (vGPUs, GPU hostdevs): all those of
    :data:`NO_EFFECT_WITHOUT_GPU` when it has none and no render node."""
    if not request.enabled or gpu_devices or request.vgpus or \
            request.wants_render_node:
        return []
    return [k for k in request.gpu_keys if k in NO_EFFECT_WITHOUT_GPU]


def gpu_guest(request: GPURequest, gpu_devices: int) -> bool:
    """Is this a GPU guest, given how many of its devices are GPUs?

    ``gpu_devices``: the guest's PCI hostdevs whose host function has a
    display PCI class in the host topology, plus its mdevs whose parent is
    such a GPU (the driver counts them). A GPU guest has a GPU device or
    asks for a vGPU or a render node; nothing else makes one (a licence
    resource class, a NIC alias).
    """
    return request.enabled and (request.is_gpu_guest or gpu_devices > 0)


_FIELDS = {
    'enabled', 'numa_affinity_policy', 'render_node', 'display', 'placement',
    'min_share_percent', 'fast_boot',
}


def parse_pci_alias(value: str) -> tuple[tuple[str, int], ...]:
    """``"a1:2, a2"`` -> ``(("a1", 2), ("a2", 1))`` as Nova reads it."""
    out = []
    for item in value.split(','):
        item = item.strip()
        if not item:
            continue
        name, _, count = item.partition(':')
        try:
            out.append((name.strip(), int(count) if count else 1))
        except ValueError:
            raise InvalidExtraSpec(
                "Invalid value %r for extra spec 'pci_passthrough:alias': "
                "expected alias[:count][,alias[:count]...]." % value)
    return tuple(out)


def parse(extra_specs: Mapping[str, str],
          on_error: Optional[Callable[[InvalidExtraSpec], None]] = None,
          ) -> GPURequest:
    """Parse a flavor's extra specs into a :class:`GPURequest`.

    Invalid ``gpu:`` entries raise :class:`InvalidExtraSpec`, unless
    ``on_error`` is given: then each error is passed to it and the entry is
    ignored (used by services that must never fail on a flavor that slipped
    past the API, e.g. created before an older microversion).
    """
    values: dict[str, Any] = {}
    tweaks: dict[str, bool] = {}
    gpu_keys = []
    vgpus = 0
    aliases: tuple[tuple[str, int], ...] = ()
    customs = []
    for key, value in sorted((extra_specs or {}).items()):
        try:
            if key.startswith(PREFIX):
                row, params = find_key(key)
                typed = row.coerce(value, key)
                gpu_keys.append(key)
                if 'name' in params:
                    tweaks[params['name']] = typed
                else:
                    values[row.name] = typed
            elif _VGPU_RE.match(key):
                vgpus += int(value)
            elif key == 'pci_passthrough:alias':
                aliases = parse_pci_alias(value)
            else:
                match = _CUSTOM_RC_RE.match(key)
                if match:
                    customs.append((match.group(1), int(value)))
        except (InvalidExtraSpec, ValueError) as exc:
            if not isinstance(exc, InvalidExtraSpec):
                exc = InvalidExtraSpec(
                    'Invalid value %r for extra spec %r.' % (value, key))
            if on_error is None:
                raise exc
            on_error(exc)
    assert set(values) <= _FIELDS
    return GPURequest(
        tweaks=tuple(sorted(tweaks.items())),
        vgpus=vgpus,
        pci_aliases=aliases,
        custom_resources=tuple(customs),
        gpu_keys=tuple(gpu_keys),
        **values)
