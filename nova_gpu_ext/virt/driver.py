"""``GPULibvirtDriver``: Nova's libvirt driver with GPU awareness.

Layer rule: thin adapter. This class overrides as few (private) hooks of
``LibvirtDriver`` as it can; it asks the pure core for decisions and applies
them through the domain tweak plugins. The drop-in rule holds everywhere:
for a guest that asks for no GPU, or with ``[gpu_ext] enabled = false``, or
a flavor with ``gpu:enabled=false``, every method returns exactly what the
upstream driver returns.

Methods of ``LibvirtDriver`` this class overrides (every one is listed in
doc/source/reference/nova-internals.rst and its signature is pinned by
tests/unit/test_nova_signatures.py, which also checks this list):

* ``__init__``: our state (topology, render-node tracker, provider UUIDs);
  in native threading mode, our ``Host``'s libvirt events are queued for
  a thread of ours (:mod:`nova_gpu_ext.nova_glue.libvirt_events`).
* ``init_host``: discovers the host, recovers render-node use from the
  defined domains.
* ``process_instances_at_startup`` (Nova 34): forgets render nodes of
  guests that are not on this host any more, before guests are resumed,
  and recovers the residents' minimum GPU shares (``sharing_claim``).
* ``get_available_resource``: adds a compact host summary to the compute
  node ``stats`` (``gpu_ext``), which the scheduler reads as
  ``HostState.stats``.
* ``update_provider_tree``: tags the compute node provider with
  ``CUSTOM_GPU_EXT`` and each physical GPU provider with its NUMA node and
  socket traits (and health traits, see ``topology/health.py``).
* ``_get_guest_config``: upstream builds the guest config, then affinity,
  render node, sharing admission and the selected tweaks change it.
* ``spawn``, ``rebuild``, ``finish_migration`` (new claims) and
  ``_hard_reboot``, ``rescue``, ``finish_revert_migration`` (in place):
  say which operation runs, so that admission refuses only new claims
  (:mod:`.operations`); the spawn of an evacuation allocates mdevs from
  this host's providers only.
* ``pre_live_migration``, ``_live_migration_operation``,
  ``post_live_migration_at_destination``, ``post_live_migration_at_source``,
  ``rollback_live_migration_at_destination``: the destination's NUMA node
  and render node for the migrated guest (:mod:`.live_migration`).
* ``confirm_migration``, ``cleanup``: free the render node (``cleanup``
  also drops the mark of a rebuild that failed before its spawn).
* ``_create_guest``: times a build's boot phases (``boot_telemetry``).

Every override first asks :func:`.gate.is_candidate` (from what Nova
passed in, never a lazy load or a call) and, for a guest that is not a GPU
guest, runs upstream's code only; errors of ours are logged and upstream's
result stands (:func:`.gate.guarded`). The class adds no public attribute
to ``LibvirtDriver``'s: its helpers and books are private.

Each override is a few lines that delegate by concern: host facts and what
the compute reports (:mod:`.host_report`), startup recovery
(:mod:`.startup`), the guest config (:mod:`.guest_config`), operations
(:mod:`.operations`), live migration (:mod:`.live_migration`).
"""

import collections

from nova.virt.libvirt import driver as libvirt_driver
from oslo_log import log as logging

from nova_gpu_ext import conf as gpu_conf
from nova_gpu_ext.nova_glue import libvirt_events
from nova_gpu_ext.nova_glue import wraps
from nova_gpu_ext.virt import boot_telemetry
from nova_gpu_ext.virt import domcaps
from nova_gpu_ext.virt import gate
from nova_gpu_ext.virt import gpu_affinity
from nova_gpu_ext.virt import guest_config
from nova_gpu_ext.virt import host_report
from nova_gpu_ext.virt import live_migration
from nova_gpu_ext.virt import numa_claim
from nova_gpu_ext.virt import operations
from nova_gpu_ext.virt import pci_traits
from nova_gpu_ext.virt import sharing_claim
from nova_gpu_ext.virt import startup
from nova_gpu_ext.conf import sharing as sharing_conf

LOG = logging.getLogger(__name__)
CONF = gpu_conf.CONF

#: Trait on the compute node provider of every host that runs this driver.
DRIVER_TRAIT = host_report.DRIVER_TRAIT
#: Key of the host summary in ComputeNode.stats.
STATS_KEY = host_report.STATS_KEY


