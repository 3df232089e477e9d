"""Property-based fuzzing of discovery over damaged real-layout sysfs trees.

Each sample host of :mod:`nova_gpu_ext.sim.fake_sysfs` (documented
real layouts: DGX, MxGPU SR-IOV, NVIDIA vGPU, GVT-g, ...) is written once to
a temp dir; each example damages 1-4 of its entries in place, discovers,
checks, and undoes the damage. Damage:

* content: truncated, empty, garbage bytes, absurd values (``-1``,
  ``4294967296``, ``0-4294967295``, a 64 KiB hex mask, NULs);
* structure: entry deleted (file, link or directory), replaced by a
  dangling symlink, a file replaced by a directory or by a FIFO (opened
  non-blocking: a FIFO must never hang discovery);
* permission errors: running as root, ``chmod`` does not stop reads, so a
  seam (``os.open``/``os.listdir``/``os.readlink``/``os.scandir`` wrapped for
  the test) raises ``EACCES`` for chosen paths, which are drawn from the
  paths discovery really opens.

Properties: discovery never raises; every warning is logged exactly once at
WARNING; an unreadable file that discovery opened is named in a warning;
and damage inside one PCI device's directory changes only the facts of that
device and its SR-IOV relatives (every other GPU is discovered exactly as
on the intact tree).

Derandomized and database-less, so CI runs the same examples every time;
1,000 examples per test (well under a minute each).
"""

import collections
import dataclasses
import errno
import logging
import os
import shutil
import stat
from unittest import mock

from hypothesis import given, settings, HealthCheck
from hypothesis import strategies as st
import pytest

from nova_gpu_ext.topology import discover
from nova_gpu_ext.sim import sample_hosts
from nova_gpu_ext.topology import paths as sysfs_paths
from nova_gpu_ext.topology import sysfs_reader

EXAMPLES = 1000
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, database=None,
                deadline=None, print_blob=False,
                suppress_health_check=[HealthCheck.too_slow])

SAMPLES = sorted(sample_hosts.SAMPLE_HOSTS)
ABSURD = ['-1', '-2147483648', '4294967296', '18446744073709551616',
          '9' * 5000, '0-4294967295', '4294967295-0', 'ff' * 32768,
          '0x', '1e9', 'nan', '\x00\x00\x00', '\xff\xfe', ' ', '\n\n\n',
          '0-3,,,8-', '-5-3', '999999', 'MemTotal: 99999999999999999999 kB',
          'node0', '../../../../', '%s%s%d']
CONTENT_OPS = ('truncate', 'empty', 'garbage', 'absurd')
STRUCTURE_OPS = ('delete', 'dangle', 'to_dir', 'to_fifo', 'deny')


class Host:
    """One sample host written to a temp dir, and its intact discovery."""

    def __init__(self, root, dev, trash):
        self.root, self.dev, self.trash = root, dev, trash
        self.baseline = None
        self.entries = []       # every path in the tree (links not followed)
        self.files = []         # regular files among them
        self.opened = []        # paths discovery opens/lists/reads as links
        self.device_dirs = {}   # GPU address -> real directory

    def __repr__(self):
        return '<sample host %s>' % self.root


class Seam:
    """Wraps the os calls discovery makes: records them, and raises EACCES
    for denied paths (root is not stopped by file modes)."""

    def __init__(self):
        self.denied = set()
        self.seen = []

    def wrap(self, func):
        def wrapper(path, *args, **kwargs):
            text = os.fsdecode(path) if isinstance(path, (str, bytes)) \
                else path
            if isinstance(text, str):
                self.seen.append(text)
                if text in self.denied:
                    raise PermissionError(errno.EACCES, 'Permission denied',
                                          text)
            return func(path, *args, **kwargs)
        return wrapper

    def patches(self):
        return [mock.patch.object(os, name, self.wrap(getattr(os, name)))
                for name in ('open', 'listdir', 'readlink', 'scandir')]


def run_discovery(host, seam=None):
    seam = seam or Seam()
    patches = seam.patches()
    for patch in patches:
        patch.start()
    try:
        return discover.discover_host(
            sysfs_paths.SysfsPaths(host.root, dev_root=host.dev)), seam
    finally:
        for patch in patches:
            patch.stop()


def _walk(root):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            out.append(os.path.join(dirpath, name))
    return sorted(out)


