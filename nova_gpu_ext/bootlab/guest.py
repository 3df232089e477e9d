"""The tiny guest the boot lab starts: a kernel, an initramfs, a boot disk.

Layer rule: adapter (files and a few Debian tools, no Nova, no CONF). Built
once per work directory and reused:

* the kernel is Debian's cloud kernel, unpacked by
  ``tools/install-e2e-deps.sh`` (or any ``vmlinuz`` given explicitly);
* the initramfs is written here as a gzip'd newc cpio (no cpio binary, no
  root needed) holding busybox-static and an ``/init`` that prints
  :data:`INIT_MARKER` on ``ttyS0`` and powers the guest off;
* the boot disk is a small FAT16 partition with SYSLINUX (built with
  sfdisk, mkfs.fat, mtools and ``syslinux --install``; no loop devices),
  so that SeaBIOS really boots from disk, as a Nova guest does: the BIOS
  phase then contains firmware, the boot loader and loading the kernel.
"""

import dataclasses
import gzip
import io
import os
import shutil
import subprocess
from typing import Optional

#: printed by the guest's /init on ttyS0 just before it powers off
INIT_MARKER = 'NOVA-GPU-EXT-BOOTLAB-INIT-OK'
#: where tools/install-e2e-deps.sh unpacks the kernel
DEFAULT_E2E_DIR = os.environ.get('NOVA_GPU_EXT_E2E_DIR',
                                 '/var/lib/nova-gpu-ext-e2e')
#: the kernel command line (first kernel line as early as possible)
KERNEL_CMDLINE = ('console=ttyS0,115200 earlyprintk=serial,ttyS0,115200 '
                  'panic=-1 rdinit=/init')
BUSYBOX_PATHS = ('/bin/busybox', '/usr/bin/busybox')
SYSLINUX_MBR = '/usr/lib/syslinux/mbr/mbr.bin'
DISK_MIB = 48

INIT_SCRIPT = """#!/bin/busybox sh
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/busybox mount -t proc proc /proc
echo %(marker)s > /dev/ttyS0
/bin/busybox poweroff -f
""" % {'marker': INIT_MARKER}


class GuestBuildError(Exception):
    """The tiny guest cannot be built on this machine."""


@dataclasses.dataclass(frozen=True)
class Guest:
    """Paths of one built guest (all readable by the QEMU user)."""

    kernel: str
    initrd: str
    disk: Optional[str]          # None when SYSLINUX tools are missing
    cmdline: str = KERNEL_CMDLINE


def find_kernel(explicit: Optional[str] = None) -> str:
    """The guest kernel: explicit path, $NOVA_GPU_EXT_KERNEL, or ours."""
    for path in (explicit, os.environ.get('NOVA_GPU_EXT_KERNEL'),
                 os.path.join(DEFAULT_E2E_DIR, 'vmlinuz')):
        if path and os.path.isfile(path):
            return path
    raise GuestBuildError(
        'no guest kernel: run tools/install-e2e-deps.sh (it unpacks '
        "Debian's linux-image-cloud-amd64 into %s) or set "
        'NOVA_GPU_EXT_KERNEL' % DEFAULT_E2E_DIR)


def _cpio_entry(name: str, mode: int, data: bytes = b'', ino: int = 1,
                rdev: tuple = (0, 0)) -> bytes:
    """One newc cpio record (see the kernel's initramfs buffer format)."""
    encoded = name.encode() + b'\0'
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1],
              len(encoded), 0)
    header = b'070701' + b''.join(b'%08X' % f for f in fields)
    out = header + encoded
    out += b'\0' * (-len(out) % 4)
    out += data
    out += b'\0' * (-len(out) % 4)
    return out


