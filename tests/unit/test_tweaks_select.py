"""Which installed tweaks run for a guest, and the whole profile's XML.

Uses the entry points of the installed package (``pip install .``), the
same way the driver loads them.
"""

import collections

from lxml import etree
from nova.virt.libvirt import config as vconfig
import pytest

from nova_gpu_ext.virt.tweaks import rom
from nova_gpu_ext import conf as gpu_conf
from nova_gpu_ext.virt import driver
from nova_gpu_ext.virt import tweaks
from tests.unit import test_tweaks_common as common

DEFAULT_ON = {'boot_menu_off', 'nic_rom_off', 'no_balloon',
              'no_emulated_vga', 'no_usb_tablet', 'prealloc_threads',
              'rom_bar_off', 'large_bar'}
#: correctness tweaks: every GPU guest, whatever fast boot says
ALWAYS = {'large_bar'}


def _names(chosen):
    return {tweak.name for tweak in chosen}


@pytest.fixture
def installed():
    found = tweaks.load_tweaks()
    missing = (DEFAULT_ON | {'hugepages'}) - set(found)
    assert not missing, 'reinstall the package: %s' % sorted(missing)
    return found


@pytest.fixture
def conf():
    yield gpu_conf.CONF
    gpu_conf.CONF.clear_override('enabled_tweaks', group='gpu_ext')
    gpu_conf.CONF.clear_override('fast_boot_default', group='gpu_ext')


def test_each_tweak_is_described(installed):
    for name, tweak in installed.items():
        assert tweak.name == name
        assert tweak.summary
        assert tweak.default_for_gpu_guests == (name in DEFAULT_ON)


@pytest.mark.parametrize('extra_specs', [
    {'pci_passthrough:alias': 'gpu:1'},
    {'resources:VGPU': '1'},
    {'resources:CUSTOM_NVIDIA_A100': '1'},
])
def test_gpu_guests_get_the_defaults(installed, extra_specs):
    # The driver found a GPU among the guest's devices (specs.gpu_guest).
    ctx = common.context(extra_specs, gpu_guest=True)
    assert _names(tweaks.select(installed, ctx, None)) == DEFAULT_ON


@pytest.mark.parametrize('extra_specs', [
    {'pci_passthrough:alias': 'i210-nic:1'},
    {'resources:CUSTOM_LICENCE': '1'},
])
def test_nic_alias_or_licence_without_a_gpu_device_get_nothing(
        installed, extra_specs):
    ctx = common.context(extra_specs, gpu_guest=False)
    assert tweaks.select(installed, ctx, None) == []
    # Judged by the flavor alone (no device count), not GPU guests either.
    assert tweaks.select(installed, common.context(extra_specs), None) == []


def test_non_gpu_guests_get_nothing(installed):
    ctx = common.context({'hw:numa_nodes': '1'})
    assert tweaks.select(installed, ctx, None) == []


def test_flavor_opts_out_of_one_or_all(installed):
    ctx = common.context({'resources:VGPU': '1',
                          'gpu:tweak:no_balloon': 'false'})
    assert _names(tweaks.select(installed, ctx, None)) == \
        DEFAULT_ON - {'no_balloon'}
    ctx = common.context({'resources:VGPU': '1', 'gpu:fast_boot': 'false'})
    assert _names(tweaks.select(installed, ctx, None)) == ALWAYS
    ctx = common.context({'resources:VGPU': '1',
                          'gpu:tweak:large_bar': 'false'})
    assert _names(tweaks.select(installed, ctx, None)) == \
        DEFAULT_ON - ALWAYS
    ctx = common.context({'resources:VGPU': '1', 'gpu:enabled': 'false'})
    assert tweaks.select(installed, ctx, None) == []


def test_flavor_opts_in(installed):
    ctx = common.context({'resources:VGPU': '1',
                          'gpu:tweak:hugepages': 'true'})
    assert _names(tweaks.select(installed, ctx, None)) == \
        DEFAULT_ON | {'hugepages'}
    ctx = common.context({'gpu:tweak:boot_menu_off': 'true'})
    assert _names(tweaks.select(installed, ctx, None)) == {'boot_menu_off'}
    ctx = common.context({'gpu:fast_boot': 'true'})
    # not a GPU guest: the correctness tweaks have nothing to correct
    assert _names(tweaks.select(installed, ctx, None)) == \
        DEFAULT_ON - ALWAYS