@pytest.fixture(scope='module')
def hosts(tmp_path_factory):
    out = {}
    for name in SAMPLES:
        base = str(tmp_path_factory.mktemp(name))
        root, dev = os.path.join(base, 'sys'), os.path.join(base, 'dev')
        sample_hosts.SAMPLE_HOSTS[name](root, dev)
        trash = os.path.join(base, 'trash')
        os.mkdir(trash)
        host = Host(root, dev, trash)
        host.baseline, seam = run_discovery(host)
        host.entries = _walk(root)
        host.files = [p for p in host.entries
                      if stat.S_ISREG(os.lstat(p).st_mode)]
        host.opened = sorted({p for p in seam.seen
                              if p.startswith(root + os.sep)})
        host.device_dirs = {
            g.address: os.path.realpath(os.path.join(
                root, 'bus', 'pci', 'devices', str(g.address)))
            for g in host.baseline.gpus}
        out[name] = host
    return out


class Damage:
    """Applies damage in place and undoes it."""

    def __init__(self, host, seam):
        self.host = host
        self.seam = seam
        self.undo = []
        self.done = []          # (op, real path)

    @staticmethod
    def real(path):
        return os.path.join(os.path.realpath(os.path.dirname(path)),
                            os.path.basename(path))

    def _move_away(self, path):
        backup = os.path.join(self.host.trash, str(len(self.undo)))
        os.rename(path, backup)
        self.undo.append(lambda: os.rename(backup, path))

    def apply(self, op, path, value):
        if not os.path.lexists(path):
            return
        real = self.real(path)
        is_file = stat.S_ISREG(os.lstat(path).st_mode)
        if op in CONTENT_OPS + ('to_dir', 'to_fifo') and not is_file:
            return
        if op == 'deny':
            self.seam.denied.add(path)
        elif op in CONTENT_OPS:
            with open(path, 'rb') as f:
                original = f.read()
            data = {'truncate': original[:len(original) // 2],
                    'empty': b'',
                    'garbage': value.encode('utf-8', 'surrogatepass'),
                    'absurd': value.encode('utf-8', 'surrogatepass')}[op]

            def restore(path=path, original=original):
                with open(path, 'wb') as f:
                    f.write(original)
            with open(path, 'wb') as f:
                f.write(data)
            self.undo.append(restore)
        else:
            self._move_away(path)
            if op == 'dangle':
                os.symlink('../../nonexistent/' + os.path.basename(path),
                           path)
            elif op == 'to_dir':
                os.mkdir(path)
            elif op == 'to_fifo':
                os.mkfifo(path)
            if op != 'delete':
                self.undo.append(lambda: (shutil.rmtree(path)
                                          if os.path.isdir(path) and
                                          not os.path.islink(path)
                                          else os.unlink(path)))
        # Only the last damage of a path (or of a directory above it) is
        # what discovery sees.
        self.done = [(o, r) for o, r in self.done
                     if not _touches_below(r, real)]
        self.done.append((op, real))

    def revert(self):
        while self.undo:
            self.undo.pop()()


def _related_dirs(host, address):
    """The directories whose damage may change this GPU's facts: its own,
    its PF's and its VFs'."""
    gpu = host.baseline.gpu(address)
    dirs = [host.device_dirs[address]]
    if gpu.physfn is not None and gpu.physfn in host.device_dirs:
        dirs.append(host.device_dirs[gpu.physfn])
    dirs.extend(host.device_dirs[vf] for vf in gpu.vfs
                if vf in host.device_dirs)
    return dirs


def _touches_below(path, top):
    return path == top or path.startswith(top + os.sep)


def _touches(real, directory):
    return (real == directory or real.startswith(directory + os.sep) or
            directory.startswith(real + os.sep))


class CapturedWarnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = collections.Counter()

    def emit(self, record):
        self.messages[record.getMessage()] += 1


def check(host, ops):
    sysfs_reader.forget_logged()
    seam = Seam()
    damage = Damage(host, seam)
    handler = CapturedWarnings()
    logger = logging.getLogger(sysfs_reader.__name__)
    logger.addHandler(handler)
    try:
        for op, path, value in ops:
            damage.apply(op, path, value)
        topology, seam = run_discovery(host, seam)      # never raises
    finally:
        logger.removeHandler(handler)
        damage.revert()
    # Every warning logged once at WARNING, with the message listed.
    for message in topology.warnings:
        assert handler.messages['GPU topology: %s' % message] == 1, message
    assert sum(handler.messages.values()) == len(topology.warnings)
    # An unreadable file discovery opened is named in a warning.
    seen = set(seam.seen)
    for op, real in damage.done:
        if op == 'deny':
            candidates = seam.denied & seen
        elif op in ('to_dir', 'to_fifo'):
            candidates = seen
        else:
            continue
        base = os.path.basename(real)
        names = {p for p in candidates if os.path.basename(p) == base and
                 Damage.real(p) == real}
        if names:
            assert any(n in w for n in names for w in topology.warnings), (
                op, names)
    # Damage inside PCI device directories stays with those devices.
    if all('/devices/pci' in real for _, real in damage.done):
        for gpu in host.baseline.gpus:
            related = _related_dirs(host, gpu.address)
            if any(_touches(real, d) for _, real in damage.done
                   for d in related):
                continue
            found = topology.gpu(gpu.address)
            if gpu.iommu_peers and found is not None:
                # Peers are listed from the IOMMU group; a damaged peer's
                # directory does not change them.
                found = dataclasses.replace(found,
                                            iommu_peers=gpu.iommu_peers)
            assert found == gpu, (gpu.address, damage.done)
    return topology


@st.composite
def damage_plan(draw, hosts, ops, pools):
    name = draw(st.sampled_from(SAMPLES))
    host = hosts[name]
    plan = []
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(ops))
        pool = getattr(host, draw(st.sampled_from(pools)))
        if op == 'deny':
            pool = host.opened
        if op in CONTENT_OPS:
            pool = host.files
        path = draw(st.sampled_from(pool))
        value = ''
        if op == 'absurd':
            value = draw(st.sampled_from(ABSURD))
        elif op == 'garbage':
            value = draw(st.text(min_size=0, max_size=64))
        plan.append((op, path, value))
    return host, plan


