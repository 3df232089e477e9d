"""``nova-gpu-ext explain``: where a flavor would go on one host, and why.

Layer rule: adapter (CLI). Reads the host only through
:mod:`nova_gpu_ext.topology.discover` (as ``inspect`` does), option defaults
only through oslo.config (a private ``ConfigOpts`` with nova-gpu-ext's
options, plus ``--config-file``), and decides only through the pure core
that the scheduler filter, the weigher and the driver call:

* :func:`nova_gpu_ext.core.affinity.rank`: the physical GPU and the
  host NUMA node (binding strict or preferred), and why each other GPU was
  refused;
* :func:`nova_gpu_ext.core.packing.admit_on` and
  :func:`~nova_gpu_ext.core.packing.choose_physical_gpu` with the
  sharing model (:mod:`nova_gpu_ext.core.sharing`): for time-sliced
  GPUs (mdev parents, PFs of VFs), tenants, efficiency, share, worst-case
  wait against the timeout, and pack or spread;
* :func:`nova_gpu_ext.core.affinity.choose_render_node`.

For a shared GPU (mdev vGPU, SR-IOV vGPU, VF) the composition is the one
the filter and the compute call, :func:`nova_gpu_ext.core.decide.decide`,
fed with the same summary entries (``host_facts.gpu_entry``/``gpu_facts``):
``affinity.rank`` of every GPU, sharing admission (free instance, timeout x
margin, ``max_tenants``, minimum shares), then NUMA-local first and the
flavor's pack/spread within each tier. A whole GPU is the
first of ``affinity.rank``. The render node is picked on the chosen NUMA
node when the guest also has a device, else where the guest fits.

Exit code: 0 placeable, 1 refused, 2 usage error.
"""

import dataclasses
import json
import sys

from oslo_config import cfg

from nova_gpu_ext.cmd import host_source
from nova_gpu_ext import model
from nova_gpu_ext.core import numa
from nova_gpu_ext.core import spec as specs
from nova_gpu_ext.core import affinity
from nova_gpu_ext.core import inputs
from nova_gpu_ext.core import packing
from nova_gpu_ext.core import sharing

PLACEABLE = 0
REFUSED = 1
USAGE = 2

VGPU = 'vgpu'
PCI = 'pci'
RENDER = 'render'


class UsageError(ValueError):
    """A bad command-line value; the message says which and why."""


def register(subparsers):
    parser = subparsers.add_parser(
        'explain', help='explain where a flavor would go on a host (NUMA '
                        'node, GPU, render node) and why',
        description='Given a host (this one, a sysfs tree or a built-in '
                    'sample) and a flavor\'s extra specs, print the '
                    'placement decision nova-gpu-ext makes: the physical '
                    'GPU, the NUMA node and its binding, the render node, '
                    'the time-slice sharing of shared GPUs, and why the '
                    'other choices were refused. Exit code 0: placeable, '
                    '1: refused.')
    host_source.add_arguments(
        parser, 'a built-in sample host (see nova-gpu-ext inspect '
                '--list-samples)')
    parser.add_argument('--spec', metavar='KEY=VALUE', nargs='+',
                        action='extend', default=[], required=True,
                        help="the flavor's extra specs, e.g. "
                             'resources:VGPU=1 '
                             'gpu:numa_affinity_policy=required')
    parser.add_argument('--vcpus', type=int, default=2,
                        help="the flavor's vCPUs (default: 2)")
    parser.add_argument('--memory-mb', type=int, default=4096,
                        help="the flavor's memory in MiB (default: 4096)")
    parser.add_argument('--used-cpus', metavar='NODE=N|all', nargs='+',
                        action='extend', default=[],
                        help='CPUs already used on a NUMA node')
    parser.add_argument('--used-memory-mb', metavar='NODE=M|all', nargs='+',
                        action='extend', default=[],
                        help='memory (MiB) already used on a NUMA node')
    parser.add_argument('--domain-xml', metavar='PATH', nargs='+',
                        action='extend', default=[],
                        help='domain XML of the guests on the host (files '
                             'or directories of *.xml, e.g. from virsh '
                             'dumpxml): their NUMA cells and old-style '
                             'node bindings count as used per node')
    parser.add_argument('--tenants', metavar='PCI|RENDER=N', nargs='+',
                        action='extend', default=[],
                        help='guests already on a physical GPU (by PCI '
                             'address; for a whole GPU, N >= 1 means in use) '
                             'or on a render node (by name, renderD128). '
                             'Default for mdev parents: the mdevs that '
                             'exist; otherwise 0')
    parser.add_argument('--pci-kind', choices=('whole', 'vf'),
                        default='whole',
                        help='what a PCI alias or custom resource class of '
                             'the flavor stands for: a whole GPU (default) '
                             'or an SR-IOV VF of a GPU')
    parser.add_argument('--mdev-type', metavar='NAME',
                        help='the mdev type a VGPU is created from '
                             '(default: the first type of the first '
                             'mdev-capable GPU)')
    parser.add_argument('--image-property', metavar='KEY=VALUE', nargs='+',
                        action='extend', default=[],
                        help="the image's properties that change the "
                             'decision, e.g. '
                             'hw_pci_numa_affinity_policy=required '
                             '(may only narrow the flavor\'s policy)')
    parser.add_argument('--port-policy', metavar='PORT=POLICY', nargs='+',
                        action='extend', default=[],
                        help="a port's numa_affinity_policy (may only "
                             "narrow the flavor's policy)")
    parser.add_argument('--config-file', action='append', default=[],
                        help='a nova.conf with [gpu_ext] and '
                             '[gpu_sharing_<type>] options (repeatable; '
                             'default: none, option defaults)')
    parser.add_argument('--format', choices=('table', 'json'),
                        default='table')
    parser.set_defaults(func=run)


