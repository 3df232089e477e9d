"""Table tests of the large-BAR address-space computation (core).

BAR sizes are the ones vendors document for the 64-bit prefetchable BARs
(BAR1 maps the framebuffer / HBM, BAR3 the 32 MiB doorbell region):

GPU: BAR1, BAR3 -- source
- H100 PCIe / NVL / SXM5: 128 GiB, 32 MiB -- NVIDIA H100 PCIe Product
  Brief PB-11133-001, "BAR address (physical function)" table
- B200 (HGX): 256 GiB, 32 MiB -- NVIDIA HGX B200 documentation (issue 22)
- A100 80GB PCIe: 128 GiB, 32 MiB -- NVIDIA A100 PCIe Product Brief
  PB-10137, BAR table
- A100 40GB PCIe: 64 GiB, 32 MiB -- same brief, 40 GB edition
- L40S: 64 GiB, 32 MiB -- NVIDIA L40S Product Brief, BAR table
- A40: 64 GiB, 32 MiB -- NVIDIA A40 Product Brief PB-09976-001, BAR table
- T4: 256 MiB, 32 MiB -- NVIDIA T4 Product Brief PB-09256, BAR table
"""

import itertools

import pytest

from nova_gpu_ext.core import address_space as a
from nova_gpu_ext.model import BAR

GiB, MiB, TiB = a.GiB, a.MiB, a.TiB

#: (name, BAR1 bytes) from the table above; every card: BAR0 16 MiB
#: 32-bit non-prefetchable, BAR3 32 MiB 64-bit prefetchable
GPUS = {
    'H100': 128 * GiB,
    'B200': 256 * GiB,
    'A100-80': 128 * GiB,
    'A100-40': 64 * GiB,
    'L40S': 64 * GiB,
    'A40': 64 * GiB,
    'T4': 256 * MiB,
}

RAMS = (16 * GiB, 64 * GiB, 256 * GiB, 512 * GiB, 768 * GiB, TiB, 2 * TiB)
HOSTS = {
    'cpu46-iommu48': a.HostLimits(46, 48, True),
    'cpu48-iommu48': a.HostLimits(48, 48, True),
    'cpu52-iommu48': a.HostLimits(52, 48, True),
    'cpu46-iommu39': a.HostLimits(46, 39, True),
    'cpu52-iommu39': a.HostLimits(52, 39, True),
}


def gpu(model, i=0):
    return a.GuestDevice('%s-%d' % (model, i), (
        BAR(0, 16 * MiB, False, False),
        BAR(1, GPUS[model], True, True),
        BAR(3, 32 * MiB, True, True)))


def gpus(model, count):
    return [gpu(model, i) for i in range(count)]


@pytest.mark.parametrize('model,count,ram,host,firmware', list(
    itertools.product(sorted(GPUS), range(1, 9), RAMS, sorted(HOSTS),
                      list(a.Firmware))))
def test_every_bar_gets_an_address_or_the_host_is_refused(
        model, count, ram, host, firmware):
    devices = gpus(model, count)
    shape = a.GuestShape(ram, firmware)
    limits = HOSTS[host]
    plan = a.plan(devices, shape, limits)
    if plan.bits is None and plan.refused is None:
        # Nothing to change: QEMU's default 40 bits already fit.
        window = a.upstream_window(shape, devices)
        assert a.assigned(devices, window, bits=40) == count
        return
    if plan.refused:
        assert plan.bits is None or plan.bits > limits.max_bits or \
            plan.bits > a.KERNEL_MAX_BITS, plan
        return
    # Never more bits than the host's CPU or IOMMU, nor than OVMF/kernel.
    assert plan.bits <= limits.max_bits
    assert plan.bits <= a.KERNEL_MAX_BITS
    assert plan.window.size >= plan.needed + a.OTHER_DEVICES_RESERVE
    assert plan.window.base >= a.ram_end(shape)
    assert plan.window.end <= 1 << plan.bits
    assert a.assigned(devices, plan.window, bits=plan.bits) == count
    assert plan.page_1g == (firmware == a.Firmware.OVMF)