class GPULibvirtDriver(libvirt_driver.LibvirtDriver):
    """The libvirt driver, with nova-gpu-ext's GPU placement and tweaks."""

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi, read_only=read_only)
        self._gpu_topology = None
        # What the tweaks changed, per instance UUID, for the CLI and tests;
        # bounded so a long-running compute does not grow.
        self._gpu_guest_changes = collections.OrderedDict()
        # Read once, like every option a service reads at start.
        self._sysfs_root = CONF.gpu_ext.sysfs_root
        self._dev_root = CONF.gpu_ext.dev_root
        # Render node per guest (restart: rebuilt from the domains' XML).
        self._render_nodes = gpu_affinity.RenderNodeTracker()
        # Placement provider UUID of each physical GPU, by PCI address,
        # from the last update_provider_tree (published in the stats so
        # the scheduler can map allocation candidates to GPUs).
        self._gpu_provider_uuids = {}
        # Shared GPUs claimed by builds in flight and guests (admission).
        self._sharing_claims = sharing_claim.SharingClaims()
        # libvirt's and QEMU's versions, and the host's GL facts, asked
        # once and only when a GPU guest needs them.
        self._gpu_versions = None
        self._gpu_gl = domcaps.NOT_READ
        # Our traits survive Nova's PCI-in-placement translator, and GPU
        # guests' NUMA cells are claimed by Nova's resource tracker with
        # the steered fit: the compute's wraps of Nova internals.
        wraps.install_compute(pci_traits.reapply,
                              numa_claim.test_numa_topology)
        # libvirt's events leave libvirt's event loop at once (native
        # threading mode): the RabbitMQ wedge of issue 21.
        if libvirt_events.wanted(CONF):
            wraps.install_event_handler(getattr(self, '_host', None))

    def _gpu_numa_plan(self, claim):
        """How Nova's claim fits this guest's NUMA cells (or None); looked
        up by name by :mod:`.numa_claim`'s wrap of Nova's claim."""
        if not gate.is_candidate(claim.instance,
                                 flavor=getattr(claim, 'flavor', None)):
            return None
        return numa_claim.plan(self, claim)

    # -- host facts and startup (host_report, startup) -----------------------

    def _refresh_gpu_topology(self):
        """Discover the host again; never raises into nova-compute."""
        return host_report.refresh_topology(self)

    @staticmethod
    def _clear_pci_devices_cache():
        host_report.clear_pci_devices_cache()

    @property
    def _gpu_host_topology(self):
        if self._gpu_topology is None:
            self._refresh_gpu_topology()
        return self._gpu_topology

    def _gpu_host_has_gpus(self):
        """Does this host have anything of ours (GPUs, render nodes)?"""
        topology = self._gpu_host_topology
        return bool(topology.gpus or topology.render_nodes)

    def init_host(self, host):
        super().init_host(host)
        if not CONF.gpu_ext.enabled:
            return
        gate.guarded('startup', None, None, self._gpu_init_host)

    def _gpu_init_host(self):
        startup.log_host(self._refresh_gpu_topology(), self._sysfs_root)
        # A host with no GPU has no render node in use: no domain to read.
        if self._gpu_host_has_gpus():
            self._recover_render_nodes()

    def process_instances_at_startup(self, context, instances):
        """Nova 34 hook, after init_host and before the guests are resumed:
        forget render nodes of guests no longer on this host (evacuated
        away, deleted), so resumed guests keep theirs within the limit, and
        recover the residents' minimum GPU shares (:mod:`.startup`)."""
        instances = super().process_instances_at_startup(context, instances)
        if CONF.gpu_ext.enabled and self._gpu_topology is not None and \
                self._gpu_host_has_gpus():
            gate.guarded('startup recovery', None, None,
                         startup.keep_instances, self, instances)
        return instances

    def _recover_render_nodes(self):
        """Who uses which render node, from the defined domains."""
        startup.recover_render_nodes(self)

    def _mdevs_in_use_by_parent(self):
        """Count of assigned mdevs per parent PCI address."""
        return host_report.mdevs_in_use_by_parent(self)

    def _gpu_host_summary(self, topology):
        """The published summary plus what only the driver knows: provider
        UUIDs, mdevs in use per GPU, guests per render node."""
        return host_report.host_summary(self, topology)

    def get_available_resource(self, nodename):
        data = super().get_available_resource(nodename)
        if CONF.gpu_ext.enabled:
            gate.guarded('host summary', None, None,
                         host_report.add_stats, self, data)
        boot_telemetry.add_stats(self, data)
        return data

    def update_provider_tree(self, provider_tree, nodename, allocations=None):
        super().update_provider_tree(
            provider_tree, nodename, allocations=allocations)
        gate.guarded('provider traits', None, None,
                     host_report.update_provider_tree, self, provider_tree,
                     nodename, CONF.gpu_ext.enabled)

    # -- guest config (guest_config) ------------------------------------------

    def _gpu_request(self, instance):
        """The flavor's ``gpu:`` request; bad entries are logged, ignored."""
        return guest_config.gpu_request(instance)

    def _gpu_inputs(self, instance, request, image_meta=None):
        """The effective request: the flavor's bounds, narrowed (never
        widened) by the image and the ports (see
        :mod:`nova_gpu_ext.core.inputs`)."""
        return guest_config.gpu_inputs(instance, request, image_meta)

    def _gpu_policy(self, instance, request, image_meta=None):
        """The NUMA affinity policy for this guest (see
        :func:`affinity.effective_policy` and :meth:`_gpu_inputs`)."""
        return self._gpu_inputs(instance, request, image_meta).policy

    def _get_guest_config(self, instance, network_info, image_meta,
                          disk_info, *args, **kwargs):
        guest = super()._get_guest_config(
            instance, network_info, image_meta, disk_info, *args, **kwargs)
        # _get_guest_xml passes everything by position: rescue,
        # block_device_info, context, mdevs, ...
        mdevs = kwargs.get('mdevs', args[3] if len(args) > 3 else None)
        if not gate.is_candidate(instance, mdevs=mdevs):
            return guest
        return gate.guarded('guest config', instance, guest,
                            guest_config.change, self, guest, instance,
                            image_meta)

    def _check_sharing(self, guest, instance, request):
        """Claim the guest's shared GPUs (time-slice bound, min shares) or
        refuse the build so it reschedules (:mod:`sharing_claim`)."""
        return self._sharing_claims.admit(
            self, guest, instance, request,
            lambda type_name: sharing_conf.profile_for(CONF, type_name),
            request.placement or CONF.gpu_ext.sharing_default_placement)

    def _create_guest(self, context, xml, instance, *args, **kwargs):
        """Upstream's, with the boot phases of a build timed."""
        return boot_telemetry.create_guest(
            self, super()._create_guest, context, xml, instance, *args,
            **kwargs)

    def _apply_tweaks(self, guest, ctx):
        """Apply the selected tweaks; return the lines saying what changed."""
        return guest_config.apply_tweaks(self, guest, ctx)

    # -- server operations: admit on a new claim, keep otherwise -------------
    # (nova_gpu_ext.virt.operations; Nova passes these arguments by
    # position or keyword, so they are passed through untouched)

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, *args, **kwargs):
        if not gate.is_candidate(instance):
            return super().spawn(context, instance, image_meta,
                                 injected_files, admin_password, allocations,
                                 *args, **kwargs)
        with operations.spawning(instance):
            if operations.current(instance)[1] == 'evacuate':
                allocations = gate.guarded(
                    'evacuation allocations', instance, allocations,
                    operations.evacuation_allocations, self.provider_tree,
                    allocations, instance)
            return super().spawn(context, instance, image_meta,
                                 injected_files, admin_password, allocations,
                                 *args, **kwargs)

    def rebuild(self, context, instance, *args, evacuate=False, **kwargs):
        # Upstream's libvirt driver has no rebuild: Nova falls back to
        # destroy (in place) + spawn; say which one that spawn is.
        if gate.is_candidate(instance):
            operations.note_rebuild(instance, evacuate)
        return super().rebuild(context, instance, *args, evacuate=evacuate,
                               **kwargs)

    def finish_migration(self, context, migration, instance, *args,
                         **kwargs):
        if not gate.is_candidate(instance):
            return super().finish_migration(context, migration, instance,
                                            *args, **kwargs)
        with operations.new_claim(instance, 'finish_migration'):
            return super().finish_migration(context, migration, instance,
                                            *args, **kwargs)

    def finish_revert_migration(self, context, instance, *args, **kwargs):
        # The source restarts the guest with what it had here (render node
        # and shared-GPU claim are kept until confirm_migration).
        if not gate.is_candidate(instance):
            return super().finish_revert_migration(context, instance, *args,
                                                   **kwargs)
        with operations.in_place(instance, 'revert resize'):
            return super().finish_revert_migration(context, instance, *args,
                                                   **kwargs)

    def _hard_reboot(self, context, instance, *args, **kwargs):
        if not gate.is_candidate(instance):
            return super()._hard_reboot(context, instance, *args, **kwargs)
        with operations.in_place(instance,
                                 operations.hard_reboot_name(instance)):
            return super()._hard_reboot(context, instance, *args, **kwargs)

    def rescue(self, context, instance, *args, **kwargs):
        if not gate.is_candidate(instance):
            return super().rescue(context, instance, *args, **kwargs)
        with operations.in_place(instance, 'rescue'):
            return super().rescue(context, instance, *args, **kwargs)

    # -- live migration -----------------------------------------------------

    def pre_live_migration(self, context, instance, block_device_info,
                           network_info, disk_info, migrate_data):
        """Destination: choose this host's NUMA node and render node for
        the GPU guest (see :mod:`nova_gpu_ext.virt.live_migration`)."""
        migrate_data = super().pre_live_migration(
            context, instance, block_device_info, network_info, disk_info,
            migrate_data)
        if gate.is_candidate(instance):
            gate.guarded('live migration destination', instance, None,
                         live_migration.at_destination, self, instance,
                         migrate_data, CONF.gpu_ext.render_node_max_guests)
        return migrate_data

    def post_live_migration_at_destination(self, context, instance,
                                           *args, **kwargs):
        try:
            return super().post_live_migration_at_destination(
                context, instance, *args, **kwargs)
        finally:
            if gate.is_candidate(instance):
                gate.guarded('forget the live migration', instance, None,
                             live_migration.forget, context, instance)

    def post_live_migration_at_source(self, context, instance, *args,
                                      **kwargs):
        # Nova calls cleanup() on the source only for some migrations
        # (mdevs, unshared instance path...): free the render node here.
        try:
            return super().post_live_migration_at_source(
                context, instance, *args, **kwargs)
        finally:
            self._render_nodes.release(gate.uuid_of(instance))

    def rollback_live_migration_at_destination(self, context, instance,
                                               *args, **kwargs):
        try:
            return super().rollback_live_migration_at_destination(
                context, instance, *args, **kwargs)
        finally:
            self._render_nodes.release(gate.uuid_of(instance))
            if gate.is_candidate(instance):
                gate.guarded('forget the live migration', instance, None,
                             live_migration.forget, context, instance)

    def _live_migration_operation(self, context, instance, dest,
                                  block_migration, migrate_data, guest,
                                  *args, **kwargs):
        """Source: send the XML with the destination's choices."""
        if gate.is_candidate(instance):
            guest = gate.guarded('live migration source', instance, guest,
                                 live_migration.source_guest, context,
                                 instance, guest)
        return super()._live_migration_operation(
            context, instance, dest, block_migration, migrate_data, guest,
            *args, **kwargs)

    def confirm_migration(self, context, migration, instance, network_info):
        """Source of a confirmed resize/migration: free its render node."""
        try:
            return super().confirm_migration(
                context, migration, instance, network_info)
        finally:
            uuid = gate.uuid_of(instance)
            if self._gpu_holds(uuid) and \
                    gate.field(migration, 'source_compute') != \
                    gate.field(migration, 'dest_compute'):
                self._gpu_release(uuid)

    def cleanup(self, context, instance, *args, **kwargs):
        try:
            return super().cleanup(context, instance, *args, **kwargs)
        finally:
            uuid = gate.uuid_of(instance)
            boot_telemetry.stop_watch(uuid)
            # A hard reboot destroys the domain and defines it again: the
            # guest keeps its render node and its shared-GPU claim.
            if self._gpu_holds(uuid) and not operations.is_in_place(uuid):
                self._gpu_release(uuid)
            operations.forget_rebuild(instance)

    def _gpu_holds(self, uuid):
        """Do our books hold anything of this guest (a dict lookup)?"""
        return uuid is not None and (
            self._render_nodes.of(uuid) is not None or
            self._sharing_claims.holds(uuid))

    def _gpu_release(self, uuid):
        self._render_nodes.release(uuid)
        self._sharing_claims.release(uuid)
