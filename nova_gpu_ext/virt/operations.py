"""Which server operation is running: admit a new claim, or keep a guest.

Layer rule: adapter (compute side, no decisions of its own). Nova calls
``_get_guest_config`` for every operation that (re)defines a domain: a
first boot, the destination of a move, but also hard reboot, power on,
resume after a host reboot and rescue, which restart a guest that already
runs on this host with what it already has. A limit refused there comes
after Nova undefined the domain, and the instance goes to ERROR: a guest
that ran yesterday must not be lost because today's limits are tighter.

So the driver says which operation is under way, and admission code asks
one question::

    from nova_gpu_ext.virt import operations

    operations.admit(instance, 'GPU 0000:81:00.0: 4 tenants > 3')

On a new claim (``spawn`` of a new server, unshelve, evacuate, the
destination of a cold or live migration or resize) that raises
:class:`Refused` (Nova reschedules the
build); on any other path it logs a WARNING saying the guest keeps what it
has, and returns ``False`` so the caller goes on as if admitted. Code that
needs the mode itself asks :func:`is_new_claim`.

The driver marks operations with the context managers :func:`new_claim`
(``spawn``, ``finish_migration``, ``pre_live_migration``) and
:func:`in_place` (``_hard_reboot``, which power on and resume after host
boot also run, and ``rescue``). Anything not marked counts as in place:
an unknown path never puts a guest in ERROR. A rebuild is a spawn; the
driver's ``rebuild`` hook says first whether it is an evacuation (a new
claim) or a rebuild in place (:func:`note_rebuild`); only the spawn of
that rebuild takes the mark, and ``cleanup`` drops one a failed rebuild
left (:func:`forget_rebuild`).

The marks are kept per instance UUID in this process (an instance is under
at most one operation on one compute at a time; several computes in one
process happen only in the functional harness, which runs one operation
per instance at a time too).
"""

import contextlib
import threading

from nova.compute import task_states
from nova.compute import vm_states
from nova import exception
from oslo_log import log as logging

LOG = logging.getLogger(__name__)


class Refused(exception.ComputeResourcesUnavailable):
    """A GPU placement rule cannot hold on this host (the build reschedules).
    """


#: Operations that make a new claim on this host.
NEW_CLAIM = 'new claim'
#: Operations that restart a guest in place with what it has.
IN_PLACE = 'in place'

_lock = threading.Lock()
# instance UUID -> list of (mode, operation name), innermost last
_marks = {}
# instance UUID -> True (evacuation) / False (rebuild in place)
_rebuilds = {}


def _uuid(instance):
    return instance if isinstance(instance, str) else instance.uuid


@contextlib.contextmanager
def _mark(instance, mode, operation):
    uuid = _uuid(instance)
    with _lock:
        _marks.setdefault(uuid, []).append((mode, operation))
    try:
        yield
    finally:
        with _lock:
            stack = _marks.get(uuid, [])
            if (mode, operation) in stack:
                stack.reverse()
                stack.remove((mode, operation))
                stack.reverse()
            if not stack:
                _marks.pop(uuid, None)


def new_claim(instance, operation):
    """Context: ``operation`` makes a new claim for ``instance`` here."""
    return _mark(instance, NEW_CLAIM, operation)


def in_place(instance, operation):
    """Context: ``operation`` restarts ``instance`` in place."""
    return _mark(instance, IN_PLACE, operation)


def current(instance):
    """``(mode, operation)`` under way for ``instance``; unmarked paths are
    ``(IN_PLACE, None)``."""
    with _lock:
        stack = _marks.get(_uuid(instance))
        return stack[-1] if stack else (IN_PLACE, None)


def is_new_claim(instance):
    """True while an operation that makes a new claim runs for it."""
    return current(instance)[0] == NEW_CLAIM


def is_in_place(instance):
    """True while a marked in-place restart runs for it (hard reboot...)."""
    mode, operation = current(instance)
    return mode == IN_PLACE and operation is not None


