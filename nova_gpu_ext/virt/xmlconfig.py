"""Libvirt config classes for the domain XML that Nova's classes cannot say.

Layer rule: pure object <-> XML, like ``nova.virt.libvirt.config``. Each
class subclasses Nova's class for the same element, adds only the missing
attributes (default: render exactly what Nova renders) and overrides
``format_dom``/``parse_dom``. No policy here: the domain tweaks in
``nova_gpu_ext.virt.tweaks`` decide when to set the attributes.

Nova builds its own objects; :func:`promote` turns one of them into our
subclass in place (same object, same attributes, new ``format_dom``), so
every reference the driver holds stays valid and nothing upstream set is
lost. Promotion is idempotent.

Missing in Nova 34 and added here:

* ``<memoryBacking><allocation threads='N'/>`` (libvirt 8.2.0) and
  ``<hugepages><page>`` without a ``nodeset`` (all guest memory);
* ``<hostdev><rom bar='off'/>`` and ``<rom enabled='no'/>`` (hostdev and
  interface);
* ``<os><bootmenu enable='no'/>`` (Nova renders only ``enable='yes'``).
"""

from typing import Optional, TypeVar

from lxml import etree
from nova.virt import hardware
from nova.virt.libvirt import config as vconfig

_T = TypeVar('_T')


def promote(obj, cls: type[_T]) -> _T:
    """Make Nova's config object ``obj`` an instance of our subclass ``cls``.

    ``cls`` must subclass ``type(obj)`` (or ``obj`` is already a ``cls``).
    The new attributes take their class-level defaults, which render
    exactly what Nova's class renders.
    """
    if isinstance(obj, cls):
        return obj
    if not issubclass(cls, type(obj)):
        raise TypeError('%s is not a subclass of %s' % (
            cls.__name__, type(obj).__name__))
    obj.__class__ = cls
    return obj


def _rom_element(bar: Optional[bool], enabled: Optional[bool]):
    if bar is None and enabled is None:
        return None
    rom = etree.Element('rom')
    if bar is not None:
        rom.set('bar', 'on' if bar else 'off')
    if enabled is not None:
        rom.set('enabled', 'yes' if enabled else 'no')
    return rom


def _guest_address(bus: int, slot: int = 0):
    return etree.Element('address', type='pci', domain='0x0000',
                         bus='0x%02x' % bus, slot='0x%02x' % slot,
                         function='0x0')


def _parse_rom(element) -> tuple[Optional[bool], Optional[bool]]:
    rom = element.find('rom')
    if rom is None:
        return None, None
    bar = rom.get('bar')
    enabled = rom.get('enabled')
    return (None if bar is None else bar == 'on',
            None if enabled is None else enabled == 'yes')


class GuestMemoryBackingPage(vconfig.LibvirtConfigGuestMemoryBackingPage):
    """``<page size='2048' unit='KiB' [nodeset='0-1']/>``.

    ``nodeset`` (guest NUMA cells) may be None: the page size then applies
    to all guest memory, which is what a guest without NUMA cells needs.
    """

    def format_dom(self):
        if self.nodeset is not None:
            return super().format_dom()
        page = self._new_node(self.root_name)
        page.set('size', str(self.size_kb))
        page.set('unit', 'KiB')
        return page

    def parse_dom(self, xmldoc):
        super().parse_dom(xmldoc)
        size = int(xmldoc.get('size'))
        unit = (xmldoc.get('unit') or 'KiB').lower()
        self.size_kb = size * {'kib': 1, 'k': 1, 'mib': 1024, 'm': 1024,
                               'gib': 1024 * 1024, 'g': 1024 * 1024}[unit]
        nodeset = xmldoc.get('nodeset')
        self.nodeset = (hardware.parse_cpu_spec(nodeset)
                        if nodeset else None)


class GuestMemoryBacking(vconfig.LibvirtConfigGuestMemoryBacking):
    """``<memoryBacking>`` with ``<allocation threads='N'/>``.

    ``allocation_threads`` is the number of threads QEMU uses to
    preallocate guest memory (libvirt >= 8.2.0, QEMU ``prealloc-threads``);
    it renders only together with the ``<allocation>`` element, i.e. with
    ``allocateimmediate`` (mode='immediate') or on its own when the mode is
    left to libvirt.
    """

    allocation_threads: Optional[int] = None

    def format_dom(self):
        root = super().format_dom()
        if self.allocation_threads is None:
            return root
        allocation = root.find('allocation')
        if allocation is None:
            allocation = etree.Element('allocation')
            discard = root.find('discard')
            if discard is not None:
                discard.addprevious(allocation)
            else:
                root.append(allocation)
        allocation.set('threads', str(self.allocation_threads))
        return root

    def parse_dom(self, xmldoc):
        super().parse_dom(xmldoc)
        for child in xmldoc:
            if child.tag == 'hugepages':
                for item in child:
                    page = GuestMemoryBackingPage()
                    page.parse_dom(item)
                    self.hugepages.append(page)
            elif child.tag == 'nosharepages':
                self.sharedpages = False
            elif child.tag == 'locked':
                self.locked = True
            elif child.tag == 'source' and child.get('type') == 'file':
                self.filesource = True
            elif child.tag == 'access' and child.get('mode') == 'shared':
                self.sharedaccess = True
            elif child.tag == 'allocation':
                self.allocateimmediate = child.get('mode') == 'immediate'
                threads = child.get('threads')
                self.allocation_threads = int(threads) if threads else None
            elif child.tag == 'discard':
                self.discard = True


