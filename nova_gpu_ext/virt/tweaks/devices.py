"""Device tweaks: drop emulated devices a GPU guest cannot use or need.

Layer rule: adapter (domain tweak plugins). Each class changes only the
devices its name says, and only in the cases listed here; everything else
keeps upstream's XML.

``no_usb_tablet`` (default on for GPU guests)
    Removes the USB tablet and sets the USB controller to
    ``<controller type='usb' model='none'/>`` (measured here: halves the
    SeaBIOS phase, -110 ms; dropping only the tablet gains nothing, so the
    tweak does both or nothing). The rule: a guest needs a pointer device
    when a user looks at its graphical console. The tablet is the absolute
    pointer that makes the noVNC/SPICE mouse follow the user's cursor, so a
    guest with a VNC or SPICE console keeps it unless
    ``[gpu_ext] usb_tablet_with_console = false`` (clouds whose users reach
    GPU desktops through an in-guest remote desktop; the console keeps the
    PS/2 mouse and keyboard of the x86 machine). An image that asks for a
    pointer (``hw_input_bus``, ``hw_pointer_model``) or a USB controller
    model (``hw_usb_model``/``hw:usb_model``) always keeps it; so does a
    guest with any other USB device (disk, keyboard, redirection, sound),
    since libvirt refuses ``model='none'`` while one remains, and any
    non-x86 guest (PPC and ARM machines attach USB input themselves).
    Note that upstream adds the tablet only together with a VNC/SPICE
    console, so with the default option this tweak changes only guests
    whose tablet came from elsewhere.

``no_balloon`` (default on for GPU guests)
    ``<memballoon model='none'/>`` for guests whose memory is pinned: a PCI
    or VF passthrough, an SR-IOV/vDPA interface, or an mdev (vGPU) pins
    guest memory for DMA, and ``<memoryBacking><locked/>`` pins it all, so a
    balloon cannot return memory to the host; it only costs a virtio device
    at boot. The balloon's memory statistics (``[libvirt]
    mem_stats_period_seconds``) go with it. Guests without such a device
    keep theirs.

``no_emulated_vga`` (default on for GPU guests, conservative)
    ``<video><model type='none'/></video>`` in place of the emulated video
    card only when a GPU provides the display and nobody can look at the
    emulated one: either the guest has no VNC/SPICE console and has a GPU
    passthrough or an mdev, or a vGPU renders the console itself (an mdev
    hostdev with ``display='on'``). With a VNC/SPICE console and no such
    vGPU the emulated card is the console, so it stays. Upstream adds the
    video card only together with a console, so on stock Nova this tweak
    changes nothing unless another change sets ``display='on'``; libvirt
    adds no implicit video to a guest without graphics either.
"""

from nova.virt.libvirt import config as vconfig

from nova_gpu_ext.virt import tweaks
from nova_gpu_ext.virt.tweaks import guestinfo

#: Machine types whose USB controller may be 'none' (x86 pc/q35 families).
_X86_MACHINES = ('pc', 'q35')


def _is_x86_machine(guest) -> bool:
    if guest.os_arch and guest.os_arch not in ('x86_64', 'i686'):
        return False
    mach = guest.os_mach_type
    return mach is None or any(m in mach for m in _X86_MACHINES)


def _uses_usb(dev) -> bool:
    if isinstance(dev, vconfig.LibvirtConfigGuestUSBRedirect):
        return True
    if isinstance(dev, vconfig.LibvirtConfigGuestSound):
        return dev.model == 'usb'
    if isinstance(dev, vconfig.LibvirtConfigGuestHostdev):
        return dev.type == 'usb'
    return (getattr(dev, 'bus', None) == 'usb' or
            getattr(dev, 'target_bus', None) == 'usb')


