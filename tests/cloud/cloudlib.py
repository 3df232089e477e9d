"""Helpers of the cloud tier: the public APIs, the logs, libvirt's view.

Layer rule: cloud scenario tests. They drive the one-machine cloud of
``tools/cloud`` only through its public APIs (openstacksdk: compute,
placement, image) and look at what an operator can look at: ``virsh`` (as
whitebox-tempest-plugin does) and the services' log files. They never
import nova or nova_gpu_ext (those run in the cloud's own venv).
"""

import datetime
import json
import os
import re
import subprocess
import time

import openstack

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, 'tools', 'cloud')
CLOUD_DIR = os.environ.get('NOVA_GPU_EXT_CLOUD_DIR',
                           '/var/lib/nova-gpu-ext-cloud')
FLAVOR = 'cloud.tiny'
IMAGE = 'cloud-guest'
MARKER = 'NOVA-GPU-EXT-CLOUD-GUEST-UP'
#: every wait of the tier is bounded (seconds)
BOOT_TIMEOUT = 240
FAULT_TIMEOUT = 300
VIRSH = ['virsh', '-q', '-c', 'qemu:///system']


def tool(*args, timeout=900, check=True):
    """Run tools/cloud; its output goes to the test's captured output."""
    proc = subprocess.run([TOOL] + list(args), capture_output=True,
                          text=True, timeout=timeout)
    print(proc.stdout, proc.stderr)
    if check:
        assert proc.returncode == 0, '%s failed: %s' % (
            ' '.join(args), proc.stderr[-3000:])
    return proc


def connect():
    os.environ.setdefault('OS_CLIENT_CONFIG_FILE',
                          os.path.join(CLOUD_DIR, 'etc', 'clouds.yaml'))
    return openstack.connect(cloud='nova-gpu-ext-cloud')


def log_path(service):
    return os.path.join(CLOUD_DIR, 'log', service + '.log')


class LogMark:
    """Read what a service logged after this point."""

    def __init__(self, service):
        self.path = log_path(service)
        self.offset = os.path.getsize(self.path)

    def text(self):
        with open(self.path, errors='replace') as f:
            f.seek(self.offset)
            return f.read()


def boot(conn, name, flavor=FLAVOR, wait=True, timeout=BOOT_TIMEOUT,
         poll=0.5):
    """Create a guest without network; return the server (ACTIVE if wait)."""
    flavor = conn.compute.find_flavor(flavor, ignore_missing=False)
    image = conn.image.find_image(IMAGE, ignore_missing=False)
    server = conn.compute.create_server(
        name=name, flavor_id=flavor.id, image_id=image.id, networks='none')
    if wait:
        server = wait_status(conn, server, ('ACTIVE',), timeout, poll=poll)
    return server


def wait_status(conn, server, statuses, timeout=BOOT_TIMEOUT,
                task_state_none=True, poll=0.5):
    """Poll until the server is in one of statuses (and no task runs)."""
    deadline = time.monotonic() + timeout
    while True:
        server = conn.compute.get_server(server.id)
        if server.status in statuses and (
                not task_state_none or server.task_state is None):
            return server
        if server.status == 'ERROR' and 'ERROR' not in statuses:
            raise AssertionError('server %s went to ERROR: %s' % (
                server.id, server.fault))
        if time.monotonic() > deadline:
            raise AssertionError(
                'server %s still %s/%s after %ss (wanted %s)' % (
                    server.id, server.status, server.task_state, timeout,
                    statuses))
        time.sleep(poll)


def wait_gone(conn, server_id, timeout=BOOT_TIMEOUT, poll=0.5):
    deadline = time.monotonic() + timeout
    while conn.compute.find_server(server_id) is not None:
        if time.monotonic() > deadline:
            raise AssertionError('server %s not deleted after %ss' % (
                server_id, timeout))
        time.sleep(poll)


def delete_all(conn, prefix, timeout=BOOT_TIMEOUT):
    ids = [s.id for s in conn.compute.servers(all_projects=True)
           if s.name.startswith(prefix)]
    for sid in ids:
        conn.compute.delete_server(sid, ignore_missing=True)
    for sid in ids:
        wait_gone(conn, sid, timeout)


def instance_name(conn, server):
    return conn.compute.get_server(server.id).instance_name


