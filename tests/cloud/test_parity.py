"""Our driver against upstream's, in the same cloud, side by side.

Layer rule: cloud scenario tests (see cloudlib). nova-compute is restarted
with ``compute_driver = libvirt.LibvirtDriver`` (``tools/cloud driver
upstream``) and back: the live domain XML of a plain guest must be the same
(``virsh dumpxml``, normalized for what differs between any two guests),
and create-to-ACTIVE and delete times are measured on both (API polled
every 0.1 s). The figures go to the test's output and to
``$NOVA_GPU_EXT_CLOUD_DIR/log/figures.json``.
"""

import difflib
import json
import os
import statistics
import time

import pytest

from tests.cloud import cloudlib

pytestmark = pytest.mark.cloud

ROUNDS = int(os.environ.get('NOVA_GPU_EXT_CLOUD_ROUNDS', '5'))
#: API polling while timing (0.5 s would be a quarter of a 2 s build)
POLL = 0.1


def _measure(conn, driver):
    cloudlib.tool('driver', driver)
    # A first build after nova-compute started pays for warming up (its
    # first libvirt calls, the image cache check): not measured.
    warm = cloudlib.boot(conn, 'ct-parity-%s-warm' % driver)
    conn.compute.delete_server(warm)
    cloudlib.wait_gone(conn, warm.id)
    xml, creates, deletes = None, [], []
    for i in range(ROUNDS):
        t0 = time.monotonic()
        server = cloudlib.boot(conn, 'ct-parity-%s-%d' % (driver, i),
                               poll=POLL)
        creates.append(time.monotonic() - t0)
        if xml is None:
            xml = cloudlib.dumpxml(cloudlib.instance_name(conn, server))
        t0 = time.monotonic()
        conn.compute.delete_server(server)
        cloudlib.wait_gone(conn, server.id, poll=POLL)
        deletes.append(time.monotonic() - t0)
    return xml, creates, deletes


def test_plain_guest_xml_and_times_match_upstream(clean):
    conn = clean
    ours, upstream = cloudlib.on_each_driver(_measure, conn)
    figures = {
        'rounds': ROUNDS,
        'create_ours_s': [round(t, 2) for t in ours[1]],
        'create_upstream_s': [round(t, 2) for t in upstream[1]],
        'delete_ours_s': [round(t, 2) for t in ours[2]],
        'delete_upstream_s': [round(t, 2) for t in upstream[2]],
    }
    for what in ('create', 'delete'):
        o = statistics.median(figures['%s_ours_s' % what])
        u = statistics.median(figures['%s_upstream_s' % what])
        figures['%s_median_ours_s' % what] = o
        figures['%s_median_upstream_s' % what] = u
        figures['%s_ratio' % what] = round(o / u, 3)
    print('cloud figures: %s' % json.dumps(figures))
    with open(os.path.join(cloudlib.CLOUD_DIR, 'log', 'figures.json'),
              'w') as f:
        json.dump(figures, f, indent=1)
    a = cloudlib.normalize(ours[0])
    b = cloudlib.normalize(upstream[0])
    assert a == b, ''.join(difflib.unified_diff(
        b.splitlines(True), a.splitlines(True), 'upstream', 'ours'))
    # The target is <= 1.02 (README); on a shared 2-core machine one run's
    # medians move by more than that, so the test only catches a real
    # regression (a plain guest must not pay for the extension).
    assert figures['create_ratio'] <= 1.3, figures
    assert figures['delete_ratio'] <= 1.3, figures
