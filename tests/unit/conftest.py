"""Process-wide caches of the scheduler start empty for every unit test."""

import pytest


@pytest.fixture(autouse=True)
def _fresh_scheduler_caches():
    from nova_gpu_ext.scheduler import request
    request._DECODED.clear()
    yield
    request._DECODED.clear()