def domains(running_only=False):
    """{domain name: uuid} of Nova's domains (instance-*) on libvirtd."""
    args = ['list', '--name'] + ([] if running_only else ['--all'])
    out = subprocess.run(VIRSH + args, capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    result = {}
    for name in out:
        if name.startswith('instance-'):
            uuid = subprocess.run(VIRSH + ['domuuid', name],
                                  capture_output=True, text=True,
                                  timeout=60).stdout.strip()
            result[name] = uuid
    return result


def dumpxml(name):
    return subprocess.run(VIRSH + ['dumpxml', name], capture_output=True,
                          text=True, check=True, timeout=60).stdout


NORMALIZE = (
    (re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-'
                r'[0-9a-f]{12}'), 'UUID'),
    (re.compile(r'instance-[0-9a-f]{8}'), 'INSTANCE'),
    (re.compile(r'<nova:creationTime>[^<]*</nova:creationTime>'),
     '<nova:creationTime/>'),
    (re.compile(r'<nova:name>[^<]*</nova:name>'), '<nova:name/>'),
    (re.compile(r"<(label|imagelabel)>[^<]*</\1>"), r'<\1/>'),
    (re.compile(r"(mac address=')[0-9a-f:]+'"), r"\1MAC'"),
    (re.compile(r"(port|websocket)='\d+'"), r"\1='N'"),
    (re.compile(r"(<partition>|<entry name='serial'>)[^<]*<"), r'\1X<'),
    (re.compile(r"<entry name='uuid'>[^<]*<"), "<entry name='uuid'>X<"),
    (re.compile(r" id='\d+'"), ''),
    (re.compile(r"/var/run/libvirt/qemu/[^'\"<]*"), 'QEMU_RUN'),
    (re.compile(r"/var/lib/libvirt/qemu/[^'\"<]*"), 'QEMU_LIB'),
)


def normalize(xml):
    """A live domain XML without what differs between any two guests."""
    for pattern, repl in NORMALIZE:
        xml = pattern.sub(repl, xml)
    return xml


def placement_get(conn, url):
    return conn.placement.get(
        url, microversion='1.39').json()


def allocations_consumers(conn):
    """{consumer uuid} holding an allocation on any provider."""
    consumers = set()
    for rp in placement_get(conn, '/resource_providers')[
            'resource_providers']:
        allocs = placement_get(
            conn, '/resource_providers/%s/allocations' % rp['uuid'])
        consumers.update(allocs['allocations'])
    return consumers


def compute_stats():
    """The compute node's stats as Nova stored them (our gpu_ext summary).

    Nova's API no longer shows a compute node's stats (microversion 2.88
    dropped them), so this reads the cell database, as an operator would
    with ``mariadb nova_cell1``.
    """
    sock = os.path.join(CLOUD_DIR, 'run', 'mysqld', 'mysqld.sock')
    out = subprocess.run(
        ['mariadb', '--no-defaults', '-S', sock, '-u', 'root', '-N', '-B',
         '-r',
         '-e', 'SELECT stats FROM nova_cell1.compute_nodes '
         'WHERE deleted = 0'],
        capture_output=True, text=True, check=True, timeout=60).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def utcnow():
    """Now, in UTC without a zone, as Nova's API writes its times."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _heartbeat(service):
    """The service's last report (``datetime.min`` before its first)."""
    stamp = service.updated_at
    if not stamp:
        return datetime.datetime.min
    return datetime.datetime.fromisoformat(stamp.rstrip('Z')[:26])


def wait_compute_up(conn, timeout=FAULT_TIMEOUT, since=None):
    """Until nova-compute's service is up and enabled again.

    After a fault Nova may see the compute as down (its heartbeat lapsed
    while RabbitMQ was away) or disable it (libvirt's connection was lost,
    until its next call reconnects). A delete made meanwhile is a "local
    delete" in the API that leaves the domain to the compute's periodic
    reaping, and a build is refused: an operator waits, so do the tests.

    ``since`` (a UTC time, see ``utcnow``): also wait for a heartbeat
    written after it. "up" alone only says the last heartbeat is younger
    than ``service_down_time`` (60 s): right after a fault that stopped the
    heartbeats it can still be the one from before the fault, and a few
    seconds later the scheduler's ComputeFilter finds the host "not heard
    from in a while" (seen in CI after the RabbitMQ outage).
    """
    deadline = time.monotonic() + timeout
    # The database keeps whole seconds.
    since = since and since.replace(microsecond=0)
    while True:
        services = list(conn.compute.services(binary='nova-compute'))
        if services and all(
                s.state == 'up' and s.status == 'enabled' and (
                    since is None or _heartbeat(s) > since)
                for s in services):
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                'nova-compute not up/enabled (with a heartbeat after %s) '
                'after %ss: %s' % (since, timeout, [
                    (s.state, s.status, s.updated_at) for s in services]))
        time.sleep(1)