def run(args, out=None):
    out = out or sys.stdout
    try:
        conf = load_conf(args.config_file)
        extra_specs = _pairs(args.spec, '--spec', str)
        request = specs.parse(extra_specs)
        topology, source = host_source.discover_host(args)
        result = explain(topology, extra_specs, request, args, conf)
    except (UsageError, host_source.UnknownSample, specs.InvalidExtraSpec,
            cfg.Error) as exc:
        sys.stderr.write('nova-gpu-ext explain: %s\n' % exc)
        return USAGE
    result['host'] = source
    if args.format == 'json':
        json.dump(result, out, indent=2, sort_keys=True)
        out.write('\n')
    else:
        out.write(render_table(result))
    return PLACEABLE if result['placeable'] else REFUSED


def load_conf(config_files=()):
    """A private ConfigOpts with nova-gpu-ext's options, defaults or files.

    Private so that the CLI neither needs nor disturbs Nova's global CONF,
    and reads only the files it is given (never /etc/nova by surprise).
    """
    from nova_gpu_ext import conf as gpu_conf
    conf = cfg.ConfigOpts()
    gpu_conf.register_opts(conf)
    conf(args=[], project='nova', default_config_files=list(config_files))
    return conf


# -- the decision ------------------------------------------------------------

def explain(topology, extra_specs, request, args, conf):
    """Every decision for ``request`` on ``topology``, as a JSON-able dict."""
    tenants = _pairs(args.tenants, '--tenants', int)
    kind = _request_kind(request)
    # The filter's, the claim's and the driver's resolver (core.numa).
    resolved = inputs.resolve(
        extra_specs, _pairs(getattr(args, 'image_property', None) or [],
                            '--image-property', str),
        tuple(_pairs(getattr(args, 'port_policy', None) or [],
                     '--port-policy', str).items()),
        conf.gpu_ext.numa_affinity_policy, request=request)
    policy, policy_source = resolved.policy, resolved.policy_source
    strategy = request.placement or conf.gpu_ext.sharing_default_placement
    strategy_source = ('flavor gpu:placement' if request.placement else
                       '[gpu_ext] sharing_default_placement')
    min_share = request.min_share
    needs = affinity.GuestNeeds(args.vcpus, args.memory_mb, policy)
    node_usage = _domain_usage(args)
    nodes = _node_capacities(topology, args, node_usage)
    result = {
        'request': {
            'extra_specs': dict(extra_specs),
            'kind': kind,
            'vcpus': args.vcpus,
            'memory_mb': args.memory_mb,
            'numa_affinity_policy': policy,
            'numa_affinity_policy_source': policy_source,
            'numa_affinity_policy_notes': [
                str(n) for n in resolved.notes + resolved.remarks],
        },
        'nodes': [dataclasses.asdict(n) for n in nodes],
        'node_usage': {str(k): v for k, v in sorted(node_usage.items())},
        'gpus': [],
        'shared_gpus': [],
        'decision': None,
        'render': None,
        'placeable': True,
        'reasons': [],
        'warnings': list(topology.warnings),
    }
    if kind is None:
        result['reasons'].append(
            'The flavor asks for no GPU device and no render node%s: '
            'nova-gpu-ext leaves its placement to Nova.' % (
                '' if request.enabled else ' (gpu:enabled=false)'))
        return result

    chosen = None
    if kind == VGPU or (kind == PCI and args.pci_kind == 'vf'):
        result['request'].update(placement=strategy,
                                 placement_source=strategy_source,
                                 min_share=min_share)
        loads, type_name, profile_source = _shared_facts(
            topology, kind, args, tenants, conf)
        result['request'].update(device_type=type_name,
                                 sharing_profile_source=profile_source,
                                 count=_device_count(request, kind))
        chosen = _decide_shared(result, topology, needs, nodes, loads,
                                strategy, min_share)
    elif kind == PCI:
        result['request'].update(device_type='whole GPU',
                                 count=_device_count(request, kind))
        chosen = _decide_whole(result, topology, needs, nodes, tenants,
                               _device_count(request, kind))
    if request.wants_render_node:
        only_node = None
        if chosen is not None:
            only_node = chosen.node
        if kind == RENDER or chosen is not None:
            _decide_render(result, topology, needs, nodes, tenants, conf,
                           only_node, kind == RENDER)
        else:
            result['render'] = {'ok': False, 'name': None, 'path': None,
                                'node': None, 'reason': 'not chosen: the '
                                'guest has no device placement'}
    return result


