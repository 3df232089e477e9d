"""Where guest firmware puts the 64-bit PCI window, and QEMU's RAM layout.

Layer rule: pure core (typed, no I/O). The firmware rules O1-O4 (OVMF) and
S1-S2 (SeaBIOS), K1 (kernel) and Q1 (QEMU) listed with their sources and
versions in :mod:`nova_gpu_ext.core.address_space`, as functions of the
guest's shape and address width; ``address_space.plan`` searches them.
"""

from __future__ import annotations

import dataclasses
import enum

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40

#: QEMU's phys-bits for every CPU model but ``host`` (rule Q1)
QEMU_DEFAULT_BITS = 40
#: OVMF's classic 64-bit window (``PcdPciMmio64Size`` 0x800000000, rule O4)
OVMF_CLASSIC_WINDOW = 32 * GiB
#: OVMF trusts P >= 41 on every vendor (rule O1)
OVMF_MIN_TRUSTED_BITS = 41
#: OVMF's cap on P with 4-level paging, edk2-stable202311+ (rule O2); 47
#: before; we use the lower so both versions take what we give
OVMF_MAX_BITS = 46
#: OVMF ignores P > 40 without 1 GiB pages (rule O2)
OVMF_NO_1G_BITS = 40
#: Linux x86-64 with 4-level paging (rule K1)
KERNEL_MAX_BITS = 46
#: room left in the window for the guest's other 64-bit BARs (virtio
#: devices' 16 KiB notify BARs behind their root ports, 1 MiB each)
OTHER_DEVICES_RESERVE = 1 * GiB
#: root ports a Nova q35 guest may have, each padded by SeaBIOS 1.16.3+
SEABIOS_ROOT_PORTS = 16
#: a 64-bit BAR at least this big cannot go below 4 GiB (q35's 32-bit hole
#: is 1 GiB at most): it needs the 64-bit window
LARGE_BAR = 256 * MiB


class Firmware(str, enum.Enum):
    OVMF = 'ovmf'
    SEABIOS = 'seabios'


class Machine(str, enum.Enum):
    Q35 = 'q35'
    PC = 'pc'


@dataclasses.dataclass(frozen=True)
class GuestShape:
    """The guest's memory, firmware and machine."""

    ram: int
    firmware: Firmware = Firmware.OVMF
    machine: Machine = Machine.Q35
    hotplug: int = 0


@dataclasses.dataclass(frozen=True)
class Window:
    base: int
    size: int

    @property
    def end(self) -> int:
        return self.base + self.size


def _pow2_ceil(value: int) -> int:
    return 1 << max(0, (value - 1).bit_length())


def _pow2_floor(value: int) -> int:
    return 1 << (value.bit_length() - 1)


def _align(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def ram_end(shape: GuestShape) -> int:
    """First address above RAM and the hot-plug area (QEMU's layout:
    q35 keeps 2 GiB below 4 GiB when RAM >= 2.75 GiB, pc 3.5 GiB)."""
    low_limit = 2 * GiB if shape.machine == Machine.Q35 else 3584 * MiB
    split = 0xb0000000 if shape.machine == Machine.Q35 else 0xe0000000
    low = shape.ram if shape.ram < split else low_limit
    above = shape.ram - low
    return 4 * GiB + above + shape.hotplug


def ovmf_window(shape: GuestShape, bits: int, trusted: bool = True,
                page_1g: bool = True) -> Window:
    """The window OVMF (edk2 2022.11+) opens for a guest with ``bits``."""
    classic_base = _align(_align(ram_end(shape), GiB), OVMF_CLASSIC_WINDOW)
    classic = Window(classic_base, OVMF_CLASSIC_WINDOW)
    if not trusted:                                         # O1
        return classic
    bits = min(bits, OVMF_MAX_BITS)                         # O2
    if not page_1g:
        bits = min(bits, OVMF_NO_1G_BITS)
    space, mmio = 1 << bits, 1 << (bits - 3)                # O3
    if OVMF_CLASSIC_WINDOW < mmio and classic_base + mmio < space:
        return Window(space - mmio, mmio)
    return classic                                          # O4


def seabios_window(shape: GuestShape, bits: int, need: int, largest: int,
                   trusted: bool = True, top_placement: bool = True
                   ) -> Window:
    """Where SeaBIOS puts ``need`` bytes of 64-bit BARs (S1, S2)."""
    end = ram_end(shape)
    base = end
    if top_placement and trusted:                           # S2
        top = 1 << bits
        if bits > 44 and shape.ram - 4 * GiB < TiB:
            top = 1 << 44
        size = _align(need, GiB)
        if shape.ram > 4 * GiB:
            size = _align(size, top >> 3)
        if base < top - size:
            base = top - size
    base = _align(_align(base, max(largest, 1)), GiB)       # S1
    return Window(base, need)


def trusted_bits(bits: int, intel: bool = True) -> bool:
    """Rule O1/S: does the firmware believe CPUID's phys-bits?"""
    if bits >= OVMF_MIN_TRUSTED_BITS:
        return True
    return bits in (36, 39) if intel else bits == 40
