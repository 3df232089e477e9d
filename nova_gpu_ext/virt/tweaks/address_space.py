"""Large-BAR tweak: give a GPU guest the address bits its BARs need.

Layer rule: adapter (domain tweak plugin); changes only ``<cpu>``
(``<maxphysaddr>`` and the ``pdpe1gb`` feature). The computation is
:mod:`nova_gpu_ext.core.address_space`; this module only reads the guest
config upstream built (PCI hostdevs, memory, firmware, machine, CPU mode)
and the host's BARs and limits from discovery, and writes the result.

``large_bar`` (default on for GPU guests)
    With QEMU's default 40 physical address bits OVMF keeps a 32 GiB
    64-bit PCI window and a 128 GiB BAR1 gets no address (``BAR 1: no
    space``). For a guest whose devices have large 64-bit BARs this emits
    ``<maxphysaddr mode='emulate' bits='N'/>`` with the smallest N that
    places every BAR (or ``mode='passthrough' limit='N'`` for
    host-passthrough CPUs on libvirt >= 9.3.0) and, for OVMF,
    ``<feature policy='require' name='pdpe1gb'/>`` (OVMF ignores more than
    40 bits without 1 GiB pages). An operator's ``hw:maxphysaddr_*`` is
    kept; when it is too small the compute log says so. Guests whose BARs
    fit the default get nothing. vGPUs (mdevs) are not counted: the host
    does not report their BARs before the guest starts.
"""

from oslo_log import log as logging

from nova.virt.libvirt import config as vconfig

from nova_gpu_ext.core import address_space as core
from nova_gpu_ext.virt import tweaks
from nova_gpu_ext.virt.tweaks import guestinfo

LOG = logging.getLogger(__name__)

#: libvirt 9.3.0: ``<maxphysaddr mode='passthrough' limit='N'/>``
MIN_LIBVIRT_LIMIT = 9003000


class MaxPhysAddr(vconfig.LibvirtConfigGuestCPUMaxPhysAddr):
    """Nova's ``<maxphysaddr>`` plus ``limit`` (libvirt 9.3.0)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.limit = None

    def format_dom(self):
        m = super().format_dom()
        if self.limit:
            m.set('limit', str(self.limit))
        return m


def guest_devices(guest, host) -> list:
    """The guest's PCI hostdevs with the BARs discovery read for them."""
    out = []
    by_address = {str(g.address): g for g in (host.gpus if host else ())}
    for hostdev in guestinfo.pci_hostdevs(guest):
        address = guestinfo.pci_address(hostdev)
        gpu = by_address.get(address)
        if gpu is not None and gpu.bars:
            out.append(core.GuestDevice(address, tuple(gpu.bars)))
    return out


def guest_shape(guest) -> core.GuestShape:
    efi = guest.os_firmware == 'efi' or guest.os_loader_type == 'pflash'
    machine = core.Machine.Q35 if 'q35' in (guest.os_mach_type or '') \
        else core.Machine.PC
    return core.GuestShape(
        ram=int(guest.memory or 0) * 1024,
        firmware=core.Firmware.OVMF if efi else core.Firmware.SEABIOS,
        machine=machine)


def host_limits(host) -> core.HostLimits:
    limits = getattr(host, 'address_limits', None)
    if limits is None:
        return core.HostLimits()
    return core.HostLimits(limits.cpu_bits, limits.iommu_bits,
                           limits.page_1g)


def plan_for(guest, host):
    """The plan for this guest config, or None (no devices with BARs)."""
    devices = guest_devices(guest, host)
    if not devices:
        return None
    cpu = guest.cpu
    operator = getattr(cpu, 'maxphysaddr', None) if cpu else None
    return core.plan(
        devices, guest_shape(guest), host_limits(host),
        operator_bits=operator.bits if operator else None,
        operator_passthrough=bool(operator and operator.mode ==
                                  'passthrough' and not operator.bits))


class LargeBAR(tweaks.DomainTweak):
    name = 'large_bar'
    summary = ("<maxphysaddr> bits and pdpe1gb so that every GPU BAR gets "
               "an address in the guest")
    default_for_gpu_guests = True
    independent_of_fast_boot = True

    def apply(self, guest, ctx):
        if not guestinfo.is_qemu_hvm(guest):
            return []
        plan = plan_for(guest, ctx.host)
        if plan is None:
            return []
        if plan.warning:
            LOG.warning('nova-gpu-ext large BAR: %s', plan.warning,
                        instance=ctx.instance)
            return []
        if plan.refused:
            # The scheduler's filter refuses such hosts; a guest that gets
            # here anyway (filter off, a move) keeps upstream's XML.
            LOG.warning('nova-gpu-ext large BAR: not changed: %s',
                        plan.refused, instance=ctx.instance)
            return []
        if not plan.changes_guest:
            return []
        if guest.cpu is None:
            guest.cpu = vconfig.LibvirtConfigGuestCPU()
        cpu = guest.cpu
        address = MaxPhysAddr()
        if cpu.mode == 'host-passthrough' and \
                ctx.libvirt_version >= MIN_LIBVIRT_LIMIT:
            address.mode, address.limit = 'passthrough', plan.bits
        else:
            address.mode, address.bits = 'emulate', plan.bits
        cpu.maxphysaddr = address
        changes = ["cpu: maxphysaddr mode='%s' %s='%d' (%s of BARs, "
                   "window %s)" % (address.mode,
                                   'limit' if address.limit else 'bits',
                                   plan.bits, core.size_text(plan.needed),
                                   core.size_text(plan.window.size))]
        if plan.page_1g and cpu.mode != 'host-passthrough' and \
                'pdpe1gb' not in {f.name for f in cpu.features}:
            cpu.add_feature(vconfig.LibvirtConfigGuestCPUFeature(
                'pdpe1gb', policy='require'))
            changes.append("cpu: feature pdpe1gb required (OVMF uses more "
                           "than 40 bits only with 1 GiB pages)")
        return changes
