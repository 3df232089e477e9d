"""Boot phase telemetry of every build on ``GPULibvirtDriver``.

Layer rule: virt adapter. It watches real libvirt signals only and records
what it saw, the Nova way; it never fails a build and never estimates a
phase it could not see (Nova's fake libvirt has no QEMU process and no
console: those phases are left out).

Marks (all on the host's boot-time clock):

* ``request``: the server's ``created_at`` (the API request);
* ``defined``: libvirt defined the domain (upstream's ``post_xml_callback``
  point, right after ``defineXML``);
* ``qemu_started``: the QEMU process's start time (``/proc/<pid>/stat``; the
  pid from libvirt's pidfile, checked against the guest's UUID);
* ``resumed``: the vCPUs run (``launch`` returned, or ``resume`` returned
  when upstream started the domain paused for Neutron's events);
* ``console``: the first byte in the console log (virtlogd's file);
* ``kernel``: the guest kernel's first line in the console log.

Phases (see :mod:`nova_gpu_ext.core.boot_stats`) are recorded as instance
action events ``gpu_ext_boot_<phase>`` with their real start and finish times,
one INFO line per build, a JSON line in ``[gpu_ext] state_dir``
/boot-phases.jsonl, and a summary in the compute node's stats
(``gpu_ext_boot``).
"""

import collections
import datetime
import json
import os
import re
import threading
import time

from lxml import etree
from oslo_log import log as logging

from nova_gpu_ext.core import boot_stats
from nova_gpu_ext import conf as gpu_conf

LOG = logging.getLogger(__name__)
CONF = gpu_conf.CONF

EVENT_PREFIX = 'gpu_ext_boot_'
STATS_KEY = 'gpu_ext_boot'
RECORD_FILE = 'boot-phases.jsonl'
RECORD_KEEP = 1000
#: libvirt's pidfile directories of qemu:///system
PID_DIRS = ('/run/libvirt/qemu', '/var/run/libvirt/qemu')
#: the first thing a Linux kernel prints on the serial console
KERNEL_FIRST = re.compile(rb'early console in setup code|Probing EDD|'
                          rb'Decompressing Linux|Linux version')
POLL = 0.005
_record_lock = threading.Lock()


def now():
    """Seconds on the clock ``/proc/<pid>/stat`` start times use."""
    try:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return time.monotonic()


def qemu_start_time(name, uuid, pid_dirs=PID_DIRS, proc='/proc'):
    """Start time (boot clock) of the domain's QEMU process, or None."""
    for pid_dir in pid_dirs:
        try:
            with open(os.path.join(pid_dir, '%s.pid' % name)) as f:
                pid = int(f.read().strip())
            with open(os.path.join(proc, str(pid), 'cmdline'), 'rb') as f:
                if uuid.encode() not in f.read():
                    continue  # a stale pidfile or another domain
            with open(os.path.join(proc, str(pid), 'stat')) as f:
                fields = f.read().rsplit(')', 1)[1].split()
            return int(fields[19]) / float(os.sysconf('SC_CLK_TCK'))
        except (OSError, ValueError, IndexError):
            continue
    return None


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


