"""rom_bar_off (GPU hostdevs) and nic_rom_off (interfaces)."""

import pytest

from nova_gpu_ext.virt.tweaks import rom
from tests.unit import test_tweaks_common as common

ROM_BAR = rom.GPUROMBarOff()
NIC_ROM = rom.NICROMOff()


def _hostdev_roms(guest):
    out = {}
    for dev in common.to_tree(guest).findall('devices/hostdev'):
        addr = dev.find('source/address')
        key = '%s:%s' % (addr.get('bus'), addr.get('function'))
        element = dev.find('rom')
        out[key] = None if element is None else dict(element.attrib)
    return out


def test_gpu_and_gpu_vf_lose_the_rom_bar_other_devices_keep_it():
    guest = common.upstream_guest(
        pci=(common.GPU_ADDR, common.VF_ADDR, common.NIC_ADDR))
    lines = ROM_BAR.apply(guest, common.context())
    assert _hostdev_roms(guest) == {
        '0x3b:0x0': {'bar': 'off'},
        '0xd8:0x4': {'bar': 'off'},
        '0x5e:0x1': None,
    }
    assert lines == [
        "hostdev 0000:3b:00.0 (whole 10de:1eb8): rom bar='off'",
        "hostdev 0000:d8:00.4 (vf 1002:7312): rom bar='off'",
    ]
    common.validate_schema(guest.to_xml())


@pytest.mark.parametrize('keep', [['10de:1eb8'], ['10DE:*']])
def test_keep_gpu_rom_ids(keep):
    guest = common.upstream_guest(pci=(common.GPU_ADDR, common.VF_ADDR))
    lines = ROM_BAR.apply(guest, common.context(
        settings={'keep_gpu_rom_ids': keep}))
    assert _hostdev_roms(guest) == {'0x3b:0x0': None,
                                    '0xd8:0x4': {'bar': 'off'}}
    assert lines[0] == ('hostdev 0000:3b:00.0 (whole 10de:1eb8): ROM kept '
                        '(keep_gpu_rom_ids)')


def test_only_kept_roms_is_no_change():
    guest = common.upstream_guest(pci=(common.GPU_ADDR,))
    xml = guest.to_xml()
    assert ROM_BAR.apply(guest, common.context(
        settings={'keep_gpu_rom_ids': ['10de:1eb8']})) == []
    assert guest.to_xml() == xml


def test_rom_bar_idempotent_and_needs_the_topology():
    guest = common.upstream_guest(pci=(common.GPU_ADDR,))
    assert ROM_BAR.apply(guest, common.context(host=None)) == []
    assert ROM_BAR.apply(guest, common.context())
    xml = guest.to_xml()
    assert ROM_BAR.apply(guest, common.context()) == []
    assert guest.to_xml() == xml


def test_parse_rom_ids_ignores_garbage():
    assert rom.parse_rom_ids(['10de:1eb8', '1002:*', 'nvidia', '']) == {
        (0x10de, 0x1eb8), (0x1002, '*')}


def test_nics_lose_their_pxe_rom_when_booting_from_disk():
    guest = common.upstream_guest(nics=('bridge', 'hostdev'))
    lines = NIC_ROM.apply(guest, common.context())
    roms = [nic.find('rom').attrib
            for nic in common.to_tree(guest).findall('devices/interface')]
    assert roms == [{'enabled': 'no'}, {'enabled': 'no'}]
    assert lines == [
        "interface fa:16:3e:00:00:00 (bridge, virtio): rom enabled='no'",
        "interface fa:16:3e:00:00:01 (hostdev): rom enabled='no'"]
    assert NIC_ROM.apply(guest, common.context()) == []
    common.validate_schema(guest.to_xml())


def test_network_boot_keeps_the_nic_rom():
    guest = common.upstream_guest(boot_dev='network')
    xml = guest.to_xml()
    assert NIC_ROM.apply(guest, common.context()) == []
    assert guest.to_xml() == xml


def test_not_for_non_qemu_guests():
    guest = common.upstream_guest(virt_type='lxc')
    assert NIC_ROM.apply(guest, common.context()) == []
    assert ROM_BAR.apply(guest, common.context()) == []


def test_primary_display_gpus_keep_their_vbios_by_default():
    """An RTX A6000 passed through as the primary display keeps its ROM
    (the option's default, KEEP_ROM_DEFAULT); a T4 loses it."""
    import dataclasses
    from nova_gpu_ext.conf import fast_boot
    (opt,) = [o for o in fast_boot.ALL_OPTS if o.name == 'keep_gpu_rom_ids']
    assert sorted(opt.default) == sorted(rom.KEEP_ROM_DEFAULT)
    host = common.host_topology()
    a6000 = dataclasses.replace(host.gpus[0], device_id=0x2230)
    host = dataclasses.replace(host, gpus=(a6000,) + host.gpus[1:])
    guest = common.upstream_guest(pci=(common.GPU_ADDR, common.VF_ADDR))
    lines = ROM_BAR.apply(guest, common.context(
        host=host, settings={'keep_gpu_rom_ids': opt.default}))
    assert _hostdev_roms(guest) == {'0x3b:0x0': None,
                                    '0xd8:0x4': {'bar': 'off'}}
    assert lines[0] == (
        'hostdev 0000:3b:00.0 (whole 10de:2230): ROM kept (keep_gpu_rom_ids'
        ': NVIDIA RTX A6000: primary display (VBIOS/GOP))')
    # The T4 of the same host description loses it with the same default.
    guest = common.upstream_guest(pci=(common.GPU_ADDR,))
    assert ROM_BAR.apply(guest, common.context(
        settings={'keep_gpu_rom_ids': opt.default}))
    assert _hostdev_roms(guest) == {'0x3b:0x0': {'bar': 'off'}}
