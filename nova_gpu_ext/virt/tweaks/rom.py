"""Option ROM tweaks: no GPU VBIOS and no NIC PXE ROM run at guest boot.

Layer rule: adapter (domain tweak plugins). Each class changes only the
``<rom>`` of devices it names; host facts come from ``ctx.host``.

``rom_bar_off`` (default on for GPU guests)
    ``<rom bar='off'/>`` on every passed-through PCI function that the host
    topology knows as a GPU (whole GPU, PF or VF). With the ROM BAR hidden,
    QEMU's vfio-pci neither reads the physical ROM (slow on some GPUs) nor
    exposes it, so SeaBIOS/OVMF do not run the GPU's VBIOS during the BIOS
    phase; the guest driver initialises the GPU itself, which is what
    compute guests do. GPUs whose guests need the VBIOS (the GPU as the boot
    display, a UEFI GOP driver, drivers that read the ROM through the BAR)
    are listed by ``vendor:device`` in ``[gpu_ext] keep_gpu_rom_ids`` and
    keep upstream's XML; its default is :data:`KEEP_ROM_DEFAULT`
    (workstation GPUs used as the primary display, with the reason each).
    Passed-through functions that are not GPUs (NICs, NVMe, ...) are never
    touched: their option ROM may be how the guest
    boots. SR-IOV VFs have no ROM BAR (PCIe SR-IOV spec), so for GPU VFs
    the element only makes that explicit. mdev (vGPU) hostdevs have no ROM.

``nic_rom_off`` (default on for GPU guests)
    ``<rom enabled='no'/>`` on every ``<interface>`` when the guest boots
    from a disk (or a kernel): the iPXE option ROM of virtio/e1000 NICs is
    then neither loaded nor run by the firmware (measured here: -393 ms of
    BIOS phase when firmware runs slowly, within noise on TCG). A guest whose
    ``<os>`` boots from the network, or whose interface has a per-device boot
    order, keeps its ROMs. A separate tweak from ``rom_bar_off`` so that the
    ablation can measure it and a flavor can opt out of one alone.
"""

import re

from nova.virt.libvirt import config as vconfig

from nova_gpu_ext.virt import tweaks
from nova_gpu_ext.virt import xmlconfig
from nova_gpu_ext.virt.tweaks import guestinfo

#: GPUs whose guests need their video BIOS, kept by default (the default of
#: ``[gpu_ext] keep_gpu_rom_ids``), with the reason. Workstation GPUs with
#: display outputs are passed through as the guest's primary display: the
#: guest firmware (SeaBIOS VGA, OVMF GOP) runs their VBIOS to drive the
#: screen before the guest driver loads. AMD's amdgpu driver also needs the
#: ATOM BIOS to initialise the GPU at all, and in a guest (no ACPI VFCT
#: table from the host firmware) it reads it through the ROM BAR.
#: Data-centre GPUs without display outputs (T4, A100, H100, L4...) and
#: SR-IOV VFs (no ROM BAR) are not listed.
KEEP_ROM_DEFAULT = {
    '10de:1e30': 'NVIDIA Quadro RTX 6000/8000: primary display (VBIOS/GOP)',
    '10de:2230': 'NVIDIA RTX A6000: primary display (VBIOS/GOP)',
    '10de:2231': 'NVIDIA RTX A5000: primary display (VBIOS/GOP)',
    '1002:73a3': 'AMD Radeon PRO W6800: primary display; amdgpu reads its '
                 'ATOM BIOS through the ROM BAR in a guest',
    '1002:7448': 'AMD Radeon PRO W7900: primary display; amdgpu reads its '
                 'ATOM BIOS through the ROM BAR in a guest',
}

_ID_RE = re.compile(r'^([0-9a-fA-F]{4}):([0-9a-fA-F]{4}|\*)$')


def parse_rom_ids(entries) -> set[tuple[int, object]]:
    """``['10de:1db6', '1002:*']`` -> ``{(0x10de, 0x1db6), (0x1002, '*')}``.

    Malformed entries are ignored (the option's type refuses them).
    """
    out: set[tuple[int, object]] = set()
    for entry in entries or ():
        match = _ID_RE.match(str(entry).strip())
        if not match:
            continue
        device = match.group(2)
        out.add((int(match.group(1), 16),
                 '*' if device == '*' else int(device, 16)))
    return out


class GPUROMBarOff(tweaks.DomainTweak):
    name = 'rom_bar_off'
    summary = ("Hide the option ROM (VBIOS) of passed-through GPUs and GPU "
               "VFs (<rom bar='off'/>) unless [gpu_ext] keep_gpu_rom_ids")
    # <rom bar> is old (libvirt 0.9.7); Nova 34's minimum is far above it.
    min_libvirt_version = 0
    default_for_gpu_guests = True

    def apply(self, guest, ctx):
        if not guestinfo.is_qemu_hvm(guest):
            return []
        if ctx.host is None:
            return []
        keep = parse_rom_ids(ctx.settings.get('keep_gpu_rom_ids'))
        lines = []
        for dev in guestinfo.pci_hostdevs(guest):
            address = guestinfo.pci_address(dev)
            gpu = ctx.host.gpu(address)
            if gpu is None:
                continue
            if getattr(dev, 'rom_bar', None) is not None or \
                    getattr(dev, 'rom_enabled', None) is not None:
                continue    # someone already chose; also makes us idempotent
            ids = '%04x:%04x' % (gpu.vendor_id, gpu.device_id)
            if ((gpu.vendor_id, gpu.device_id) in keep or
                    (gpu.vendor_id, '*') in keep):
                why = KEEP_ROM_DEFAULT.get(ids)
                lines.append('hostdev %s (%s %s): ROM kept '
                             '(keep_gpu_rom_ids%s)' % (
                                 address, gpu.kind.value, ids,
                                 ': ' + why if why else ''))
                continue
            xmlconfig.promote(dev, xmlconfig.GuestHostdevPCI).rom_bar = False
            lines.append("hostdev %s (%s %s): rom bar='off'" % (
                address, gpu.kind.value, ids))
        # A line only about kept ROMs is no change.
        if not any("bar='off'" in line for line in lines):
            return []
        return lines


class NICROMOff(tweaks.DomainTweak):
    name = 'nic_rom_off'
    summary = ("No PXE option ROM on network interfaces of guests that boot "
               "from disk (<rom enabled='no'/>)")
    # <rom enabled='no'/> on interfaces: libvirt 4.3.0.
    min_libvirt_version = 4003000
    default_for_gpu_guests = True

    @staticmethod
    def network_boot(guest) -> bool:
        if 'network' in (guest.os_boot_dev or ()):
            return True
        # Nova never sets per-device boot order on interfaces; if anything
        # did, the guest may mean to boot from that NIC.
        return any(getattr(dev, 'boot_order', None)
                   for dev in guestinfo.devices(
                       guest, vconfig.LibvirtConfigGuestInterface))

    def apply(self, guest, ctx):
        if not guestinfo.is_qemu_hvm(guest):
            return []
        if self.network_boot(guest):
            return []
        lines = []
        for dev in guestinfo.devices(
                guest, vconfig.LibvirtConfigGuestInterface):
            if getattr(dev, 'rom_enabled', None) is not None or \
                    getattr(dev, 'rom_bar', None) is not None:
                continue
            xmlconfig.promote(dev, xmlconfig.GuestInterface).rom_enabled = \
                False
            lines.append("interface %s (%s%s): rom enabled='no'" % (
                dev.mac_addr, dev.net_type,
                ', %s' % dev.model if dev.model else ''))
        return lines
