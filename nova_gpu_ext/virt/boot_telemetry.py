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

from oslo_log import log as logging

from nova_gpu_ext.core import boot_stats
from nova_gpu_ext import conf as gpu_conf
from nova_gpu_ext.virt import console_watch

LOG = logging.getLogger(__name__)
CONF = gpu_conf.CONF

EVENT_PREFIX = 'gpu_ext_boot_'
STATS_KEY = 'gpu_ext_boot'
RECORD_FILE = 'boot-phases.jsonl'
RECORD_KEEP = 1000
#: the first thing a Linux kernel prints on the serial console
KERNEL_FIRST = re.compile(rb'early console in setup code|Probing EDD|'
                          rb'Decompressing Linux|Linux version')
#: how long the kernel's first line may take to end, once it started
LINE_WAIT = 1.0
_record_lock = threading.Lock()
# instance UUID -> BuildWatch whose console watcher runs
_watching = {}
_watching_lock = threading.Lock()


def now():
    """Seconds on the clock ``/proc/<pid>/stat`` start times use."""
    try:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return time.monotonic()


qemu_start_time = console_watch.qemu_start_time
qemu_process = console_watch.qemu_process
console_log_path = console_watch.console_log_path
domain_name = console_watch.domain_name


def stop_watch(instance_uuid):
    """The guest is gone (the driver's ``cleanup``): its console watcher
    records what it saw and ends now."""
    if instance_uuid is None:
        return
    with _watching_lock:
        watch = _watching.get(instance_uuid)
    if watch is not None:
        watch.stop()


def watching():
    """UUIDs of the guests whose console is watched (for tests)."""
    with _watching_lock:
        return set(_watching)


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
        self._report_lock = threading.Lock()
        self.thread = None
        self._stop_r = self._stop_w = None
        self._stopped = False

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
        """The vCPUs run: find QEMU's start, then watch the console (until
        the kernel's first line, QEMU's exit, :meth:`stop` or
        ``timeout``)."""
        self.mark('resumed')
        started = qemu_start_time(name, uuid)
        # Its pid, to see it exit (pidfd_open).
        pid = qemu_process(name, uuid)[0] if started is not None else None
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
        self._stop_r, self._stop_w = os.pipe()
        with _watching_lock:
            _watching[self.uuid] = self
        self.thread = threading.Thread(
            target=self._watch_console, args=(path, timeout, pid),
            name='gpu-ext-boot-%s' % uuid[:8], daemon=True)
        self.thread.start()

    def stop(self):
        """End the watch now (the guest was destroyed)."""
        self._stopped = True
        if self._stop_w is not None:
            try:
                os.write(self._stop_w, b'x')
            except OSError:
                pass

    def _read_console(self, path, data):
        """``data`` with what the console log gained; True when the
        kernel's first line is complete."""
        try:
            size = os.stat(path).st_size
        except OSError:
            size = 0
        if size < len(data):
            data = b''  # truncated (log rotated): read again
        if size > len(data):
            with open(path, 'rb') as f:
                f.seek(len(data))
                data += f.read(min(size - len(data), 1 << 20))
            stamp = now()
            self.marks.setdefault('console', stamp)
            match = KERNEL_FIRST.search(data)
            if match:
                self.marks.setdefault('kernel', stamp)
                rest = data[match.start():]
                self.kernel_line = re.split(
                    rb'[\r\n]', rest, 1)[0].decode(
                    'utf-8', 'replace').strip()[:200]
                return data, bool(re.search(rb'[\r\n]', rest))
        return data, False

    def _watch_console(self, path, timeout, pid=None):
        """Block on the console directory's inotify events, QEMU's exit
        (pidfd) and :meth:`stop`; no polling loop."""
        deadline = now() + timeout
        waiter = console_watch.Waiter(
            path, pid, self._stop_r, lambda: self._stopped)
        data = b''
        try:
            while True:
                data, line_done = self._read_console(path, data)
                if line_done or len(data) >= (1 << 20):
                    break
                until = deadline
                if 'kernel' in self.marks:
                    # The whole line, if it comes within a second.
                    until = min(until, self.marks['kernel'] + LINE_WAIT)
                wait = until - now()
                if wait <= 0:
                    break
                if waiter.wait(wait):
                    # The guest is gone: what it printed is all there is.
                    data, _ = self._read_console(path, data)
                    break
        except Exception:
            LOG.debug('Console watch of %s failed', path, exc_info=True)
        finally:
            waiter.close()
            for fd in (self._stop_r, self._stop_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._stop_w = None
            with _watching_lock:
                if _watching.get(self.uuid) is self:
                    del _watching[self.uuid]
            self.finish()

    def finish(self):
        with self._report_lock:
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
    """Upstream's ``_create_guest`` (``create``), timed for a build.

    Only what the build already has is used (the XML, the instance's
    loaded fields): no libvirt call of ours. A guest that is not a GPU
    guest (:mod:`.gate`) gets its INFO line and local record, and no
    instance action events (no database call of ours)."""
    # Lazy (here and below): ``nova-gpu-ext boot-report`` reads the records
    # through this module; Nova's objects (and eventlet with them) are
    # loaded only in nova-compute.
    from nova.compute import task_states
    from nova_gpu_ext.virt import gate
    if not CONF.gpu_ext.boot_telemetry or \
            gate.field(instance, 'task_state') != task_states.SPAWNING or \
            gate.uuid_of(instance) is None:
        return create(context, xml, instance, *args, **kwargs)
    gpu = gate.is_candidate(instance)
    watch = BuildWatch(instance.uuid, gate.field(instance, 'created_at'),
                       report=lambda w: report(driver, context, instance, w,
                                               events=gpu, gpu=gpu))
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
            watch.after_resume(domain_name(xml), instance.uuid, xml,
                               timeout)
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


def describe(phases_ms, kernel_line=None):
    parts = ['%s %.0f ms' % (name, phases_ms[name])
             for name in boot_stats.PHASE_NAMES if name in phases_ms]
    text = ', '.join(parts) or 'none seen'
    if kernel_line:
        text += "; guest kernel's first line: %r" % kernel_line
    return text


def report(driver, context, instance, watch, events=True, gpu=None):
    """Events (if ``events``), an INFO line, the record, the stats."""
    phases = watch.phases()
    phases_ms = watch.phases_ms()
    host = CONF.host
    for name in boot_stats.PHASE_NAMES:
        if name not in phases or not events:
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
    from nova_gpu_ext.virt import gate
    flavor = gate.field(instance, 'flavor')
    if gpu is None:
        gpu = gate.is_candidate(instance)
    record = {
        'uuid': instance.uuid, 'host': host,
        'time': watch.wall('request').isoformat() if 'request' in
        watch.marks else None,
        'flavor': flavor.name if flavor else None,
        'memory_mb': flavor.memory_mb if flavor else None,
        'vcpus': flavor.vcpus if flavor else None,
        'gpu': bool(gpu),
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
