"""Our code's own time in the real nova-compute, per plain guest.

Usage (root, a cloud up: ``tools/cloud up``; the clients come from the
tier's venv or any venv with openstacksdk)::

    python benchmarks/bench_cloud_overhead.py [--blocks 2] [--rounds 6]

Why: on this shared 2-core machine the end-to-end create time of two
identical drivers differs by up to 8% between runs
(``bench_cloud_parity.py``, its A/A arm), so a 2% target cannot be read off
wall-clock ratios. This measures the difference itself, inside the real
nova-compute of the one-machine cloud: ``cloud_spawn_probe.py`` is loaded
into nova-compute (a ``.pth`` line in the cloud venv, removed at the end)
and times every method ``GPULibvirtDriver`` defines, the same methods of
upstream's ``LibvirtDriver``, the installed ``Claim._test_numa_topology``
(our wrap) and our boot watcher's thread. The *self* time of our methods
(their time minus the upstream method each calls) is our code on the
compute's path; the same call's upstream time is the comparison.

Arms: nova-compute restarted on our driver and on upstream's
(``tools/cloud driver``), ``--blocks`` times each, each first in turn, an
unmeasured warm-up build, then ``--rounds`` plain ``cloud.tiny`` guests
created (to ACTIVE), left ``--settle`` s (the guest boots; our watcher
sees its kernel's first line) and deleted. Printed: per round, our code's
self time in the create and in the delete window against the create and
delete times; per method; the upstream methods' time in both arms; and
the bound it gives: (upstream's create + our self time) / upstream's
create.
"""

import argparse
import ast
import glob
import json
import os
import shutil
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.cloud import cloudlib  # noqa: E402

PROBE = os.path.join(ROOT, 'benchmarks', 'cloud_spawn_probe.py')
PTH = 'zz_nova_gpu_ext_cloud_probe.pth'
#: Labels of our code (a driver method, a wrap of a Nova internal).
OURS = ('GPULibvirtDriver.', 'wrap:')


def driver_methods():
    """The methods ``GPULibvirtDriver`` defines (read from its source: the
    benchmark's venv has no Nova)."""
    path = os.path.join(ROOT, 'nova_gpu_ext', 'virt', 'driver.py')
    tree = ast.parse(open(path).read())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == 'GPULibvirtDriver':
            return sorted(n.name for n in node.body
                          if isinstance(n, ast.FunctionDef) and
                          n.name != '__init__')
    raise AssertionError('GPULibvirtDriver not found in %s' % path)


def site_packages():
    found = glob.glob(os.path.join(cloudlib.CLOUD_DIR, 'venv', 'lib',
                                   'python3*', 'site-packages'))
    assert found, 'no cloud venv: tools/cloud up'
    return found[0]


def install_probe(out):
    site = site_packages()
    shutil.copy(PROBE, os.path.join(site, 'cloud_spawn_probe.py'))
    with open(os.path.join(site, PTH), 'w') as f:
        f.write('import cloud_spawn_probe; cloud_spawn_probe.install(%r, %r)'
                '\n' % (out, driver_methods()))


def remove_probe():
    site = site_packages()
    for name in (PTH, 'cloud_spawn_probe.py'):
        try:
            os.unlink(os.path.join(site, name))
        except FileNotFoundError:
            pass


def one_round(conn, name, settle):
    t0 = time.time()
    server = cloudlib.boot(conn, name, poll=0.1)
    t1 = time.time()
    time.sleep(settle)
    t2 = time.time()
    conn.compute.delete_server(server)
    cloudlib.wait_gone(conn, server.id, poll=0.1)
    t3 = time.time()
    return {'create': (t0, t1), 'delete': (t2, t3)}


def block(conn, driver, b, rounds, settle):
    cloudlib.tool('driver', driver)
    warm = cloudlib.boot(conn, 'bench-overhead-%s-%d-warm' % (driver, b))
    conn.compute.delete_server(warm)
    cloudlib.wait_gone(conn, warm.id)
    return [one_round(conn, 'bench-overhead-%s-%d-%d' % (driver, b, i),
                      settle) for i in range(rounds)]


def within(records, window, prefix=None):
    t0, t1 = window
    return [r for r in records if t0 <= r['t0'] <= t1 and
            (prefix is None or r['f'].startswith(prefix))]


def med(values):
    return statistics.median(values) if values else 0.0


