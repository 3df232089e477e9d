"""GPUAddressSpaceFilter: refuse a host that cannot address a guest's BARs.

Layer rule: adapter. Rebuilds the large-BAR computation's input from the
request (PCI devices asked for, RAM, the image's firmware and machine type,
``hw:maxphysaddr_*``) and from what the host published (each GPU's 64-bit
window in ``bar64``, its CPU/IOMMU bits and 1 GiB pages in ``addr``), calls
:func:`nova_gpu_ext.core.address_space.plan` as the compute's ``large_bar``
tweak does, and logs the refusal at INFO. Which GPUs the guest will get is
not known yet: the host's largest ones are assumed (a host that passes can
give any of its GPUs). Hosts that publish no limits pass.

Enable with ``available_filters = nova_gpu_ext.scheduler.address_filter.
GPUAddressSpaceFilter`` and add ``GPUAddressSpaceFilter`` to
``enabled_filters``.
"""

from nova.scheduler import filters
from oslo_log import log as logging

from nova_gpu_ext import conf as gpu_conf
from nova_gpu_ext import model
from nova_gpu_ext.nova_glue import request_inputs
from nova_gpu_ext.core import address_space as core
from nova_gpu_ext.scheduler import request as sched_request

LOG = logging.getLogger(__name__)
CONF = gpu_conf.CONF
MiB = 1 << 20


def requested_devices(spec_obj) -> int:
    pci = request_inputs.field(spec_obj, 'pci_requests')
    requests = getattr(pci, 'requests', None) or []
    return sum(int(getattr(r, 'count', 0) or 0) for r in requests)


def image_prop(spec_obj, name):
    image = request_inputs.field(spec_obj, 'image')
    props = getattr(image, 'properties', None)
    try:
        return props.get(name) if props is not None else None
    except Exception:
        return None


def shape_of(spec_obj) -> core.GuestShape:
    flavor = spec_obj.flavor
    firmware = image_prop(spec_obj, 'hw_firmware_type')
    machine = image_prop(spec_obj, 'hw_machine_type') or 'q35'
    return core.GuestShape(
        ram=int(flavor.memory_mb) * MiB,
        firmware=core.Firmware.OVMF if firmware == 'uefi'
        else core.Firmware.SEABIOS,
        machine=core.Machine.Q35 if 'q35' in machine else core.Machine.PC)


def operator_setting(spec_obj):
    """(bits, passthrough) from ``hw:maxphysaddr_*`` or the image."""
    specs = getattr(spec_obj.flavor, 'extra_specs', None) or {}
    mode = specs.get('hw:maxphysaddr_mode') or image_prop(
        spec_obj, 'hw_maxphysaddr_mode')
    bits = specs.get('hw:maxphysaddr_bits') or image_prop(
        spec_obj, 'hw_maxphysaddr_bits')
    if not mode:
        return None, False
    return (int(bits) if bits else None), mode == 'passthrough'


def host_plan(summary, spec_obj, count):
    """The plan for ``count`` of the host's largest GPUs, or None."""
    limits = summary.address_limits
    if not limits:
        return None
    windows = sorted((g.bar64 or 0 for g in summary.gpus),
                     reverse=True)[:count]
    devices = [core.GuestDevice('gpu%d' % i, (
        model.BAR(1, w, True, True),)) for i, w in enumerate(windows) if w]
    if not devices:
        return None
    bits, passthrough = operator_setting(spec_obj)
    return core.plan(devices, shape_of(spec_obj),
                     limits, operator_bits=bits,
                     operator_passthrough=passthrough)


class GPUAddressSpaceFilter(filters.BaseHostFilter):
    """Pass only hosts whose CPU and IOMMU can address the guest's BARs."""

    run_filter_once_per_request = False
    RUN_ON_REBUILD = False

    def host_passes(self, host_state, spec_obj):
        if not CONF.gpu_ext.enabled:
            return True
        count = requested_devices(spec_obj)
        if not count:
            return True
        summary = sched_request.host_summary(host_state)
        if summary is None:
            return True
        plan = host_plan(summary, spec_obj, count)
        if plan is None:
            return True
        if plan.warning:
            LOG.info('GPUAddressSpaceFilter: host %s: %s', host_state.host,
                     plan.warning)
        if plan.refused:
            LOG.info('GPUAddressSpaceFilter: host %s refused: %d GPU(s) '
                     'with %s of 64-bit BARs and %d MiB of RAM: %s',
                     host_state.host, count, core.size_text(plan.needed),
                     spec_obj.flavor.memory_mb, plan.refused)
            return False
        return True
