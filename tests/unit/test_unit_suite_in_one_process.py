"""``pytest -n N tests/unit`` stops at once with the reason, not a hang.

Some unit modules import Nova's unit test package, whose ``__init__``
monkey-patches the process with eventlet; pytest-xdist's workers talk to
their controller through execnet threads, which hang under eventlet (the
workers went silent at "scheduling tests via LoadScheduling"). The suite
runs in one process (about 80 s); tox.ini says the same of eventlet mode.
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def test_xdist_workers_refused_with_the_reason():
    result = subprocess.run(
        [sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-q',
         '-n', '2', os.path.join('tests', 'unit', 'test_specs.py')],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    out = result.stdout + result.stderr
    assert result.returncode == 4, out[-2000:]
    assert 'eventlet' in out and 'without -n' in out, out[-2000:]
