"""Live migration of GPU guests: the destination's choice, carried to the
source in a field of our own.

Layer rule: adapter. The destination decides in ``pre_live_migration``
(after upstream chose its devices: ``target_mdevs`` for vGPUs, the PCI
claim's ``pci_dev_map_src_dst`` for passthrough GPUs and VFs) the NUMA
node to bind the guest to (the node of its destination GPU, as on a first
boot) and, for render-node guests, its render node; the source writes both
into the XML it sends (``<numatune>``, ``<vcpu cpuset>``, ``<gl
rendernode>``).

How the decision travels. ``LibvirtLiveMigrateData`` is a versioned object
with no free-form field, and every field it has means something to Nova:
``target_mdevs`` makes Nova treat the migration as one with mdevs (the
source then cleans up the instance directory even on shared storage);
``pci_dev_map_src_dst`` raises on an address that is not in the XML. So
the destination stores the decision in the instance's
``system_metadata`` under :data:`SYSMETA_KEY` (a string of at most 255
characters, JSON) and saves the instance; the source reads it back from
the database in ``_live_migration_operation``; the destination removes it
in ``post_live_migration_at_destination`` and
``rollback_live_migration_at_destination``. Nova ignores system metadata
keys it does not know, and neither Nova's object versions nor its RPC
change.

``dst_cpu_shared_set_info`` is only ever narrowed to a non-empty set:
an empty set makes Nova remove the guest's ``<vcpu cpuset>`` (for a host
without ``cpu_shared_set``), so a guest would float over dedicated CPUs.
When the chosen node has none of the destination's shared CPUs, the guest
is not bound (``preferred``) or the migration is refused (``required``).
"""

import json

from nova import objects
from oslo_log import log as logging
from nova.virt.libvirt import utils as libvirt_utils

from nova_gpu_ext.core import numa
from nova_gpu_ext.core import affinity
from nova_gpu_ext.virt import gate
from nova_gpu_ext.virt import gpu_affinity
from nova_gpu_ext.virt import guest_devices
from nova_gpu_ext.virt import operations

LOG = logging.getLogger(__name__)

#: instance.system_metadata key of the destination's decision
SYSMETA_KEY = 'gpu_ext_live_migration'


def at_destination(driver, instance, migrate_data, render_limit):
    """``pre_live_migration`` on the destination, after upstream (for a
    candidate of :mod:`.gate` only): choose and store this host's NUMA node
    and render node for a GPU guest."""
    request = driver._gpu_request(instance)
    if not request.is_gpu_guest:
        return
    decision = choose(driver, instance, request, migrate_data,
                      driver._gpu_host_topology,
                      driver._gpu_policy(instance, request), render_limit)
    store(instance, decision)
    LOG.info('nova-gpu-ext: live migration destination chose %s',
             decision or 'no binding', instance=instance)


def source_guest(context, instance, guest):
    """``_live_migration_operation`` on the source: the guest whose
    migratable XML carries the destination's choices (or ``guest``)."""
    decision = load(context, instance)
    if not decision:
        return guest
    LOG.info('nova-gpu-ext: migrating with the destination\'s render node '
             '%s and NUMA node %s', decision.get('render_node'),
             decision.get('numa_node'), instance=instance)
    return gpu_affinity.MigratingGuest(guest, decision)


def destination_gpus(driver, migrate_data, topology):
    """The destination's physical GPUs (PCI addresses) the guest gets."""
    out = []
    mdevs = (migrate_data.target_mdevs or {}) if (
        'target_mdevs' in migrate_data) else {}
    for mdev in mdevs.values():
        try:
            info = driver._get_mediated_device_information(
                libvirt_utils.mdev_uuid2name(mdev))
            out.append(guest_devices.libvirt_name_to_address(info['parent']))
        except Exception:
            LOG.warning('Cannot tell the parent GPU of mdev %s', mdev)
    pci = (migrate_data.pci_dev_map_src_dst or {}) if (
        'pci_dev_map_src_dst' in migrate_data) else {}
    out.extend(pci.values())
    gpus = []
    for address in out:
        gpu = topology.physical_gpu(address)
        if gpu is not None and str(gpu.address) not in gpus:
            gpus.append(str(gpu.address))
    return gpus


def choose(driver, instance, request, migrate_data, topology, policy,
           render_limit):
    """The destination's decision (dict of strings, may be empty); narrows
    ``migrate_data.dst_cpu_shared_set_info`` to the chosen node. Raises
    ``Refused`` when a rule cannot hold here (the migration rolls back)."""
    with operations.new_claim(instance, 'live migration'):
        return _choose(driver, instance, request, migrate_data, topology,
                       policy, render_limit)


