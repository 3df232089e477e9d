"""``nova-gpu-ext``: the operator's command.

Layer rule: adapter. Each subcommand lives in its own module of this package
and exposes ``register(subparsers)``, which adds its parser and sets
``func``; this module only dispatches.
"""

import argparse
import importlib
import sys

SUBCOMMANDS = (
    'demo',       # all-in-one simulated Nova on a sample GPU host
    'inspect',    # what discovery sees on this host
    'explain',    # the placement decision for a flavor on a host
    'tweaks',     # the domain XML tweaks and their switches
    'boot_report',  # boot phases of the recent builds on this host
    'fake_sysfs',  # write a sample host's sysfs tree (GPU-less CI)
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog='nova-gpu-ext',
        description='GPU extension for OpenStack Nova: inspect hosts, '
                    'explain placements, list the domain tweaks, run the '
                    'demo.')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module('%s.%s' % (__package__, name))
        except ModuleNotFoundError as exc:
            if exc.name != '%s.%s' % (__package__, name):
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, 'func', None):
        parser.print_help()
        return 2
    return args.func(args) or 0


if __name__ == '__main__':
    sys.exit(main())
