"""Boot phase telemetry: marks to phases, the real signals it reads (a
pidfile, /proc, virtlogd's console log), the record and ``boot-report``."""

import datetime
import io
import json
import os
import time
import types

import pytest

from nova_gpu_ext.core import boot_stats
from nova_gpu_ext.cmd import boot_report
from nova_gpu_ext.cmd import main
from nova_gpu_ext.virt import boot_telemetry

UUID = '3f0c2a9e-7b1d-4e5f-a6c8-0d9e8f7a6b5c'


def test_phases_need_both_marks_and_launched_only_without_qemu():
    marks = {'request': 0.0, 'defined': 2.0, 'resumed': 2.5}
    assert boot_stats.phases_from_marks(marks) == {
        'defined': (0.0, 2.0), 'launched': (2.0, 2.5)}
    marks.update(qemu_started=2.1, console=2.9, kernel=3.0)
    phases = boot_stats.phases_from_marks(marks)
    assert set(phases) == {'defined', 'qemu_started', 'qemu_init',
                           'firmware', 'kernel'}
    ms = {k: (e - s) * 1000 for k, (s, e) in phases.items()}
    assert boot_stats.to_first_console_ms(ms) == pytest.approx(900.0)


def test_summary_median_p95_and_groups():
    records = [{'gpu': i % 2 == 0, 'memory_mb': 2048 if i < 5 else 16384,
                'phases': {'qemu_init': float(i * 100)}} for i in range(10)]
    summary = boot_stats.summarize(records)
    assert summary['all']['phases']['qemu_init'] == {
        'n': 10, 'median': 450.0, 'p95': 900.0}
    assert set(boot_stats.summarize(records, 'gpu')) == {'gpu', 'other'}
    assert set(boot_stats.summarize(records, 'memory')) == {'<=2G',
                                                            '<=32G'}
    assert boot_stats.stats_summary(records) == {
        'builds': 10, 'median_ms': {'qemu_init': 450.0}}


def _fake_qemu(tmp_path, pid=4242, uuid=UUID, ticks=12345):
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'instance-0000000a.pid').write_text('%d\n' % pid)
    proc = tmp_path / 'proc' / str(pid)
    proc.mkdir(parents=True)
    (proc / 'cmdline').write_bytes(b'qemu-system-x86_64\0-uuid\0' +
                                   uuid.encode() + b'\0')
    fields = ['S'] + ['0'] * 18 + [str(ticks)] + ['0'] * 20
    (proc / 'stat').write_text('%d (qemu-system-x86) %s\n' % (
        pid, ' '.join(fields)))
    return str(run), str(tmp_path / 'proc')


def test_qemu_start_time_from_pidfile_and_proc(tmp_path):
    run, proc = _fake_qemu(tmp_path)
    got = boot_telemetry.qemu_start_time('instance-0000000a', UUID,
                                         pid_dirs=(run,), proc=proc)
    assert got == pytest.approx(12345 / os.sysconf('SC_CLK_TCK'))
    # A pidfile of another domain (stale, reused name) is not trusted.
    assert boot_telemetry.qemu_start_time(
        'instance-0000000a', 'other-uuid', pid_dirs=(run,), proc=proc) \
        is None
    assert boot_telemetry.qemu_start_time(
        'missing', UUID, pid_dirs=(run,), proc=proc) is None


def test_console_log_path_from_nova_xml():
    xml = ('<domain><devices><serial type="pty"><log file="/i/console.log"'
           ' append="off"/><target port="0"/></serial></devices></domain>')
    assert boot_telemetry.console_log_path(xml) == '/i/console.log'
    assert boot_telemetry.console_log_path(
        '<domain><devices><serial type="file"><source path="/c.log"/>'
        '</serial></devices></domain>') == '/c.log'
    assert boot_telemetry.console_log_path('<domain/>') is None
    assert boot_telemetry.console_log_path('not xml') is None


