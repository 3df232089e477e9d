"""Who may change what: flavor, image and port input -> the effective request.

Layer rule: pure core. No Nova, no I/O, no CONF: the adapters
(``scheduler/request.py`` for ``GPUPlacementFilter``, ``virt/driver.py``
for the compute) hand in plain values read from the same Nova objects
(flavor extra specs, image properties, the ports' PCI requests), and both
act on the one :class:`Resolved` this module returns, so they cannot
disagree.

The rule: the operator's input (flavor extra specs, ``[gpu_ext]`` options)
sets the bounds; a tenant's input (image properties, port attributes) may
narrow what its guest gets, never widen it past those bounds.

* NUMA affinity policy. The operator's bound is the flavor's
  ``gpu:numa_affinity_policy``, else (devices from a PCI alias) the
  flavor's ``hw:pci_numa_affinity_policy``, else the option default. An
  image's ``hw_pci_numa_affinity_policy`` or a port's
  ``numa_affinity_policy`` that is *stricter* (legacy < preferred < socket
  < required) is applied; a looser one is ignored and reported.
* Guest NUMA topology (``hw:numa_nodes`` / image ``hw_numa_nodes``). It
  changes where Nova puts the guest's cells, never whether the sharing
  admission, the render-node limit or the NUMA policy apply: a guest with
  cells is checked per cell (the GPU's node must hold one cell).
* Video model (image ``hw_video_model``). A flavor that binds a render node
  needs a virtio video with 3D acceleration: another model is replaced and
  the replacement reported, never silently.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterable, Mapping, Optional

from nova_gpu_ext.core import spec as specs
from nova_gpu_ext.core import affinity

#: How strict each policy is; a tenant may only move up this scale.
STRICTNESS = {'legacy': 0, 'preferred': 1, 'socket': 2, 'required': 3}

#: Image properties that can change one of our decisions (see the admin
#: guide's "Tenant input" page for what each does).
IMAGE_PROPERTIES = ('hw_pci_numa_affinity_policy', 'hw_numa_nodes',
                    'hw_video_model')

RENDER_VIDEO_MODEL = 'virtio'


@dataclasses.dataclass(frozen=True)
class Note:
    """One piece of tenant input that was applied or ignored, and why."""

    source: str         # 'image' or 'port <id>'
    key: str
    value: str
    applied: bool
    why: str

    def __str__(self) -> str:
        return '%s %s=%s %s: %s' % (
            self.source, self.key, self.value,
            'applied' if self.applied else 'ignored', self.why)


@dataclasses.dataclass(frozen=True)
class Resolved:
    """The effective request of one guest, as filter and driver use it."""

    request: specs.GPURequest
    policy: str
    policy_source: str
    #: the operator's bound the tenant could not loosen
    bound: str
    bound_source: str
    #: guest NUMA cells (0: no NUMA topology of its own)
    numa_cells: int = 0
    #: the video model the driver sets (None: left as Nova built it)
    video_model: Optional[str] = None
    notes: tuple[Note, ...] = ()

    @property
    def ignored(self) -> tuple[Note, ...]:
        return tuple(n for n in self.notes if not n.applied)

    @property
    def admits_sharing(self) -> bool:
        """Sharing admission applies to every GPU guest, whatever the
        tenant's input (kept as a property so tests can say so)."""
        return self.request.is_gpu_guest

    def needs(self, vcpus: int, memory_mb: int) -> affinity.GuestNeeds:
        """What must fit on the GPU's NUMA node: the whole guest, or one
        of its cells when it has a NUMA topology (Nova places the cells;
        the GPU's node must hold one of them)."""
        cells = max(1, self.numa_cells)
        return affinity.GuestNeeds(int(math.ceil(vcpus / cells)),
                                   int(math.ceil(memory_mb / cells)),
                                   self.policy)


def _cells(value: object) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return 0
    return number if number > 0 else 0


def resolve(extra_specs: Mapping[str, str],
            image_properties: Optional[Mapping[str, object]] = None,
            port_policies: Iterable[tuple[str, str]] = (),
            default_policy: str = affinity.DEFAULT_POLICY,
            on_error: Optional[Callable[[specs.InvalidExtraSpec],
                                        None]] = None,
            request: Optional[specs.GPURequest] = None) -> Resolved:
    """The effective request from flavor, image and ports.

    ``image_properties``: the image's properties (only
    :data:`IMAGE_PROPERTIES` are read); ``port_policies``: ``(port id,
    numa_affinity_policy)`` of the guest's ports that carry one;
    ``request``: the already parsed flavor request, if the caller has it.
    """
    extra_specs = extra_specs or {}
    image = image_properties or {}
    if request is None:
        request = specs.parse(extra_specs, on_error=on_error)
    notes = []

    # The operator's bound.
    pci_policy = extra_specs.get('hw:pci_numa_affinity_policy')
    if request.numa_affinity_policy in STRICTNESS:
        bound_source = 'flavor gpu:numa_affinity_policy'
    elif request.pci_aliases and pci_policy in STRICTNESS:
        bound_source = 'flavor hw:pci_numa_affinity_policy'
    else:
        bound_source = '[gpu_ext] numa_affinity_policy'
    bound = affinity.effective_policy(
        request.numa_affinity_policy, pci_policy, bool(request.pci_aliases),
        default_policy)
    policy, policy_source = bound, bound_source

    # Tenant input: may only tighten.
    wishes = []
    if image.get('hw_pci_numa_affinity_policy') is not None:
        wishes.append(('image', 'hw_pci_numa_affinity_policy',
                       str(image['hw_pci_numa_affinity_policy'])))
    for port, value in port_policies:
        if value is not None:
            wishes.append(('port %s' % port, 'numa_affinity_policy',
                           str(value)))
    for source, key, value in wishes:
        if value not in STRICTNESS:
            notes.append(Note(source, key, value, False,
                              'not a NUMA affinity policy'))
        elif STRICTNESS[value] > STRICTNESS[policy]:
            notes.append(Note(source, key, value, True,
                              'stricter than %s from %s' % (
                                  policy, policy_source)))
            policy, policy_source = value, '%s %s' % (source, key)
        elif STRICTNESS[value] < STRICTNESS[bound]:
            notes.append(Note(source, key, value, False,
                              'looser than %s from %s, which tenant input '
                              'cannot widen' % (bound, bound_source)))
        elif STRICTNESS[value] < STRICTNESS[policy]:
            notes.append(Note(source, key, value, False,
                              'the stricter %s from %s applies' % (
                                  policy, policy_source)))

    cells = max(_cells(extra_specs.get('hw:numa_nodes')),
                _cells(image.get('hw_numa_nodes')))

    video_model = None
    if request.is_gpu_guest and request.wants_render_node:
        video_model = RENDER_VIDEO_MODEL
        wanted = image.get('hw_video_model')
        if wanted is not None and str(wanted) != RENDER_VIDEO_MODEL:
            notes.append(Note(
                'image', 'hw_video_model', str(wanted), False,
                'the flavor binds a render node (gpu:render_node='
                'numa-local), which needs a %s video with 3D acceleration'
                % RENDER_VIDEO_MODEL))

    return Resolved(request=request, policy=policy,
                    policy_source=policy_source, bound=bound,
                    bound_source=bound_source, numa_cells=cells,
                    video_model=video_model, notes=tuple(notes))