def _request_kind(request):
    if not request.enabled:
        return None
    if request.vgpus:
        return VGPU
    if request.pci_aliases or request.custom_resources:
        return PCI
    if request.wants_render_node:
        return RENDER
    return None


def _device_count(request, kind):
    if kind == VGPU:
        return request.vgpus
    return (sum(n for _, n in request.pci_aliases) +
            sum(n for _, n in request.custom_resources))


def _domain_usage(args):
    """Per-node usage of the guests in ``--domain-xml`` (issue 10)."""
    from nova_gpu_ext.topology import domain_usage
    paths = getattr(args, 'domain_xml', None) or []
    try:
        return domain_usage.node_usage(domain_usage.read_documents(paths))
    except OSError as exc:
        raise UsageError('--domain-xml: %s' % exc)


def _node_capacities(topology, args, node_usage=None):
    used_cpus = _pairs(args.used_cpus, '--used-cpus', _int_or_all)
    used_mem = _pairs(args.used_memory_mb, '--used-memory-mb', _int_or_all)
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
        nodes.append(affinity.NodeCapacity(
            id=node.id, socket=node.socket,
            free_cpus=float(max(cpus - (cpus if ucpu == 'all' else ucpu), 0)),
            free_memory_mb=max(memory - (memory if umem == 'all' else umem),
                               0),
            total_cpus=cpus, total_memory_mb=memory))
    return nodes