def test_watch_reads_console_log_until_kernel_line(tmp_path, monkeypatch):
    log = tmp_path / 'console.log'
    log.write_bytes(b'')
    reported = []
    watch = boot_telemetry.BuildWatch(
        UUID, datetime.datetime.now(datetime.timezone.utc) -
        datetime.timedelta(seconds=3), report=reported.append)
    watch.mark('defined')
    monkeypatch.setattr(boot_telemetry, 'qemu_start_time',
                        lambda name, uuid: watch.marks['defined'] + 0.01)
    xml = '<domain><devices><serial><log file="%s"/></serial></devices>' \
          '</domain>' % log
    time.sleep(0.05)    # QEMU init
    watch.after_resume('instance-0000000a', UUID, xml, timeout=10)
    time.sleep(0.1)
    assert not reported
    with open(log, 'ab') as f:
        f.write(b'SYSLINUX 6.04\r\n')
    time.sleep(0.1)
    with open(log, 'ab') as f:
        f.write(b'Linux version 6.1.0-28-cloud-amd64 (gcc)\r\nmore\n')
    watch.thread.join(5)
    assert reported == [watch]
    phases = watch.phases_ms()
    assert set(phases) == {'defined', 'qemu_started', 'qemu_init',
                           'firmware', 'kernel'}
    assert phases['defined'] == pytest.approx(3000, abs=100)
    # The console is stamped when the watch sees it (5 ms polls, later on
    # a loaded machine), never before it was written.
    assert phases['firmware'] >= 100
    assert phases['kernel'] > 0
    assert phases['firmware'] + phases['kernel'] >= 200
    assert watch.kernel_line == 'Linux version 6.1.0-28-cloud-amd64 (gcc)'


def test_no_qemu_no_console_watch():
    reported = []
    watch = boot_telemetry.BuildWatch(UUID, None, report=reported.append)
    watch.mark('defined')
    watch.after_resume('instance-x', UUID, '<domain/>', timeout=10)
    assert reported == [watch] and watch.thread is None
    assert set(watch.phases_ms()) == {'launched'}


def test_a_failing_report_never_raises():
    def boom(watch):
        raise RuntimeError('conductor down')
    watch = boot_telemetry.BuildWatch(UUID, None, report=boom)
    watch.finish()


def test_create_guest_times_only_builds():
    calls = []

    def create(context, xml, instance, **kwargs):
        calls.append(kwargs)
        kwargs['post_xml_callback']() if kwargs.get(
            'post_xml_callback') else None
        return types.SimpleNamespace(name='x', get_xml_desc=lambda: '')
    rebooting = types.SimpleNamespace(uuid=UUID, task_state='rebooting_hard')
    boot_telemetry.create_guest(None, create, None, '', rebooting)
    assert 'post_xml_callback' not in calls[-1]


def test_record_is_bounded(tmp_path):
    for i in range(30):
        boot_telemetry.append_record(
            str(tmp_path), {'uuid': str(i), 'phases': {'launched': 1.0},
                            'pad': 'x' * 700}, keep=10)
    records = boot_telemetry.read_records(
        str(tmp_path / boot_telemetry.RECORD_FILE))
    assert 10 <= len(records) < 30
    assert records[-1]['uuid'] == '29'


def _records(tmp_path):
    for i in range(6):
        boot_telemetry.append_record(str(tmp_path), {
            'uuid': '%08d-x' % i, 'flavor': 'gpu.big' if i % 2 else 'small',
            'memory_mb': 16384 if i % 2 else 2048, 'gpu': bool(i % 2),
            'phases': {'defined': 2000.0 + i, 'qemu_started': 30.0,
                       'qemu_init': 400.0 + 100 * (i % 2),
                       'firmware': 250.0}})
    with open(tmp_path / boot_telemetry.RECORD_FILE, 'a') as f:
        f.write('garbage\n')


def test_boot_report_table_and_json(tmp_path):
    _records(tmp_path)
    out = io.StringIO()
    args = main.build_parser().parse_args(
        ['boot-report', '--state-dir', str(tmp_path)])
    assert boot_report.run(args, out) == 0
    text = out.getvalue()
    assert '6 build(s)' in text
    assert 'GPU guests against others' in text
    assert 'gpu     3       ' in text or 'gpu' in text
    assert '500 / 500' in text and '400 / 400' in text  # qemu_init by GPU
    assert '<=2G' in text and '<=32G' in text
    out = io.StringIO()
    args = main.build_parser().parse_args(
        ['boot-report', '--state-dir', str(tmp_path), '--format', 'json',
         '--last', '4'])
    assert boot_report.run(args, out) == 0
    data = json.loads(out.getvalue())
    assert len(data['builds']) == 4
    assert data['summary']['gpu']['gpu']['phases']['qemu_init'][
        'median'] == 500.0


def test_boot_report_missing_record_says_where(tmp_path, capsys):
    args = main.build_parser().parse_args(
        ['boot-report', '--state-dir', str(tmp_path / 'nope')])
    assert boot_report.run(args, io.StringIO()) == 2
    assert 'boot-phases.jsonl' in capsys.readouterr().err


def test_boot_report_plot(tmp_path):
    pytest.importorskip('matplotlib')
    _records(tmp_path)
    png = tmp_path / 'phases.png'
    args = main.build_parser().parse_args(
        ['boot-report', '--state-dir', str(tmp_path), '--plot', str(png)])
    assert boot_report.run(args, io.StringIO()) == 0
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
