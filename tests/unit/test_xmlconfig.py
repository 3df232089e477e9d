"""Our libvirt config subclasses: each new attribute to XML and back."""

from lxml import etree
from nova.virt.libvirt import config as vconfig
import pytest

from nova_gpu_ext.virt import xmlconfig


def _xml(obj):
    return etree.tostring(obj.format_dom(), encoding='unicode')


def _canon(text):
    return etree.tostring(etree.fromstring(text), method='c14n2').decode()


def test_promote_keeps_identity_and_upstream_attributes():
    upstream = vconfig.LibvirtConfigGuestMemoryBacking()
    upstream.locked = True
    before = _xml(upstream)
    ours = xmlconfig.promote(upstream, xmlconfig.GuestMemoryBacking)
    assert ours is upstream
    assert isinstance(ours, xmlconfig.GuestMemoryBacking)
    # New attributes default to "render what Nova renders".
    assert _xml(ours) == before
    assert xmlconfig.promote(ours, xmlconfig.GuestMemoryBacking) is ours


def test_promote_refuses_unrelated_class():
    with pytest.raises(TypeError):
        xmlconfig.promote(vconfig.LibvirtConfigGuestInterface(),
                          xmlconfig.GuestHostdevPCI)


def test_memory_backing_threads_join_the_allocation_element():
    backing = xmlconfig.GuestMemoryBacking()
    page = vconfig.LibvirtConfigGuestMemoryBackingPage()
    page.size_kb = 2048
    page.nodeset = [0]
    backing.hugepages = [page]
    backing.allocateimmediate = True
    backing.allocation_threads = 6
    assert _canon(_xml(backing)) == _canon(
        '<memoryBacking><hugepages>'
        '<page size="2048" nodeset="0" unit="KiB"/></hugepages>'
        '<allocation mode="immediate" threads="6"/></memoryBacking>')


def test_memory_backing_threads_without_mode_and_before_discard():
    backing = xmlconfig.GuestMemoryBacking()
    backing.discard = True
    backing.allocation_threads = 4
    assert _canon(_xml(backing)) == _canon(
        '<memoryBacking><allocation threads="4"/><discard/></memoryBacking>')


def test_memory_backing_parses_back():
    text = ('<memoryBacking><hugepages><page size="1" unit="GiB"/>'
            '<page size="2048" unit="KiB" nodeset="0-1"/></hugepages>'
            '<locked/><allocation mode="immediate" threads="8"/>'
            '</memoryBacking>')
    backing = xmlconfig.GuestMemoryBacking()
    backing.parse_str(text)
    assert backing.allocateimmediate and backing.locked
    assert backing.allocation_threads == 8
    assert [(p.size_kb, p.nodeset) for p in backing.hugepages] == [
        (1048576, None), (2048, {0, 1})]
    assert _canon(_xml(backing)) == _canon(
        text.replace('size="1" unit="GiB"', 'size="1048576" unit="KiB"'))


def test_page_without_nodeset_covers_all_memory():
    page = xmlconfig.GuestMemoryBackingPage()
    page.size_kb = 1048576
    assert _canon(_xml(page)) == _canon('<page size="1048576" unit="KiB"/>')


def test_hostdev_rom_bar_off_and_back():
    dev = xmlconfig.GuestHostdevPCI()
    dev.domain, dev.bus, dev.slot, dev.function = '0000', '3b', '00', '0'
    dev.rom_bar = False
    text = _xml(dev)
    assert _canon(text) == _canon(
        '<hostdev mode="subsystem" type="pci" managed="yes"><source>'
        '<address domain="0x0000" bus="0x3b" slot="0x00" function="0x0"/>'
        '</source><rom bar="off"/></hostdev>')
    back = xmlconfig.GuestHostdevPCI()
    back.parse_str(text)
    assert back.rom_bar is False and back.rom_enabled is None
    assert back.bus == '0x3b'


def test_hostdev_without_rom_renders_like_nova():
    ours = xmlconfig.GuestHostdevPCI()
    theirs = vconfig.LibvirtConfigGuestHostdevPCI()
    for dev in (ours, theirs):
        dev.domain, dev.bus, dev.slot, dev.function = '0000', '3b', '00', '0'
    assert _xml(ours) == _xml(theirs)


def test_interface_rom_disabled_and_back():
    nic = xmlconfig.GuestInterface()
    nic.net_type = 'bridge'
    nic.mac_addr = 'fa:16:3e:00:00:01'
    nic.model = 'virtio'
    nic.source_dev = 'br-int'
    nic.rom_enabled = False
    text = _xml(nic)
    tree = etree.fromstring(text)
    assert tree.find('rom').attrib == {'enabled': 'no'}
    back = xmlconfig.GuestInterface()
    back.parse_str(text)
    assert back.rom_enabled is False and back.rom_bar is None
    assert back.model == 'virtio'


def _guest():
    guest = vconfig.LibvirtConfigGuest()
    guest.virt_type = 'kvm'
    guest.name = 'g'
    guest.uuid = '11111111-2222-3333-4444-555555555555'
    guest.os_type = 'hvm'
    guest.os_boot_dev = ['hd']
    return guest


def test_guest_bootmenu_explicitly_off_and_back():
    guest = xmlconfig.promote(_guest(), xmlconfig.Guest)
    guest.os_bootmenu_off = True
    text = guest.to_xml()
    os_element = etree.fromstring(text).find('os')
    assert [c.tag for c in os_element] == ['type', 'boot', 'bootmenu']
    assert os_element.find('bootmenu').attrib == {'enable': 'no'}
    back = xmlconfig.Guest()
    back.parse_str(text)
    assert back.os_bootmenu_off is True and back.os_bootmenu is False


def test_guest_bootmenu_on_wins_and_default_is_nova():
    guest = _guest()
    nova_xml = guest.to_xml()
    ours = xmlconfig.promote(guest, xmlconfig.Guest)
    assert ours.to_xml() == nova_xml
    ours.os_bootmenu = True
    ours.os_bootmenu_off = True
    menus = etree.fromstring(ours.to_xml()).findall('os/bootmenu')
    assert [m.get('enable') for m in menus] == ['yes']