class NoUSBTablet(tweaks.DomainTweak):
    name = 'no_usb_tablet'
    summary = ("No USB tablet and <controller type='usb' model='none'/> for "
               "guests without a VNC/SPICE console")
    default_for_gpu_guests = True

    def apply(self, guest, ctx):
        if not guestinfo.is_qemu_hvm(guest):
            return []
        tablets = [dev for dev in guest.devices
                   if isinstance(dev, vconfig.LibvirtConfigGuestInput) and
                   dev.type == 'tablet' and dev.bus == 'usb']
        if not tablets or not _is_x86_machine(guest):
            return []
        consoles = guestinfo.console_graphics(guest)
        if consoles and ctx.settings.get('usb_tablet_with_console', True):
            return []
        for prop in ('hw_input_bus', 'hw_pointer_model', 'hw_usb_model'):
            if guestinfo.image_property(ctx.image_meta, prop):
                return []
        if guestinfo.flavor_spec(ctx, 'hw:usb_model'):
            return []
        usb_controllers = [
            dev for dev in guest.devices
            if isinstance(dev, vconfig.LibvirtConfigGuestController) and
            dev.type == 'usb']
        # Identity, not ==: some of Nova's config classes define __eq__.
        mine = {id(dev) for dev in tablets + usb_controllers}
        others = [dev for dev in guest.devices
                  if id(dev) not in mine and _uses_usb(dev)]
        if others or len(usb_controllers) > 1:
            return []
        dropped = {id(dev) for dev in tablets}
        guest.devices[:] = [dev for dev in guest.devices
                            if id(dev) not in dropped]
        if usb_controllers:
            usb_controllers[0].model = 'none'
        else:
            controller = vconfig.LibvirtConfigGuestUSBHostController()
            controller.index = 0
            controller.model = 'none'
            guest.add_device(controller)
        why = ('%s console, usb_tablet_with_console=false' %
               '/'.join(sorted({g.type for g in consoles}))
               if consoles else 'no VNC/SPICE console')
        return ["input: USB tablet removed, controller usb model='none' "
                "(%s)" % why]


class NoBalloon(tweaks.DomainTweak):
    name = 'no_balloon'
    summary = ("<memballoon model='none'/> for guests whose memory is pinned "
               "(passthrough, VF, mdev, locked)")
    default_for_gpu_guests = True

    def apply(self, guest, ctx):
        if not guestinfo.is_qemu_hvm(guest):
            return []
        balloons = [dev for dev in guest.devices
                    if isinstance(dev, vconfig.LibvirtConfigMemoryBalloon) and
                    dev.model != 'none']
        if not balloons:
            return []
        pinned = guestinfo.memory_pinning_devices(guest)
        if guest.membacking is not None and guest.membacking.locked:
            pinned.append('<locked/> memory')
        if not pinned:
            return []
        lines = []
        for balloon in balloons:
            lines.append("memballoon: model none (was %s; memory pinned by "
                         "%s)" % (balloon.model, ', '.join(pinned)))
            balloon.model = 'none'
            balloon.period = None
        return lines


class NoEmulatedVGA(tweaks.DomainTweak):
    name = 'no_emulated_vga'
    summary = ("<video><model type='none'/> when a GPU or vGPU is the "
               "display and no VNC/SPICE console shows the emulated card")
    # Video model none: libvirt 4.6.0.
    min_libvirt_version = 4006000
    default_for_gpu_guests = True

    @staticmethod
    def _display_gpus(guest, ctx) -> tuple[list[str], list[str]]:
        """(vGPUs that render the console, GPUs/vGPUs passed through)."""
        console_vgpus, gpus = [], []
        for dev in guest.devices:
            if isinstance(dev, vconfig.LibvirtConfigGuestHostdevMDEV):
                gpus.append('mdev %s' % dev.uuid)
                if getattr(dev, 'display', None) in ('on', True):
                    console_vgpus.append('mdev %s' % dev.uuid)
            elif isinstance(dev, vconfig.LibvirtConfigGuestHostdevPCI):
                address = guestinfo.pci_address(dev)
                if ctx.host is not None and ctx.host.gpu(address):
                    gpus.append('GPU %s' % address)
        return console_vgpus, gpus

    def apply(self, guest, ctx):
        if not guestinfo.is_qemu_hvm(guest):
            return []
        videos = guestinfo.devices(guest, vconfig.LibvirtConfigGuestVideo)
        if len(videos) != 1 or videos[0].type == 'none':
            return []
        console_vgpus, gpus = self._display_gpus(guest, ctx)
        if guestinfo.console_graphics(guest):
            if not console_vgpus:
                return []
            why = "%s renders the console (display='on')" % console_vgpus[0]
        elif gpus:
            why = '%s is the display; no VNC/SPICE console' % gpus[0]
        else:
            return []
        video = videos[0]
        was = video.type
        video.type = 'none'
        video.vram = None
        video.heads = None
        return ['video: model none (was %s; %s)' % (was, why)]