def _choose(driver, instance, request, migrate_data, topology, policy,
            render_limit):
    if gate.field(instance, 'numa_topology'):
        # Nova moves a NUMA guest's cells itself (dst_numa_info); the
        # render node is all we choose.
        node, mode = None, None
    else:
        node, mode = _gpu_node(driver, instance, migrate_data, topology,
                               policy)
    render_path = None
    if request.wants_render_node:
        needs = affinity.GuestNeeds(instance.flavor.vcpus,
                                    instance.flavor.memory_mb, policy)
        choice = driver._render_nodes.claim(
            instance.uuid, topology, needs, render_limit, only_node=node)
        if not choice.ok:
            operations.admit(instance, 'render node: %s' % choice.reason)
        else:
            render_path = choice.render.path
            if node is None and choice.node is not None and \
                    numa.binding_mode(policy) is not None and \
                    not gate.field(instance, 'numa_topology'):
                node, mode = choice.node, numa.binding_mode(policy)
    cpus = set()
    if node is not None:
        shared = (migrate_data.dst_cpu_shared_set_info
                  if 'dst_cpu_shared_set_info' in migrate_data else None)
        cpus = gpu_affinity.usable_node_cpus(topology, node, shared, mode,
                                             instance)
        if not cpus:
            node = None
        else:
            migrate_data.dst_cpu_shared_set_info = cpus
    decision = gpu_affinity.encode_migration(render_path, node, cpus, mode)
    if gate.field(instance, 'numa_topology') or not topology.gpus:
        # Nova's <numatune> of the guest's cells stays; a host where we
        # know no GPU decides nothing (no binding of ours to undo).
        decision.pop(gpu_affinity.MIGRATE_PREFIX + 'unbind', None)
    return decision


def _gpu_node(driver, instance, migrate_data, topology, policy):
    """(node, mode) for the guest's destination GPU, or (None, None)."""
    gpus = destination_gpus(driver, migrate_data, topology)
    if not gpus:
        return None, None
    first = topology.gpu(gpus[0])
    needs = affinity.GuestNeeds(instance.flavor.vcpus,
                                instance.flavor.memory_mb, policy)
    choice = affinity.choose_node(
        needs, affinity.GPUSlot(gpus[0], first.numa_node, first.socket),
        gpu_affinity.node_capacities(topology))
    if not choice.ok:
        operations.admit(instance, choice.reason)
        return None, None
    return choice.node, choice.binding


def store(instance, decision):
    """Destination: keep the decision for the source (instance saved)."""
    if not decision:
        return
    text = json.dumps({k[len(gpu_affinity.MIGRATE_PREFIX):]: v
                       for k, v in decision.items()}, sort_keys=True,
                      separators=(',', ':'))
    if len(text) > 255:
        # Wider than a system metadata value: keep the node, drop the CPU
        # list (the source then keeps Nova's dst_cpu_shared_set_info).
        decision = {k: v for k, v in decision.items()
                    if not k.endswith('cpuset')}
        return store(instance, decision)
    instance.system_metadata[SYSMETA_KEY] = text
    instance.save()


def load(context, instance):
    """Source: the destination's decision (``{}`` when none)."""
    try:
        fresh = objects.Instance.get_by_uuid(
            context, instance.uuid, expected_attrs=['system_metadata'])
        text = fresh.system_metadata.get(SYSMETA_KEY)
        return json.loads(text) if text else {}
    except Exception:
        LOG.warning('Cannot read the destination\'s GPU decision; the guest '
                    'migrates with the source\'s binding', instance=instance,
                    exc_info=True)
        return {}


def forget(context, instance):
    """Destination, after the migration or its rollback. The instance Nova
    passes here may be the source's copy (without the key): the stored one
    is removed. Called for candidates of :mod:`.gate` only."""
    try:
        sysmeta = gate.field(instance, 'system_metadata')
        if sysmeta is not None:
            sysmeta.pop(SYSMETA_KEY, None)
        fresh = objects.Instance.get_by_uuid(
            context, instance.uuid, expected_attrs=['system_metadata'])
        if fresh.system_metadata.pop(SYSMETA_KEY, None) is not None:
            fresh.save()
    except Exception:
        LOG.warning('Cannot remove %s from the instance\'s system metadata',
                    SYSMETA_KEY, instance=instance, exc_info=True)
