"""``nova-gpu-ext inspect``: what discovery sees on a host, and what Nova
will see of it.

Layer rule: adapter (CLI). Reads the host only through
:mod:`nova_gpu_ext.topology.discover`; formats the model, nothing more.
"""

import dataclasses
import enum
import json
import sys

from nova_gpu_ext.cmd import explain_address
from nova_gpu_ext.cmd import host_source
from nova_gpu_ext.core import summary_build
from nova_gpu_ext import model
from nova_gpu_ext.topology import matrix
from nova_gpu_ext.topology import summary
from nova_gpu_ext.topology import health
from nova_gpu_ext.topology import sysfs_reader as sr


def register(subparsers):
    parser = subparsers.add_parser(
        'inspect', help='show the GPU topology of this host (or of a '
                        'recorded/fake sysfs tree)',
        description='Show GPUs, NUMA nodes, sockets, render nodes, VFs, '
                    'mdev types and IOMMU groups as nova-gpu-ext discovers '
                    'them, the placement traits the driver will publish, '
                    'and warnings.')
    host_source.add_arguments(
        parser, 'inspect a built-in sample host instead (see '
                '--list-samples)')
    parser.add_argument('--list-samples', action='store_true',
                        help='list the built-in sample hosts')
    parser.add_argument('--format', choices=('table', 'json'),
                        default='table')
    parser.add_argument('--show-vfs', action='store_true',
                        help='list every VF (default: counts per PF)')
    parser.set_defaults(func=run)


def run(args, out=None):
    out = out or sys.stdout
    # Lazy: the simulation is loaded only for the built-in sample hosts.
    from nova_gpu_ext.sim import sample_hosts
    if args.list_samples:
        for name, builder in sorted(sample_hosts.SAMPLE_HOSTS.items()):
            doc = (builder.__doc__ or '').strip().splitlines()[0]
            out.write('%-28s %s\n' % (name, doc))
        return 0
    try:
        topology, source = host_source.discover_host(args)
    except host_source.UnknownSample as exc:
        sys.stderr.write('%s\n' % exc)
        return 2
    return _print(topology, args, out, source)


def _print(topology, args, out, source):
    if args.format == 'json':
        json.dump(to_json(topology, source), out, indent=2, sort_keys=True)
        out.write('\n')
    else:
        out.write(render_table(topology, source, show_vfs=args.show_vfs))
    return 0


