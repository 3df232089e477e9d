"""Fixtures of the real-QEMU boot tier (``tox -e e2e``).

Layer rule: e2e. Needs real libvirtd + QEMU (``tools/install-e2e-deps.sh``).
The XML is what our driver defined in Nova's functional harness
(``benchmarks/dump_xml.py --set e2e``, run once per session in a
subprocess: Nova's threading patch must come first in its process).
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


@pytest.fixture(scope='session')
def driver_xml(tmp_path_factory):
    """{flavor: (ours XML, manifest entry)} written by our driver."""
    out = str(tmp_path_factory.mktemp('driver-xml'))
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'benchmarks', 'dump_xml.py'),
         '--out', out, '--set', 'e2e'],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, 'dump_xml.py failed:\n%s' % (
        proc.stderr[-6000:])
    with open(os.path.join(out, 'manifest.json')) as f:
        manifest = json.load(f)
    result = {}
    for entry in manifest['domains']:
        with open(os.path.join(out, entry['file'])) as f:
            result[(entry['flavor'], entry['variant'])] = (
                f.read(), entry, os.path.join(out, entry['file']))
    return result


@pytest.fixture(scope='session')
def lab():
    from nova_gpu_ext import bootlab
    lab = bootlab.BootLab()
    yield lab
    lab.close()


def pytest_terminal_summary(terminalreporter):
    """The per-construct table of ``test_constructs`` (defined / booted /
    why not booted), also pasted into benchmarks/RESULTS-boot.md."""
    try:
        from tests.e2e import test_constructs
    except Exception:
        return
    if not test_constructs.RESULTS:
        return
    write = terminalreporter.write_line
    write('')
    write('| construct | XML | defined + read back | controllers libvirt '
          'added | booted | why not booted / notes | timing ms |')
    write('| --- | --- | --- | ---: | --- | --- | --- |')
    for r in test_constructs.RESULTS:
        write('| %(name)s | %(what)s | %(defined)s | %(added)s | %(booted)s '
              '| %(why)s | %(boot_ms)s |' % r)
