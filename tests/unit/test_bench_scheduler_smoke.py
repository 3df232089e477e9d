"""benchmarks/bench_scheduler.py runs (3 hosts, one request): not timed.

In a subprocess: the benchmark patches the standard library for Nova and
runs Nova's own test fixtures, which must not share this process.
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def test_bench_scheduler_smoke():
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'benchmarks',
                                      'bench_scheduler.py'),
         '--hosts', '3', '--requests', '1', '--no-plot'],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    row = [line for line in result.stdout.splitlines()
           if line.startswith('| 3 x 8 |')]
    assert row, result.stdout
    # The same placement calls as upstream; every GPU's usage looked up.
    assert row[0].split('|')[5].strip() == '3 / 3', row
    assert row[0].split('|')[6].strip() == '24', row
