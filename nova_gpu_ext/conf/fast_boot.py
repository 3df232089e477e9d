"""Options of the fast-boot domain XML tweaks (``nova_gpu_ext.virt.tweaks``).

The tweaks read these through ``nova_gpu_ext.conf.tweak_settings``, by
option name; only the driver reads CONF.
"""

from oslo_config import cfg
from oslo_config import types

from nova_gpu_ext.conf import base

ALL_OPTS = [
    cfg.BoolOpt(
        'fast_boot_default',
        default=True,
        help="""
Apply the default fast-boot domain XML tweaks to GPU guests.

A GPU guest is one whose flavor asks for a vGPU, a PCI device (alias) or a
custom GPU resource, or for a render node. Guests without a GPU never get a
tweak unless their flavor switches it on. See ``nova-gpu-ext tweaks`` for
the list of tweaks and which ones are on by default.

Possible values:

* True: GPU guests get every enabled tweak that is on by default.
* False: no guest gets a tweak unless its flavor asks for it with
  ``gpu:fast_boot=true`` or ``gpu:tweak:<name>=true``.

Related options:

* ``[gpu_ext] enabled_tweaks``: which tweaks may run at all.
* Flavor extra specs ``gpu:fast_boot`` and ``gpu:tweak:<name>``.
"""),
    cfg.ListOpt(
        'enabled_tweaks',
        default=None,
        help="""
Names of the domain XML tweaks that may run on this host.

A tweak that is not listed never runs, whatever the flavor says. The
installed tweaks are the entry points of the ``nova_gpu_ext.domain_tweaks``
namespace: ``boot_menu_off``, ``hugepages``, ``nic_rom_off``,
``no_balloon``, ``no_emulated_vga``, ``no_usb_tablet``,
``prealloc_threads``, ``rom_bar_off``.

Possible values:

* Unset (the default): every installed tweak may run.
* A comma-separated list of tweak names; an empty value allows none, which
  gives upstream's domain XML for every guest.

Related options:

* ``[gpu_ext] fast_boot_default``.
"""),
    cfg.IntOpt(
        'prealloc_max_threads',
        default=16,
        min=1,
        help="""
Largest number of threads QEMU may use to preallocate a guest's memory.

The ``prealloc_threads`` tweak preallocates the memory of GPU guests with
``<allocation mode='immediate' threads='N'/>`` before VFIO pins it, where N
is the number of host CPUs of the guest's NUMA node(s), capped by this
option. Zeroing memory is bound by memory bandwidth: 16 threads cut the
fault-in time of 32 GiB by about 90 % on a 16-core GPU host, and beyond
the memory channels of one socket more threads add little while competing
with running guests for CPU time during the boot.

Possible values:

* A positive integer. 1 turns the tweak into a no-op.

Related options:

* ``[gpu_ext] enabled_tweaks`` (``prealloc_threads``).
"""),
    cfg.ListOpt(
        'keep_gpu_rom_ids',
        default=['10de:1e30', '10de:2230', '10de:2231', '1002:73a3',
                 '1002:7448'],
        item_type=types.String(
            regex=r'^[0-9a-fA-F]{4}:([0-9a-fA-F]{4}|\*)$'),
        help="""
GPUs that keep their option ROM (VBIOS) visible to the guest.

The ``rom_bar_off`` tweak hides the ROM BAR of passed-through GPUs
(``<rom bar='off'/>``), so the guest firmware does not run the GPU's VBIOS
at boot. Guests that need the VBIOS (the GPU as the boot display, a UEFI
GOP driver, or a guest driver that reads the ROM through the BAR) must
keep it: list those GPUs here by PCI vendor and device id.

The default lists workstation GPUs that are passed through as the guest's
primary display (the guest firmware runs their VBIOS/GOP to drive the
screen; AMD's amdgpu also reads its ATOM BIOS through the ROM BAR in a
guest): NVIDIA Quadro RTX 6000/8000 (10de:1e30), RTX A6000 (10de:2230),
RTX A5000 (10de:2231), AMD Radeon PRO W6800 (1002:73a3) and W7900
(1002:7448). Setting the option replaces the list.

Possible values:

* A comma-separated list of ``vendor:device`` ids in hexadecimal, such as
  ``10de:1db6``, or ``vendor:*`` for every device of a vendor.

Related options:

* ``[gpu_ext] enabled_tweaks`` (``rom_bar_off``).
"""),
    cfg.BoolOpt(
        'usb_tablet_with_console',
        default=True,
        help="""
Keep the USB tablet of GPU guests that have a VNC or SPICE console.

The ``no_usb_tablet`` tweak removes the USB tablet and the USB controller
(``<controller type='usb' model='none'/>``), which halves the SeaBIOS
phase. The tablet is the absolute pointer that makes the mouse of a noVNC
or SPICE console follow the user's cursor; without it the console falls
back to the PS/2 mouse, which works but drifts. Guests without a graphical
console never need it.

Possible values:

* True: remove the tablet only from guests without a VNC/SPICE console.
* False: also remove it from guests with a console, for clouds whose users
  reach GPU desktops through an in-guest remote desktop and use the console
  only for recovery. An image that asks for a pointer (``hw_input_bus``,
  ``hw_pointer_model``) always keeps it.

Related options:

* ``[vnc] enabled``, ``[spice] enabled``, ``[DEFAULT] pointer_model``.
"""),
    cfg.ListOpt(
        'hugepage_sizes_kb',
        default=[1048576, 2048],
        item_type=types.Integer(min=8),
        help="""
Huge page sizes the ``hugepages`` tweak may give a guest, in KiB, in order
of preference.

The first size that divides the guest's memory and of which the guest's
host NUMA node(s) have enough free pages is used. The tweak is off by
default (switch it on per flavor with ``gpu:tweak:hugepages=true``): huge
pages it hands out are not accounted by Nova, so reserve a pool for such
flavors (``[compute] reserved_huge_pages``) and size it yourself. Flavors
that set ``hw:mem_page_size`` are never changed.

Possible values:

* A comma-separated list of page sizes in KiB, e.g. ``1048576,2048``.

Related options:

* ``[compute] reserved_huge_pages``; flavor extra spec
  ``hw:mem_page_size``.
"""),
]


def register_opts(conf):
    conf.register_group(base.gpu_ext_group)
    conf.register_opts(ALL_OPTS, group=base.gpu_ext_group)


def list_opts():
    return [(base.gpu_ext_group, ALL_OPTS)]
