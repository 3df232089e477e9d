"""no_usb_tablet, no_balloon, no_emulated_vga and boot_menu_off."""

from nova.virt.libvirt import config as vconfig
import pytest

from nova_gpu_ext.virt.tweaks import devices
from nova_gpu_ext.virt.tweaks import firmware
from tests.unit import test_tweaks_common as common

TABLET = devices.NoUSBTablet()
BALLOON = devices.NoBalloon()
VGA = devices.NoEmulatedVGA()
BOOTMENU = firmware.BootMenuOff()


def _usb(guest):
    tree = common.to_tree(guest)
    usb = tree.findall("devices/controller[@type='usb']")
    return ([i.get('type') for i in tree.findall('devices/input')],
            [c.get('model') for c in usb])


# -- no_usb_tablet ----------------------------------------------------------

def _tablet_without_console():
    """A guest that got a tablet but has no console (e.g. from an image)."""
    guest = common.upstream_guest(graphics=())
    guest.devices.insert(2, vconfig.LibvirtConfigGuestInput())
    for dev in guest.devices:
        if isinstance(dev, vconfig.LibvirtConfigGuestController):
            dev.model = None
    return guest


def test_tablet_dropped_without_console():
    guest = _tablet_without_console()
    lines = TABLET.apply(guest, common.context())
    assert _usb(guest) == ([], ['none'])
    assert lines == ["input: USB tablet removed, controller usb "
                     "model='none' (no VNC/SPICE console)"]
    assert TABLET.apply(guest, common.context()) == []
    common.validate_schema(guest.to_xml())


def test_console_keeps_the_tablet_by_default():
    guest = common.upstream_guest(graphics=('vnc',))
    xml = guest.to_xml()
    assert TABLET.apply(guest, common.context()) == []
    assert guest.to_xml() == xml


def test_console_tablet_dropped_when_the_option_says_so():
    guest = common.upstream_guest(graphics=('vnc',))
    lines = TABLET.apply(guest, common.context(
        settings={'usb_tablet_with_console': False}))
    assert _usb(guest) == ([], ['none'])
    assert 'vnc console, usb_tablet_with_console=false' in lines[0]
    common.validate_schema(guest.to_xml())


@pytest.mark.parametrize('prop', ['hw_input_bus', 'hw_pointer_model',
                                  'hw_usb_model'])
def test_image_asking_for_a_pointer_keeps_it(prop):
    guest = _tablet_without_console()
    xml = guest.to_xml()
    assert TABLET.apply(guest, common.context(**{prop: 'usb'})) == []
    assert guest.to_xml() == xml


def test_other_usb_device_keeps_tablet_and_controller():
    # libvirt refuses model='none' while a USB device remains.
    guest = _tablet_without_console()
    keyboard = vconfig.LibvirtConfigGuestInput()
    keyboard.type = 'keyboard'
    guest.add_device(keyboard)
    xml = guest.to_xml()
    assert TABLET.apply(guest, common.context()) == []
    assert guest.to_xml() == xml


def test_non_x86_machine_untouched():
    guest = _tablet_without_console()
    guest.os_mach_type = 'pseries'
    assert TABLET.apply(guest, common.context()) == []


# -- no_balloon -------------------------------------------------------------

@pytest.mark.parametrize('kwargs,pinned_by', [
    (dict(pci=(common.GPU_ADDR,)), 'PCI 0000:3b:00.0'),
    (dict(pci=(), mdevs=('4b20d080-1b54-4048-85b3-a6a62d165c01',)),
     'mdev 4b20d080-1b54-4048-85b3-a6a62d165c01'),
    (dict(pci=(), nics=('hostdev',)),
     'hostdev interface %s' % common.NIC_ADDR),
])
def test_balloon_off_when_memory_is_pinned(kwargs, pinned_by):
    guest = common.upstream_guest(**kwargs)
    lines = BALLOON.apply(guest, common.context())
    balloon = common.to_tree(guest).find('devices/memballoon')
    assert balloon.get('model') == 'none'
    assert balloon.find('stats') is None
    assert lines == ['memballoon: model none (was virtio; memory pinned by '
                     '%s)' % pinned_by]
    assert BALLOON.apply(guest, common.context()) == []
    common.validate_schema(guest.to_xml())


def test_balloon_kept_when_nothing_pins_memory():
    guest = common.upstream_guest(pci=())
    xml = guest.to_xml()
    assert BALLOON.apply(guest, common.context()) == []
    assert guest.to_xml() == xml


def test_balloon_off_for_locked_memory():
    backing = vconfig.LibvirtConfigGuestMemoryBacking()
    backing.locked = True
    guest = common.upstream_guest(pci=(), membacking=backing)
    assert 'pinned by <locked/> memory' in BALLOON.apply(
        guest, common.context())[0]


# -- no_emulated_vga --------------------------------------------------------

def test_vga_kept_when_it_is_the_console():
    guest = common.upstream_guest(graphics=('vnc',), pci=(common.GPU_ADDR,))
    xml = guest.to_xml()
    assert VGA.apply(guest, common.context()) == []
    assert guest.to_xml() == xml


def test_vga_none_when_a_vgpu_renders_the_console():
    guest = common.upstream_guest(
        graphics=('vnc',), pci=(),
        mdevs=('4b20d080-1b54-4048-85b3-a6a62d165c01',))
    mdev = guest.devices[-1]
    mdev.display = 'on'    # what a display-capable vGPU change would set
    lines = VGA.apply(guest, common.context())
    assert common.to_tree(guest).find('devices/video/model').attrib == {
        'type': 'none'}
    assert lines == ["video: model none (was virtio; mdev "
                     "4b20d080-1b54-4048-85b3-a6a62d165c01 renders the "
                     "console (display='on'))"]
    assert VGA.apply(guest, common.context()) == []


def test_vga_none_without_console_when_a_gpu_is_the_display():
    guest = common.upstream_guest(graphics=(), pci=(common.GPU_ADDR,))
    video = vconfig.LibvirtConfigGuestVideo()
    video.type = 'cirrus'
    guest.add_device(video)
    lines = VGA.apply(guest, common.context())
    assert lines == ['video: model none (was cirrus; GPU 0000:3b:00.0 is '
                     'the display; no VNC/SPICE console)']
    common.validate_schema(guest.to_xml())


def test_vga_untouched_without_gpu():
    guest = common.upstream_guest(graphics=(), pci=(common.NIC_ADDR,))
    guest.add_device(vconfig.LibvirtConfigGuestVideo())
    assert VGA.apply(guest, common.context()) == []


# -- boot_menu_off ----------------------------------------------------------

def test_boot_menu_explicitly_off():
    guest = common.upstream_guest()
    assert BOOTMENU.apply(guest, common.context()) == [
        "os: bootmenu enable='no'"]
    assert common.to_tree(guest).find('os/bootmenu').attrib == {
        'enable': 'no'}
    assert BOOTMENU.apply(guest, common.context()) == []
    common.validate_schema(guest.to_xml())


def test_boot_menu_requested_by_the_flavor_stays():
    guest = common.upstream_guest()
    guest.os_bootmenu = True    # hw:boot_menu=true
    xml = guest.to_xml()
    assert BOOTMENU.apply(guest, common.context()) == []
    assert guest.to_xml() == xml
