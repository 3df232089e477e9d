"""Start a prepared domain on a real libvirtd and time its boot phases.

Layer rule: adapter (talks to libvirtd and reads a pty; no Nova, no CONF).
libvirt-python is used when it is importable, ``virsh`` otherwise.

Phases, as the case study defines them, all from the host's monotonic
clock:

* ``qemu_init``: ``createXML(xml, VIR_DOMAIN_START_PAUSED)`` called ->
  returned (QEMU started, memory preallocated, devices realized, vCPUs
  paused);
* ``bios``: ``resume()`` -> the first byte the guest kernel prints on the
  serial port (firmware, boot loader and loading the kernel);
* ``kernel_to_init``: first kernel byte -> the init marker;
* ``total``: create called -> init marker.

``bootloader`` (resume -> SYSLINUX's banner) is reported when the guest
boots from disk.
"""

import dataclasses
import os
import re
import select
import subprocess
import tempfile
import termios
import threading
import time
import tty
from typing import Optional

from lxml import etree

from nova_gpu_ext.bootlab import guest as guest_mod

try:  # pragma: no cover - depends on the host
    import libvirt
except ImportError:  # pragma: no cover
    libvirt = None

URI = os.environ.get('NOVA_GPU_EXT_LIBVIRT_URI', 'qemu:///system')

#: the first thing the kernel image itself prints on ttyS0 (setup code with
#: earlyprintk=serial, the decompressor, then the kernel proper)
KERNEL_FIRST = re.compile(rb'early console in setup code|Probing EDD|'
                          rb'Decompressing Linux|Linux version')
BOOTLOADER = re.compile(rb'SYSLINUX')


class BootError(Exception):
    """The domain did not start or did not reach the init marker."""


@dataclasses.dataclass
class Phases:
    qemu_init: float
    bios: Optional[float]
    kernel_to_init: Optional[float]
    total: Optional[float]
    bootloader: Optional[float] = None
    console: bytes = b''

    def as_ms(self) -> dict:
        return {k: (None if v is None else v * 1000.0)
                for k, v in dataclasses.asdict(self).items()
                if k != 'console'}


class _PtyReader(threading.Thread):
    """Read a pty in the background, timestamping every chunk."""

    def __init__(self, path: str, stop_on: bytes):
        super().__init__(daemon=True)
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        # Raw: no echo back into the guest, no line discipline.
        tty.setraw(self.fd, termios.TCSANOW)
        self.chunks: list = []
        self.stop_on = stop_on
        self.done = threading.Event()
        self._halt = threading.Event()
        self._seen = b''

    def run(self):
        try:
            while not self._halt.is_set():
                ready, _, _ = select.select([self.fd], [], [], 0.05)
                if not ready:
                    continue
                try:
                    data = os.read(self.fd, 65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    break
                if not data:
                    break
                self.chunks.append((time.monotonic(), data))
                self._seen = (self._seen + data)[-4096:]
                if self.stop_on in self._seen:
                    break
        finally:
            self.done.set()

    def close(self):
        self._halt.set()
        self.join(2)
        os.close(self.fd)

    def first(self, pattern) -> Optional[float]:
        """Time of the chunk that completes the first match of pattern."""
        buf = b''
        for stamp, data in self.chunks:
            buf += data
            if pattern.search(buf) if hasattr(pattern, 'search') \
                    else pattern in buf:
                return stamp
        return None

    def text(self) -> bytes:
        return b''.join(d for _, d in self.chunks)


def _serial_pty(xml: str) -> str:
    root = etree.fromstring(xml.encode())
    for el in root.iterfind('./devices/serial'):
        source = el.find('source')
        if el.get('type') == 'pty' and source is not None and \
                source.get('path'):
            return source.get('path')
    raise BootError('the running domain has no serial pty')


class _LibvirtBackend:
    name = 'libvirt-python'

    def __init__(self, uri: str):
        # Errors are raised as exceptions; libvirt's default handler would
        # also print them (e.g. destroying a guest that powered itself off).
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        self.conn = libvirt.open(uri)

    def versions(self):
        return self.conn.getLibVersion(), self.conn.getVersion()

    def create_paused(self, xml: str):
        return self.conn.createXML(xml, libvirt.VIR_DOMAIN_START_PAUSED)

    def xml(self, dom) -> str:
        return dom.XMLDesc(0)

    def resume(self, dom):
        dom.resume()

    def destroy(self, dom):
        try:
            dom.destroy()
        except libvirt.libvirtError:
            pass  # already powered off

    def close(self):
        self.conn.close()


class _VirshBackend:
    name = 'virsh'

    def __init__(self, uri: str):
        self.uri = uri

    def _virsh(self, *args) -> str:
        proc = subprocess.run(['virsh', '-q', '-c', self.uri] + list(args),
                              capture_output=True, text=True)
        if proc.returncode:
            raise BootError('virsh %s: %s' % (args[0], proc.stderr.strip()))
        return proc.stdout

    def versions(self):
        out = self._virsh('version')
        nums = re.findall(r'(\d+)\.(\d+)\.(\d+)', out)

        def enc(t):
            return int(t[0]) * 1000000 + int(t[1]) * 1000 + int(t[2])
        return (enc(nums[1]) if len(nums) > 1 else 0,
                enc(nums[-1]) if nums else 0)

    def create_paused(self, xml: str):
        with tempfile.NamedTemporaryFile('w', suffix='.xml') as f:
            f.write(xml)
            f.flush()
            self._virsh('create', '--paused', f.name)
        return etree.fromstring(xml.encode()).findtext('name')

    def xml(self, dom) -> str:
        return self._virsh('dumpxml', dom)

    def resume(self, dom):
        self._virsh('resume', dom)

    def destroy(self, dom):
        try:
            self._virsh('destroy', dom)
        except BootError:
            pass

    def close(self):
        pass


def connect(uri: str = URI, backend: Optional[str] = None):
    """A libvirt backend: libvirt-python if importable, else virsh."""
    if backend == 'virsh' or (backend is None and libvirt is None):
        return _VirshBackend(uri)
    if libvirt is None:
        raise BootError('libvirt-python is not installed')
    return _LibvirtBackend(uri)


def boot(conn, xml: str, timeout: float = 60.0,
         marker: bytes = guest_mod.INIT_MARKER.encode()) -> Phases:
    """Start ``xml`` paused, resume it and time the phases.

    The domain is always destroyed before returning. Raises
    :class:`BootError` when it cannot start or the marker does not come
    within ``timeout`` seconds of the resume.
    """
    t_create = time.monotonic()
    try:
        dom = conn.create_paused(xml)
    except Exception as exc:
        raise BootError('libvirt refused to start the domain: %s' % exc)
    t_paused = time.monotonic()
    reader = None
    try:
        reader = _PtyReader(_serial_pty(conn.xml(dom)), marker)
        reader.start()
        t_resume = time.monotonic()
        conn.resume(dom)
        reader.done.wait(timeout)
        t_kernel = reader.first(KERNEL_FIRST)
        t_loader = reader.first(BOOTLOADER)
        t_init = reader.first(marker)
        console = reader.text()
    finally:
        conn.destroy(dom)
        if reader is not None:
            reader.close()
    if t_init is None:
        raise BootError('no init marker within %.0f s; console:\n%s' % (
            timeout, console[-2000:].decode(errors='replace')))
    return Phases(
        qemu_init=t_paused - t_create,
        bios=None if t_kernel is None else t_kernel - t_resume,
        kernel_to_init=None if t_kernel is None else t_init - t_kernel,
        total=t_init - t_create,
        bootloader=None if t_loader is None else t_loader - t_resume,
        console=console)
