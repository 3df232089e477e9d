"""benchmarks/cloud_spawn_probe.py: self time is a method's own code.

The probe is what ``bench_cloud_overhead.py`` loads into the cloud's
nova-compute; its figure (our code's time per plain guest) is only right if
the calls it probes inside a method, and its own writing, are not counted
in that method's self time. Not timed: the sleeps are far apart.
"""

import functools
import importlib.util
import json
import os
import time

from nova_gpu_ext.nova_glue import wraps

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _load_probe(tmp_path):
    spec = importlib.util.spec_from_file_location(
        'cloud_spawn_probe_under_test',
        os.path.join(ROOT, 'benchmarks', 'cloud_spawn_probe.py'))
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    out = tmp_path / 'probe.jsonl'
    probe._STATE['out'] = str(out)
    return probe, out


def _records(out):
    return {r['f']: r for r in map(json.loads, out.read_text().splitlines())}


class Upstream:
    def spawn(self):
        time.sleep(0.05)


class Ours(Upstream):
    def spawn(self):
        time.sleep(0.01)
        return super().spawn()


def test_self_time_excludes_the_upstream_method_called(tmp_path):
    probe, out = _load_probe(tmp_path)
    for cls in (Ours, Upstream):
        probe._wrap(cls, 'spawn', cls.__name__)
    try:
        Ours().spawn()
    finally:
        for cls in (Ours, Upstream):
            cls.spawn = cls.__dict__['spawn'].__wrapped__
    recs = _records(out)
    assert 45 <= recs['Upstream.spawn']['self_wall_ms'] < 100, recs
    assert 45 <= recs['Ours.spawn']['wall_ms'], recs
    assert 9 <= recs['Ours.spawn']['self_wall_ms'] < 30, recs


def test_a_wrap_of_nova_is_ours_and_its_original_upstream(tmp_path):
    """The closure's ``original`` of a wrap made as ``nova_glue.wraps``
    makes them is probed as upstream's."""
    probe, out = _load_probe(tmp_path)

    class Claim:
        def _test_numa_topology(self, node, limit):
            time.sleep(0.05)

    original = Claim._test_numa_topology

    def make(original):
        def _test_numa_topology(self, node, limit):
            time.sleep(0.01)
            return original(self, node, limit)
        return _test_numa_topology

    wrapper = functools.wraps(original)(make(original))
    setattr(wrapper, wraps.MARK, 'numa_claim')
    wrapper.__wrapped__ = original
    Claim._test_numa_topology = wrapper
    probe._wrap_upstream_inside(Claim, '_test_numa_topology', 'Claim')
    Claim()._test_numa_topology(None, None)
    recs = _records(out)
    assert 45 <= recs['Claim._test_numa_topology']['self_wall_ms'] < 100
    ours = recs['wrap:Claim._test_numa_topology']
    assert 9 <= ours['self_wall_ms'] < 30, ours


def test_our_numa_claim_wrap_still_calls_upstream_as_original():
    """What the probe relies on in ``nova_glue.wraps``."""
    import inspect
    source = inspect.getsource(wraps.install_compute)
    assert 'def numa_claim(original):' in source
    assert 'return original(self, compute_node, limit)' in source
