"""Run again, alone, the tests that failed the comparison with upstream.

Layer rule: test support (CI). ``tox -e nova-functional`` runs Nova's
modules in pytest-xdist workers with ``--verdict-file=PATH`` (its exit
status ignored), then ``python -m tests.nova_functional.retry PATH
RECORD``: ``ok`` passes, ``fail`` (or no verdict: the run broke) fails,
``retry`` runs the listed tests once more in one process and fails when
one that passes upstream still does not pass (see
:data:`tests.nova_functional.record.MAX_RETRIES`).
"""

import json
import os
import subprocess
import sys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    path, upstream = argv[0], argv[1]
    if not os.path.exists(path):
        print('nova-functional: the run wrote no verdict (%s): it broke '
              'before the comparison, see above' % path)
        return 1
    with open(path) as f:
        data = json.load(f)
    os.unlink(path)
    if data['status'] == 'ok':
        print('nova-functional: every test that passes upstream passes')
        return 0
    for line in data.get('problems', []):
        print('nova-functional: ' + line)
    if data['status'] != 'retry':
        return 1
    print('nova-functional: running %d test(s) again, alone'
          % len(data['retry']))
    cmd = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
           '-p', 'tests.nova_functional.plugin', '--timeout=300',
           '--compare-upstream=' + upstream] + data['retry']
    return subprocess.call(cmd)


if __name__ == '__main__':
    sys.exit(main())
