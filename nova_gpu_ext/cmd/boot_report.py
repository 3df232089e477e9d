"""``nova-gpu-ext boot-report``: where this host's build time went.

Layer rule: adapter (CLI). Reads the record the driver writes (``[gpu_ext]
state_dir``/boot-phases.jsonl, see :mod:`nova_gpu_ext.virt.boot_telemetry`) and
summarizes it with the pure :mod:`nova_gpu_ext.core.boot_stats`; matplotlib is
imported only for ``--plot``.
"""

import json
import os
import sys

from nova_gpu_ext.core import boot_stats
from nova_gpu_ext.virt import boot_telemetry

RECORD_FILE = boot_telemetry.RECORD_FILE
DEFAULT_STATE_DIR = '/var/lib/nova/gpu_ext'
GROUPINGS = (('all', 'all builds'), ('gpu', 'GPU guests against others'),
             ('memory', 'by memory size'))


def register(subparsers):
    parser = subparsers.add_parser(
        'boot-report',
        help="recent builds on this host: each boot phase's median and p95, "
             "GPU guests against others and by memory size",
        description='Summarize the boot phases GPULibvirtDriver recorded '
                    'for the recent builds on this host (request to domain '
                    'defined, defined to QEMU started, QEMU init, firmware, '
                    "the guest kernel's first line): the recent builds, "
                    'then median and p95 per phase for all builds, GPU '
                    'guests against others, and by memory size.')
    parser.add_argument(
        '--state-dir', default=DEFAULT_STATE_DIR,
        help='the compute\'s [gpu_ext] state_dir (default: %(default)s)')
    parser.add_argument(
        '--record', metavar='FILE',
        help='the record file itself (default: STATE_DIR/%s)' % RECORD_FILE)
    parser.add_argument('--last', type=int, default=200, metavar='N',
                        help='only the N most recent builds (default: '
                             '%(default)s)')
    parser.add_argument('--format', choices=('table', 'json'),
                        default='table')
    parser.add_argument('--plot', metavar='PNG',
                        help='also draw each recent build\'s phases as a '
                             'stacked bar into PNG (needs matplotlib)')
    parser.set_defaults(func=run)


def run(args, out=None):
    out = out or sys.stdout
    path = args.record or os.path.join(args.state_dir, RECORD_FILE)
    try:
        records = boot_telemetry.read_records(path)
    except OSError as exc:
        sys.stderr.write('boot-report: cannot read %s: %s (is [gpu_ext] '
                         'state_dir elsewhere? see --state-dir)\n' % (
                             path, exc.strerror or exc))
        return 2
    if args.last > 0:
        records = records[-args.last:]
    report = {'record': path, 'builds': records,
              'summary': {by: boot_stats.summarize(records, by)
                          for by, _ in GROUPINGS}}
    if args.format == 'json':
        json.dump(report, out, indent=2, sort_keys=True)
        out.write('\n')
    else:
        out.write(render_table(report))
    if args.plot:
        try:
            plot(records, args.plot)
        except ImportError:
            sys.stderr.write('boot-report: --plot needs matplotlib (pip '
                             'install matplotlib)\n')
            return 2
        out.write('plot written to %s\n' % args.plot)
    return 0


def _ms(value):
    return '-' if value is None else '%.0f' % value


def render_table(report, recent=10):
    records = report['builds']
    lines = ['%d build(s) in %s' % (len(records), report['record'])]
    if not records:
        return lines[0] + '\n'
    names = [n for n in boot_stats.PHASE_NAMES
             if any(n in r['phases'] for r in records)]
    lines += ['', 'Most recent builds (ms):']
    header = ['server', 'flavor', 'MiB', 'GPU'] + names
    rows = [header]
    for record in records[-recent:]:
        rows.append([str(record.get('uuid', '?'))[:8],
                     str(record.get('flavor') or '-'),
                     str(record.get('memory_mb') or '-'),
                     'yes' if record.get('gpu') else 'no'] +
                    [_ms(record['phases'].get(n)) for n in names])
    lines += _columns(rows)
    for by, title in GROUPINGS:
        lines += ['', 'Median / p95 per phase (ms), %s:' % title]
        rows = [['group', 'builds'] + names]
        for key, entry in report['summary'][by].items():
            rows.append([key, str(entry['builds'])] + [
                '%s / %s' % (_ms(entry['phases'][n]['median']),
                             _ms(entry['phases'][n]['p95']))
                if n in entry['phases'] else '-' for n in names])
        lines += _columns(rows)
    lines += ['', 'Phases:'] + ['  %-13s %s' % (n, boot_stats.DESCRIPTIONS[n])
                                for n in names]
    return '\n'.join(lines) + '\n'


def _columns(rows):
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = ['  '.join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
           for row in rows]
    out.insert(1, '  '.join('-' * w for w in widths))
    return out


def plot(records, path):
    """Stacked bar per build (GPU guests marked), one colour per phase."""
    # Lazy: matplotlib is optional, needed only for --plot.
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot
    names = [n for n in boot_stats.PHASE_NAMES
             if any(n in r['phases'] for r in records)]
    fig, ax = pyplot.subplots(figsize=(10, 0.35 * len(records) + 1.5))
    labels = ['%s %s%s' % (str(r.get('uuid', '?'))[:8],
                           r.get('flavor') or '',
                           ' (GPU)' if r.get('gpu') else '')
              for r in records]
    left = [0.0] * len(records)
    for name in names:
        widths = [r['phases'].get(name, 0.0) / 1000.0 for r in records]
        ax.barh(range(len(records)), widths, left=left, label=name)
        left = [a + b for a, b in zip(left, widths)]
    ax.set_yticks(range(len(records)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel('seconds')
    ax.set_title('Boot phases of recent builds')
    ax.legend(loc='upper left', bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot.close(fig)
