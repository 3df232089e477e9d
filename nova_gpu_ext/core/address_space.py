"""The guest's physical address space, sized from the devices it gets.

Layer rule: pure core. Typed, no Nova, no oslo, no CONF, no I/O. Input: the
64-bit BARs of the guest's claimed devices, its RAM (and hot-plug area),
its firmware and machine type, and what the host allows; output: an
:class:`AddressPlan` (the 64-bit window, the physical address bits and 1 GiB
pages the guest needs, or a refusal that says why). Never raises for "does
not fit".

Why: a GPU's BAR1 maps its memory (128 GiB on Hopper, 256 GiB on B200). The
guest firmware places every 64-bit BAR in one "64-bit PCI window" whose size
and position follow rules of its own, and the guest kernel cannot use an
address above its CPU's physical address bits. QEMU gives every CPU model
but ``host`` 40 bits, so with default XML the window is too small and the
guest's driver fails to probe (``BAR 1: no space``). The rules below are
what this module computes; each is read from the source named and holds
for the versions given (the docs page ``admin/large-bar`` has the list).

Firmware rules
--------------
OVMF (edk2 ``OvmfPkg/Library/PlatformInitLib/MemDetect.c``, edk2-stable202211
and later; Debian 12 ships 2022.11):

* O1 ``PlatformAddressWidthFromCpuid``: the guest's phys-bits P come from
  CPUID 0x80000008. With the QEMU quirk P is trusted when P >= 41, or
  P in (36, 39) on GenuineIntel, or P == 40 on AuthenticAMD (so QEMU's
  default 40 is *not* trusted on an Intel-model guest); since
  edk2-stable202405 also when the hypervisor sets GuestPhysBits.
* O2 same function: P is capped to 47 (2022.11-2023.08), 46 (2023.11 and
  later, 4-level paging) or 48 (2024.05 and later with 5-level paging); and
  to 40 when the guest CPU has no 1 GiB pages (``pdpe1gb``, CPUID
  0x80000001 EDX bit 26).
* O3 ``PlatformDynamicMmioWindow``: with a trusted P the window is the top
  eighth of the address space, size 2^(P-3) at 2^P - 2^(P-3), provided
  it is bigger than the classic one and does not reach down into the
  classic window's base (RAM end).
* O4 ``PlatformGetFirstNonAddress``: otherwise the classic window:
  ``PcdPciMmio64Size`` (32 GiB in ``OvmfPkgX64.dsc``) or fw_cfg
  ``opt/ovmf/X-PciMmio64Mb``, at the end of RAM above 4 GiB (or of the
  hot-plug area, ``etc/reserved-memory-end``) rounded up to 1 GiB and then
  to the window's size rounded down to a power of two. libvirt 9.0 refuses
  ``X-PciMmio64Mb`` in ``<sysinfo type='fwcfg'>`` (reserved name), so only
  O3 is reachable: we set P.

SeaBIOS (``src/fw/pciinit.c`` ``pci_bios_map_devices``/``pci_setup`` and
``src/fw/paravirt.c`` ``qemu_detect_phys_bits``):

* S1 (all versions): 64-bit BARs move to a 64-bit window when the 32-bit one
  overflows; the window starts at max(4 GiB + RAM above 4 GiB, hot-plug
  end), aligned to the largest BAR and to 1 GiB, and is as big as the BARs.
* S2 (rel-1.16.3 and later): with a trusted P (same rule as O1) the window
  is placed at the top, 2^P, or 2^44 when P > 44 and RAM is below 1 TiB;
  padded to a multiple of top/8 when RAM above 4 GiB exists; never below
  the RAM end.

Both firmwares size a bridge window as the sum of what is behind it rounded
up to its largest BAR (edk2 ``PciResourceSupport.c``, SeaBIOS
``pci_bios_check_devices``): a GPU with BAR1 128 GiB and BAR3 32 MiB behind
its own root port takes 256 GiB.

The firmware and kernel rules are functions in
:mod:`nova_gpu_ext.core.firmware_window` (re-exported here).

Kernel and QEMU rules
---------------------
* K1 Linux x86 (``arch/x86/kernel/setup.c``): ``iomem_resource.end =
  (1 << x86_phys_bits) - 1``: a BAR above the guest's P cannot be claimed.
  With 4-level paging ``MAX_PHYSMEM_BITS`` is 46.
* Q1 QEMU (``target/i386/cpu.c``, ``host-cpu.c``): phys-bits is 40 for every
  CPU model unless ``host-phys-bits=on`` (the ``host`` model's default) or
  ``phys-bits=N``; under KVM a guest P above the host's is unsafe.
* Q2 QEMU's ``pci-hole64-size`` (libvirt ``pcihole64``) only widens the
  window QEMU describes in ACPI; it does not move the firmware's.
* L1 libvirt ``<cpu><maxphysaddr mode='emulate' bits='N'/>`` (8.7.0) ->
  ``phys-bits=N``; ``mode='passthrough'`` -> ``host-phys-bits=on`` (only
  for host-passthrough and maximum CPUs); ``limit='N'`` with passthrough
  since 9.3.0.
* H1 the host IOMMU's address width (Intel VT-d MGAW, AMD HATS) bounds the
  guest-physical addresses VFIO can map, so P never exceeds it.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

from nova_gpu_ext.core.firmware_window import (  # noqa: F401
    KiB as KiB,
    MiB as MiB,
    GiB as GiB,
    TiB as TiB,
    QEMU_DEFAULT_BITS as QEMU_DEFAULT_BITS,
    OVMF_CLASSIC_WINDOW as OVMF_CLASSIC_WINDOW,
    OVMF_MIN_TRUSTED_BITS as OVMF_MIN_TRUSTED_BITS,
    OVMF_MAX_BITS as OVMF_MAX_BITS,
    OVMF_NO_1G_BITS as OVMF_NO_1G_BITS,
    KERNEL_MAX_BITS as KERNEL_MAX_BITS,
    OTHER_DEVICES_RESERVE as OTHER_DEVICES_RESERVE,
    SEABIOS_ROOT_PORTS as SEABIOS_ROOT_PORTS,
    LARGE_BAR as LARGE_BAR,
    Firmware as Firmware,
    Machine as Machine,
    GuestShape as GuestShape,
    Window as Window,
    _align as _align,
    _pow2_ceil as _pow2_ceil,
    _pow2_floor as _pow2_floor,
    ram_end as ram_end,
    ovmf_window as ovmf_window,
    seabios_window as seabios_window,
    trusted_bits as trusted_bits,
)
from nova_gpu_ext.model import BAR


@dataclasses.dataclass(frozen=True)
class GuestDevice:
    """One device the guest gets (a whole GPU, a VF, an mdev)."""

    name: str
    bars: tuple[BAR, ...] = ()

    @property
    def window_bars(self) -> tuple[BAR, ...]:
        """BARs that go to the 64-bit window (64-bit prefetchable)."""
        return tuple(b for b in self.bars if b.is_64bit and b.prefetchable
                     and b.size > 0)

    @property
    def aperture(self) -> int:
        """The bridge window the device takes: sum rounded up to its
        largest BAR (edk2 PciResourceSupport.c, SeaBIOS pciinit.c)."""
        bars = self.window_bars
        if not bars:
            return 0
        largest = max(_pow2_ceil(b.size) for b in bars)
        total = sum(_pow2_ceil(b.size) for b in bars)
        return _align(total, largest)


@dataclasses.dataclass(frozen=True)
class HostLimits:
    """What the host can give a guest; None: not known."""

    cpu_bits: Optional[int] = None
    iommu_bits: Optional[int] = None
    page_1g: Optional[bool] = None

    @property
    def max_bits(self) -> Optional[int]:
        known = [b for b in (self.cpu_bits, self.iommu_bits) if b]
        return min(known) if known else None


@dataclasses.dataclass(frozen=True)
class AddressPlan:
    """What the guest needs; ``bits`` None: leave the XML alone."""

    devices: tuple[GuestDevice, ...]
    shape: GuestShape
    needed: int                       # bytes of 64-bit window the BARs take
    bits: Optional[int] = None        # phys-bits to give the guest
    page_1g: bool = False             # the guest CPU needs pdpe1gb
    window: Optional[Window] = None   # the firmware's window with ``bits``
    refused: Optional[str] = None     # why the host cannot address it
    warning: Optional[str] = None     # operator's setting too small
    operator_bits: Optional[int] = None
    notes: tuple[str, ...] = ()

    @property
    def changes_guest(self) -> bool:
        return self.bits is not None and self.refused is None \
            and self.operator_bits is None


def needed_window(devices: Sequence[GuestDevice]) -> int:
    return sum(d.aperture for d in devices)


def _fits(shape: GuestShape, bits: int, need: int, largest: int,
          page_1g: bool, intel: bool = True) -> Optional[Window]:
    """The window with ``bits`` if every BAR gets an address."""
    trusted = trusted_bits(bits, intel)
    limit = 1 << min(bits, KERNEL_MAX_BITS)                 # K1
    if shape.firmware == Firmware.OVMF:
        window = ovmf_window(shape, bits, trusted, page_1g)
        if window.size >= need and window.end <= limit:
            return window
        return None
    for top in (False, True):                               # S1 and S2
        padded = need
        if top and trusted and shape.ram > 4 * GiB:
            # rel-1.16.3+: every hot-plug root port reserves top >> 11 of
            # prefetchable window (pci_bios_check_devices)
            padded += SEABIOS_ROOT_PORTS * (1 << (min(bits, 44) - 11))
        window = seabios_window(shape, bits, padded, largest, trusted, top)
        if window.end > limit:
            return None
    return window


def assigned(devices: Sequence[GuestDevice], window: Window,
             reserve: int = OTHER_DEVICES_RESERVE,
             bits: Optional[int] = None) -> int:
    """How many devices get their BARs: apertures biggest first, each
    aligned to itself, until the window is full (edk2 rejects the biggest
    request that does not fit; the guest kernel then finds no space)."""
    count, cursor = 0, window.base
    end = window.end
    if bits is not None:                                    # K1
        end = min(end, 1 << min(bits, KERNEL_MAX_BITS))
    end -= reserve
    for aperture in sorted((d.aperture for d in devices if d.aperture),
                           reverse=True):
        start = _align(cursor, _pow2_floor(aperture))
        if start + aperture <= end:
            count += 1
            cursor = start + aperture
    return count + sum(1 for d in devices if not d.aperture)


def upstream_window(shape: GuestShape, devices: Sequence[GuestDevice],
                    bits: int = QEMU_DEFAULT_BITS,
                    intel: bool = True) -> Window:
    """The window a guest gets from upstream's XML (40 bits, rule Q1)."""
    need = needed_window(devices) + OTHER_DEVICES_RESERVE
    if shape.firmware == Firmware.OVMF:
        return ovmf_window(shape, bits, trusted_bits(bits, intel), True)
    largest = max((d.aperture for d in devices), default=0)
    return seabios_window(shape, bits, need, largest,
                          trusted_bits(bits, intel), True)