def admit(instance, reason):
    """A limit ``instance`` would exceed, said in ``reason``.

    On a new claim: raise ``Refused(reason)`` (the build reschedules).
    Otherwise: log a WARNING (the guest keeps what it has) and return
    ``False``. Callers go on as if admitted when this returns.
    """
    mode, operation = current(instance)
    if mode == NEW_CLAIM:
        raise Refused(reason=reason)
    LOG.warning('nova-gpu-ext: %s: the guest keeps what it has although '
                '%s (limits are checked only where a new claim is made)',
                operation or 'restart in place', reason, instance=instance)
    return False


def note_rebuild(instance, evacuate):
    """The driver's ``rebuild`` hook: the next spawn of ``instance`` is an
    evacuation (new claim) or a rebuild in place (keeps what it has)."""
    with _lock:
        _rebuilds[_uuid(instance)] = bool(evacuate)


#: Task states of a rebuild (or evacuation) from Nova's ``rebuild_instance``
#: to its spawn.
REBUILD_TASK_STATES = (task_states.REBUILDING,
                       task_states.REBUILD_BLOCK_DEVICE_MAPPING,
                       task_states.REBUILD_SPAWNING)


def forget_rebuild(instance):
    """Drop a rebuild mark that no spawn took (the rebuild failed before
    its spawn), unless that rebuild is still under way: called from the
    driver's ``cleanup``, which a rebuild in place runs before its spawn."""
    if getattr(instance, 'task_state', None) in REBUILD_TASK_STATES:
        return
    with _lock:
        _rebuilds.pop(_uuid(instance), None)


def spawn_operation(instance):
    """``(mode, name)`` for a spawn: a new server, an unshelve or an
    evacuation make a new claim, a rebuild in place does not.

    The rebuild mark counts only for the spawn of a rebuild (task state
    ``rebuild_spawning``): a rebuild that failed before its spawn leaves a
    mark no later spawn (an unshelve) may take for its own."""
    with _lock:
        evacuate = _rebuilds.pop(_uuid(instance), None)
    if getattr(instance, 'task_state', None) != \
            task_states.REBUILD_SPAWNING:
        evacuate = None
    if evacuate is False:
        return IN_PLACE, 'rebuild'
    if evacuate:
        return NEW_CLAIM, 'evacuate'
    if getattr(instance, 'task_state', None) == task_states.SPAWNING and \
            getattr(instance, 'vm_state', None) in (
                vm_states.SHELVED_OFFLOADED, vm_states.SHELVED):
        return NEW_CLAIM, 'unshelve'
    return NEW_CLAIM, 'spawn'


def spawning(instance):
    """Context for ``spawn``: marks it as :func:`spawn_operation` says."""
    mode, name = spawn_operation(instance)
    return _mark(instance, mode, name)


def evacuation_allocations(provider_tree, allocations, instance):
    """The allocations an evacuation's spawn may use here: those on this
    host's providers.

    While the failed source is down, the instance's consumer holds the
    source's allocations and the destination's (Nova removes the source's
    when the source compute starts again). Upstream's ``_allocate_mdevs``
    looks every VGPU provider up in this host's provider tree and fails on
    the source's ('Resource Provider ... is missing'), so an mdev guest
    could not be evacuated. Providers of another host can give nothing
    here: leave them out.
    """
    if not allocations or provider_tree is None:
        return allocations
    own = {rp: alloc for rp, alloc in allocations.items()
           if provider_tree.exists(rp)}
    if len(own) < len(allocations):
        LOG.info('nova-gpu-ext: evacuate: allocating devices from this '
                 "host's providers only, not from the source's %s",
                 sorted(set(allocations) - set(own)), instance=instance)
    return own


def hard_reboot_name(instance):
    """What a ``_hard_reboot`` is for, from the instance's task state."""
    return {
        task_states.REBOOT_STARTED_HARD: 'hard reboot',
        task_states.REBOOTING_HARD: 'hard reboot',
        task_states.REBOOT_PENDING_HARD: 'hard reboot',
        task_states.POWERING_ON: 'power on',
    }.get(getattr(instance, 'task_state', None),
          'resume after host boot')


def new_functions(before, after):
    """PCI functions (GPUs, VFs) in topology ``after`` not in ``before``."""
    def addresses(topology):
        return {str(g.address) for g in topology.gpus}
    return sorted(addresses(after) - addresses(before))