def check_invariants(conn, timeout=FAULT_TIMEOUT, faultless_ok=()):
    """After a fault: the cloud's books agree with each other and libvirt.

    * every server is ACTIVE, SHUTOFF or ERROR (an ERROR one with a fault
      message), none stays in BUILD or with a task;
    * no placement allocation without its server;
    * no libvirt domain without its server, no running server without its
      domain;
    * our ledgers (the gpu_ext summary in the compute's stats: guests per
      render node, shared-GPU claims) equal what libvirt holds: this host
      has no GPU, so both must be empty.
    ``faultless_ok``: servers that may be ERROR without a fault, where
    that is upstream Nova's behaviour (a build on a nova-compute killed
    mid-build is put in ERROR by the restarted compute's init_host, which
    records no fault).
    Returns the servers.
    """
    deadline = time.monotonic() + timeout
    while True:
        servers = list(conn.compute.servers(all_projects=True))
        busy = [s for s in servers
                if s.status == 'BUILD' or s.task_state is not None]
        if not busy:
            break
        if time.monotonic() > deadline:
            raise AssertionError('servers still busy after %ss: %s' % (
                timeout, [(s.id, s.status, s.task_state) for s in busy]))
        time.sleep(1)
    for s in servers:
        assert s.status in ('ACTIVE', 'SHUTOFF', 'ERROR'), (s.id, s.status)
        if s.status == 'ERROR' and s.id not in faultless_ok:
            fault = conn.compute.get_server(s.id).fault or {}
            assert fault.get('message'), 'ERROR server %s has no fault' % (
                s.id)
    ids = {s.id for s in servers}
    stray = allocations_consumers(conn) - ids
    assert not stray, 'placement allocations without a server: %s' % stray
    doms = domains()
    orphans = {n: u for n, u in doms.items() if u not in ids}
    assert not orphans, 'libvirt domains without a server: %s' % orphans
    running = domains(running_only=True)
    running_uuids = set(running.values())
    for s in servers:
        if s.status == 'ACTIVE':
            assert s.id in running_uuids, (
                'ACTIVE server %s has no running domain' % s.id)
    for stats in compute_stats():
        summary = stats.get('gpu_ext')
        if summary is None:
            continue
        summary = json.loads(summary) if isinstance(summary, str) else (
            summary)
        assert not _in_use(summary), (
            'gpu_ext ledger holds GPU use on a host without GPUs: %s' %
            summary)
    return servers


def _in_use(summary):
    """Render-node guests and mdev/share claims named in our summary."""
    used = []

    def walk(obj, key=''):
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, k)
        elif isinstance(obj, list):
            for v in obj:
                walk(v, key)
        elif key in ('guests', 'mdevs_used', 'used', 'claims',
                     'tenants') and obj:
            used.append((key, obj))
    walk(summary)
    return used


#: RabbitMQ's outage under a lifecycle event: longer than libvirtd's
#: keepalive (5 probes 5 s apart) and shorter than oslo.messaging's
#: rpc_response_timeout (60 s), as measured by hand for issue 21.
RABBITMQ_OUTAGE = 40


def rabbitmq_outage_under_a_lifecycle_event(conn, prefix,
                                            outage=RABBITMQ_OUTAGE):
    """A running guest is suspended behind Nova's back (``virsh suspend``:
    a lifecycle event nova-compute handles with RPC calls) while RabbitMQ is
    stopped for ``outage`` seconds; then waits, as an operator would, for
    the services to say "Reconnected to AMQP server" and for the compute
    service to be up with a heartbeat written after RabbitMQ came back.
    Returns (the suspended guest, whether all reconnected, whether the
    compute came back up)."""
    guest = boot(conn, prefix + '-guest')
    name = instance_name(conn, guest)
    marks = [LogMark(s) for s in (
        'nova-conductor', 'nova-scheduler', 'nova-compute')]
    tool('stop', 'rabbitmq')
    try:
        subprocess.run(VIRSH + ['suspend', name], check=True,
                       capture_output=True, timeout=60)
        time.sleep(outage)
    finally:
        tool('start', 'rabbitmq')
    back = utcnow()
    deadline = time.monotonic() + 180
    while True:
        reconnected = all('Reconnected to AMQP server' in m.text()
                          for m in marks)
        if reconnected or time.monotonic() > deadline:
            break
        time.sleep(1)
    try:
        wait_compute_up(conn, timeout=180, since=back)
        compute_up = True
    except AssertionError:
        compute_up = False
    return guest, reconnected, compute_up


def compute_option(section, option, value):
    """Set an option in nova-compute's nova.conf (then ``tool('driver',
    ...)`` restarts nova-compute with it)."""
    subprocess.run(
        ['python3', os.path.join(ROOT, 'tools', 'cloud.d', 'ini.py'), 'set',
         os.path.join(CLOUD_DIR, 'etc', 'nova', 'nova-cpu.conf'), section,
         option, value], check=True, timeout=60)


def on_each_driver(measure, conn):
    """``measure(conn, driver)`` on our driver, then on upstream's
    (nova-compute restarted on each); the cloud is left on ours."""
    try:
        return measure(conn, 'ours'), measure(conn, 'upstream')
    finally:
        tool('driver', 'ours')