def _jsonable(value):
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, model.PCIAddress):
        return str(value)
    if isinstance(value, frozenset):
        return sorted(value)
    if dataclasses.is_dataclass(value):
        return {f.name: _jsonable(getattr(value, f.name))
                for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def to_json(topology, source):
    data = _jsonable(topology)
    data['source'] = source
    data['placement_traits'] = {
        str(g.address): sorted(summary.gpu_traits(topology, g))
        for g in topology.physical_gpus()}
    data['host_summary'] = summary_build.from_topology(topology).to_dict()
    data['health_problems'] = {
        h.address: [m for _t, m in health.problems(h)]
        for h in topology.health if health.problems(h)}
    return data


def _cpus(cpus):
    return sr.format_cpulist(cpus) if cpus else '-'


def _table(headers, rows):
    widths = [max(len(str(x)) for x in column)
              for column in zip(headers, *rows)] if rows else \
        [len(h) for h in headers]
    lines = ['  '.join(str(h).ljust(w) for h, w in zip(headers, widths))]
    lines.append('  '.join('-' * w for w in widths))
    for row in rows:
        lines.append('  '.join(str(c).ljust(w) for c, w in zip(row, widths)))
    return '\n'.join(line.rstrip() for line in lines) + '\n'


def _or(value, unknown='?'):
    return unknown if value is None else value


def render_table(topology, source, show_vfs=False):
    parts = ['Host topology from %s\n\n' % source]
    if topology.numa_nodes:
        rows = [(n.id, _or(n.socket), _cpus(n.cpus),
                 '%d MiB' % n.memory_mb if n.memory_mb is not None else '?',
                 ' '.join(str(d) for d in n.distances) or '?',
                 ', '.join('%dx%s' % (free, _page(size))
                           for size, free in n.hugepages_free if free) or
                 '-')
                for n in topology.numa_nodes]
        parts.append(_table(
            ('NUMA', 'socket', 'CPUs', 'memory', 'distances',
             'free huge pages'), rows))
    else:
        parts.append('No NUMA information (node directory missing).\n')
    parts.append('\n')
    physical = topology.physical_gpus()
    if not topology.gpus:
        parts.append('No GPU found: no PCI display controller (class 0x0300, '
                     '0x0302 or 0x0380) that can serve guests.\n')
    else:
        rows = []
        for gpu in topology.gpus:
            if gpu.kind is model.GPUKind.VF and not show_vfs:
                continue
            rows.append(_gpu_row(topology, gpu))
        parts.append(_table(
            ('GPU', 'model', 'kind', 'NUMA', 'socket', 'CPU affinity',
             'render node', 'IOMMU group', 'driver', 'link', 'VFs',
             'mdev types (free)'), rows))
        if len(physical) > 1:
            parts.append('\nLinks between GPUs (as nvidia-smi topo -m: PIX '
                         'one switch, PXB several bridges, PHB one host '
                         'bridge, NODE one NUMA node, SYS across NUMA '
                         'nodes)\n')
            names = ['GPU%d' % i for i in range(len(physical))]
            grid = matrix.gpu_matrix(topology)
            rows = [(names[i], str(g.address)) + tuple(grid[i]) +
                    (_or(g.numa_node),)
                    for i, g in enumerate(physical)]
            parts.append(_table(('', 'PCI') + tuple(names) + ('NUMA',),
                                rows))
    others = [r for r in topology.render_nodes
              if r.pci_address is None or topology.gpu(r.pci_address) is None]
    if others:
        parts.append('\nRender nodes without a GPU: %s\n' % ', '.join(
            '%s (%s)' % (r.name, r.driver or 'unknown driver')
            for r in others))
    if physical:
        parts.append('\nWhat Nova will see (placement traits on each '
                     'physical GPU provider):\n')
        for gpu in physical:
            parts.append('  %s: %s\n' % (gpu.address, ', '.join(
                sorted(summary.gpu_traits(topology, gpu)))))
    parts.append(render_health(topology))
    if topology.ignored:
        parts.append('\nIgnored:\n')
        parts.extend('  %s\n' % line for line in topology.ignored)
    parts.append(explain_address.render_host(topology))
    if topology.warnings:
        parts.append('\nWarnings (%d):\n' % len(topology.warnings))
        parts.extend('  ! %s\n' % line for line in topology.warnings)
    return ''.join(parts)


def render_health(topology):
    """GPU health as the host sees it (links, AER, vanished or failed)."""
    if not topology.health:
        return ''
    lines = []
    for entry in topology.health:
        found = health.problems(entry)
        if found:
            lines.extend('  ! %s: %s (%s)\n' % (entry.address, message, trait)
                         for trait, message in found)
    if not lines:
        return '\nGPU health: %d GPU(s), links at their maximum, no AER ' \
               'errors.\n' % len(topology.health)
    return ''.join(['\nGPU health (%d problem(s)):\n' % len(lines)] + lines)


def _page(size_kb):
    return '%dG' % (size_kb // 1048576) if size_kb >= 1048576 else \
        '%dM' % (size_kb // 1024) if size_kb >= 1024 else '%dK' % size_kb


def _gpu_row(topology, gpu):
    vfs = '-'
    if gpu.kind is model.GPUKind.PF:
        vfs = '%s/%s' % (_or(gpu.sriov_numvfs), _or(gpu.sriov_totalvfs))
    elif gpu.physfn is not None:
        vfs = 'of %s' % gpu.physfn
    group = '-' if gpu.iommu_group is None else str(gpu.iommu_group)
    if gpu.iommu_peers:
        group += ' (+%d)' % len(gpu.iommu_peers)
    link = '-'
    if gpu.link_speed or gpu.link_width:
        link = '%s x%s' % ((gpu.link_speed or '?').replace(' PCIe', ''),
                           _or(gpu.link_width))
    mdev = ', '.join('%s (%s)' % (t.name, _or(t.available_instances))
                     for t in gpu.mdev_types) or '-'
    return (str(gpu.address),
            '%s %04x:%04x' % (gpu.vendor_name, gpu.vendor_id, gpu.device_id),
            gpu.kind.value, _or(gpu.numa_node), _or(gpu.socket),
            _cpus(gpu.local_cpus),
            (gpu.render_node or '-').replace('/dev/dri/', ''),
            group, gpu.driver or '-', link, vfs, mdev)
