"""The large_bar tweak on guests built as upstream's driver builds them."""

import dataclasses
import logging

from nova.virt.libvirt import config as vconfig

from nova_gpu_ext import model
from nova_gpu_ext.virt import tweaks
from nova_gpu_ext.virt.tweaks import address_space
from tests.unit import test_tweaks_common as common

GiB, MiB = 1 << 30, 1 << 20
H100_BARS = (model.BAR(0, 16 * MiB, False, False),
             model.BAR(1, 128 * GiB, True, True),
             model.BAR(3, 32 * MiB, True, True))
ADDRS = ('0000:1b:00.0', '0000:2a:00.0', '0000:9c:00.0', '0000:bd:00.0')


def h100_host(limits=model.AddressLimits(46, 48, True), count=4):
    base = common.host_topology()
    gpus = tuple(model.GPU(
        address=model.PCIAddress.parse(a), vendor_id=0x10de,
        device_id=0x2331, pci_class=0x0302, kind=model.GPUKind.WHOLE,
        numa_node=0, socket=0, bars=H100_BARS) for a in ADDRS[:count])
    return dataclasses.replace(base, gpus=gpus, address_limits=limits)


def efi_guest(count=4, cpu_mode='host-model', memory_mb=16384, **kw):
    guest = common.upstream_guest(pci=ADDRS[:count], memory_mb=memory_mb,
                                  **kw)
    guest.os_firmware = 'efi'
    guest.cpu = vconfig.LibvirtConfigGuestCPU()
    guest.cpu.mode = cpu_mode
    return guest


def apply(guest, host, **ctx_kw):
    ctx = common.context(host=host, **ctx_kw)
    return address_space.LargeBAR().apply(guest, ctx)


def test_four_hopper_gpus_get_44_bits_and_1g_pages():
    guest = efi_guest()
    changes = apply(guest, h100_host())
    tree = common.to_tree(guest)
    address = tree.find('./cpu/maxphysaddr')
    assert address.get('mode') == 'emulate' and address.get('bits') == '44'
    assert tree.find("./cpu/feature[@name='pdpe1gb']").get('policy') == \
        'require'
    assert len(changes) == 2
    common.validate_schema(guest.to_xml())


def test_host_passthrough_on_libvirt_9_3_uses_limit():
    guest = efi_guest(cpu_mode='host-passthrough')
    apply(guest, h100_host(), libvirt_version=9003000)
    address = common.to_tree(guest).find('./cpu/maxphysaddr')
    assert address.get('mode') == 'passthrough'
    assert address.get('limit') == '44'
    # libvirt 9.0: no limit attribute yet, emulate instead
    guest = efi_guest(cpu_mode='host-passthrough')
    apply(guest, h100_host(), libvirt_version=9000000)
    assert common.to_tree(guest).find('./cpu/maxphysaddr').get(
        'mode') == 'emulate'


def test_seabios_guest_gets_bits_without_1g_pages():
    guest = efi_guest(memory_mb=768 * 1024)
    guest.os_firmware = None
    apply(guest, h100_host())
    tree = common.to_tree(guest)
    assert tree.find('./cpu/maxphysaddr').get('bits') == '42'
    assert tree.find("./cpu/feature[@name='pdpe1gb']") is None


def test_small_bars_and_no_gpus_are_left_alone():
    guest = efi_guest()
    before = guest.to_xml()
    host = dataclasses.replace(h100_host(), gpus=())
    assert apply(guest, host) == []
    assert guest.to_xml() == before


def test_operator_setting_wins_and_too_small_is_logged(caplog):
    guest = efi_guest()
    guest.cpu.maxphysaddr = vconfig.LibvirtConfigGuestCPUMaxPhysAddr()
    guest.cpu.maxphysaddr.mode, guest.cpu.maxphysaddr.bits = 'emulate', 41
    before = guest.to_xml()
    with caplog.at_level(logging.WARNING):
        assert apply(guest, h100_host()) == []
    assert guest.to_xml() == before
    assert 'too few' in caplog.text


def test_refused_host_keeps_upstream_xml(caplog):
    guest = efi_guest()
    before = guest.to_xml()
    with caplog.at_level(logging.WARNING):
        apply(guest, h100_host(model.AddressLimits(46, 39, True)))
    assert guest.to_xml() == before
    assert 'IOMMU addresses 39 bits' in caplog.text


def test_selected_for_gpu_guests_even_without_fast_boot():
    ctx = common.context(extra_specs={'pci_passthrough:alias': 'gpu:1',
                                      'gpu:fast_boot': 'false'},
                         gpu_guest=True)
    chosen = tweaks.select({'large_bar': address_space.LargeBAR()}, ctx,
                           None)
    assert [t.name for t in chosen] == ['large_bar']
    ctx = common.context(extra_specs={}, gpu_guest=False)
    assert tweaks.select({'large_bar': address_space.LargeBAR()}, ctx,
                         None) == []