# (model, count, RAM, firmware) -> bits we give, and GPUs upstream's XML
# leaves addressable (QEMU's 40 bits, Intel CPU model)
EXPECTED = [
    ('H100', 1, 16 * GiB, 'ovmf', 42, 0),
    ('H100', 2, 16 * GiB, 'ovmf', 43, 0),
    ('H100', 4, 16 * GiB, 'ovmf', 44, 0),
    ('H100', 4, 2 * TiB, 'ovmf', 44, 0),
    ('H100', 8, 512 * GiB, 'ovmf', 45, 0),
    ('B200', 8, 2 * TiB, 'ovmf', 46, 0),
    ('A40', 1, 16 * GiB, 'ovmf', 41, 0),
    ('H100', 2, 256 * GiB, 'seabios', 41, 1),
    ('H100', 4, 256 * GiB, 'seabios', 41, 1),
    ('H100', 4, 512 * GiB, 'seabios', 41, 0),
    ('H100', 4, 768 * GiB, 'seabios', 42, 0),
]


@pytest.mark.parametrize('model,count,ram,firmware,bits,upstream',
                         EXPECTED)
def test_bits_and_upstream_table(model, count, ram, firmware, bits,
                                 upstream):
    devices = gpus(model, count)
    shape = a.GuestShape(ram, a.Firmware(firmware))
    plan = a.plan(devices, shape, HOSTS['cpu46-iommu48'])
    assert plan.refused is None
    assert plan.bits == bits
    window = a.upstream_window(shape, devices)
    assert a.assigned(devices, window, bits=40) == upstream


def test_small_bars_change_nothing():
    plan = a.plan(gpus('T4', 2), a.GuestShape(16 * GiB),
                  HOSTS['cpu46-iommu48'])
    assert plan.bits is None and plan.refused is None
    assert not plan.changes_guest


def test_no_gpu_changes_nothing():
    plan = a.plan([], a.GuestShape(16 * GiB), a.HostLimits())
    assert plan.bits is None and plan.needed == 0


def test_39_bit_iommu_refuses_a_hopper_guest_with_the_reason():
    plan = a.plan(gpus('H100', 1), a.GuestShape(16 * GiB),
                  HOSTS['cpu52-iommu39'])
    assert plan.refused
    assert 'IOMMU addresses 39 bits' in plan.refused


def test_no_1g_pages_refuses_ovmf_not_seabios():
    limits = a.HostLimits(46, 48, False)
    ovmf = a.plan(gpus('H100', 2), a.GuestShape(16 * GiB), limits)
    assert 'pdpe1gb' in ovmf.refused
    seabios = a.plan(gpus('H100', 2), a.GuestShape(
        16 * GiB, a.Firmware.SEABIOS), limits)
    assert seabios.refused is None


def test_operator_bits_win_and_too_few_are_reported():
    plan = a.plan(gpus('H100', 4), a.GuestShape(16 * GiB),
                  HOSTS['cpu46-iommu48'], operator_bits=42)
    assert plan.bits == 42 and not plan.changes_guest
    assert 'too few' in plan.warning
    enough = a.plan(gpus('H100', 4), a.GuestShape(16 * GiB),
                    HOSTS['cpu46-iommu48'], operator_bits=45)
    assert enough.warning is None and enough.window is not None


def test_ovmf_rules_from_edk2():
    shape = a.GuestShape(16 * GiB)
    # O4: untrusted 40 bits on Intel -> classic 32 GiB above RAM
    classic = a.ovmf_window(shape, 40, trusted=False)
    assert classic == a.Window(32 * GiB, 32 * GiB)
    # O3: 40 bits trusted (AMD) -> top eighth, 128 GiB at 0xe000000000,
    # measured here with QEMU 7.2's qemu64 (AuthenticAMD) CPU
    assert a.ovmf_window(a.GuestShape(GiB), 40) == a.Window(
        0xe000000000, 128 * GiB)
    # O3 with 46 bits: 8 TiB at 56 TiB (0x380000000000, measured)
    assert a.ovmf_window(shape, 46).base == 0x380000000000
    # O2: capped to 46, and to 40 without 1 GiB pages
    assert a.ovmf_window(shape, 52) == a.ovmf_window(shape, 46)
    assert a.ovmf_window(shape, 46, page_1g=False) == \
        a.ovmf_window(shape, 40)


def test_ram_layout_q35_and_pc():
    assert a.ram_end(a.GuestShape(GiB)) == 4 * GiB
    assert a.ram_end(a.GuestShape(16 * GiB)) == 18 * GiB
    assert a.ram_end(a.GuestShape(16 * GiB, machine=a.Machine.PC)) == \
        4 * GiB + 12 * GiB + 512 * MiB
    assert a.ram_end(a.GuestShape(16 * GiB, hotplug=16 * GiB)) == 34 * GiB


def test_aperture_rounds_to_the_largest_bar():
    assert gpu('H100').aperture == 256 * GiB
    td = a.GuestDevice('td', (BAR(2, 128 * GiB, True, True),))
    assert td.aperture == 128 * GiB
