"""Boot phase telemetry on real libvirtd + QEMU.

Layer rule: e2e (marker ``e2e``). Each flavor's XML (what our driver
defined in the functional harness, made startable here by the boot lab) is
started through Nova's own ``LibvirtDriver._create_guest`` (define, then
launch paused, as upstream does when it waits for Neutron) wrapped by our
telemetry hook, then resumed through the ``Guest`` it returned, as
``_create_guest_with_network`` does. The console is a pty with a virtlogd
log file, as Nova's XML has it.

Independently of the telemetry, the test reads the serial pty itself and
stamps its first byte: the recorded phases from "defined" to the first
console output must add up to that measured time within 10%, and every
phase must have been seen.
"""

import datetime
import os
import shutil
import tempfile
import time
import types
import uuid as uuidlib

import pytest
from lxml import etree

from nova_gpu_ext import conf as gpu_conf
from nova_gpu_ext.bootlab import runner
from nova_gpu_ext.virt import boot_telemetry

pytestmark = pytest.mark.e2e

FLAVORS = ('cpu-plain', 'cpu-fastboot', 'vgpu-2g')


class _Host:
    """What upstream's ``_create_guest`` uses of ``nova.virt.libvirt.host``.
    """

    def __init__(self, conn):
        self.conn = conn

    def write_instance_config(self, xml):
        from nova.virt.libvirt import guest as libvirt_guest
        return libvirt_guest.Guest(self.conn.defineXML(xml))


def _with_console_log(xml, log_path, name, disk_copies):
    root = etree.fromstring(xml.encode())
    root.find('name').text = name
    # A private copy of the lab's boot disk: other runs on this machine
    # (and a lab rebuilding it) must not hold QEMU's write lock on ours.
    for source in root.iterfind("./devices/disk[@device='disk']/source"):
        if source.get('file'):
            copy = os.path.join(disk_copies, os.path.basename(
                source.get('file')))
            shutil.copyfile(source.get('file'), copy)
            source.set('file', copy)
    serial = root.find('./devices/serial')
    for log in serial.findall('log'):
        serial.remove(log)
    log = etree.Element('log', file=log_path, append='off')
    serial.insert(0, log)
    return etree.tostring(root).decode()


@pytest.fixture(scope='module')
def libvirt_conn():
    libvirt = pytest.importorskip('libvirt')
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open(runner.URI)
    yield conn
    conn.close()


@pytest.mark.parametrize('flavor', FLAVORS)
def test_phases_add_up_to_first_console(lab, driver_xml, libvirt_conn,
                                        tmp_path, monkeypatch, flavor):
    from nova.compute import task_states
    from nova.virt.libvirt import driver as libvirt_driver
    gpu_conf.register_opts()
    xml, _entry, _path = driver_xml[(flavor, 'ours')]
    prepared = lab.prepare(xml, fault_in=False)
    uuid = etree.fromstring(prepared.xml.encode()).findtext('uuid')
    name = 'gpu-ext-telemetry-%s' % uuidlib.uuid4().hex[:8]
    console_log = str(tmp_path / 'console.log')
    # Next to the lab's guest: a directory QEMU's user can read.
    disk_copies = tempfile.mkdtemp(prefix='telemetry-', dir=os.path.dirname(
        lab.guest.initrd))
    os.chmod(disk_copies, 0o755)
    xml = _with_console_log(prepared.xml, console_log, name, disk_copies)

    reported = []
    monkeypatch.setattr(boot_telemetry, 'report',
                        lambda driver, ctx, inst, watch, **kw:
                        reported.append(watch))
    instance = types.SimpleNamespace(
        uuid=uuid, task_state=task_states.SPAWNING,
        created_at=datetime.datetime.now(datetime.timezone.utc))
    upstream = types.SimpleNamespace(
        _host=_Host(libvirt_conn),
        cpu_api=types.SimpleNamespace(
            power_up_for_instance=lambda instance: None))

    def create(context, xml, instance, **kwargs):
        return libvirt_driver.LibvirtDriver._create_guest(
            upstream, context, xml, instance, **kwargs)

    t_start = time.monotonic()
    guest = boot_telemetry.create_guest(
        None, create, None, xml, instance, power_on=True, pause=True)
    reader = None
    try:
        reader = runner._PtyReader(
            runner._serial_pty(guest.get_xml_desc()), b'\n')
        reader.stop_on = runner.guest_mod.INIT_MARKER.encode()
        reader.start()
        guest.resume()
        deadline = time.monotonic() + 120
        while not reported and time.monotonic() < deadline:
            time.sleep(0.05)
        t_console = reader.chunks[0][0] if reader.chunks else None
    finally:
        try:
            guest._domain.destroy()
        except Exception:
            pass
        guest._domain.undefine()
        if reader is not None:
            reader.close()
        shutil.rmtree(disk_copies, ignore_errors=True)
    assert reported, 'no boot phases reported within 120 s'
    watch = reported[0]
    phases = watch.phases_ms()
    print('%s: phases %s; kernel line %r' % (
        flavor, phases, watch.kernel_line))
    assert {'defined', 'qemu_started', 'qemu_init', 'firmware',
            'kernel'} <= set(phases), phases
    assert 'launched' not in phases     # QEMU's start was seen
    assert watch.kernel_line and 'Linux' in watch.kernel_line or \
        runner.KERNEL_FIRST.search(watch.kernel_line.encode())
    assert t_console is not None
    measured_ms = (t_console - t_start) * 1000.0
    recorded_ms = (phases['qemu_started'] + phases['qemu_init'] +
                   phases['firmware'])
    print('%s: start to first console measured %.0f ms, phases add up to '
          '%.0f ms' % (flavor, measured_ms, recorded_ms))
    assert abs(recorded_ms - measured_ms) <= 0.10 * measured_ms, (
        measured_ms, recorded_ms, phases)
