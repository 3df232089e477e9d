"""The checked-in record of upstream's results of Nova's functional modules.

Layer rule: test of CI files. ``tox -e nova-functional`` runs Nova's
libvirt functional modules on our driver only and compares them with
``tests/nova_functional/upstream-results.json`` (upstream's driver, the
pinned Nova). These tests fail when the record no longer matches the
pinned or installed Nova, or does not cover the env's modules, and pin
the comparison's rules.
"""

import configparser
import pathlib
import re
from importlib import metadata

from tests.nova_functional import record

REPO = pathlib.Path(__file__).resolve().parents[2]
MOD = 'nova.tests.functional.libvirt.test_vgpu'
A = MOD + '::VGPUTests::test_a'
B = MOD + '::VGPUTests::test_b'


def _pinned_nova():
    text = (REPO / 'constraints.txt').read_text()
    return re.search(r'^nova==(\S+)', text, re.M).group(1)


def _tox_modules():
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(REPO / 'tox.ini')
    assert '[nova-functional]modules' in (
        tox['testenv:nova-functional']['commands'])
    return tox['nova-functional']['modules'].split()


def test_record_is_for_the_pinned_and_installed_nova():
    rec = record.load(record.RECORD)
    assert rec['nova'] == _pinned_nova(), (
        'constraints.txt pins another nova than the upstream record: run '
        'tox -e nova-functional-upstream')
    assert rec['nova'] == metadata.version('nova'), (
        'the installed nova is not the one of the upstream record: run '
        'tox -e nova-functional-upstream')


def test_record_covers_the_env_modules():
    rec = record.load(record.RECORD)
    modules = _tox_modules()
    assert len(modules) >= 5
    assert set(modules) <= set(rec['modules'])
    for module in modules:
        tests = [k for k in rec['tests'] if record.module_of(k) == module]
        assert tests, module
    assert set(rec['tests'].values()) <= {'passed', 'failed', 'skipped',
                                          'error'}
    assert rec['summary'] == record.make_record(
        rec['nova'], rec['tests'])['summary']


def test_key_drops_the_install_path():
    for prefix in ('.venv/lib/python3.11/site-packages/',
                   '.tox/nova-functional/lib/python3.11/site-packages/',
                   '/usr/lib/python3/dist-packages/'):
        nodeid = prefix + 'nova/tests/functional/libvirt/test_vgpu.py' \
            '::VGPUTests::test_a'
        assert record.key_of(nodeid) == A
    assert record.key_of('tests/unit/x.py::t') == 'tests/unit/x.py::t'


def test_worst_phase_wins():
    results = {}
    record.merge(results, A, record.phase_outcome('setup', 'passed'))
    record.merge(results, A, record.phase_outcome('call', 'passed'))
    assert results[A] == 'passed'
    record.merge(results, A, record.phase_outcome('teardown', 'failed'))
    record.merge(results, A, record.phase_outcome('teardown', 'passed'))
    assert results[A] == 'error'


def _rec(tests, nova='34.0.0'):
    return record.make_record(nova, tests)


def test_compare_fails_a_test_that_passes_upstream_only():
    rec = _rec({A: 'passed', B: 'failed'})
    problems, notes = record.compare(rec, '34.0.0', {A, B},
                                     {A: 'failed', B: 'failed'})
    assert problems == [A + ' passes upstream, failed here']
    assert notes == []
    problems, _ = record.compare(rec, '34.0.0', {A, B}, {B: 'failed'})
    assert problems == [A + ' passes upstream, not run here']


def test_compare_accepts_upstream_failures_and_notes_improvements():
    rec = _rec({A: 'passed', B: 'failed'})
    assert record.compare(rec, '34.0.0', {A, B},
                          {A: 'passed', B: 'failed'}) == ([], [])
    problems, notes = record.compare(rec, '34.0.0', {A, B},
                                     {A: 'passed', B: 'passed'})
    assert problems == []
    assert notes == [B + ' passes here, failed upstream']
    # A run of a part (-k) compares only what it collected.
    assert record.compare(rec, '34.0.0', {A}, {A: 'passed'}) == ([], [])


def test_compare_refuses_another_nova_or_a_stale_record():
    rec = _rec({A: 'passed'})
    problems, _ = record.compare(rec, '35.0.0', {A}, {A: 'passed'})
    assert 'nova 34.0.0' in problems[0] and 'nova 35.0.0' in problems[0]
    problems, _ = record.compare(rec, '34.0.0', {A, B},
                                 {A: 'passed', B: 'passed'})
    assert problems == [B + ' is not in the upstream record (stale '
                        'record?)']
    other = 'nova.tests.functional.libvirt.test_rt_servers::T::test_c'
    problems, _ = record.compare(rec, '34.0.0', {other}, {other: 'passed'})
    assert len(problems) == 1 and 'has no upstream record' in problems[0]


def test_save_keeps_other_tests(tmp_path):
    path = tmp_path / 'rec.json'
    other = 'nova.tests.functional.libvirt.test_rt_servers::T::test_c'
    record.save(path, _rec({A: 'passed', B: 'failed', other: 'passed'}))
    saved = record.save(path, _rec({B: 'passed'}),
                        merge_with=record.load(path))
    assert saved['tests'] == {A: 'passed', B: 'passed', other: 'passed'}
    assert record.load(path) == saved
    # Another nova: nothing of the old record is kept.
    saved = record.save(path, _rec({B: 'passed'}, nova='35.0.0'),
                        merge_with=record.load(path))
    assert saved['tests'] == {B: 'passed'}


def test_verdict_retries_only_a_few_tests_that_passed_upstream():
    ids = {A: 'path/test_vgpu.py::VGPUTests::test_a'}
    assert record.verdict([], {A: 'passed'}, ids)['status'] == 'ok'
    rec = _rec({A: 'passed', B: 'failed'})
    problems, _ = record.compare(rec, '34.0.0', {A, B},
                                 {A: 'failed', B: 'failed'})
    data = record.verdict(problems, {A: 'failed', B: 'failed'}, ids)
    assert data['status'] == 'retry'
    assert data['retry'] == ['path/test_vgpu.py::VGPUTests::test_a']
    # A record problem is not retried.
    problems, _ = record.compare(rec, '35.0.0', {A}, {A: 'passed'})
    assert record.verdict(problems, {A: 'passed'}, ids)['status'] == 'fail'
    many = {'%s::T::test_%d' % (MOD, i): 'passed'
            for i in range(record.MAX_RETRIES + 1)}
    problems, _ = record.compare(_rec(many), '34.0.0', set(many),
                                 dict.fromkeys(many, 'failed'))
    assert record.verdict(problems, dict.fromkeys(many, 'failed'),
                          {})['status'] == 'fail'
