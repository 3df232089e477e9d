"""Fixtures of the cloud tier (``tox -e cloud``).

Layer rule: cloud scenario tests (see cloudlib). The session uses a running
cloud of ``tools/cloud`` or brings one up, and brings down at the end the
one it brought up (NOVA_GPU_EXT_CLOUD_KEEP=1 keeps it).
"""

import os

import pytest

from tests.cloud import cloudlib


@pytest.fixture(scope='session')
def cloud():
    started = False
    if cloudlib.tool('status', check=False).returncode != 0:
        cloudlib.tool('up', timeout=1800)
        started = True
    conn = cloudlib.connect()
    # Every test starts on our driver with no guest left by another.
    if cloudlib.tool('status', check=False).stdout.find(
            'compute_driver: ours') < 0:
        cloudlib.tool('driver', 'ours')
    cloudlib.delete_all(conn, 'ct-')
    yield conn
    cloudlib.delete_all(conn, 'ct-')
    if started and os.environ.get('NOVA_GPU_EXT_CLOUD_KEEP') != '1':
        cloudlib.tool('down')


@pytest.fixture
def clean(cloud):
    """Servers of the test are deleted after it; the books are checked."""
    yield cloud
    cloudlib.wait_compute_up(cloud)
    cloudlib.delete_all(cloud, 'ct-')
    cloudlib.check_invariants(cloud)
