"""Unit tests: one process; scheduler caches start empty for every test."""

import pytest


def pytest_configure(config):
    """Some unit modules import Nova's unit test package, which
    monkey-patches this process with eventlet; pytest-xdist's execnet
    threads hang under it. Refuse ``-n`` with the reason instead."""
    workers = getattr(config.option, 'numprocesses', None)
    if workers and not hasattr(config, 'workerinput'):
        raise pytest.UsageError(
            'tests/unit runs in one process (about 80 s): run it without -n '
            '(-n %s asked). Nova\'s unit test package monkey-patches the '
            'process with eventlet, and pytest-xdist\'s workers hang under '
            'it.' % workers)


@pytest.fixture(autouse=True)
def _fresh_scheduler_caches():
    from nova_gpu_ext.scheduler import request
    request._DECODED.clear()
    yield
    request._DECODED.clear()