class GuestHostdevPCI(vconfig.LibvirtConfigGuestHostdevPCI):
    """``<hostdev type='pci'>`` with ``<rom bar='off'/>``/``enabled='no'``.

    ``rom_bar``: whether the device's ROM BAR is visible to the guest (None:
    libvirt's default, no element). ``rom_enabled``: False loads no ROM.
    """

    rom_bar: Optional[bool] = None
    rom_enabled: Optional[bool] = None
    #: the guest-side PCI bus (controller index) and slot, or None
    guest_bus: Optional[int] = None
    guest_slot: int = 0

    def format_dom(self):
        dev = super().format_dom()
        rom = _rom_element(self.rom_bar, self.rom_enabled)
        if rom is not None:
            dev.append(rom)
        if self.guest_bus is not None:
            dev.append(_guest_address(self.guest_bus, self.guest_slot))
        return dev

    def parse_dom(self, xmldoc):
        super().parse_dom(xmldoc)
        self.rom_bar, self.rom_enabled = _parse_rom(xmldoc)


class GuestInterface(vconfig.LibvirtConfigGuestInterface):
    """``<interface>`` with ``<rom enabled='no'/>`` (no PXE option ROM)."""

    rom_bar: Optional[bool] = None
    rom_enabled: Optional[bool] = None

    def format_dom(self):
        dev = super().format_dom()
        rom = _rom_element(self.rom_bar, self.rom_enabled)
        if rom is not None:
            dev.append(rom)
        return dev

    def parse_dom(self, xmldoc):
        super().parse_dom(xmldoc)
        self.rom_bar, self.rom_enabled = _parse_rom(xmldoc)


class Guest(vconfig.LibvirtConfigGuest):
    """``<domain>`` with an explicit ``<bootmenu enable='no'/>``.

    ``os_bootmenu`` (Nova) True still renders ``enable='yes'`` and wins;
    ``os_bootmenu_off`` renders ``enable='no'`` when the menu is not on.
    This is the one subclass of the guest itself: add further ``<os>`` or
    top-level attributes here rather than in a second guest subclass.
    """

    os_bootmenu_off: bool = False

    def _format_os(self, root):
        super()._format_os(root)
        if self.os_bootmenu or not self.os_bootmenu_off:
            return
        os_element = root.find('os')
        os_element.append(etree.Element('bootmenu', enable='no'))

    def _parse_os(self, xmldoc):
        super()._parse_os(xmldoc)
        menu = xmldoc.find('bootmenu')
        self.os_bootmenu_off = (menu is not None and
                                menu.get('enable') == 'no')


class GuestGraphicsGL(vconfig.LibvirtConfigGuestGraphics):
    """``<graphics type='egl-headless'><gl rendernode='/dev/dri/...'/>``.

    Also SPICE with GL: ``<graphics type='spice'><gl enable='yes'
    rendernode='...'/>`` (SPICE must then listen on a UNIX socket or none).
    """

    rendernode: Optional[str] = None

    def format_dom(self):
        if self.type == 'egl-headless':
            dev = etree.Element('graphics', type='egl-headless')
            if self.rendernode:
                dev.append(etree.Element('gl', rendernode=self.rendernode))
            return dev
        dev = super().format_dom()
        if self.type == 'spice':
            gl = etree.Element('gl', enable='yes')
            if self.rendernode:
                gl.set('rendernode', self.rendernode)
            dev.append(gl)
        return dev


class GuestVideoAccel3D(vconfig.LibvirtConfigGuestVideo):
    """``<video><model type='virtio'><acceleration accel3d='yes'/>``.

    The render node itself goes on ``<graphics><gl rendernode>``: the
    ``rendernode`` attribute of ``<acceleration>`` only applies to
    vhost-user GPUs.
    """

    accel3d: bool = False

    def format_dom(self):
        dev = super().format_dom()
        if self.accel3d:
            model = dev.find('model')
            model.append(etree.Element('acceleration', accel3d='yes'))
        return dev


class GuestHostdevMDEVOnBus(vconfig.LibvirtConfigGuestHostdevMDEV):
    """An mdev ``<hostdev>`` plugged into a given guest PCI bus."""

    guest_bus: Optional[int] = None
    guest_slot: int = 0

    def format_dom(self):
        dev = super().format_dom()
        if self.guest_bus is not None:
            dev.append(_guest_address(self.guest_bus, self.guest_slot))
        return dev


class GuestPCIExpanderBus(vconfig.LibvirtConfigGuestController):
    """``<controller type='pci' model='pcie-expander-bus'>`` bound to a
    guest NUMA node (``pci-expander-bus`` on i440fx machines), the way
    KubeVirt and libvirt's docs expose device locality to the guest."""

    def __init__(self, index: int, numa_node: int, bus_nr: int,
                 pcie: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.type = 'pci'
        self.index = index
        self.model = 'pcie-expander-bus' if pcie else 'pci-expander-bus'
        self.numa_node = numa_node
        self.bus_nr = bus_nr

    def format_dom(self):
        controller = super().format_dom()
        target = etree.SubElement(controller, 'target',
                                  busNr=str(self.bus_nr))
        etree.SubElement(target, 'node').text = str(self.numa_node)
        return controller


class GuestPCIeRootPortOn(vconfig.LibvirtConfigGuestController):
    """A ``pcie-root-port`` plugged into a given bus (an expander bus)."""

    def __init__(self, index: int, bus: int, slot: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.type = 'pci'
        self.index = index
        self.model = 'pcie-root-port'
        self.bus = bus
        self.slot = slot

    def format_dom(self):
        controller = super().format_dom()
        controller.append(_guest_address(self.bus, self.slot))
        return controller
