"""``nova-gpu-ext tweaks``: the domain XML tweaks installed, and their
switches.

Layer rule: adapter (CLI). Lists what :func:`tweaks.load_tweaks` finds in
the ``nova_gpu_ext.domain_tweaks`` entry points, so third-party tweaks show
up too.
"""

import sys

from nova_gpu_ext.virt import tweaks


def register(subparsers):
    parser = subparsers.add_parser(
        'tweaks', help='list the domain XML tweaks and how to switch them')
    parser.set_defaults(func=run)


def _version(number):
    if not number:
        return '-'
    return '%d.%d.%d' % (number // 1000000, number // 1000 % 1000,
                         number % 1000)


def run(args, out=None):
    out = out or sys.stdout
    loaded = tweaks.load_tweaks()
    if not loaded:
        out.write('No domain tweak installed.\n')
        return 1
    rows = [('tweak', 'GPU guests', 'libvirt', 'QEMU', 'what it does')]
    for name in sorted(loaded):
        tweak = loaded[name]
        rows.append((name, 'on' if tweak.default_for_gpu_guests else 'opt-in',
                     _version(tweak.min_libvirt_version),
                     _version(tweak.min_qemu_version), tweak.summary))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for i, row in enumerate(rows):
        out.write('  '.join(c.ljust(w) for c, w in zip(row, widths)) +
                  '  ' + row[4] + '\n')
        if i == 0:
            out.write('  '.join('-' * w for w in widths) + '  ' +
                      '-' * 12 + '\n')
    out.write('\nPer flavor: gpu:tweak:<name>=true|false, or '
              'gpu:fast_boot=false for none. Per cloud: [gpu_ext] '
              'enabled_tweaks, fast_boot_default.\n')
    return 0
