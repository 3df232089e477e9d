"""Where a command reads its host from: this host's sysfs, another sysfs
tree, or a built-in sample host.

Layer rule: adapter (CLI). Shared by ``inspect``, ``explain`` and
``fake-sysfs`` so that they take the same arguments and say the same thing
about an unknown sample.
"""

import tempfile

from nova_gpu_ext.topology import discover
from nova_gpu_ext.topology import paths as sysfs_paths


class UnknownSample(ValueError):
    """A ``--sample`` name that is not a built-in sample host."""


def sample_builder(name):
    """The builder of a built-in sample host, or :class:`UnknownSample`."""
    # Lazy: the simulation is loaded only for a built-in sample host.
    from nova_gpu_ext.sim import sample_hosts
    try:
        return sample_hosts.SAMPLE_HOSTS[name]
    except KeyError:
        raise UnknownSample('unknown sample %r; choose from: %s' % (
            name, ', '.join(sorted(sample_hosts.SAMPLE_HOSTS))))


def add_arguments(parser, sample_help):
    parser.add_argument('--sysfs-root', default='/sys',
                        help='root of the sysfs tree (default: /sys)')
    parser.add_argument('--dev-root', default='/dev',
                        help='root of the device tree (default: /dev)')
    parser.add_argument('--sample', metavar='NAME', help=sample_help)


def discover_host(args):
    """``(topology, source)`` for the host the arguments name."""
    if args.sample:
        builder = sample_builder(args.sample)
        with tempfile.TemporaryDirectory() as root:
            builder(root)
            topology = discover.discover_host(
                sysfs_paths.SysfsPaths(root, dev_root=args.dev_root))
        return topology, 'built-in sample host %r (simulated)' % args.sample
    topology = discover.discover_host(sysfs_paths.SysfsPaths(
        args.sysfs_root, dev_root=args.dev_root))
    return topology, 'sysfs at %s' % args.sysfs_root
