"""A GPU guest's domain: what nova-gpu-ext changes in the config upstream
built.

Layer rule: thin adapter (compute side). ``GPULibvirtDriver
._get_guest_config`` calls upstream, then :func:`change`: the flavor's
``gpu:`` request (narrowed by image and ports), NUMA affinity and the
render node (:mod:`.gpu_affinity`), sharing admission
(:mod:`.sharing_claim`; refused only on a new claim, see
:mod:`.operations`), then the selected domain tweaks. A guest that asks
for no GPU, or ``[gpu_ext] enabled = false``, keeps upstream's config.
"""

from oslo_log import log as logging
from nova import objects

from nova_gpu_ext import conf as gpu_conf
from nova_gpu_ext.nova_glue import request_inputs
from nova_gpu_ext.core import spec as specs
from nova_gpu_ext.virt import domcaps
from nova_gpu_ext.virt import gpu_affinity
from nova_gpu_ext.virt import host_report
from nova_gpu_ext.virt import operations
from nova_gpu_ext.virt import guest_devices
from nova_gpu_ext.virt import tweaks

LOG = logging.getLogger(__name__)
CONF = gpu_conf.CONF

#: Most instances whose changes ``guest_changes`` remembers.
GUEST_CHANGES_KEPT = 256


def changes_of(driver, instance_uuid):
    """What our code changed in a guest's domain on ``driver`` (the CLI,
    the demo and tests read it; the driver keeps it private)."""
    return list(getattr(driver, '_gpu_guest_changes', {}).get(
        instance_uuid, []))


def gpu_request(instance):
    """The flavor's ``gpu:`` request; bad entries are logged, ignored."""
    return request_inputs.flavor_request(
        instance, instance.flavor,
        on_error=lambda exc: LOG.warning(
            'Ignoring invalid flavor extra spec: %s', exc,
            instance=instance))


def gpu_inputs(instance, request, image_meta=None):
    """The effective request: the flavor's bounds, narrowed (never widened)
    by the image and the ports (see :mod:`nova_gpu_ext.core.inputs`)."""
    if image_meta is None:
        try:
            image_meta = objects.ImageMeta.from_instance(instance)
        except Exception:
            image_meta = None
    return request_inputs.resolve(
        instance.flavor.extra_specs if instance.flavor else {},
        image_meta, request_inputs.field(instance, 'pci_requests'),
        CONF.gpu_ext.numa_affinity_policy, request)


def change(driver, guest, instance, image_meta):
    """Change ``guest`` (upstream's ``LibvirtConfigGuest``) for a candidate
    of :mod:`.gate`; return it."""
    if not CONF.gpu_ext.enabled:
        return guest
    request = driver._gpu_request(instance)
    if not request.enabled:
        return guest
    topology = driver._gpu_host_topology
    # A GPU guest has a GPU device (or a vGPU, a render node): a NIC alias
    # or a licence class alone keeps upstream's XML.
    gpu_devices = len(
        guest_devices.physical_gpu_addresses(driver, guest, topology))
    gpu_guest = specs.gpu_guest(request, gpu_devices)
    _say_no_effect(instance, request, gpu_devices)
    ctx = tweaks.TweakContext(
        instance=instance,
        request=request,
        host=topology,
        settings=gpu_conf.tweak_settings(CONF),
        image_meta=image_meta,
        flavor=instance.flavor,
        gpu_guest=gpu_guest,
    )
    if not gpu_guest and not request.wants_render_node and \
            not _selected(ctx):
        # Nothing of ours applies: upstream's config, no libvirt question.
        return guest
    ctx.libvirt_version, ctx.qemu_version = host_report.versions(driver)
    affinity_changes = []
    if request.wants_render_node:
        domcaps.check_render_node_host(driver, instance)
    if gpu_guest:
        effective = driver._gpu_inputs(instance, request, image_meta)
        for note in effective.ignored:
            LOG.warning('nova-gpu-ext: %s', note, instance=instance)
        affinity_changes = ['input: %s' % n for n in effective.notes]
        affinity_changes += gpu_affinity.apply(
            driver, guest, instance, request,
            domcaps.with_present_render_nodes(driver, ctx.host),
            effective.policy, driver._render_nodes,
            CONF.gpu_ext.render_node_max_guests)
        affinity_changes += driver._check_sharing(guest, instance, request)
        for line in affinity_changes:
            LOG.info('nova-gpu-ext changed the domain: %s', line,
                     instance=instance)
    driver._apply_tweaks(guest, ctx)
    driver._gpu_guest_changes[instance.uuid] = (
        affinity_changes + driver._gpu_guest_changes.get(instance.uuid, []))
    return guest


def _selected(ctx):
    return tweaks.select(tweaks.load_tweaks(), ctx,
                         gpu_conf.enabled_tweak_names(CONF),
                         fast_boot_default=gpu_conf.fast_boot_default(CONF))


def _say_no_effect(instance, request, gpu_devices):
    """Once per build (its spawn): the flavor's ``gpu:`` keys that can do
    nothing for this guest (no GPU device, no render node)."""
    keys = specs.no_effect_keys(request, gpu_devices)
    if keys and operations.current(instance)[1] == 'spawn':
        LOG.info('nova-gpu-ext: %s had no effect: the guest has no GPU '
                 'device and no render node', ', '.join(
                     '%s=%s' % (k, instance.flavor.extra_specs[k])
                     for k in keys), instance=instance)


def apply_tweaks(driver, guest, ctx):
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
    driver._gpu_guest_changes[ctx.instance.uuid] = changes
    while len(driver._gpu_guest_changes) > GUEST_CHANGES_KEPT:
        driver._gpu_guest_changes.popitem(last=False)
    return changes