def build_initramfs(busybox: str, marker_script: str = INIT_SCRIPT) -> bytes:
    """A gzip'd newc cpio: busybox, /init, /dev/console, mount points."""
    with open(busybox, 'rb') as f:
        busybox_data = f.read()
    entries = [
        ('bin', 0o040755, b'', (0, 0)),
        ('dev', 0o040755, b'', (0, 0)),
        ('dev/console', 0o020600, b'', (5, 1)),
        ('proc', 0o040755, b'', (0, 0)),
        ('sys', 0o040755, b'', (0, 0)),
        ('bin/busybox', 0o100755, busybox_data, (0, 0)),
        ('bin/sh', 0o120777, b'busybox', (0, 0)),
        ('init', 0o100755, marker_script.encode(), (0, 0)),
    ]
    raw = io.BytesIO()
    for ino, (name, mode, data, rdev) in enumerate(entries, start=1):
        raw.write(_cpio_entry(name, mode, data, ino, rdev))
    raw.write(_cpio_entry('TRAILER!!!', 0, ino=0))
    return gzip.compress(raw.getvalue(), compresslevel=6)


def _run(cmd: list, **kwargs) -> None:
    try:
        subprocess.run(cmd, check=True, capture_output=True, **kwargs)
    except FileNotFoundError as exc:
        raise GuestBuildError('%s not installed' % cmd[0]) from exc
    except subprocess.CalledProcessError as exc:
        raise GuestBuildError('%s failed: %s' % (
            ' '.join(cmd), exc.stderr.decode(errors='replace'))) from exc


def build_disk(path: str, kernel: str, initrd: str, cmdline: str) -> None:
    """A raw disk: MBR + one bootable FAT16 partition with SYSLINUX."""
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        f.truncate(DISK_MIB * 1024 * 1024)
    _run(['sfdisk', '-q', tmp], input=b'2048,,6,*\n')
    offset = 2048 * 512
    _run(['mkfs.fat', '-F', '16', '--offset', '2048', '-n', 'BOOTLAB',
          tmp])
    cfg = ('SERIAL 0 115200\nDEFAULT linux\nPROMPT 0\nTIMEOUT 0\n'
           'LABEL linux\n  KERNEL vmlinuz\n  INITRD initrd.gz\n'
           '  APPEND %s\n' % cmdline)
    cfg_path = path + '.cfg'
    with open(cfg_path, 'w') as f:
        f.write(cfg)
    image = '%s@@%d' % (tmp, offset)
    env = dict(os.environ, MTOOLS_SKIP_CHECK='1')
    for src, dst in ((kernel, '::vmlinuz'), (initrd, '::initrd.gz'),
                     (cfg_path, '::syslinux.cfg')):
        _run(['mcopy', '-o', '-i', image, src, dst], env=env)
    os.unlink(cfg_path)
    _run(['syslinux', '--install', '--offset', str(offset), tmp], env=env)
    with open(SYSLINUX_MBR, 'rb') as f:
        mbr = f.read(440)
    with open(tmp, 'r+b') as f:
        f.write(mbr)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def build_guest(work_dir: str, kernel: Optional[str] = None,
                with_disk: bool = True) -> Guest:
    """Build (or reuse) the tiny guest in ``work_dir``."""
    os.makedirs(work_dir, exist_ok=True)
    os.chmod(work_dir, 0o755)
    kernel = find_kernel(kernel)
    busybox = next((p for p in BUSYBOX_PATHS if os.path.isfile(p)), None)
    if busybox is None:
        raise GuestBuildError('busybox-static is not installed')
    initrd = os.path.join(work_dir, 'initrd.gz')
    if not os.path.isfile(initrd):
        data = build_initramfs(busybox)
        with open(initrd + '.tmp', 'wb') as f:
            f.write(data)
        os.chmod(initrd + '.tmp', 0o644)
        os.replace(initrd + '.tmp', initrd)
    disk = None
    if with_disk and all(shutil.which(t) for t in (
            'sfdisk', 'mkfs.fat', 'mcopy', 'syslinux')) and \
            os.path.isfile(SYSLINUX_MBR):
        disk = os.path.join(work_dir, 'boot.img')
        if not os.path.isfile(disk):
            build_disk(disk, kernel, initrd, KERNEL_CMDLINE)
    return Guest(kernel=kernel, initrd=initrd, disk=disk)
