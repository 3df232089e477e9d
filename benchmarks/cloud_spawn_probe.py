"""Probe that ``bench_cloud_overhead.py`` loads into the cloud's nova-compute.

Not part of the package, never imported by it: the benchmark copies this
file into the cloud venv's site-packages with a ``.pth`` line that calls
:func:`install` (and removes both afterwards). In a nova-compute process
only, once the compute driver is loaded, it wraps the named methods of
every class of the driver's MRO that defines them (our
``GPULibvirtDriver`` and upstream's ``LibvirtDriver``), the installed
``Claim._test_numa_topology`` and our boot watcher's thread body, and
appends one JSON line per call: total and *self* wall and CPU time (self:
minus the probed calls made inside it, on the same thread). The self time
of ``GPULibvirtDriver``'s methods is our code on the compute's path.
"""

import functools
import json
import os
import sys
import threading
import time

_LOCK = threading.Lock()
_LOCAL = threading.local()
_STATE = {'out': None, 'names': ()}


def _record(rec):
    with _LOCK, open(_STATE['out'], 'a') as f:
        f.write(json.dumps(rec) + '\n')


def _probe(fn, label, name):
    @functools.wraps(fn)
    def probe(*args, **kwargs):
        stack = getattr(_LOCAL, 'stack', None)
        if stack is None:
            stack = _LOCAL.stack = []
        frame = [0.0, 0.0]          # children's wall, cpu
        stack.append(frame)
        t0, c0, w0 = time.perf_counter(), time.thread_time(), time.time()
        try:
            return fn(*args, **kwargs)
        finally:
            wall = time.perf_counter() - t0
            cpu = time.thread_time() - c0
            stack.pop()
            _record({'f': '%s.%s' % (label, name), 't0': w0,
                     'wall_ms': 1000 * wall, 'cpu_ms': 1000 * cpu,
                     'self_wall_ms': 1000 * (wall - frame[0]),
                     'self_cpu_ms': 1000 * (cpu - frame[1]),
                     'pid': os.getpid()})
            if stack:
                # The caller's children: this call and the probe's own
                # writing, so that neither counts in the caller's self time.
                stack[-1][0] += time.perf_counter() - t0
                stack[-1][1] += time.thread_time() - c0
    probe._cloud_probe = True
    return probe


def _wrap(owner, name, label):
    fn = owner.__dict__.get(name)
    if fn is None or not callable(fn) or getattr(fn, '_cloud_probe', False):
        return
    setattr(owner, name, _probe(fn, label, name))


def _wrap_upstream_inside(owner, name, label):
    """Our wrap of a Nova internal (``nova_glue.wraps``): probe it as ours
    and the upstream function it calls (its closure's ``original``) as
    upstream's, so that the wrap's self time is our code alone."""
    fn = owner.__dict__.get(name)
    if fn is None or getattr(fn, '_cloud_probe', False):
        return
    code = getattr(fn, '__code__', None)
    if getattr(fn, '__wrapped__', None) is not None and code is not None \
            and 'original' in code.co_freevars:
        cell = fn.__closure__[code.co_freevars.index('original')]
        cell.cell_contents = _probe(cell.cell_contents, label, name)
        setattr(owner, name, _probe(fn, 'wrap:' + label, name))
    else:
        setattr(owner, name, _probe(fn, label, name))


def _patch(driver):
    for cls in type(driver).__mro__:
        if cls.__module__.startswith(('nova.virt.libvirt', 'nova_gpu_ext')):
            for name in _STATE['names']:
                _wrap(cls, name, cls.__name__)
    from nova.compute import claims
    _wrap_upstream_inside(claims.Claim, '_test_numa_topology', 'Claim')
    watcher = sys.modules.get('nova_gpu_ext.virt.boot_telemetry')
    if watcher is not None:
        _wrap(watcher.BuildWatch, '_watch_console', 'BuildWatch')


class _Finder:
    """Patches ``nova.virt.driver.load_compute_driver`` when it is
    imported (before nova-compute loads its driver)."""

    def find_spec(self, name, path, target=None):
        if name != 'nova.virt.driver':
            return None
        sys.meta_path.remove(self)
        import importlib.util
        spec = importlib.util.find_spec(name)
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            load = module.load_compute_driver

            def load_compute_driver(*args, **kwargs):
                driver = load(*args, **kwargs)
                _patch(driver)
                return driver
            module.load_compute_driver = load_compute_driver
        spec.loader.exec_module = exec_and_patch
        return spec


def install(out, names):
    """From the ``.pth`` line: only in nova-compute."""
    try:
        with open('/proc/self/cmdline', 'rb') as f:
            if b'nova-compute' not in f.read():
                return
    except OSError:
        return
    _STATE['out'] = out
    _STATE['names'] = tuple(names)
    sys.meta_path.insert(0, _Finder())
