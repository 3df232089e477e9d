"""``nova-gpu-ext fake-sysfs``: write a sample host's sysfs tree.

Layer rule: adapter (CLI). For GPU-less CI (the devstack plugin) and
demos: point ``[gpu_ext] sysfs_root`` at the directory it writes.
"""

import os
import sys

from nova_gpu_ext.cmd import host_source


def register(subparsers):
    parser = subparsers.add_parser(
        'fake-sysfs', help='write a built-in sample host as a fake sysfs '
                           'tree (for GPU-less CI and demos)')
    parser.add_argument('--sample', default='virgl_2node',
                        help='sample host (see inspect --list-samples; '
                             'default: virgl_2node)')
    parser.add_argument('--dev-root', help='where to create the fake '
                        '/dev/dri nodes (default: DIR/_dev)')
    parser.add_argument('directory', metavar='DIR')
    parser.set_defaults(func=run)


def run(args, out=None):
    out = out or sys.stdout
    try:
        builder = host_source.sample_builder(args.sample)
    except host_source.UnknownSample as exc:
        sys.stderr.write('%s\n' % exc)
        return 2
    if os.path.exists(args.directory) and os.listdir(args.directory):
        sys.stderr.write('%s is not empty; refusing to write into it\n' %
                         args.directory)
        return 2
    builder(args.directory, dev_root=args.dev_root)
    out.write('wrote sample host %r under %s; set [gpu_ext] sysfs_root = '
              '%s\n' % (args.sample, args.directory, args.directory))
    return 0
