"""``nova-gpu-ext demo``: the simulated all-in-one Nova (see sim/demo.py).

Layer rule: CLI adapter. The demo runs in a child process, because Nova's
threading patch must be applied before anything else is imported.
"""

import subprocess
import sys


def register(subparsers):
    parser = subparsers.add_parser(
        'demo',
        help='run an in-process Nova (simulated host) with nova-gpu-ext, '
             'boot GPU flavors and show what happened')
    parser.add_argument('--dump-xml', metavar='DIR',
                        help="write each flavor's domain XML, ours and "
                             "upstream's, to DIR")
    parser.add_argument('--verbose', action='store_true',
                        help="show the services' logs")
    parser.set_defaults(func=run)


def run(args):
    argv = [sys.executable, '-m', 'nova_gpu_ext.sim.demo']
    if args.dump_xml:
        argv += ['--dump-xml', args.dump_xml]
    if args.verbose:
        argv.append('--verbose')
    return subprocess.call(argv)
