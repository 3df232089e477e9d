"""Layout rules import-linter cannot see (doc/source/contributor/layout.rst).

``tox -e pep8`` checks the imports (``.importlinter``) and the core's types
(``mypy --strict``); here: the core opens no file and runs nothing, modules
stay small, every contract the docs name is in ``.importlinter``.
"""

import ast
import configparser
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
PKG = os.path.join(ROOT, 'nova_gpu_ext')

#: modules allowed over the size limit, with the reason
LARGE = {
    # rewritten for issue 23's NUMA rule (explain gathers facts, calls core)
    os.path.join('cmd', 'explain.py'),
}
LIMIT = 400


def _modules(*parts):
    top = os.path.join(PKG, *parts)
    if top.endswith('.py'):
        yield top
        return
    for dirpath, _dirs, files in os.walk(top):
        for name in sorted(files):
            if name.endswith('.py'):
                yield os.path.join(dirpath, name)


def test_the_core_opens_no_file_and_runs_nothing():
    banned = {'open', 'exec', 'eval', '__import__', 'input', 'print'}
    found = []
    for path in list(_modules('core')) + list(_modules('model.py')):
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(
                    node.func, ast.Name) and node.func.id in banned:
                found.append('%s:%d %s()' % (os.path.relpath(path, ROOT),
                                             node.lineno, node.func.id))
    assert found == []


def test_modules_are_small():
    over = []
    for path in _modules():
        rel = os.path.relpath(path, PKG)
        with open(path) as f:
            lines = sum(1 for _ in f)
        if lines > LIMIT and rel not in LARGE:
            over.append('%s: %d lines' % (rel, lines))
    assert over == []


def test_every_documented_contract_is_checked():
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, '.importlinter'))
    types = {config[s]['type'] for s in config.sections()
             if s.startswith('importlinter:contract:')}
    assert {'layers', 'forbidden', 'acyclic_siblings'} <= types
    core = config['importlinter:contract:core-pure']
    forbidden = core['forbidden_modules'].split()
    for name in ('nova', 'oslo_config', 'oslo_log', 'os', 'subprocess',
                 'pathlib', 'nova_gpu_ext.conf', 'nova_gpu_ext.sim'):
        assert name in forbidden, name
    sim = config['importlinter:contract:sim-only-for-tests']
    assert sim['forbidden_modules'].split() == ['nova_gpu_ext.sim']
    with open(os.path.join(ROOT, 'tox.ini')) as f:
        tox = f.read()
    pep8 = tox.split('[testenv:pep8]')[1].split('\n[')[0]
    assert 'lint-imports' in pep8
    assert 'mypy --strict' in pep8 and 'nova_gpu_ext/core' in pep8