def test_options_disable(installed, conf):
    ctx = common.context({'resources:VGPU': '1',
                          'gpu:tweak:hugepages': 'true'})
    conf.set_override('enabled_tweaks', ['prealloc_threads', 'hugepages'],
                      group='gpu_ext')
    assert _names(tweaks.select(
        installed, ctx, gpu_conf.enabled_tweak_names(conf))) == {
            'prealloc_threads', 'hugepages'}
    conf.set_override('enabled_tweaks', [], group='gpu_ext')
    assert tweaks.select(
        installed, ctx, gpu_conf.enabled_tweak_names(conf)) == []
    conf.clear_override('enabled_tweaks', group='gpu_ext')
    conf.set_override('fast_boot_default', False, group='gpu_ext')
    assert _names(tweaks.select(
        installed, ctx, None,
        fast_boot_default=gpu_conf.fast_boot_default(conf))) == \
        {'hugepages'} | ALWAYS


def _apply_like_the_driver(guest, ctx):
    """The driver's own loop (``GPULibvirtDriver.apply_tweaks``)."""
    holder = collections.namedtuple('Driver', 'guest_changes')(
        collections.OrderedDict())
    return driver.GPULibvirtDriver.apply_tweaks(holder, guest, ctx)


def test_old_libvirt_skips_only_the_gated_tweak(installed):
    guest = common.upstream_guest(numa=[0])
    changes = _apply_like_the_driver(
        guest, common.context(libvirt_version=8000000))
    assert not any(c.startswith('prealloc_threads:') for c in changes)
    assert any(c.startswith('boot_menu_off:') for c in changes)
    assert common.to_tree(guest).find('memoryBacking') is None


def test_gpu_profile_xml(installed):
    """The whole default profile on a NUMA passthrough guest."""
    guest = common.upstream_guest(numa=[0], pci=(common.GPU_ADDR,))
    changes = _apply_like_the_driver(guest, common.context())
    assert changes == [
        "boot_menu_off: os: bootmenu enable='no'",
        "nic_rom_off: interface fa:16:3e:00:00:00 (bridge, virtio): "
        "rom enabled='no'",
        'no_balloon: memballoon: model none (was virtio; memory pinned by '
        'PCI 0000:3b:00.0)',
        'prealloc_threads: memoryBacking: allocation immediate, 6 threads '
        '(node 0 has 6 CPUs, cap 16)',
        "rom_bar_off: hostdev 0000:3b:00.0 (whole 10de:1eb8): rom bar='off'",
    ]
    xml = guest.to_xml()
    tree = etree.fromstring(xml)
    assert tree.find('memoryBacking/allocation').attrib == {
        'mode': 'immediate', 'threads': '6'}
    # The console keeps its emulated card and tablet (default options).
    assert tree.find('devices/video/model').get('type') == 'virtio'
    assert tree.find('devices/input').get('type') == 'tablet'
    common.validate_schema(xml)
    # Applying again changes nothing.
    assert _apply_like_the_driver(guest, common.context()) == []
    assert guest.to_xml() == xml


def test_headless_gpu_profile_xml(installed):
    guest = common.upstream_guest(numa=[1], graphics=(),
                                  pci=(common.VF_ADDR,))
    guest.devices.insert(2, vconfig.LibvirtConfigGuestInput())
    changes = _apply_like_the_driver(guest, common.context())
    assert [c.split(':')[0] for c in changes] == [
        'boot_menu_off', 'nic_rom_off', 'no_balloon', 'no_usb_tablet',
        'prealloc_threads', 'rom_bar_off']
    tree = etree.fromstring(guest.to_xml())
    assert tree.find('devices/input') is None
    assert tree.find("devices/controller[@type='usb']").get('model') == \
        'none'
    common.validate_schema(guest.to_xml())


def test_fast_boot_options_registered_with_their_defaults(conf):
    from nova_gpu_ext.conf import fast_boot
    settings = gpu_conf.tweak_settings(conf)
    assert settings['prealloc_max_threads'] == 16
    assert sorted(settings['keep_gpu_rom_ids']) == sorted(
        rom.KEEP_ROM_DEFAULT)
    assert settings['usb_tablet_with_console'] is True
    assert settings['hugepage_sizes_kb'] == [1048576, 2048]
    assert gpu_conf.enabled_tweak_names(conf) is None
    assert gpu_conf.fast_boot_default(conf) is True
    for opt in fast_boot.ALL_OPTS:
        assert 'Possible values:' in opt.help, opt.name
        assert 'Related options:' in opt.help, opt.name
