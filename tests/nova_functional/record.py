"""Upstream's results of Nova's functional modules, and the check against them.

Layer rule: test support; pure functions over plain data (no pytest, no
Nova imports), so the plugin and the unit tests share them.

``upstream-results.json`` beside this module records, for the pinned Nova
version, the outcome of every test of Nova's libvirt functional modules on
upstream's ``LibvirtDriver`` (``tox -e nova-functional-upstream`` writes
it). CI runs the same modules on our driver (``tox -e nova-functional``)
and :func:`compare` fails the run when a test that passes upstream does
not pass on ours, when the record is for another Nova version, or when a
test or module run here is missing from the record (a stale record).
"""

import json
import os

RECORD = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      'upstream-results.json')
PASSED = 'passed'
# The worst outcome of a test's phases wins: a passed call with a failing
# teardown is an error.
_RANK = {PASSED: 0, 'skipped': 1, 'failed': 2, 'error': 3}


def key_of(nodeid):
    """A nodeid without the install path: ``nova.tests...test_x::Cls::test``.

    Run with ``--pyargs``, pytest names Nova's tests by their path under
    site-packages, which differs between a venv and a tox env.
    """
    path, sep, rest = nodeid.partition('::')
    norm = path.replace(os.sep, '/')
    start = norm.rfind('nova/tests/')
    if start < 0 or not norm.endswith('.py'):
        return nodeid
    module = norm[start:-len('.py')].replace('/', '.')
    return module + sep + rest


def module_of(key):
    return key.partition('::')[0]


def phase_outcome(when, outcome):
    """A phase's outcome in the record's words (setup/teardown fail: error)."""
    if outcome == 'failed' and when != 'call':
        return 'error'
    return outcome


def merge(results, key, outcome):
    """Keep the worst outcome seen for ``key`` in ``results``."""
    old = results.get(key)
    if old is None or _RANK[outcome] > _RANK[old]:
        results[key] = outcome


def make_record(nova_version, results):
    modules = sorted({module_of(k) for k in results})
    return {
        'nova': nova_version,
        'driver': 'nova.virt.libvirt.driver.LibvirtDriver',
        'how': 'tox -e nova-functional-upstream',
        'modules': modules,
        'summary': _summary(results),
        'tests': dict(sorted(results.items())),
    }


def _summary(results):
    counts = {}
    for outcome in results.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    return dict(sorted(counts.items()))


def save(path, record, merge_with=None):
    """Write ``record``; keep the other tests of ``merge_with``.

    A run of some tests (``-k``, node ids) replaces only theirs; a record
    of another Nova version is not kept at all.
    """
    if merge_with and merge_with.get('nova') == record['nova']:
        tests = dict(merge_with['tests'])
        tests.update(record['tests'])
        record = make_record(record['nova'], tests)
    with open(path, 'w') as f:
        json.dump(record, f, indent=1, sort_keys=False)
        f.write('\n')
    return record


def load(path):
    with open(path) as f:
        return json.load(f)


def compare(record, nova_version, collected, results):
    """Problems (a list of lines; empty: as good as upstream) and notes.

    ``collected``: the keys of the tests this run collected; ``results``:
    key -> outcome of those that ran.
    """
    problems, notes = [], []
    if record.get('nova') != nova_version:
        problems.append(
            'the upstream record is for nova %s, nova %s is installed: '
            'run tox -e nova-functional-upstream to refresh it'
            % (record.get('nova'), nova_version))
        return problems, notes
    upstream = record['tests']
    for module in sorted({module_of(k) for k in collected}):
        if module not in record['modules']:
            problems.append(
                '%s has no upstream record: run tox -e '
                'nova-functional-upstream -- %s' % (module, module))
    for key in sorted(collected):
        want = upstream.get(key)
        got = results.get(key, 'not run')
        if module_of(key) not in record['modules']:
            continue
        if want is None:
            problems.append('%s is not in the upstream record (stale '
                            'record?)' % key)
        elif want == PASSED and got != PASSED:
            problems.append('%s passes upstream, %s here' % (key, got))
        elif want != PASSED and got == PASSED:
            notes.append('%s passes here, %s upstream' % (key, want))
        elif want != got:
            notes.append('%s: %s here, %s upstream' % (key, got, want))
    return problems, notes


# A run on a loaded machine can fail a test of Nova's by timing alone (seen
# upstream too: an allocation checked before the compute removed it): the
# tests that fail the comparison are run once more, alone, and the env
# fails when one still does not pass. More than this many is a breakage,
# not timing, and is not retried.
MAX_RETRIES = 10


def verdict(problems, results, nodeids):
    """``ok``, ``fail`` or ``retry`` (with the node ids to run again)."""
    if not problems:
        return {'status': 'ok', 'retry': []}
    keys = [k for k in sorted(results)
            if any(p.startswith(k + ' passes upstream') for p in problems)]
    if len(keys) != len(problems) or len(keys) > MAX_RETRIES:
        return {'status': 'fail', 'retry': [], 'problems': problems}
    return {'status': 'retry', 'retry': [nodeids.get(k, k) for k in keys],
            'problems': problems}


def save_verdict(path, data):
    with open(path, 'w') as f:
        json.dump(data, f, indent=1)
