"""Load: 20 concurrent boots and deletes of plain guests.

Layer rule: cloud scenario tests (see cloudlib).
"""

import concurrent.futures
import datetime
import os
import time

import pytest

from tests.cloud import cloudlib

pytestmark = [pytest.mark.cloud, pytest.mark.timeout(1200)]

N = int(os.environ.get('NOVA_GPU_EXT_CLOUD_LOAD', '20'))


def _time(stamp):
    return datetime.datetime.fromisoformat(
        stamp.replace('Z', '+00:00')).timestamp()


def test_concurrent_boots_and_deletes(clean):
    conn = clean
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(N) as pool:
        servers = list(pool.map(
            lambda i: cloudlib.boot(cloudlib.connect(), 'ct-load-%02d' % i,
                                    wait=False), range(N)))
    done = [cloudlib.wait_status(conn, s, ('ACTIVE',), 900)
            for s in servers]
    # Overlap: from each server's created_at to its launched_at it was
    # being built; at the busiest instant at least half built side by side.
    edges = []
    for s in done:
        edges.append((_time(s.created_at), 1))
        edges.append((_time(s.launched_at), -1))
    busiest = level = 0
    for _, step in sorted(edges):
        level += step
        busiest = max(busiest, level)
    print('load: at most %d builds at once' % busiest)
    assert busiest >= N // 2, busiest
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
