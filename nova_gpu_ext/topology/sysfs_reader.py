"""Small, forgiving file readers shared by the topology readers.

Layer rule: adapter (I/O). A missing optional file is simply unknown; a file
that exists but cannot be read or parsed adds one warning and yields None.
Nothing here raises for the content of the tree. Each warning names the
path it is about and is logged at WARNING the first time this process sees
it (discovery runs on every resource update: the same damage is not logged
every minute, it stays listed in ``HostTopology.warnings``).

Attributes are read without blocking (a FIFO or a directory where a file
should be is refused, not waited on) and numbers are bounded (a CPU list
``0-4294967295`` is garbage, not four billion CPUs).
"""

import collections
import os
import stat
from typing import Callable, Iterable, Optional, TypeVar

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

T = TypeVar('T')

#: Linux supports at most 8192 CPUs (NR_CPUS); anything above this is
#: garbage, and refusing it keeps a bad file from allocating a huge set.
MAX_CPU_ID = 1 << 16
#: Counts (VFs, mdev instances, huge pages, link width) above this are
#: garbage.
MAX_COUNT = 1 << 40

_LOGGED = collections.OrderedDict()
_LOGGED_MAX = 4096


def forget_logged() -> None:
    """Forget which warnings were logged (tests)."""
    _LOGGED.clear()


def _log_once(message: str) -> None:
    if message in _LOGGED:
        _LOGGED.move_to_end(message)
        return
    _LOGGED[message] = None
    while len(_LOGGED) > _LOGGED_MAX:
        _LOGGED.popitem(last=False)
    LOG.warning('GPU topology: %s', message)


class SysfsReader:
    """Reads files under a sysfs tree and collects warnings."""

    def __init__(self):
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            _log_once(message)

    def text(self, path: str, required: bool = False) -> Optional[str]:
        """The stripped content of a file, or None."""
        # os.open/os.read: sysfs attributes are small, and this is several
        # times cheaper than open() with a text wrapper (discovery runs on
        # every resource update of nova-compute).
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    self.warn('%s: unreadable (not a regular file)' % path)
                    return None
                data = os.read(fd, 65536)
            finally:
                os.close(fd)
            return data.decode('utf-8', 'replace').strip()
        except FileNotFoundError:
            if required or os.path.islink(path):
                self.warn('%s: missing%s' % (
                    path, ' (dangling link)' if os.path.islink(path) else ''))
            return None
        except OSError as exc:
            self.warn('%s: unreadable (%s)' % (path, exc.strerror or exc))
            return None

    def parsed(self, path: str, parse: Callable[[str], T],
               required: bool = False, what: str = '') -> Optional[T]:
        """``parse(text)`` of a file; a bad value warns and gives None."""
        raw = self.text(path, required=required)
        if raw is None:
            return None
        if raw == '':
            if required:
                self.warn('%s: empty' % path)
            return None
        try:
            return parse(raw)
        except (ValueError, TypeError, IndexError, KeyError):
            self.warn('%s: cannot read %s from %r' % (
                path, what or 'a value', raw[:40]))
            return None

    def link_name(self, path: str, check: bool = False) -> Optional[str]:
        """The last component of a symlink's target.

        With ``check``, a dangling link still gives its name but adds a
        warning (a driver that was unloaded, an IOMMU group that is gone).
        """
        try:
            target = os.readlink(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.warn('%s: unreadable link (%s)' % (path, exc.strerror))
            return None
        name = target.rstrip('/').rpartition('/')[2]
        if name in ('', '.', '..'):
            name = os.path.basename(os.path.normpath(
                os.path.join(os.path.dirname(path), target)))
        if check and not os.path.exists(path):
            self.warn('%s: dangling link to %s' % (path, target))
        return name

    def realpath(self, path: str) -> Optional[str]:
        """``os.path.realpath``; a link that cannot be read (permission)
        warns and gives None instead of raising."""
        try:
            return os.path.realpath(path)
        except OSError as exc:
            self.warn('%s: cannot resolve (%s)' % (
                path, exc.strerror or exc))
            return None

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(path))
        except FileNotFoundError:
            return []
        except OSError as exc:
            self.warn('%s: cannot list (%s)' % (path, exc.strerror))
            return []


def parse_int(text: str) -> int:
    return int(text, 0)


def parse_count(text: str) -> int:
    """A non-negative count of something (VFs, instances, pages)."""
    value = int(text, 0)
    if not 0 <= value <= MAX_COUNT:
        raise ValueError(text)
    return value


def parse_hex(text: str) -> int:
    return int(text, 16)


def parse_cpulist(text: str) -> frozenset[int]:
    """``0-3,8,10-11`` -> {0, 1, 2, 3, 8, 10, 11}."""
    cpus: set[int] = set()
    for part in text.replace('\n', ',').split(','):
        part = part.strip()
        if not part:
            continue
        if '-' in part:
            low, high = part.split('-', 1)
            first, last = int(low), int(high)
            if not 0 <= first <= last <= MAX_CPU_ID:
                raise ValueError(part)
            cpus.update(range(first, last + 1))
        else:
            cpu = int(part)
            if not 0 <= cpu <= MAX_CPU_ID:
                raise ValueError(part)
            cpus.add(cpu)
    return frozenset(cpus)


def format_cpulist(cpus: Iterable[int]) -> str:
    """``0-5,8`` for {0, 1, 2, 3, 4, 5, 8}: the inverse of
    :func:`parse_cpulist`."""
    cpus = sorted(cpus)
    parts = []
    start = prev = None
    for cpu in cpus:
        if start is None:
            start = prev = cpu
        elif cpu == prev + 1:
            prev = cpu
        else:
            parts.append('%d-%d' % (start, prev) if prev != start
                         else str(start))
            start = prev = cpu
    if start is not None:
        parts.append('%d-%d' % (start, prev) if prev != start
                     else str(start))
    return ','.join(parts)


def parse_cpumask(text: str) -> frozenset[int]:
    """A ``local_cpus`` hex mask such as ``00000000,0000ffff``."""
    value = int(text.replace(',', ''), 16)
    if value < 0 or value.bit_length() > MAX_CPU_ID + 1:
        raise ValueError(text[:40])
    return frozenset(i for i in range(value.bit_length()) if value >> i & 1)