class BuildWatch:
    """The marks of one build; reports once, when every mark that can come
    has come (or the console timeout passed)."""

    def __init__(self, uuid, created_at=None, report=None):
        self.uuid = uuid
        self.marks = {}
        self.kernel_line = None
        self._mono0 = now()
        self._wall0 = datetime.datetime.now(datetime.timezone.utc)
        if created_at is not None:
            if created_at.tzinfo is None:
                created_at = created_at.replace(tzinfo=datetime.timezone.utc)
            self.marks['request'] = self._mono0 - (
                self._wall0 - created_at).total_seconds()
        self._report = report
        self._reported = False
        self.thread = None

    def mark(self, name, when=None):
        self.marks[name] = now() if when is None else when

    def wall(self, mark):
        return self._wall0 + datetime.timedelta(
            seconds=self.marks[mark] - self._mono0)

    def phases(self):
        """{phase: (start, end)} on the boot clock."""
        return boot_stats.phases_from_marks(self.marks)

    def phases_ms(self):
        return {name: round((end - start) * 1000.0, 1)
                for name, (start, end) in self.phases().items()}

    def after_resume(self, name, uuid, xml, timeout):
        """The vCPUs run: find QEMU's start, then watch the console."""
        self.mark('resumed')
        started = qemu_start_time(name, uuid)
        if started is not None and started <= self.marks['resumed']:
            # The tick clock rounds down: QEMU cannot start before the
            # domain was defined.
            self.marks['qemu_started'] = max(
                started, self.marks.get('defined', started))
        path = console_log_path(xml) if xml else None
        if started is None or not path:
            # No real QEMU (or no console log): nothing more to see.
            self.finish()
            return
        self.thread = threading.Thread(
            target=self._watch_console, args=(path, timeout),
            name='gpu-ext-boot-%s' % uuid[:8], daemon=True)
        self.thread.start()

    def _watch_console(self, path, timeout):
        deadline = now() + timeout
        data = b''
        try:
            while now() < deadline and len(data) < (1 << 20):
                if 'kernel' in self.marks and \
                        now() > self.marks['kernel'] + 1.0:
                    break
                try:
                    size = os.stat(path).st_size
                except OSError:
                    size = 0
                if size > len(data):
                    with open(path, 'rb') as f:
                        f.seek(len(data))
                        data += f.read(65536)
                    stamp = now()
                    self.marks.setdefault('console', stamp)
                    match = KERNEL_FIRST.search(data)
                    if match:
                        self.marks.setdefault('kernel', stamp)
                        rest = data[match.start():]
                        self.kernel_line = re.split(
                            rb'[\r\n]', rest, 1)[0].decode(
                            'utf-8', 'replace').strip()[:200]
                        # The whole line, if it comes within a second.
                        if re.search(rb'[\r\n]', rest) or \
                                now() > self.marks['kernel'] + 1.0:
                            break
                elif size < len(data):
                    data = b''  # truncated (log rotated): read again
                time.sleep(POLL)
        except Exception:
            LOG.debug('Console watch of %s failed', path, exc_info=True)
        finally:
            self.finish()

    def finish(self):
        if self._reported:
            return
        self._reported = True
        if self._report is not None:
            try:
                self._report(self)
            except Exception:
                LOG.warning('Cannot record the boot phases of %s',
                            self.uuid, exc_info=True)


# -- the driver's hook -------------------------------------------------------

def create_guest(driver, create, context, xml, instance, *args, **kwargs):
    """Upstream's ``_create_guest`` (``create``), timed for a build."""
    # Lazy (here and below): ``nova-gpu-ext boot-report`` reads the records
    # through this module; Nova's objects (and eventlet with them) are
    # loaded only in nova-compute.
    from nova.compute import task_states
    if not CONF.gpu_ext.boot_telemetry or \
            instance.task_state != task_states.SPAWNING:
        return create(context, xml, instance, *args, **kwargs)
    watch = BuildWatch(instance.uuid, instance.created_at,
                       report=lambda w: report(driver, context, instance, w))
    callback = kwargs.get('post_xml_callback')

    def defined():
        watch.mark('defined')
        if callback is not None:
            callback()
    kwargs['post_xml_callback'] = defined
    guest = create(context, xml, instance, *args, **kwargs)
    if not (kwargs.get('power_on', True) or kwargs.get('pause', False)):
        return guest
    timeout = CONF.gpu_ext.boot_console_timeout

    def after_resume():
        try:
            watch.after_resume(guest.name, instance.uuid,
                               guest.get_xml_desc(), timeout)
        except Exception:
            LOG.debug('Boot telemetry failed', exc_info=True,
                      instance=instance)
    if kwargs.get('pause', False):
        resume = guest.resume

        def resume_and_mark():
            resume()
            after_resume()
        guest.resume = resume_and_mark
    else:
        after_resume()
    return guest