def report(records, rounds):
    """Printed tables; returns the figures (for the JSON)."""
    figures = {}
    pid_arm = {}
    for arm, arm_rounds in rounds.items():
        for rnd in arm_rounds:
            for r in within(records, (rnd['create'][0], rnd['delete'][1])):
                pid_arm[r['pid']] = arm
    print('\nPer plain guest, medians over the rounds (ms unless said):')
    print('%-10s %-7s %10s %16s %15s %8s' % (
        'arm', 'window', 'window (s)', 'ours: self wall', 'ours: self CPU',
        'share'))
    for arm, arm_rounds in rounds.items():
        for what in ('create', 'delete'):
            span = [rnd[what][1] - rnd[what][0] for rnd in arm_rounds]
            ours = [within(records, rnd[what], OURS) for rnd in arm_rounds]
            wall = [sum(r['self_wall_ms'] for r in o) for o in ours]
            cpu = [sum(r['self_cpu_ms'] for r in o) for o in ours]
            share = med([w / 1000 / s for w, s in zip(wall, span)])
            figures['%s_%s' % (arm, what)] = {
                'window_s': round(med(span), 3),
                'ours_self_wall_ms': round(med(wall), 3),
                'ours_self_cpu_ms': round(med(cpu), 3),
                'share': share}
            print('%-10s %-7s %10.3f %16.3f %15.3f %7.3f%%' % (
                arm, what, med(span), med(wall), med(cpu), 100 * share))
    print('\nOur methods (self time per call, on our driver):')
    ours = [r for r in records if r['f'].startswith(OURS)]
    for name in sorted({r['f'] for r in ours}):
        calls = [r for r in ours if r['f'] == name]
        print('  %-48s calls %4d  self wall %8.3f  self CPU %8.3f' % (
            name, len(calls), med([r['self_wall_ms'] for r in calls]),
            med([r['self_cpu_ms'] for r in calls])))
    print('\nUpstream code, total per call, on each driver (same run):')
    print('  %-44s %10s %10s %7s' % ('', 'ours', 'upstream', 'ratio'))
    names = sorted({r['f'] for r in records if not r['f'].startswith(OURS)})
    for name in names:
        by_arm = {arm: [r['wall_ms'] for r in records
                        if r['f'] == name and pid_arm.get(r['pid']) == arm]
                  for arm in rounds}
        if not all(by_arm.values()):
            continue
        o, u = med(by_arm['ours']), med(by_arm['upstream'])
        figures['upstream:' + name] = {'ours_ms': o, 'upstream_ms': u}
        print('  %-44s %10.3f %10.3f %7.3f' % (name, o, u,
                                               o / u if u else 0))
    watch = [r for r in records if r['f'] == 'BuildWatch._watch_console']
    if watch:
        print('\nBoot watcher thread per guest (after ACTIVE): %.1f ms CPU '
              'over %.0f ms' % (med([r['cpu_ms'] for r in watch]),
                                med([r['wall_ms'] for r in watch])))
        figures['watcher_cpu_ms'] = med([r['cpu_ms'] for r in watch])
    up_create = figures['upstream_create']['window_s']
    ours_self = figures['ours_create']['ours_self_wall_ms'] / 1000
    bound = (up_create + ours_self) / up_create
    end_to_end = figures['ours_create']['window_s'] / up_create
    figures['bound_create'] = bound
    figures['end_to_end_create'] = end_to_end
    print('\nCreate: (upstream %.3f s + our self time %.4f s) / upstream = '
          '%.4f; end to end in this run (machine noise, see '
          'bench_cloud_parity.py): %.3f' % (up_create, ours_self, bound,
                                            end_to_end))
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--blocks', type=int, default=2)
    parser.add_argument('--rounds', type=int, default=6)
    parser.add_argument('--settle', type=float, default=5.0)
    parser.add_argument('--json', default=os.path.join(
        cloudlib.CLOUD_DIR, 'log', 'bench-cloud-overhead.json'))
    args = parser.parse_args(argv)
    out = os.path.join(cloudlib.CLOUD_DIR, 'log', 'cloud-probe.jsonl')
    if os.path.exists(out):
        os.unlink(out)
    conn = cloudlib.connect()
    rounds = {'ours': [], 'upstream': []}
    t0 = time.monotonic()
    install_probe(out)
    try:
        for b in range(args.blocks):
            order = ['ours', 'upstream'][::1 if b % 2 == 0 else -1]
            for driver in order:
                rounds[driver] += block(conn, driver, b, args.rounds,
                                        args.settle)
                print('block %d %s done (%.0f s)' % (
                    b, driver, time.monotonic() - t0), flush=True)
    finally:
        remove_probe()
        cloudlib.tool('driver', 'ours')
        cloudlib.delete_all(conn, 'bench-overhead-')
    with open(out) as f:
        records = [json.loads(line) for line in f]
    figures = report(records, rounds)
    print('total %.0f s' % (time.monotonic() - t0))
    with open(args.json, 'w') as f:
        json.dump({'args': vars(args), 'figures': figures,
                   'rounds': rounds}, f, indent=1)


if __name__ == '__main__':
    main()
