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

* ``__init__``: our state (topology, render-node tracker, provider UUIDs).
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
  ``_hard_reboot``, ``rescue`` (in place): say which operation runs, so
  that admission refuses only new claims (:mod:`.operations`).
* ``pre_live_migration``, ``_live_migration_operation``,
  ``post_live_migration_at_destination``, ``post_live_migration_at_source``,
  ``rollback_live_migration_at_destination``: the destination's NUMA node
  and render node for the migrated guest (:mod:`.live_migration`).
* ``confirm_migration``, ``cleanup``: free the render node.
* ``_create_guest``: times a build's boot phases (``boot_telemetry``).
"""

import collections
import copy
import json

from nova.virt.libvirt import driver as libvirt_driver
from oslo_log import log as logging

from nova_gpu_ext import conf as gpu_conf
from nova_gpu_ext import host_facts
from nova_gpu_ext import request_inputs
from nova_gpu_ext import specs
from nova_gpu_ext.virt import boot_telemetry
from nova_gpu_ext.virt import domcaps
from nova_gpu_ext.virt import gpu_affinity
from nova_gpu_ext.virt import live_migration
from nova_gpu_ext.virt import numa_claim
from nova_gpu_ext.virt import operations
from nova_gpu_ext.virt import pci_traits
from nova_gpu_ext.virt import sharing_claim
from nova_gpu_ext.virt import tweaks

LOG = logging.getLogger(__name__)
CONF = gpu_conf.CONF

#: Trait on the compute node provider of every host that runs this driver.
DRIVER_TRAIT = 'CUSTOM_GPU_EXT'
#: Key of the host summary in ComputeNode.stats.
STATS_KEY = host_facts.STATS_KEY


class GPULibvirtDriver(libvirt_driver.LibvirtDriver):
    """The libvirt driver, with nova-gpu-ext's GPU placement and tweaks."""

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi, read_only=read_only)
        self._gpu_topology = None
        # Read once, like every option a service reads at start.
        # What the tweaks changed, per instance UUID, for the CLI and tests;
        # bounded so a long-running compute does not grow.
        self.guest_changes = collections.OrderedDict()
        self._sysfs_root = CONF.gpu_ext.sysfs_root
        self._dev_root = CONF.gpu_ext.dev_root
        # Render node per guest (restart: rebuilt from the domains' XML).
        self.render_nodes = gpu_affinity.RenderNodeTracker()
        # Placement provider UUID of each physical GPU, by PCI address,
        # from the last update_provider_tree (published in the stats so
        # the scheduler can map allocation candidates to GPUs).
        self._gpu_provider_uuids = {}
        # Shared GPUs claimed by builds in flight and guests (admission).
        self.sharing_claims = sharing_claim.SharingClaims()
        # Our traits survive Nova's PCI-in-placement translator.
        pci_traits.install()
        # GPU guests' NUMA cells are claimed by Nova's resource tracker.
        numa_claim.install()

    def gpu_numa_plan(self, claim):
        """How Nova's claim fits this guest's NUMA cells (or None)."""
        return numa_claim.plan(self, claim)

    # -- host facts ---------------------------------------------------------

    def _refresh_gpu_topology(self):
        """Discover the host again; never raises into nova-compute."""
        before = self._gpu_topology
        self._gpu_topology = host_facts.discover(
            self._sysfs_root, self._dev_root, previous=before)
        if before is not None and operations.new_functions(
                before, self._gpu_topology):
            # Upstream caches the PCI device list for the life of the
            # process (functools.cache): VFs created since would stay
            # invisible to Nova's PCI tracker.
            LOG.info('nova-gpu-ext: new PCI functions on the host (VFs '
                     'created?); reading the PCI devices from libvirt again')
            self._clear_pci_devices_cache()
        return self._gpu_topology

    @staticmethod
    def _clear_pci_devices_cache():
        libvirt_driver.LibvirtDriver._get_pci_passthrough_devices \
            .cache_clear()

    @property
    def gpu_topology(self):
        if self._gpu_topology is None:
            self._refresh_gpu_topology()
        return self._gpu_topology

    def init_host(self, host):
        super().init_host(host)
        topology = self._refresh_gpu_topology()
        LOG.info('nova-gpu-ext: %d GPU function(s), %d NUMA node(s), %d '
                 'render node(s) under %s', len(topology.gpus),
                 len(topology.numa_nodes), len(topology.render_nodes),
                 self._sysfs_root)
        self._recover_render_nodes()

    def process_instances_at_startup(self, context, instances):
        """Nova 34 hook, after init_host and before the guests are resumed:
        forget render nodes of guests no longer on this host (evacuated
        away, deleted), so resumed guests keep theirs within the limit."""
        instances = super().process_instances_at_startup(context, instances)
        self.render_nodes.retain(
            {i.uuid for i in instances if not i.deleted})
        # Residents' gpu:min_share_percent (issue 11).
        sharing_claim.recover_at_startup(self, instances)
        return instances

    def _recover_render_nodes(self):
        """Who uses which render node, from the defined domains."""
        try:
            guests = self._host.list_guests(only_running=False)
        except Exception:
            LOG.warning('Cannot list domains to recover render node usage')
            return
        for guest in guests:
            try:
                name = gpu_affinity.render_node_of(guest.get_xml_desc())
            except Exception:
                continue
            if name:
                self.render_nodes.record(guest.uuid, name)

    def _mdevs_in_use_by_parent(self):
        """Count of assigned mdevs per parent PCI address."""
        try:
            assigned = self._get_all_assigned_mediated_devices()
            if not assigned:
                return {}
            counts = {}
            for mdev in self._get_mediated_devices():
                if mdev['uuid'] in assigned:
                    key = gpu_affinity.libvirt_name_to_address(
                        mdev['parent'])
                    counts[key] = counts.get(key, 0) + 1
            return counts
        except Exception:
            LOG.debug('Cannot count mediated devices in use', exc_info=True)
            return {}

    def gpu_host_summary(self, topology):
        """The published summary plus what only the driver knows: provider
        UUIDs, mdevs in use per GPU, guests per render node."""
        summary = host_facts.host_summary(topology)
        # Devices in use per physical GPU (an mdev on its parent, on the PF
        # for SR-IOV vGPU; a VF on its PF), with the builds in flight.
        in_use = self.sharing_claims.in_use(self, topology)
        for entry in summary['gpus']:
            uuid = self._gpu_provider_uuids.get(entry['addr'])
            if uuid:
                entry['rp'] = uuid
            host_facts.add_vf_providers(entry, topology,
                                        self._gpu_provider_uuids)
            if 'mdev_types' in entry or entry.get('kind') == 'pf':
                entry['used'] = in_use.get(entry['addr'], 0)
            if 'mdev_types' in entry:
                # The type Nova allocates on this parent ([devices]).
                nova_type = sharing_claim.nova_vgpu_type(self, topology,
                                                         entry['addr'])
                if nova_type:
                    entry['type'] = nova_type
            min_share = self.sharing_claims.resident_min_share(entry['addr'])
            if min_share is not None:
                entry['min_share'] = min_share
        counts = self.render_nodes.counts()
        for render in summary['render_nodes']:
            render['guests'] = counts.get(render['name'], 0)
            render['present'] = domcaps.device_exists(self, render['path'])
        summary['gl'] = domcaps.host_gl(self)
        return summary

    def get_available_resource(self, nodename):
        data = super().get_available_resource(nodename)
        if CONF.gpu_ext.enabled:
            topology = self._refresh_gpu_topology()
            data.setdefault('stats', {})[STATS_KEY] = json.dumps(
                self.gpu_host_summary(topology), sort_keys=True,
                separators=(',', ':'))
        boot_telemetry.add_stats(self, data)
        return data

    def update_provider_tree(self, provider_tree, nodename, allocations=None):
        super().update_provider_tree(
            provider_tree, nodename, allocations=allocations)
        if not CONF.gpu_ext.enabled:
            provider_tree.remove_traits(nodename, DRIVER_TRAIT)
            return
        provider_tree.add_traits(nodename, DRIVER_TRAIT)
        gl_traits = domcaps.traits(domcaps.host_gl(self))
        provider_tree.remove_traits(nodename, *({domcaps.EGL_TRAIT} -
                                                gl_traits))
        provider_tree.add_traits(nodename, *gl_traits)
        self._gpu_provider_uuids = pci_traits.update_gpu_providers(
            provider_tree, self.gpu_topology, nodename)
        # Upstream keeps a private copy for spawn(); keep it in step.
        self.provider_tree = copy.deepcopy(provider_tree)

    # -- guest config -------------------------------------------------------

    def gpu_request(self, instance):
        """The flavor's ``gpu:`` request; bad entries are logged, ignored."""
        flavor = instance.flavor
        return specs.parse(
            flavor.extra_specs if flavor else {},
            on_error=lambda exc: LOG.warning(
                'Ignoring invalid flavor extra spec: %s', exc,
                instance=instance))

    def gpu_inputs(self, instance, request, image_meta=None):
        """The effective request: the flavor's bounds, narrowed (never
        widened) by the image and the ports (see
        :mod:`nova_gpu_ext.placement.inputs`)."""
        if image_meta is None:
            try:
                from nova import objects
                image_meta = objects.ImageMeta.from_instance(instance)
            except Exception:
                image_meta = None
        return request_inputs.resolve(
            instance.flavor.extra_specs if instance.flavor else {},
            image_meta, request_inputs.field(instance, 'pci_requests'),
            CONF.gpu_ext.numa_affinity_policy, request)

    def gpu_policy(self, instance, request, image_meta=None):
        """The NUMA affinity policy for this guest (see
        :func:`affinity.effective_policy` and :meth:`gpu_inputs`)."""
        return self.gpu_inputs(instance, request, image_meta).policy

    def _get_guest_config(self, instance, network_info, image_meta,
                          disk_info, *args, **kwargs):
        guest = super()._get_guest_config(
            instance, network_info, image_meta, disk_info, *args, **kwargs)
        if not CONF.gpu_ext.enabled:
            return guest
        request = self.gpu_request(instance)
        if not request.enabled:
            return guest
        topology = self.gpu_topology
        # A GPU guest has a GPU device (or a vGPU, a render node): a NIC
        # alias or a licence class alone keeps upstream's XML.
        gpu_guest = specs.gpu_guest(request, len(
            gpu_affinity.physical_gpu_addresses(self, guest, topology)))
        ctx = tweaks.TweakContext(
            instance=instance,
            request=request,
            libvirt_version=self._host.get_connection().getLibVersion(),
            qemu_version=self._host.get_connection().getVersion(),
            host=topology,
            settings=gpu_conf.tweak_settings(CONF),
            image_meta=image_meta,
            flavor=instance.flavor,
            gpu_guest=gpu_guest,
        )
        affinity_changes = []
        if request.wants_render_node:
            domcaps.check_render_node_host(self, instance)
        if gpu_guest:
            effective = self.gpu_inputs(instance, request, image_meta)
            policy = effective.policy
            for note in effective.ignored:
                LOG.warning('nova-gpu-ext: %s', note, instance=instance)
            affinity_changes = ['input: %s' % n for n in effective.notes]
            affinity_changes += gpu_affinity.apply(
                self, guest, instance, request,
                domcaps.with_present_render_nodes(self, ctx.host), policy,
                self.render_nodes, CONF.gpu_ext.render_node_max_guests)
            affinity_changes += self._check_sharing(guest, instance, request)
            for line in affinity_changes:
                LOG.info('nova-gpu-ext changed the domain: %s', line,
                         instance=instance)
        self.apply_tweaks(guest, ctx)
        self.guest_changes[instance.uuid] = (
            affinity_changes + self.guest_changes.get(instance.uuid, []))
        return guest

    def _check_sharing(self, guest, instance, request):
        """Claim the guest's shared GPUs (time-slice bound, min shares) or
        refuse the build so it reschedules (:mod:`sharing_claim`)."""
        from nova_gpu_ext.conf import sharing as sharing_conf
        return self.sharing_claims.admit(
            self, guest, instance, request,
            lambda type_name: sharing_conf.profile_for(CONF, type_name),
            request.placement or CONF.gpu_ext.sharing_default_placement)

    def _create_guest(self, context, xml, instance, *args, **kwargs):
        """Upstream's, with the boot phases of a build timed."""
        return boot_telemetry.create_guest(
            self, super()._create_guest, context, xml, instance, *args,
            **kwargs)

    # -- server operations: admit on a new claim, keep otherwise -------------
    # (nova_gpu_ext.virt.operations; Nova passes these arguments by
    # position or keyword, so they are passed through untouched)

    def spawn(self, context, instance, *args, **kwargs):
        with operations.spawning(instance):
            return super().spawn(context, instance, *args, **kwargs)

    def rebuild(self, context, instance, *args, evacuate=False, **kwargs):
        # Upstream's libvirt driver has no rebuild: Nova falls back to
        # destroy (in place) + spawn; say which one that spawn is.
        operations.note_rebuild(instance, evacuate)
        return super().rebuild(context, instance, *args, evacuate=evacuate,
                               **kwargs)

    def finish_migration(self, context, migration, instance, *args,
                         **kwargs):
        with operations.new_claim(instance, 'finish_migration'):
            return super().finish_migration(context, migration, instance,
                                            *args, **kwargs)

    def _hard_reboot(self, context, instance, *args, **kwargs):
        with operations.in_place(instance,
                                 operations.hard_reboot_name(instance)):
            return super()._hard_reboot(context, instance, *args, **kwargs)

    def rescue(self, context, instance, *args, **kwargs):
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
        if not CONF.gpu_ext.enabled:
            return migrate_data
        request = self.gpu_request(instance)
        if not request.is_gpu_guest:
            return migrate_data
        decision = live_migration.choose(
            self, instance, request, migrate_data, self.gpu_topology,
            self.gpu_policy(instance, request),
            CONF.gpu_ext.render_node_max_guests)
        live_migration.store(instance, decision)
        LOG.info('nova-gpu-ext: live migration destination chose %s',
                 decision or 'no binding', instance=instance)
        return migrate_data

    def post_live_migration_at_destination(self, context, instance,
                                           *args, **kwargs):
        try:
            return super().post_live_migration_at_destination(
                context, instance, *args, **kwargs)
        finally:
            live_migration.forget(context, instance)

    def post_live_migration_at_source(self, context, instance, *args,
                                      **kwargs):
        # Nova calls cleanup() on the source only for some migrations
        # (mdevs, unshared instance path...): free the render node here.
        try:
            return super().post_live_migration_at_source(
                context, instance, *args, **kwargs)
        finally:
            self.render_nodes.release(instance.uuid)

    def rollback_live_migration_at_destination(self, context, instance,
                                               *args, **kwargs):
        try:
            return super().rollback_live_migration_at_destination(
                context, instance, *args, **kwargs)
        finally:
            self.render_nodes.release(instance.uuid)
            live_migration.forget(context, instance)

    def _live_migration_operation(self, context, instance, dest,
                                  block_migration, migrate_data, guest,
                                  *args, **kwargs):
        """Source: send the XML with the destination's choices."""
        decision = live_migration.load(context, instance)
        if decision:
            LOG.info('nova-gpu-ext: migrating with the destination\'s render '
                     'node %s and NUMA node %s', decision.get('render_node'),
                     decision.get('numa_node'), instance=instance)
            guest = gpu_affinity.MigratingGuest(guest, decision)
        return super()._live_migration_operation(
            context, instance, dest, block_migration, migrate_data, guest,
            *args, **kwargs)

    def confirm_migration(self, context, migration, instance, network_info):
        """Source of a confirmed resize/migration: free its render node."""
        try:
            return super().confirm_migration(
                context, migration, instance, network_info)
        finally:
            if migration.source_compute != migration.dest_compute:
                self.render_nodes.release(instance.uuid)
                self.sharing_claims.release(instance.uuid)

    def cleanup(self, context, instance, *args, **kwargs):
        try:
            return super().cleanup(context, instance, *args, **kwargs)
        finally:
            # A hard reboot destroys the domain and defines it again: the
            # guest keeps its render node and its shared-GPU claim.
            if not operations.is_in_place(instance):
                self.render_nodes.release(instance.uuid)
                self.sharing_claims.release(instance.uuid)

    def apply_tweaks(self, guest, ctx):
        """Apply the selected tweaks; return the lines saying what changed."""
        available = tweaks.load_tweaks()
        enabled_names = gpu_conf.enabled_tweak_names(CONF)
        changes = []
        for tweak in tweaks.select(
                available, ctx, enabled_names,
                fast_boot_default=gpu_conf.fast_boot_default(CONF)):
            why_not = tweak.supported(ctx)
            if why_not:
                LOG.info('Domain tweak %s skipped: %s', tweak.name, why_not,
                         instance=ctx.instance)
                continue
            for line in tweak.apply(guest, ctx) or ():
                changes.append('%s: %s' % (tweak.name, line))
        for line in changes:
            LOG.info('nova-gpu-ext changed the domain: %s', line,
                     instance=ctx.instance)
        self.guest_changes[ctx.instance.uuid] = changes
        while len(self.guest_changes) > 256:
            self.guest_changes.popitem(last=False)
        return changes
