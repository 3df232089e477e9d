"""THE NUMA rule of nova-gpu-ext: which words, which one applies, where.

Layer rule: pure core. No Nova, no oslo, no CONF, no I/O; values in,
values out. This is the only module that reads a NUMA affinity policy word
and orders the words by strictness. The scheduler filter, the compute claim
plan, the guest config check and ``nova-gpu-ext explain`` all ask it:

* :func:`resolve`: which word applies to one guest, from where (the
  precedence table of doc/source/admin/numa-affinity.rst);
* :func:`node_tiers`: for one GPU, the host nodes the guest may be bound
  to, in order (the GPU's node, then the other nodes of its socket), and
  whether it may go anywhere after them;
* :func:`steer` / :func:`steer_any` / :func:`steer_render`: the host-node
  subsets Nova's fit may put the guest's cells on, in order;
* :func:`check_cells`: whether cells Nova already placed keep the rule.

What Nova does, and how ours sits in it. Nova applies
``hw:pci_numa_affinity_policy`` (flavor) or ``hw_pci_numa_affinity_policy``
(image) to its PCI requests only: those of PCI aliases
(``pci_request.get_pci_requests_from_flavor``) and of SR-IOV ports, whose
own ``numa_affinity_policy`` wins (``neutron.create_resource_requests``);
and only for guests with NUMA cells (``PciDeviceStats
._filter_pools_for_numa_cells``). A vGPU, a render node or a placement class
such as ``resources:CUSTOM_GPU_T4`` makes no PCI request: Nova's PCI policy
never applies to them. Our ``gpu:numa_affinity_policy`` applies to every
GPU kind; for a GPU from a PCI alias it may only narrow Nova's word, never
widen it. Tenant input (the image's ``hw_pci_numa_affinity_policy``, a
port's ``numa_affinity_policy``) may narrow the flavor's bound, never widen
it.

The words (Nova's), in our order of strictness: ``legacy`` (no NUMA rule of
ours, :data:`NO_RULE`) < ``preferred`` (the GPU's node if the guest fits,
else anywhere) < ``socket`` (else another node of its socket) <
``required`` (the GPU's node only).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Iterable, Mapping, Optional, Sequence

REQUIRED = 'required'
SOCKET = 'socket'
PREFERRED = 'preferred'
LEGACY = 'legacy'

#: the words, as Nova spells them (hw:pci_numa_affinity_policy)
WORDS = (REQUIRED, SOCKET, PREFERRED, LEGACY)
DEFAULT = PREFERRED
#: how strict each word is: tenant input may only move up this scale
STRICTNESS = {LEGACY: 0, PREFERRED: 1, SOCKET: 2, REQUIRED: 3}
#: the resolved policy of a guest our rule leaves to Nova
NO_RULE = LEGACY

#: libvirt memory modes of a binding
STRICT = 'strict'
PREFERRED_MODE = 'preferred'

GPU_SOURCE = 'flavor gpu:numa_affinity_policy'
NOVA_SOURCE = 'flavor hw:pci_numa_affinity_policy'
DEFAULT_SOURCE = '[gpu_ext] numa_affinity_policy'


def is_word(value: object) -> bool:
    return value in STRICTNESS


def word(value: Optional[str]) -> str:
    """``value`` if it is a policy word, else the default."""
    return value if value is not None and value in STRICTNESS else DEFAULT


def applies(policy: str) -> bool:
    """Does our NUMA rule apply at all (anything but ``legacy``)?"""
    return word(policy) != NO_RULE


def refuses(policy: str) -> bool:
    """Is a guest refused when its GPU's node (or socket) cannot hold it,
    or is unknown? (``required``, ``socket``)."""
    return STRICTNESS[word(policy)] >= STRICTNESS[SOCKET]


def binding_mode(policy: str) -> Optional[str]:
    """libvirt's memory mode for a guest bound under ``policy`` (None:
    not bound, no rule)."""
    if not applies(policy):
        return None
    return STRICT if refuses(policy) else PREFERRED_MODE


def wants_one_cell(policy: str, wants_devices: bool,
                   has_topology: bool) -> bool:
    """Does a GPU guest without a NUMA topology get a one-cell topology
    (so that Nova counts it on its node)?"""
    return wants_devices and not has_topology and applies(policy)


def every_gpu_on_one_node(policy: str) -> bool:
    """Must every GPU of a multi-GPU guest be on the first GPU's node
    (``required``)? Under the others the guest is placed by its first."""
    return word(policy) == REQUIRED


def refuse_without_cell(policy: str) -> bool:
    """A one-cell guest whose cell fits nowhere allowed: refused (True) or
    run without NUMA binding (``preferred``)?"""
    return refuses(policy)


# -- which word applies ----------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Note:
    """One piece of input that was applied or ignored, and why."""

    source: str         # 'image', 'port <id>' or 'flavor'
    key: str
    value: str
    applied: bool
    why: str

    def __str__(self) -> str:
        return '%s %s=%s %s: %s' % (
            self.source, self.key, self.value,
            'applied' if self.applied else 'ignored', self.why)


@dataclasses.dataclass(frozen=True)
class Rule:
    """The NUMA policy of one guest and where it came from."""

    policy: str
    source: str
    #: the operator's bound the tenant could not loosen
    bound: str
    bound_source: str
    #: tenant input applied or ignored
    notes: tuple[Note, ...] = ()
    #: flavor keys that do not apply to this guest's devices, and why
    remarks: tuple[Note, ...] = ()

    @property
    def applies(self) -> bool:
        return applies(self.policy)

    @property
    def binding(self) -> Optional[str]:
        return binding_mode(self.policy)


def resolve(gpu_word: Optional[str], nova_word: Optional[str],
            pci_alias: bool, image_word: Optional[str] = None,
            port_words: Iterable[tuple[str, Optional[str]]] = (),
            default: str = DEFAULT) -> Rule:
    """The policy of one guest.

    ``gpu_word``: the flavor's ``gpu:numa_affinity_policy``; ``nova_word``:
    the flavor's ``hw:pci_numa_affinity_policy``; ``pci_alias``: the
    guest's GPU comes from a PCI alias (Nova's word applies to it);
    ``image_word``: the image's ``hw_pci_numa_affinity_policy``;
    ``port_words``: ``(port id, numa_affinity_policy)`` of its ports;
    ``default``: ``[gpu_ext] numa_affinity_policy``.

    The bound: the stricter of ``gpu_word`` and (PCI alias) ``nova_word``,
    else ``default``. Then image and ports may only tighten it.
    """
    remarks: list[Note] = []
    chosen: list[tuple[str, str]] = []
    if gpu_word is not None and is_word(gpu_word):
        chosen.append((gpu_word, GPU_SOURCE))
    if nova_word is not None:
        if not pci_alias:
            remarks.append(Note(
                'flavor', 'hw:pci_numa_affinity_policy', str(nova_word),
                False, 'Nova applies it to PCI-alias devices and SR-IOV '
                'ports only, not to a vGPU, a render node or a '
                'resources:CUSTOM_* class'))
        elif is_word(nova_word):
            chosen.append((str(nova_word), NOVA_SOURCE))
    if chosen:
        bound, bound_source = max(
            chosen, key=lambda c: STRICTNESS[c[0]])  # ties: gpu: first
        if len(chosen) == 2 and bound_source == NOVA_SOURCE and \
                chosen[0][0] != bound:
            remarks.append(Note(
                'flavor', 'gpu:numa_affinity_policy', str(gpu_word), False,
                'looser than Nova\'s %s from %s: gpu:numa_affinity_policy '
                'only narrows Nova\'s PCI NUMA policy' % (bound,
                                                          NOVA_SOURCE)))
    else:
        bound, bound_source = word(default), DEFAULT_SOURCE
    policy, source = bound, bound_source
    notes = []
    wishes = []
    if image_word is not None:
        wishes.append(('image', 'hw_pci_numa_affinity_policy',
                       str(image_word)))
    for port, value in port_words:
        if value is not None:
            wishes.append(('port %s' % port, 'numa_affinity_policy',
                           str(value)))
    for where, key, value in wishes:
        if not is_word(value):
            notes.append(Note(where, key, value, False,
                              'not a NUMA affinity policy'))
        elif STRICTNESS[value] > STRICTNESS[policy]:
            notes.append(Note(where, key, value, True,
                              'stricter than %s from %s' % (policy, source)))
            policy, source = value, '%s %s' % (where, key)
        elif STRICTNESS[value] < STRICTNESS[bound]:
            notes.append(Note(where, key, value, False,
                              'looser than %s from %s, which tenant input '
                              'cannot widen' % (bound, bound_source)))
        elif STRICTNESS[value] < STRICTNESS[policy]:
            notes.append(Note(where, key, value, False,
                              'the stricter %s from %s applies' % (
                                  policy, source)))
    return Rule(policy, source, bound, bound_source, tuple(notes),
                tuple(remarks))


# -- where: one GPU, one binding ---------------------------------------------

@dataclasses.dataclass(frozen=True)
class Tiers:
    """The host nodes a guest of one GPU may be bound to, best first."""

    nodes: tuple[int, ...]
    #: after them, may the guest run elsewhere (not bound by us)?
    anywhere: bool
    #: why nothing (more) is allowed (empty when nothing is missing)
    reason: str = ''
    #: the socket of the second tier (``socket``), None without one
    socket: Optional[int] = None


def node_tiers(policy: str, gpu_node: Optional[int],
               gpu_socket: Optional[int],
               sockets: Mapping[int, Optional[int]]) -> Tiers:
    """Where a guest of the GPU on ``gpu_node`` may be bound, in order
    (``sockets``: the host's nodes and their sockets, None: unknown)."""
    policy = word(policy)
    if not applies(policy):
        return Tiers((), True)
    if gpu_node is None or gpu_node not in sockets:
        if refuses(policy):
            return Tiers((), False, 'NUMA node unknown, policy %s needs it'
                         % policy)
        return Tiers((), True)
    if policy == REQUIRED:
        return Tiers((gpu_node,), False)
    if policy == SOCKET:
        socket = gpu_socket if gpu_socket is not None else sockets[gpu_node]
        if socket is None:
            return Tiers((gpu_node,), False, 'socket unknown')
        return Tiers((gpu_node,) + tuple(
            n for n in sorted(sockets) if n != gpu_node and
            sockets[n] == socket), False, socket=socket)
    return Tiers((gpu_node,), True)


def check_cells(policy: str, gpu_node: Optional[int],
                gpu_socket: Optional[int], cells: Sequence[int],
                sockets: Mapping[int, Optional[int]]) -> tuple[bool, bool]:
    """Do the guest cells Nova placed (host node ids) keep the rule?

    Returns ``(kept, refuse)``: ``refuse`` True when they do not and the
    policy refuses (``required``/``socket``); a ``preferred`` mismatch is
    only worth a warning. A GPU of unknown node under ``preferred``, and
    ``legacy``, are always kept.
    """
    tiers = node_tiers(policy, gpu_node, gpu_socket, sockets)
    if not applies(policy) or (gpu_node is None and tiers.anywhere):
        return True, False
    if any(c in tiers.nodes for c in cells):
        return True, False
    return False, refuses(policy)


# -- where: the cells of Nova's fit ------------------------------------------

@dataclasses.dataclass(frozen=True)
class Steering:
    """Host-node subsets to fit the guest's cells on, best first."""

    subsets: tuple[tuple[int, ...], ...]
    #: after the subsets, may the cells go anywhere (Nova's own choice)?
    anywhere: bool
    reason: str

    @property
    def refuses_everything(self) -> bool:
        return not self.subsets and not self.anywhere


ANYWHERE = Steering((), True, 'no GPU NUMA constraint (Nova chooses)')


def steer(policy: str, cells: int, node_ids: Sequence[int],
          sockets: Mapping[int, Optional[int]],
          gpu_nodes: Sequence[Optional[int]]) -> Steering:
    """Where a guest with ``cells`` NUMA cells using GPUs on ``gpu_nodes``
    (first GPU first) may have its cells, under ``policy``: the subsets
    that hold the first GPU's node (``required``: every GPU's node), then
    (``socket``) those holding another node of its socket, then
    (``preferred``) anywhere."""
    policy = word(policy)
    if not applies(policy) or not gpu_nodes:
        return ANYWHERE
    first = gpu_nodes[0]
    ids = sorted(set(node_ids))
    tiers = node_tiers(policy, first, None,
                       {n: sockets.get(n) for n in ids})
    if first is None or first not in ids:
        if not tiers.anywhere:
            return Steering((), False, 'GPU NUMA node unknown; policy %s '
                            'needs it' % policy)
        return Steering((), True, 'GPU NUMA node unknown (%s)' % policy)
    needed = {first}
    if policy == REQUIRED:
        needed |= {n for n in gpu_nodes if n is not None}
    combos = list(itertools.combinations(ids, max(1, cells)))
    home = tuple(c for c in combos if needed <= set(c))
    what = 'node %s' % ','.join(str(n) for n in sorted(needed))
    near = tuple(c for c in combos if c not in home and
                 any(n in tiers.nodes[1:] for n in c))
    if tiers.reason:
        return Steering(home, False, 'cells on %s; %s (%s)' % (
            what, tiers.reason, policy))
    if near:
        return Steering(home + near, tiers.anywhere, 'cells on %s, else on '
                        'socket %s (%s)' % (what, sockets.get(first),
                                            policy))
    if policy == SOCKET:
        return Steering(home, False, 'cells on %s, else on socket %s '
                        '(socket)' % (what, sockets.get(first)))
    if tiers.anywhere:
        return Steering(home, True, 'cells on %s if they fit, else '
                        'anywhere (%s)' % (what, policy))
    return Steering(home, False, 'cells on %s (%s)' % (what, policy))


def steer_any(policy: str, cells: int, node_ids: Sequence[int],
              sockets: Mapping[int, Optional[int]],
              gpu_nodes: Sequence[Optional[int]]) -> Steering:
    """Like :func:`steer` for a guest that gets *one of* several GPUs
    (a PCI alias: Nova's PCI claim picks the device inside the fit): the
    subsets allowed for any of them, in the order of ``gpu_nodes``."""
    options = list(dict.fromkeys(gpu_nodes))
    if not applies(policy) or not options:
        return ANYWHERE
    steerings = [steer(policy, cells, node_ids, sockets, [n])
                 for n in options]
    subsets: list[tuple[int, ...]] = []
    for s in steerings:
        subsets += [c for c in s.subsets if c not in subsets]
    return Steering(tuple(subsets), any(s.anywhere for s in steerings),
                    '; '.join(dict.fromkeys(s.reason for s in steerings)))


def steer_render(policy: str, cells: int, node_ids: Sequence[int],
                 sockets: Mapping[int, Optional[int]],
                 render_nodes: Sequence[int]) -> Steering:
    """Where a render-node guest (virgl, no GPU device) may have its cells:
    like :func:`steer` with the GPU's node replaced by any node in
    ``render_nodes`` (the nodes of render nodes with room, best first).
    Without one, ``required``/``socket`` refuse and ``preferred`` lets Nova
    choose (the driver then takes a remote render node)."""
    policy = word(policy)
    if not applies(policy):
        return ANYWHERE
    if not render_nodes:
        return Steering((), not refuses(policy), 'no render node has room '
                        '(%s)' % policy)
    home: list[tuple[int, ...]] = []
    near: list[tuple[int, ...]] = []
    for node in render_nodes:
        for subset in steer(REQUIRED, cells, node_ids, sockets,
                            [node]).subsets:
            if subset not in home:
                home.append(subset)
        if policy == SOCKET:
            near += [s for s in steer(SOCKET, cells, node_ids, sockets,
                                      [node]).subsets if s not in near]
    subsets = tuple(home + [s for s in near if s not in home])
    what = 'a render node\'s node (%s)' % ','.join(map(str, render_nodes))
    if not refuses(policy):
        return Steering(subsets, True, 'cells on %s if they fit, else '
                        'anywhere (%s)' % (what, policy))
    return Steering(subsets, False, 'cells on %s%s (%s)' % (
        what, ', else on its socket' if policy == SOCKET else '', policy))


def render_local_only(policy: str) -> bool:
    """Must a render-node guest keep a render node of its node?"""
    return refuses(policy)
