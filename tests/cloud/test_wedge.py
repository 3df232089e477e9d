"""The RabbitMQ outage under a lifecycle event, on our driver and upstream's.

Layer rule: cloud scenario tests (see cloudlib). Issue 21 measured, by
hand, that RabbitMQ stopped for 30-40 s while a guest lifecycle event was
in flight can wedge nova-compute (``Host._get_connection``'s lock against
libvirt-python's close callback ``_connection_closed``) on upstream's
driver as on ours. This test does the same on each driver in turn: a
running guest is suspended behind Nova's back (``virsh suspend``: a
lifecycle event nova-compute handles with RPC calls) while RabbitMQ is
stopped for ``OUTAGE`` seconds; RabbitMQ comes back, the services
reconnect, the compute service is waited for (its heartbeat lapsed), and
a new guest is asked for. What happened to it (ACTIVE, ERROR, or still in
BUILD after ``WAIT`` seconds: wedged) and whether the compute service came
back "up" must be the same on both drivers.
Then the documented recovery, ``tools/cloud restart nova-compute``, must
make the cloud build again on each.

It takes 5 to 12 minutes, so the tier runs it only with
``NOVA_GPU_EXT_CLOUD_WEDGE=1`` (``doc/source/contributor/ci.rst``).

Not yet a parity proof: the outcome depends on timing. Two runs on
2026-12-06 (idle machine): first (without the wait for the compute
service) ERROR on both drivers (the scheduler still saw the compute
down); second, ours: the new guest still in BUILD after 150 s with the
compute "up" (the wedge, or the dropped cast of a build requested while
the compute's queues are re-declared), upstream's: ERROR. Each needs its
cause read from the logs before this test can say "same on both".
"""

import os
import subprocess
import time

import pytest

from tests.cloud import cloudlib

pytestmark = [
    pytest.mark.cloud, pytest.mark.timeout(1800),
    pytest.mark.skipif(os.environ.get('NOVA_GPU_EXT_CLOUD_WEDGE') != '1',
                       reason='6-12 minutes: NOVA_GPU_EXT_CLOUD_WEDGE=1')]

OUTAGE = 40
WAIT = 150


def _reconnected(marks, timeout=180):
    deadline = time.monotonic() + timeout
    while not all('Reconnected to AMQP server' in m.text() for m in marks):
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True


def _outcome(conn, driver):
    cloudlib.tool('driver', driver)
    guest = cloudlib.boot(conn, 'ct-wedge-%s-guest' % driver)
    name = cloudlib.instance_name(conn, guest)
    marks = [cloudlib.LogMark(s) for s in (
        'nova-conductor', 'nova-scheduler', 'nova-compute')]
    cloudlib.tool('stop', 'rabbitmq')
    try:
        subprocess.run(cloudlib.VIRSH + ['suspend', name], check=True,
                       capture_output=True, timeout=60)
        time.sleep(OUTAGE)
    finally:
        cloudlib.tool('start', 'rabbitmq')
    reconnected = _reconnected(marks)
    # As an operator would: wait for the compute service to be up (its
    # heartbeat lapsed during the outage; the scheduler refuses it until
    # then), then ask for a guest. A wedged compute reports "up" too.
    try:
        cloudlib.wait_compute_up(conn, timeout=180)
        compute_up = True
    except AssertionError:
        compute_up = False
    server = cloudlib.boot(conn, 'ct-wedge-%s-after' % driver, wait=False)
    deadline = time.monotonic() + WAIT
    status = 'BUILD'
    while time.monotonic() < deadline:
        status = conn.compute.get_server(server.id).status
        if status in ('ACTIVE', 'ERROR'):
            break
        time.sleep(1)
    outcome = {'new_guest': status, 'compute_up': compute_up,
               'reconnected': reconnected}
    print('wedge %s: %s' % (driver, outcome))
    # The documented recovery.
    cloudlib.tool('restart', 'nova-compute')
    cloudlib.wait_compute_up(conn)
    cloudlib.delete_all(conn, 'ct-wedge-', cloudlib.FAULT_TIMEOUT)
    cloudlib.boot(conn, 'ct-wedge-%s-recovered' % driver,
                  timeout=cloudlib.FAULT_TIMEOUT)
    cloudlib.delete_all(conn, 'ct-wedge-', cloudlib.FAULT_TIMEOUT)
    return outcome


def test_rabbitmq_outage_under_a_lifecycle_event_same_on_both(clean):
    conn = clean
    ours, upstream = cloudlib.on_each_driver(_outcome, conn)
    assert ours == upstream, (ours, upstream)
    cloudlib.check_invariants(conn)
