"""Waiting for a guest's console to grow, or for the guest to end.

Layer rule: virt adapter (compute host only, Linux). No polling: the
boot telemetry's watcher (:mod:`.boot_telemetry`) blocks on

* inotify(7) events of the console log's directory (virtlogd writes there),
* a pidfd of the guest's QEMU process (readable when it exits),
* a pipe the driver's ``cleanup`` writes to (the guest was destroyed),

through :mod:`selectors` (epoll: a busy nova-compute has descriptors above
``select()``'s 1024). Without inotify (not Linux) the file is looked at
every :data:`FALLBACK_WAIT` seconds; under eventlet (whose green selectors
do not wake on these descriptors) the file, the stop flag and the process
every :data:`GREEN_WAIT` seconds (a green sleep between).
"""

import os
import selectors

from lxml import etree
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

#: without inotify (not Linux): how often the console file is looked at
FALLBACK_WAIT = 0.25
#: under eventlet (green sleeps): how often everything is looked at
GREEN_WAIT = 0.05
#: libvirt's pidfile directories of qemu:///system
PID_DIRS = ('/run/libvirt/qemu', '/var/run/libvirt/qemu')


def qemu_start_time(name, uuid, pid_dirs=PID_DIRS, proc='/proc'):
    """Start time (boot clock) of the domain's QEMU process, or None."""
    return qemu_process(name, uuid, pid_dirs, proc)[1]


def qemu_process(name, uuid, pid_dirs=PID_DIRS, proc='/proc'):
    """(pid, start time on the boot clock) of the domain's QEMU process, or
    (None, None)."""
    for pid_dir in pid_dirs:
        try:
            with open(os.path.join(pid_dir, '%s.pid' % name)) as f:
                pid = int(f.read().strip())
            with open(os.path.join(proc, str(pid), 'cmdline'), 'rb') as f:
                if uuid.encode() not in f.read():
                    continue  # a stale pidfile or another domain
            with open(os.path.join(proc, str(pid), 'stat')) as f:
                fields = f.read().rsplit(')', 1)[1].split()
            return pid, int(fields[19]) / float(os.sysconf('SC_CLK_TCK'))
        except (OSError, ValueError, IndexError):
            continue
    return None, None


def domain_name(xml):
    """The ``<name>`` of a domain XML, or None (no libvirt call)."""
    try:
        root = etree.fromstring(xml.encode() if isinstance(xml, str)
                                else xml)
        return root.findtext('./name')
    except Exception:
        return None


class _Inotify:
    """The console log's directory, watched through inotify(7): the
    watcher blocks until a file there is written, created or closed."""

    MASK = 0x2 | 0x8 | 0x80 | 0x100   # MODIFY, CLOSE_WRITE, MOVED_TO, CREATE

    def __init__(self, path):
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), 'inotify_init1')
        directory = os.path.dirname(os.path.abspath(path))
        if libc.inotify_add_watch(self.fd, directory.encode(),
                                  self.MASK) < 0:
            os.close(self.fd)
            raise OSError(ctypes.get_errno(), 'inotify_add_watch')

    def drain(self):
        try:
            while os.read(self.fd, 65536):
                pass
        except OSError:
            pass

    def close(self):
        os.close(self.fd)


def _open_notify(path):
    try:
        return _Inotify(path)
    except Exception:
        LOG.debug('No inotify for %s; the console is looked at every %.2f '
                  's', path, FALLBACK_WAIT, exc_info=True)
        return None


def _open_pidfd(pid):
    """A descriptor that becomes readable when QEMU exits, or None."""
    if pid is None or not hasattr(os, 'pidfd_open'):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def _green():
    """Is this process on eventlet (nova-compute's deprecated mode)? Its
    green selectors do not wake on inotify and pidfd descriptors here."""
    import sys
    patcher = sys.modules.get('eventlet.patcher')
    return bool(patcher and patcher.is_monkey_patched('thread'))


class Waiter:
    """Blocks until the console's directory changes or the guest ends."""

    def __init__(self, path, pid, stop_fd, stopped=lambda: False):
        self.pid = pid
        self.stop_fd = stop_fd
        self.stopped = stopped
        self.green = _green()
        if self.green:
            # Looked at every FALLBACK_WAIT seconds (green sleeps; a green
            # read of the pipe would wait for it).
            self.notify = self.pidfd = self.selector = None
            return
        self.notify = _open_notify(path)
        self.pidfd = _open_pidfd(pid)
        self.selector = selectors.DefaultSelector()
        for fd in (stop_fd, self.notify and self.notify.fd, self.pidfd):
            if fd is not None:
                self.selector.register(fd, selectors.EVENT_READ)

    def wait(self, seconds):
        """Wait at most ``seconds``; True when the guest ended (QEMU exited
        or the stop pipe was written)."""
        if self.notify is None:
            seconds = min(seconds, FALLBACK_WAIT)
        if self.green:
            return self._green_wait(min(seconds, GREEN_WAIT))
        ready = [key.fd for key, _ in self.selector.select(seconds)]
        if self.notify is not None and self.notify.fd in ready:
            self.notify.drain()
        return self.stop_fd in ready or (
            self.pidfd is not None and self.pidfd in ready)

    def _green_wait(self, seconds):
        import time
        time.sleep(seconds)
        if self.stopped():
            return True
        if self.pid is not None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return True
            except OSError:
                pass
        return False

    def close(self):
        if self.selector is not None:
            self.selector.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
        if self.notify is not None:
            self.notify.close()


def console_log_path(xml):
    """The console log file libvirt writes for this domain, or None."""
    try:
        root = etree.fromstring(xml.encode() if isinstance(xml, str)
                                else xml)
    except Exception:
        return None
    for query in ('./devices/serial/log', './devices/console/log'):
        for el in root.iterfind(query):
            if el.get('file'):
                return el.get('file')
    for el in root.iterfind("./devices/serial[@type='file']/source"):
        if el.get('path'):
            return el.get('path')
    return None
