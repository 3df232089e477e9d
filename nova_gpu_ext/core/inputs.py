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

* NUMA affinity policy: :func:`nova_gpu_ext.core.numa.resolve` (the one
  NUMA rule: the operator's bound from ``gpu:numa_affinity_policy`` and,
  for devices from a PCI alias, Nova's ``hw:pci_numa_affinity_policy``;
  image and port input may only tighten it).
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

from nova_gpu_ext.core import numa
from nova_gpu_ext.core import spec as specs
from nova_gpu_ext.core import affinity

#: Image properties that can change one of our decisions (see the admin
#: guide's "Tenant input" page for what each does).
IMAGE_PROPERTIES = ('hw_pci_numa_affinity_policy', 'hw_numa_nodes',
                    'hw_video_model')

RENDER_VIDEO_MODEL = 'virtio'


Note = numa.Note


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
    #: flavor keys that do not apply to this guest (numa.Rule.remarks)
    remarks: tuple[Note, ...] = ()

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
            default_policy: str = numa.DEFAULT,
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
    notes: list[Note] = []
    image_word = image.get('hw_pci_numa_affinity_policy')
    rule = numa.resolve(
        request.numa_affinity_policy,
        extra_specs.get('hw:pci_numa_affinity_policy'),
        bool(request.pci_aliases),
        None if image_word is None else str(image_word), port_policies,
        default_policy)
    notes.extend(rule.notes)

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

    return Resolved(request=request, policy=rule.policy,
                    policy_source=rule.source, bound=rule.bound,
                    bound_source=rule.bound_source, numa_cells=cells,
                    video_model=video_model, notes=tuple(notes),
                    remarks=rule.remarks)
