"""A plain guest created and deleted on the real cloud: ours / upstream's.

Usage (root, a cloud up: ``tools/cloud up``; the clients come from the
tier's venv or any venv with openstacksdk)::

    python benchmarks/bench_cloud_parity.py [--blocks 6] [--rounds 5]
        [--arm NAME=DRIVER[,GROUP.OPTION=VALUE...] ...]

The one-machine cloud of ``tools/cloud`` (real nova-api, -conductor,
-scheduler, -compute, placement, neutron, libvirtd and QEMU under TCG)
creates and deletes a plain guest (``cloud.tiny``, no network) through the
public API. nova-compute is restarted on our driver and on upstream's
``LibvirtDriver`` (``tools/cloud driver``) in ``--blocks`` blocks, each arm
once per block and each arm first in turn, each with an unmeasured
warm-up build and ``--rounds`` measured create/delete rounds, so that slow
drift of the machine falls on every arm alike. The arms are ``ours`` and
``upstream`` by default; ``--arm`` adds others, such as our driver with an
option of the compute changed
(``ours-notelemetry=ours,gpu_ext.boot_telemetry=false``).

Measured per round: create-to-ACTIVE and delete-to-gone through the API
(polled every ``--poll`` s) and, from nova-compute's own log, the
compute's ``Took X seconds to spawn the instance on the hypervisor`` and
``... to destroy the instance on the hypervisor`` (the driver's part of
each; the rest is the same Nova code for both drivers).

Printed: the median of each on each arm, the ratio arm / upstream and a
bootstrap 95% interval of that ratio (10,000 resamples of each arm's
rounds), so a reader sees whether the issue's target (<= 1.02) is inside
what the run can resolve. ``--png`` draws every round.
"""

import argparse
import json
import os
import random
import re
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.cloud import cloudlib  # noqa: E402

DRIVERS = ('ours', 'upstream')
#: The compute's options every arm starts from (then its own are set); an
#: arm may change only these.
DEFAULT_OPTIONS = (('gpu_ext', 'boot_telemetry', 'true'),
                   ('gpu_ext', 'libvirt_event_thread', 'true'))
TOOK = re.compile(r'\[instance: ([0-9a-f-]{36})\] Took ([0-9.]+) seconds to '
                  r'(spawn|destroy) the instance on the hypervisor')
MEASURES = ('create', 'delete', 'spawn', 'destroy')


def one_round(conn, name, poll):
    mark = cloudlib.LogMark('nova-compute')
    t0 = time.monotonic()
    server = cloudlib.boot(conn, name, poll=poll)
    create = time.monotonic() - t0
    t0 = time.monotonic()
    conn.compute.delete_server(server)
    cloudlib.wait_gone(conn, server.id, poll=poll)
    delete = time.monotonic() - t0
    took = {}
    deadline = time.monotonic() + 10
    while len(took) < 2 and time.monotonic() < deadline:
        took = {what: float(secs) for uuid, secs, what in
                TOOK.findall(mark.text()) if uuid == server.id}
        time.sleep(0.1)
    return {'create': create, 'delete': delete,
            'spawn': took.get('spawn'), 'destroy': took.get('destroy')}


def parse_arm(text):
    """``NAME=DRIVER[,GROUP.OPTION=VALUE...]`` -> (name, driver, options)."""
    name, _, spec = text.partition('=')
    driver, *options = (spec or name).split(',')
    parsed = []
    for option in options:
        key, _, value = option.partition('=')
        group, _, opt = key.partition('.')
        assert (group, opt) in [d[:2] for d in DEFAULT_OPTIONS], key
        parsed.append((group, opt, value))
    return name, driver, tuple(parsed)


def block(conn, arm, b, rounds, poll):
    name, driver, options = arm
    for group, opt, value in DEFAULT_OPTIONS + options:
        cloudlib.compute_option(group, opt, value)
    cloudlib.tool('driver', driver)
    warm = cloudlib.boot(conn, 'bench-parity-%s-%d-warm' % (name, b))
    conn.compute.delete_server(warm)
    cloudlib.wait_gone(conn, warm.id)
    return [one_round(conn, 'bench-parity-%s-%d-%d' % (name, b, i), poll)
            for i in range(rounds)]


