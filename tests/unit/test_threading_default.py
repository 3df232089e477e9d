"""Nova 34 runs nova-compute in native threading mode by default: so do the
places where we start Nova (the functional harness package, the demo, the
XML dump and scheduler benchmarks; bench_boot runs dump_xml in a child).
``OS_NOVA_DISABLE_EVENTLET_PATCHING=0`` still selects eventlet (CI runs the
functional tests in both modes)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

STARTERS = {
    'harness': 'import tests.functional.base',
    'demo': 'import nova_gpu_ext.sim.demo',
    'dump_xml': 'import runpy; runpy.run_path('
                '"benchmarks/dump_xml.py", run_name="not_main")',
    'bench_scheduler': 'import runpy; runpy.run_path('
                       '"benchmarks/bench_scheduler.py", run_name="not_main")',
}


def patched_after(code, env_value):
    env = dict(os.environ)
    env.pop('OS_NOVA_DISABLE_EVENTLET_PATCHING', None)
    if env_value is not None:
        env['OS_NOVA_DISABLE_EVENTLET_PATCHING'] = env_value
    out = subprocess.run(
        [sys.executable, '-c', code + '\nfrom nova import monkey_patch\n'
         'print("PATCHED=%s" % monkey_patch.is_patched())'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return 'PATCHED=True' in out.stdout, out.stderr


@pytest.mark.parametrize('name', sorted(STARTERS))
def test_native_threading_by_default(name):
    patched, stderr = patched_after(STARTERS[name], None)
    assert not patched
    assert 'Eventlet based concurrency mode is deprecated' not in stderr


def test_eventlet_still_selectable():
    patched, _ = patched_after(STARTERS['harness'], '0')
    assert patched
