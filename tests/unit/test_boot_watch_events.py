"""The boot console watcher ends with its guest and records at once.

A real process stands for QEMU (its pid is what the watcher is told), the
console log is a real file that stays empty (the guest is destroyed before
its kernel speaks). Destroying the guest (the process exits) or the
driver's ``cleanup`` of it ends the watch within a fraction of a second,
with its record written: nothing keeps polling for the console timeout,
and a restart of nova-compute afterwards loses nothing.

The watcher waits on events (inotify on the console's directory, a pidfd
for QEMU's exit, a pipe for ``cleanup``): while nothing happens it does not
look at the console file again.
"""

import datetime
import subprocess
import sys
import threading
import time

import pytest

from nova_gpu_ext.virt import boot_telemetry
from nova_gpu_ext.virt import console_watch

UUID = 'b1c2d3e4-0000-4000-8000-00000000abcd'


def _watch(tmp_path, monkeypatch, proc):
    log = tmp_path / 'console.log'
    log.write_bytes(b'')
    records = []

    def report(watch):
        boot_telemetry.append_record(str(tmp_path / 'state'), {
            'uuid': watch.uuid, 'phases': watch.phases_ms()})
        records.append(watch)
    watch = boot_telemetry.BuildWatch(
        UUID, datetime.datetime.now(datetime.timezone.utc), report=report)
    watch.mark('defined')
    monkeypatch.setattr(boot_telemetry, 'qemu_start_time',
                        lambda name, uuid: watch.marks['defined'] + 0.01)
    monkeypatch.setattr(boot_telemetry, 'qemu_process',
                        lambda name, uuid: (proc.pid,
                                            watch.marks['defined'] + 0.01),
                        raising=False)
    looks = []
    if hasattr(watch, '_read_console'):
        real = watch._read_console

        def counted(path, data):
            looks.append(time.monotonic())
            return real(path, data)
        watch._read_console = counted
    xml = ('<domain><name>instance-0000000b</name><devices><serial><log '
           'file="%s"/></serial></devices></domain>' % log)
    watch.after_resume('instance-0000000b', UUID, xml, timeout=300)
    return watch, records, looks


@pytest.fixture
def qemu():
    """A process standing for the guest's QEMU."""
    proc = subprocess.Popen([sys.executable, '-c',
                             'import time; time.sleep(60)'])
    yield proc
    proc.kill()
    proc.wait()


def _assert_recorded_at_once(tmp_path, watch, records, since):
    deadline = time.monotonic() + 2.0
    while watch.thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not watch.thread.is_alive(), 'the watcher still runs'
    assert time.monotonic() - since < 2.0
    assert records == [watch]
    assert 'console' not in watch.marks and 'kernel' not in watch.marks
    lines = boot_telemetry.read_records(
        str(tmp_path / 'state' / boot_telemetry.RECORD_FILE))
    assert [r['uuid'] for r in lines] == [UUID]
    assert UUID not in boot_telemetry.watching()
    assert not [t for t in threading.enumerate()
                if t.name == 'gpu-ext-boot-%s' % UUID[:8]]


def test_guest_destroyed_before_its_first_line(tmp_path, monkeypatch,
                                               qemu):
    watch, records, looks = _watch(tmp_path, monkeypatch, qemu)
    assert watch.thread is not None and watch.thread.is_alive()
    time.sleep(0.5)
    assert not records
    # Nothing happened: the console was looked at once, not polled (on
    # eventlet, every GREEN_WAIT seconds).
    assert len(looks) <= 2 + 12 * console_watch._green()
    qemu.kill()
    qemu.wait()
    _assert_recorded_at_once(tmp_path, watch, records, time.monotonic())


def test_cleanup_of_the_guest_ends_its_watch(tmp_path, monkeypatch, qemu):
    watch, records, _ = _watch(tmp_path, monkeypatch, qemu)
    time.sleep(0.2)
    assert watch.thread.is_alive()
    boot_telemetry.stop_watch(UUID)
    _assert_recorded_at_once(tmp_path, watch, records, time.monotonic())


def test_console_growth_wakes_the_watch(tmp_path, monkeypatch, qemu):
    watch, records, looks = _watch(tmp_path, monkeypatch, qemu)
    time.sleep(0.3)
    with open(tmp_path / 'console.log', 'ab') as f:
        f.write(b'Linux version 6.1.0-28-cloud-amd64 (gcc)\r\n')
    watch.thread.join(2)
    assert not watch.thread.is_alive()
    assert records == [watch]
    assert watch.kernel_line == 'Linux version 6.1.0-28-cloud-amd64 (gcc)'
    # Woken by the write, not by a timer (on eventlet, by its 50 ms one).
    assert len(looks) <= 4 + 8 * console_watch._green()


@pytest.fixture(autouse=True)
def _no_watch_left():
    yield
    for uuid in list(getattr(boot_telemetry, 'watching', set)()):
        boot_telemetry.stop_watch(uuid)