def ratio_interval(ours, upstream, resamples=10000, seed=21):
    rng = random.Random(seed)
    ratios = sorted(
        statistics.median(rng.choices(ours, k=len(ours))) /
        statistics.median(rng.choices(upstream, k=len(upstream)))
        for _ in range(resamples))
    return ratios[int(0.025 * resamples)], ratios[int(0.975 * resamples)]


def summarize(samples, name, base='upstream'):
    rows = {}
    for what in MEASURES:
        o = [r[what] for r in samples[name] if r[what] is not None]
        u = [r[what] for r in samples[base] if r[what] is not None]
        if not o or not u:
            continue
        mo, mu = statistics.median(o), statistics.median(u)
        lo, hi = ratio_interval(o, u)
        rows[what] = {'n': (len(o), len(u)), 'arm_s': round(mo, 3),
                      'upstream_s': round(mu, 3),
                      'ratio': round(mo / mu, 3),
                      'ratio_95': (round(lo, 3), round(hi, 3))}
    return rows


def draw(samples, path):
    try:
        import matplotlib
        matplotlib.use('Agg')
        from matplotlib import pyplot
    except ImportError:
        print('(no matplotlib: no PNG)')
        return
    names = list(samples)
    fig, axes = pyplot.subplots(1, len(MEASURES), figsize=(14, 4))
    for ax, what in zip(axes, MEASURES):
        for x, driver in enumerate(names):
            ys = [r[what] for r in samples[driver] if r[what] is not None]
            xs = [x + 0.15 * (random.random() - 0.5) for _ in ys]
            ax.plot(xs, ys, 'o', alpha=0.6, label=driver)
            if ys:
                ax.hlines(statistics.median(ys), x - 0.3, x + 0.3)
        ax.set_xticks(range(len(names)), names)
        ax.set_title(what + ' (s)')
    fig.suptitle('Plain guest on the one-machine cloud: every round, '
                 'median as a bar')
    fig.tight_layout()
    fig.savefig(path)
    print('PNG: %s' % path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--blocks', type=int, default=6)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--poll', type=float, default=0.1)
    parser.add_argument(
        '--arm', action='append', default=[],
        help='NAME=DRIVER[,GROUP.OPTION=VALUE...] (repeatable; default: '
        'ours=ours and upstream=upstream); e.g. '
        'ours-notelemetry=ours,gpu_ext.boot_telemetry=false')
    parser.add_argument('--png', default=os.path.join(
        ROOT, 'benchmarks', 'bench_cloud_parity.png'))
    parser.add_argument('--json', default=os.path.join(
        cloudlib.CLOUD_DIR, 'log', 'bench-cloud-parity.json'))
    args = parser.parse_args(argv)
    arms = [parse_arm(a) for a in args.arm or DRIVERS]
    assert 'upstream' in [a[0] for a in arms], 'an arm named upstream'
    conn = cloudlib.connect()
    samples = {arm[0]: [] for arm in arms}
    t0 = time.monotonic()
    try:
        for b in range(args.blocks):
            # Each arm takes each place in the order in turn.
            shift = b % len(arms)
            for arm in arms[shift:] + arms[:shift]:
                samples[arm[0]] += block(conn, arm, b, args.rounds,
                                         args.poll)
                print('block %d %s done (%.0f s)' % (
                    b, arm[0], time.monotonic() - t0), flush=True)
    finally:
        for group, opt, value in DEFAULT_OPTIONS:
            cloudlib.compute_option(group, opt, value)
        cloudlib.tool('driver', 'ours')
        cloudlib.delete_all(conn, 'bench-parity-')
    rows = {arm[0]: summarize(samples, arm[0])
            for arm in arms if arm[0] != 'upstream'}
    print('\n%-18s %-8s %7s %9s %12s %7s %17s' % (
        'arm / upstream', 'what', 'rounds', 'arm (s)', 'upstream (s)',
        'ratio', 'ratio 95% interval'))
    for name, table in rows.items():
        for what, row in table.items():
            print('%-18s %-8s %7s %9.3f %12.3f %7.3f %8.3f - %.3f' % (
                name, what, '%d/%d' % row['n'], row['arm_s'],
                row['upstream_s'], row['ratio'], *row['ratio_95']))
    print('total %.0f s' % (time.monotonic() - t0))
    with open(args.json, 'w') as f:
        json.dump({'args': vars(args), 'rows': rows, 'samples': samples},
                  f, indent=1)
    draw(samples, args.png)


if __name__ == '__main__':
    main()
