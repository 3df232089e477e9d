"""``nova-gpu-ext explain``: the facts, gathered as the services gather them.

Layer rule: adapter (CLI). Turns command-line values and the discovered
host into the core's inputs (node capacities, the summary entries and
``host_facts.gpu_facts`` of shared GPUs); decides nothing.
"""

import dataclasses

from nova_gpu_ext.core import affinity

VGPU = 'vgpu'
PCI = 'pci'
RENDER = 'render'


class UsageError(ValueError):
    """A bad command-line value; the message says which and why."""


def int_or_all(text):
    return 'all' if text == 'all' else int(text)


def pairs(items, option, convert):
    out = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise UsageError('%s expects KEY=VALUE, not %r' % (option, item))
        try:
            out[key.strip()] = convert(value.strip())
        except ValueError:
            raise UsageError('%s: bad value in %r' % (option, item))
    return out


def domain_usage(args):
    """Per-node usage of the guests in ``--domain-xml`` (issue 10)."""
    from nova_gpu_ext.topology import domain_usage
    paths = getattr(args, 'domain_xml', None) or []
    try:
        return domain_usage.node_usage(domain_usage.read_documents(paths))
    except OSError as exc:
        raise UsageError('--domain-xml: %s' % exc)


def node_capacities(topology, args, node_usage=None):
    used_cpus = pairs(args.used_cpus, '--used-cpus', int_or_all)
    used_mem = pairs(args.used_memory_mb, '--used-memory-mb', int_or_all)
    for node, row in (node_usage or {}).items():
        for used, add in ((used_cpus, row['cells_vcpus'] +
                           row['bound_vcpus']),
                          (used_mem, row['cells_mb'] + row['bound_mb'])):
            if used.get(str(node)) != 'all':
                used[str(node)] = used.get(str(node), 0) + add
    known = {str(n.id) for n in topology.numa_nodes}
    for key in list(used_cpus) + list(used_mem):
        if key not in known:
            raise UsageError('NUMA node %s is not on this host (nodes: %s)'
                             % (key, ', '.join(sorted(known)) or 'none'))
    nodes = []
    for node in topology.numa_nodes:
        cpus = len(node.cpus)
        memory = node.memory_mb or 0
        ucpu = used_cpus.get(str(node.id), 0)
        umem = used_mem.get(str(node.id), 0)
        nodes.append(affinity.node_capacity(
            node.id, node.socket, cpus, memory,
            cpus if ucpu == 'all' else ucpu,
            memory if umem == 'all' else umem))
    return nodes


def shared_facts(topology, kind, args, tenants, conf):
    """The physical GPUs that could supply the VF or mdev, as the decision's
    facts: the same summary entries and :func:`host_facts.gpu_facts` the
    scheduler filter and the compute's admission use (a VF is typed by its
    PF; capacity is :func:`decide.capacity`). By default every created
    mdev counts as in use (sysfs cannot tell); ``--tenants`` says better.
    """
    from nova_gpu_ext.topology import host_facts
    from nova_gpu_ext.conf import sharing as sharing_conf
    out = []
    for gpu in topology.physical_gpus():
        entry = host_facts.gpu_entry(topology, gpu)
        if kind == VGPU:
            types = entry.mdev_types or {}
            if not types or (args.mdev_type and
                             args.mdev_type not in types):
                continue
            if args.mdev_type:
                entry = dataclasses.replace(entry, type=args.mdev_type)
            facts = host_facts.gpu_facts(
                entry, 0, lambda t: sharing_conf.profile_for(conf, t))
            default = facts.created
        else:
            if entry.mdev_types or not entry.is_pf or not entry.vfs:
                continue
            default = 0
        facts = host_facts.gpu_facts(
            entry, tenants.get(entry.addr, default),
            lambda t: sharing_conf.profile_for(conf, t))
        out.append((gpu, facts))
    if not out:
        return [], None, None
    type_name = out[0][1].type_name
    group = conf[sharing_conf.group_name(type_name)]
    source = ('[%s]' % sharing_conf.group_name(type_name)
              if group.slice_ms is not None or group.switch_ms is not None
              else '[gpu_ext] default_slice_ms/default_switch_ms')
    return out, type_name, source
