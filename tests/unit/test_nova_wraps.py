"""Every wrap of a Nova internal: one module, explicit install, pinned.

Each test runs in a fresh interpreter where it matters (importing our
modules must wrap nothing; the driver and filter ``__init__`` install), so
no other test's install hides a side effect.
"""

import inspect
import os
import re
import subprocess
import sys

import pytest

from nova_gpu_ext.nova_glue import wraps

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
PAGE = os.path.join(ROOT, 'doc', 'source', 'reference', 'nova-internals.rst')

#: parameters of every wrapped Nova function in the Nova we checked (34.0.0)
PINNED = {
    'pci_traits': ['provider_tree', 'nodename', 'pci_tracker', 'allocations',
                   'instances_under_same_host_resize'],
    'numa_claim': ['self', 'compute_node', 'limit'],
    'allocation_candidates': ['self', 'context', 'resources'],
    'claim_resources': ['self', 'context', 'consumer_uuid', 'alloc_request',
                        'project_id', 'user_id',
                        'allocation_request_version', 'consumer_generation'],
    'numa_consume': ['self', 'spec_obj'],
}


def _run(code):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep +
               os.environ.get('PYTHONPATH', ''))
    out = subprocess.run([sys.executable, '-c', code], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_every_wrap_is_listed_once_with_version_and_upstream_hook():
    assert sorted(PINNED) == sorted(w.name for w in wraps.WRAPS)
    for wrap in wraps.WRAPS:
        assert re.match(r'^\d+\.\d+\.\d+$', wrap.nova), wrap
        assert wrap.upstream and wrap.why and wrap.side in (
            'compute', 'scheduler')


@pytest.mark.parametrize('name', sorted(PINNED))
def test_wrapped_nova_signature_unchanged(name):
    owner, attr = wraps.owner_of(wraps.BY_NAME[name])
    func = inspect.unwrap(getattr(owner, attr))
    assert list(inspect.signature(func).parameters) == PINNED[name]


def test_only_the_wraps_module_replaces_nova_attributes():
    """No other module of ours assigns to a Nova module or class."""
    pattern = re.compile(
        r'^\s*(translator|claims\.Claim|cls|report\.SchedulerReportClient|'
        r'host_manager\.HostState)\.\w+\s*=', re.M)
    offenders = []
    pkg = os.path.join(ROOT, 'nova_gpu_ext')
    for dirpath, _dirs, files in os.walk(pkg):
        for name in files:
            path = os.path.join(dirpath, name)
            if not name.endswith('.py') or path.endswith(
                    os.path.join('nova_glue', 'wraps.py')):
                continue
            with open(path) as f:
                if pattern.search(f.read()):
                    offenders.append(os.path.relpath(path, ROOT))
    assert offenders == []


def test_importing_our_modules_wraps_nothing():
    out = _run(
        'from nova_gpu_ext.nova_glue import wraps\n'
        'before = {w.name: getattr(*wraps.owner_of(w)) for w in wraps.WRAPS}'
        '\n'
        'import nova_gpu_ext.scheduler.filters, nova_gpu_ext.scheduler.usage,'
        ' nova_gpu_ext.scheduler.numa_consume, nova_gpu_ext.virt.driver, '
        'nova_gpu_ext.virt.numa_claim, nova_gpu_ext.virt.pci_traits\n'
        'print(*[w.name for w in wraps.WRAPS '
        'if getattr(*wraps.owner_of(w)) is not before[w.name]])')
    assert out == []


def test_filter_init_installs_the_scheduler_wraps_once():
    out = _run(
        'from nova_gpu_ext.scheduler import filters\n'
        'from nova_gpu_ext.nova_glue import wraps\n'
        'filters.GPUPlacementFilter(); filters.GPUExtHostFilter()\n'
        'o, a = wraps.owner_of(wraps.BY_NAME["numa_consume"])\n'
        'first = getattr(o, a)\n'
        'filters.GPUPlacementFilter()\n'
        'assert getattr(o, a) is first\n'
        'assert not getattr(first.__wrapped__, wraps.MARK, False)\n'
        'print(*[w.name for w in wraps.WRAPS if wraps.is_installed(w.name)'
        '])')
    assert sorted(out) == sorted(
        w.name for w in wraps.WRAPS if w.side == 'scheduler')


def test_driver_init_installs_the_compute_wraps():
    source = inspect.getsource(
        __import__('nova_gpu_ext.virt.driver', fromlist=['x'])
        .GPULibvirtDriver.__init__)
    assert 'wraps.install_compute(' in source
    out = _run(
        'from nova_gpu_ext.nova_glue import wraps\n'
        'from nova_gpu_ext.virt import numa_claim, pci_traits\n'
        'wraps.install_compute(pci_traits.reapply, '
        'numa_claim.test_numa_topology)\n'
        'wraps.install_compute(pci_traits.reapply, '
        'numa_claim.test_numa_topology)\n'
        'print(*[w.name for w in wraps.WRAPS if wraps.is_installed(w.name)'
        '])')
    assert sorted(out) == sorted(
        w.name for w in wraps.WRAPS if w.side == 'compute')


def test_internals_page_lists_every_wrap_with_its_version():
    with open(PAGE) as f:
        text = f.read()
    section = text.split('Wraps of Nova internals', 1)[1]
    for wrap in wraps.WRAPS:
        row = '``%s.%s``' % (wrap.module, wrap.attr)
        assert row in section, row
        assert wrap.nova in section