def plan(devices: Sequence[GuestDevice], shape: GuestShape,
         host: HostLimits, operator_bits: Optional[int] = None,
         operator_passthrough: bool = False) -> AddressPlan:
    """Size the guest's address space for ``devices``.

    Returns a plan with ``bits`` None when the devices fit QEMU's default
    (nothing to change), the smallest sufficient ``bits`` otherwise, or
    ``refused`` when the host's CPU, IOMMU or 1 GiB pages cannot give it.
    An operator's ``hw:maxphysaddr_*`` is kept; ``warning`` says when it
    is too small for the devices.
    """
    devices = tuple(devices)
    large = [d for d in devices
             if any(b.size >= LARGE_BAR for b in d.window_bars)]
    need = needed_window(devices)
    base = AddressPlan(devices=devices, shape=shape, needed=need)
    if not large:
        return base
    total = need + OTHER_DEVICES_RESERVE
    largest = max(d.aperture for d in devices)
    page_1g = shape.firmware == Firmware.OVMF
    host_bits = host.max_bits
    notes = ['64-bit BARs: %s' % ', '.join(
        '%s %s' % (d.name, '+'.join(size_text(b.size) for b in d.window_bars))
        for d in large),
        'window needed: %s (each device\'s BARs rounded up to its largest; '
        '%s for the other devices)' % (size_text(need),
                                       size_text(OTHER_DEVICES_RESERVE))]

    if operator_bits is not None or operator_passthrough:
        bits = operator_bits if operator_bits is not None else host_bits
        window = _fits(shape, bits, total, largest, True) if bits else None
        warning = None
        if window is None:
            warning = ('hw:maxphysaddr gives %s bits: too few for %s of '
                       '64-bit BARs (%s needs %s)' % (
                           bits if bits else 'the host\'s',
                           size_text(need), shape.firmware.value,
                           _min_bits_text(shape, total, largest)))
        return dataclasses.replace(
            base, bits=bits, window=window, warning=warning,
            operator_bits=bits, notes=tuple(notes))

    if _fits(shape, QEMU_DEFAULT_BITS, total, largest, True,
             intel=True) is not None:
        return dataclasses.replace(base, notes=tuple(
            notes + ['QEMU\'s default 40 bits already fit']))

    ceiling = min(b for b in (host_bits, KERNEL_MAX_BITS) if b)
    for bits in range(OVMF_MIN_TRUSTED_BITS, 53):
        window = _fits(shape, bits, total, largest, page_1g)
        if window is None:
            continue
        reasons = []
        if bits > ceiling:
            reasons.append(_limit_reason(bits, host))
        if page_1g and host.page_1g is False:
            reasons.append('OVMF needs 1 GiB pages (pdpe1gb) for more '
                           'than 40 bits and the host CPU has none')
        notes.append('window with %d bits: %s at 0x%x' % (
            bits, size_text(window.size), window.base))
        return dataclasses.replace(
            base, bits=bits, page_1g=page_1g, window=window,
            refused='; '.join(reasons) or None, notes=tuple(notes))
    return dataclasses.replace(
        base, refused='no address width lets %s place %s of BARs above '
        '%s of RAM (OVMF stops at %d bits, the kernel at %d)' % (
            shape.firmware.value, size_text(need), size_text(shape.ram),
            OVMF_MAX_BITS, KERNEL_MAX_BITS), notes=tuple(notes))


def _min_bits_text(shape: GuestShape, total: int, largest: int) -> str:
    for bits in range(OVMF_MIN_TRUSTED_BITS, KERNEL_MAX_BITS + 1):
        if _fits(shape, bits, total, largest, True):
            return '%d' % bits
    return 'more than %d' % KERNEL_MAX_BITS


def _limit_reason(bits: int, host: HostLimits) -> str:
    parts = []
    if host.cpu_bits and bits > host.cpu_bits:
        parts.append('the host CPU has %d physical address bits' %
                     host.cpu_bits)
    if host.iommu_bits and bits > host.iommu_bits:
        parts.append('the host IOMMU addresses %d bits' % host.iommu_bits)
    if bits > KERNEL_MAX_BITS:
        parts.append('guest kernels with 4-level paging stop at %d' %
                     KERNEL_MAX_BITS)
    return 'needs %d address bits but %s' % (bits, ' and '.join(parts))


def size_text(value: int) -> str:
    for unit, name in ((TiB, 'TiB'), (GiB, 'GiB'), (MiB, 'MiB'),
                       (KiB, 'KiB')):
        if value >= unit and value % unit == 0:
            return '%d %s' % (value // unit, name)
    return '%d B' % value