@FUZZ
@given(st.data())
def test_damaged_file_contents_never_break_discovery(hosts, data):
    host, plan = data.draw(damage_plan(hosts, CONTENT_OPS, ('files',)))
    check(host, plan)


@FUZZ
@given(st.data())
def test_damaged_tree_structure_never_breaks_discovery(hosts, data):
    host, plan = data.draw(damage_plan(
        hosts, STRUCTURE_OPS, ('entries', 'opened')))
    check(host, plan)


@FUZZ
@given(st.data())
def test_any_mix_of_damage_never_breaks_discovery(hosts, data):
    host, plan = data.draw(damage_plan(
        hosts, CONTENT_OPS + STRUCTURE_OPS, ('entries', 'opened', 'files')))
    check(host, plan)


def test_the_seam_denies_like_a_permission_error(hosts):
    host = hosts['dgx_2socket_8gpu']
    vendor = next(p for p in host.opened
                  if p.endswith('/0000:07:00.0/vendor'))
    topology = check(host, [('deny', vendor, '')])
    assert any('%s: unreadable (Permission denied)' % vendor in w
               for w in topology.warnings)
    assert len(topology.gpus) == len(host.baseline.gpus) - 1


def test_a_fifo_for_a_file_does_not_hang_discovery(hosts):
    host = hosts['nvidia_vgpu_mdev']
    numa = next(p for p in host.files if p.endswith('/numa_node') and
                '/devices/pci' in p)
    topology = check(host, [('to_fifo', numa, '')])
    assert any('not a regular file' in w for w in topology.warnings)


def test_absurd_cpu_list_is_garbage_not_four_billion_cpus(hosts):
    host = hosts['dgx_2socket_8gpu']
    cpulist = next(p for p in host.files if p.endswith('node0/cpulist'))
    topology = check(host, [('absurd', cpulist, '0-4294967295')])
    assert topology.node(0).cpus == frozenset()
    assert any(cpulist in w for w in topology.warnings)


def test_the_same_damage_is_logged_once_per_process(hosts):
    host = hosts['broken']
    sysfs_reader.forget_logged()
    handler = CapturedWarnings()
    logger = logging.getLogger(sysfs_reader.__name__)
    logger.addHandler(handler)
    try:
        first, _ = run_discovery(host)
        second, _ = run_discovery(host)
    finally:
        logger.removeHandler(handler)
    # Still listed every time (inspect, explain), logged the first time.
    assert first.warnings == second.warnings and first.warnings
    assert sum(handler.messages.values()) == len(first.warnings)


def test_an_absurd_numa_node_is_unknown_and_names_its_file(hosts):
    host = hosts['dgx_2socket_8gpu']
    numa = next(p for p in host.opened
                if p.endswith('/0000:07:00.0/numa_node'))
    topology = check(host, [('absurd', numa, '999999')])
    assert topology.gpu('0000:07:00.0').numa_node is None
    assert any(numa in w and 'NUMA node 999999' in w
               for w in topology.warnings)