# -- where phases go ---------------------------------------------------------

def _recent(driver):
    recent = getattr(driver, '_gpu_ext_boot_records', None)
    if recent is None:
        recent = collections.deque(maxlen=100)
        driver._gpu_ext_boot_records = recent
    return recent


def _is_gpu_guest(driver, instance):
    try:
        return bool(driver.gpu_request(instance).is_gpu_guest)
    except Exception:
        return False


def describe(phases_ms, kernel_line=None):
    parts = ['%s %.0f ms' % (name, phases_ms[name])
             for name in boot_stats.PHASE_NAMES if name in phases_ms]
    text = ', '.join(parts) or 'none seen'
    if kernel_line:
        text += "; guest kernel's first line: %r" % kernel_line
    return text


def report(driver, context, instance, watch):
    """Events, one INFO line, the local record and the stats summary."""
    phases = watch.phases()
    phases_ms = watch.phases_ms()
    host = CONF.host
    for name in boot_stats.PHASE_NAMES:
        if name not in phases:
            continue
        start, end = phases[name]
        details = '%.1f ms: %s' % (phases_ms[name],
                                   boot_stats.DESCRIPTIONS[name])
        if name == 'kernel' and watch.kernel_line:
            details += ': %s' % watch.kernel_line
        start_mark, end_mark = [p[1:3] for p in boot_stats.PHASES
                                if p[0] == name][0]
        try:
            from nova import objects
            event = objects.InstanceActionEvent(
                context=context, event=EVENT_PREFIX + name,
                start_time=watch.wall(start_mark),
                finish_time=watch.wall(end_mark), result='Success',
                host=host, details=details[:255])
            event.create(instance.uuid, context.request_id)
        except Exception:
            LOG.debug('Cannot record the instance action event %s',
                      EVENT_PREFIX + name, exc_info=True, instance=instance)
    LOG.info('Boot phases: %s', describe(phases_ms, watch.kernel_line),
             instance=instance)
    flavor = instance.flavor
    record = {
        'uuid': instance.uuid, 'host': host,
        'time': watch.wall('request').isoformat() if 'request' in
        watch.marks else None,
        'flavor': flavor.name if flavor else None,
        'memory_mb': flavor.memory_mb if flavor else None,
        'vcpus': flavor.vcpus if flavor else None,
        'gpu': _is_gpu_guest(driver, instance),
        'phases': phases_ms, 'kernel_line': watch.kernel_line,
        'to_first_console_ms': boot_stats.to_first_console_ms(phases_ms),
    }
    _recent(driver).append(record)
    append_record(CONF.gpu_ext.state_dir, record)


def append_record(state_dir, record, keep=RECORD_KEEP):
    """Append to ``state_dir``/boot-phases.jsonl, keeping ``keep`` lines."""
    path = os.path.join(state_dir, RECORD_FILE)
    line = json.dumps(record, sort_keys=True) + '\n'
    with _record_lock:
        try:
            os.makedirs(state_dir, exist_ok=True)
            with open(path, 'a') as f:
                f.write(line)
            if os.path.getsize(path) > keep * 600:
                with open(path) as f:
                    lines = f.readlines()[-keep:]
                tmp = path + '.tmp'
                with open(tmp, 'w') as f:
                    f.writelines(lines)
                os.replace(tmp, path)
        except OSError as exc:
            LOG.warning('Cannot write the boot phase record %s: %s',
                        path, exc)


def read_records(path):
    """Records of a boot-phases.jsonl; bad lines are skipped."""
    records = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(
                    record.get('phases'), dict):
                records.append(record)
    return records


def add_stats(driver, data):
    """The summary of this host's recent builds in the resource stats."""
    recent = list(_recent(driver))
    if recent:
        data.setdefault('stats', {})[STATS_KEY] = json.dumps(
            boot_stats.stats_summary(recent), sort_keys=True,
            separators=(',', ':'))
    return data