def _shared_facts(topology, kind, args, tenants, conf):
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
            types = entry.get('mdev_types') or {}
            if not types or (args.mdev_type and
                             args.mdev_type not in types):
                continue
            if args.mdev_type:
                entry['type'] = args.mdev_type
            facts = host_facts.gpu_facts(
                entry, 0, lambda t: sharing_conf.profile_for(conf, t))
            default = facts.created
        else:
            if entry.get('mdev_types') or entry.get('kind') != 'pf' or \
                    not entry.get('vfs'):
                continue
            default = 0
        facts = host_facts.gpu_facts(
            entry, tenants.get(entry['addr'], default),
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


def _decide_shared(result, topology, needs, nodes, facts, strategy,
                   min_share):
    from nova_gpu_ext.core import decide
    if not facts:
        return _refuse(result, 'No physical GPU on this host offers %s.' % (
            'an mdev type for VGPU' if result['request']['kind'] == VGPU
            else 'SR-IOV VFs'))
    decision = decide.decide(decide.DecisionRequest(
        needs=needs, strategy=strategy, min_share=min_share),
        decide.HostFacts(nodes=tuple(nodes),
                         gpus=tuple(f for _gpu, f in facts)))
    for gpu, f in facts:
        load = decide.load_of(f)
        admission = packing.admit_on(load, min_share)
        profile = load.profile
        result['shared_gpus'].append({
            'address': load.address,
            'numa_node': load.numa_node,
            'tenants': load.tenants,
            'instances': load.capacity,
            'device_type': f.type_name,
            'efficiency': sharing.efficiency(profile),
            'share_per_tenant': (sharing.share_per_tenant(
                profile, load.tenants) if load.tenants else None),
            'worst_case_wait_ms': sharing.worst_case_wait_ms(
                profile, load.tenants),
            'limit_ms': sharing.limit_ms(profile),
            'slice_ms': profile.slice_ms,
            'switch_ms': profile.switch_ms,
            'max_tenants': packing.slots(load, min_share),
            'summary': sharing.describe(profile, load.tenants),
            'next_tenant_admitted': admission.ok,
            'next_tenant': admission.reason,
            'time_sliced': f.time_sliced,
        })
        if not f.time_sliced:
            row = result['shared_gpus'][-1]
            row['summary'] = (
                '%d of %d instance(s) in use; MIG-backed vGPU: each tenant '
                'has its own GPU instance, not time-sliced, so only the '
                'instances bound it' % (load.tenants, load.capacity))
            row['next_tenant'] = ('one more tenant fits: a free instance.'
                                  if admission.ok else admission.reason)
    gpus = {str(gpu.address): gpu for gpu, _f in facts}
    rows = {}
    for verdict in decision.gpus:
        gpu = gpus[verdict.address]
        status = 'accepted' if verdict.status == decide.CHOSEN else \
            verdict.status
        rows[verdict.address] = _gpu_row(gpu, status, verdict.reason,
                                         verdict if status != 'refused'
                                         else None)
    result['gpus'] = [rows[a] for a in gpus]
    if not decision.ok:
        return _refuse(result, *_reasons(rows))
    chosen = decision.chosen
    rows[chosen.address]['status'] = 'chosen'
    if decision.sharing_reason:
        result['shared_choice'] = decision.sharing_reason
    result['decision'] = {
        'gpu': chosen.address, 'gpus': [chosen.address],
        'node': chosen.node, 'binding': chosen.binding,
        'numa_local': chosen.local, 'reason': rows[chosen.address]['reason'],
    }
    return _Chosen(chosen.node)


@dataclasses.dataclass(frozen=True)
class _Chosen:
    node: object


def _decide_whole(result, topology, needs, nodes, tenants, count):
    candidates = [g for g in topology.gpus
                  if g.kind is model.GPUKind.WHOLE or
                  (g.kind is model.GPUKind.PF and not g.vfs)]
    rows = {}
    free = []
    for gpu in candidates:
        address = str(gpu.address)
        used = tenants.get(address, 0)
        if used > 0:
            rows[address] = _gpu_row(gpu, 'refused', 'GPU %s: in use by %d '
                                     'guest(s)' % (address, used))
        else:
            free.append(_slot(gpu, address))
    by_address = {str(g.address): g for g in candidates}
    accepted, refused = affinity.rank(needs, free, nodes)
    for c in refused:
        rows[c.gpu.address] = _gpu_row(by_address[c.gpu.address], 'refused',
                                       c.reason)
    for c in accepted:
        rows[c.gpu.address] = _gpu_row(by_address[c.gpu.address],
                                       'accepted', c.reason, c)
    result['gpus'] = [rows[str(g.address)] for g in candidates]
    if not candidates:
        return _refuse(result, 'No whole GPU on this host (PCI '
                       'passthrough candidates: GPUs without VFs or mdev '
                       'types).')
    if not accepted:
        return _refuse(result, *_reasons(rows))
    chosen = accepted[0]
    # A guest with several GPUs is placed by its first; under a strict
    # binding the others must be on the same node (affinity's rule).
    group = [chosen] + [c for c in accepted[1:]
                        if not numa.every_gpu_on_one_node(needs.policy) or
                        c.gpu.numa_node == chosen.gpu.numa_node]
    if len(group) < count:
        return _refuse(result, 'The flavor needs %d whole GPUs; %d are '
                       'accepted%s.' % (
                           count, len(group),
                           ' on NUMA node %s' % chosen.node
                           if numa.every_gpu_on_one_node(needs.policy)
                           else ''))
    for c in group[:count]:
        rows[c.gpu.address]['status'] = 'chosen'
    _record(result, chosen, [c.gpu.address for c in group[:count]])
    return chosen


def _decide_render(result, topology, needs, nodes, tenants, conf, only_node,
                   alone):
    limit = conf.gpu_ext.render_node_max_guests
    slots = [affinity.RenderSlot(r.name, r.path, r.numa_node,
                                 guests=tenants.get(r.name, 0), limit=limit)
             for r in topology.render_nodes]
    choice = affinity.choose_render_node(slots, needs, nodes, only_node)
    result['render'] = {
        'ok': choice.ok,
        'name': choice.render.name if choice.render else None,
        'path': choice.render.path if choice.render else None,
        'node': choice.node,
        'limit': limit,
        'reason': choice.reason,
        'render_nodes': [{'name': s.name, 'numa_node': s.numa_node,
                          'guests': s.guests} for s in slots],
    }
    if not choice.ok:
        _refuse(result, 'Render node: %s.' % choice.reason)
    elif alone:
        binding = None
        if choice.node is not None:
            binding = numa.binding_mode(needs.policy)
        result['decision'] = {'gpu': None, 'gpus': [], 'node': choice.node,
                              'binding': binding,
                              'numa_local': choice.node is not None,
                              'reason': choice.reason}


def _slot(gpu, address):
    return affinity.GPUSlot(address, gpu.numa_node, gpu.socket)


def _gpu_row(gpu, status, reason, choice=None):
    return {
        'address': str(gpu.address),
        'kind': gpu.kind.value,
        'numa_node': gpu.numa_node,
        'socket': gpu.socket,
        'status': status,
        'node': choice.node if choice else None,
        'binding': choice.binding if choice else None,
        'numa_local': choice.local if choice else None,
        'reason': reason,
    }


def _reasons(rows):
    return [row['reason'] for row in rows.values()
            if row['status'] == 'refused'] or ['No GPU accepted.']


def _record(result, choice, addresses=None):
    result['decision'] = {
        'gpu': choice.gpu.address,
        'gpus': addresses or [choice.gpu.address],
        'node': choice.node,
        'binding': choice.binding,
        'numa_local': choice.local,
        'reason': choice.reason,
    }


def _refuse(result, *reasons):
    result['placeable'] = False
    result['reasons'].extend(reasons)
    return None


# -- argument parsing --------------------------------------------------------

def _int_or_all(text):
    return 'all' if text == 'all' else int(text)


def _pairs(items, option, convert):
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


# -- output ------------------------------------------------------------------

def _table(headers, rows):
    from nova_gpu_ext.cmd import inspect
    return inspect._table(headers, rows)


def _or(value, unknown='?'):
    return unknown if value is None else value


def _pct(fraction):
    return sharing.format_percent(fraction)


def render_table(result):
    req = result['request']
    parts = ['Host: %s\n' % result['host']]
    specs_text = ' '.join('%s=%s' % kv
                          for kv in sorted(req['extra_specs'].items()))
    parts.append('Flavor: %d vCPUs, %d MiB; %s\n' % (
        req['vcpus'], req['memory_mb'], specs_text or 'no extra specs'))
    if req['kind'] is None:
        parts.append('\n%s\n' % ' '.join(result['reasons']))
        return ''.join(parts)
    what = {VGPU: 'vGPU (mdev)', RENDER: 'render node only',
            PCI: 'PCI device'}[req['kind']]
    if 'device_type' in req:
        what += ' x%d, type %s' % (req['count'], _or(req['device_type']))
    parts.append('Asks for: %s; NUMA policy %s (%s)\n' % (
        what, req['numa_affinity_policy'],
        req['numa_affinity_policy_source']))
    notes = req.get('numa_affinity_policy_notes', ())
    parts.extend('  %s\n' % n for n in notes)
    if 'placement' in req:
        parts.append('Shared GPU: %s (%s), minimum share %s, sharing '
                     'parameters from %s\n' % (
                         req['placement'], req['placement_source'],
                         _pct(req['min_share']) if req['min_share']
                         else 'none', _or(req.get('sharing_profile_source'),
                                          '-')))
    parts.append('\nNUMA nodes\n')
    parts.append(_table(
        ('node', 'socket', 'CPUs free/total', 'memory MiB free/total'),
        [(n['id'], _or(n['socket']),
          '%g/%d' % (n['free_cpus'], n['total_cpus']),
          '%d/%d' % (n['free_memory_mb'], n['total_memory_mb']))
         for n in result['nodes']]))
    if result.get('node_usage'):
        parts.append('\nCommitted per NUMA node by the guests\' domain XML '
                     '(cells: in Nova\'s books; bound: old-style binding)\n')
        parts.append(_table(
            ('node', 'guests', 'cells MiB/vCPUs', 'bound MiB/vCPUs'),
            [(node, row['guests'],
              '%d/%d' % (row['cells_mb'], row['cells_vcpus']),
              '%d/%d' % (row['bound_mb'], row['bound_vcpus']))
             for node, row in sorted(result['node_usage'].items())]))
    if result['shared_gpus']:
        parts.append('\nShared physical GPUs (time-sliced)\n')
        parts.append(_table(
            ('GPU', 'NUMA', 'tenants', 'instances', 'efficiency',
             'share each', 'worst wait', 'limit', 'most tenants',
             'one more?'),
            [(s['address'], _or(s['numa_node']), s['tenants'],
              s['instances'], _pct(s['efficiency']),
              _pct(s['share_per_tenant'])
              if s['share_per_tenant'] is not None else '-',
              '%g ms' % round(s['worst_case_wait_ms'], 3),
              '%g ms' % round(s['limit_ms'], 3), s['max_tenants'],
              'yes' if s['next_tenant_admitted'] else 'REFUSED')
             for s in result['shared_gpus']]))
        for s in result['shared_gpus']:
            parts.append('  %s: %s\n    next tenant: %s\n' % (
                s['address'], s['summary'], s['next_tenant']))
    if result['gpus']:
        parts.append('\nCandidate GPUs\n')
        parts.append(_table(
            ('GPU', 'kind', 'NUMA', 'socket', 'status', 'bind node',
             'binding', 'reason'),
            [(g['address'], g['kind'], _or(g['numa_node']),
              _or(g['socket']), g['status'], _or(g['node'], '-'),
              _or(g['binding'], '-'), g['reason'])
             for g in result['gpus']]))
    if result['render'] is not None:
        render = result['render']
        parts.append('\nRender node: %s\n' % (
            '%s (%s) on NUMA node %s: %s' % (
                render['name'], render['path'], _or(render['node'], '-'),
                render['reason']) if render['ok'] else
            'REFUSED: %s' % render['reason']))
    parts.append('\n')
    decision = result['decision']
    if result['placeable'] and decision is not None:
        where = ('NUMA node %d, binding %s' % (decision['node'],
                                               decision['binding'])
                 if decision['node'] is not None and decision['binding']
                 else 'NUMA node %s (not bound)' % decision['node']
                 if decision['node'] is not None else 'no NUMA binding')
        parts.append('Decision: PLACEABLE%s; %s%s\n' % (
            ' on GPU %s' % ', '.join(decision['gpus'])
            if decision['gpus'] else '', where,
            '' if decision['numa_local'] else ' (NOT NUMA-local)'))
        parts.append('  %s\n' % decision['reason'])
        if result.get('shared_choice'):
            parts.append('  %s\n' % result['shared_choice'])
    else:
        parts.append('Decision: REFUSED\n')
        parts.extend('  - %s\n' % r for r in result['reasons'])
    if result['warnings']:
        parts.append('\nDiscovery warnings (%d):\n' % len(result['warnings']))
        parts.extend('  ! %s\n' % w for w in result['warnings'])
    return ''.join(parts)
