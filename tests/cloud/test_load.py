"""Load: 20 concurrent boots and deletes of plain guests.

Layer rule: cloud scenario tests (see cloudlib).
"""

import concurrent.futures
import os
import time

import pytest

from tests.cloud import cloudlib

pytestmark = [pytest.mark.cloud, pytest.mark.timeout(1200)]

N = int(os.environ.get('NOVA_GPU_EXT_CLOUD_LOAD', '20'))


def test_concurrent_boots_and_deletes(clean):
    conn = clean
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(N) as pool:
        servers = list(pool.map(
            lambda i: cloudlib.boot(cloudlib.connect(), 'ct-load-%02d' % i,
                                    wait=False), range(N)))
    # Overlap: the builds run side by side (most are still in BUILD once
    # every create has been accepted).
    building = sum(conn.compute.get_server(s.id).status == 'BUILD'
                   for s in servers)
    assert building >= N // 2, building
    for s in servers:
        cloudlib.wait_status(conn, s, ('ACTIVE',), 900)
    booted = time.monotonic() - t0
    ids = {s.id for s in servers}
    assert ids <= set(cloudlib.domains(running_only=True).values())
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(N) as pool:
        list(pool.map(lambda s: cloudlib.connect().compute.delete_server(s),
                      servers))
    for s in servers:
        cloudlib.wait_gone(conn, s.id, 600)
    deleted = time.monotonic() - t0
    print('load: %d guests ACTIVE in %.1f s, deleted in %.1f s' % (
        N, booted, deleted))
    assert not ids & set(cloudlib.domains().values())
    assert not ids & cloudlib.allocations_consumers(conn)
    cloudlib.check_invariants(conn)
