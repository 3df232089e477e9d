"""``nova-gpu-ext explain``: the result as a table, one section at a time.

Layer rule: adapter (CLI), output only. :data:`SECTIONS` lists the
functions that each render one part of the result (``(result) -> str``),
in order; a new part of the explanation (the address space of large-BAR
GPUs, a "key has no effect" line) is one more function in that list.
"""

from nova_gpu_ext.cmd.explain.facts import PCI
from nova_gpu_ext.cmd import explain_address
from nova_gpu_ext.cmd.explain.facts import RENDER
from nova_gpu_ext.cmd.explain.facts import VGPU
from nova_gpu_ext.core import sharing


def _table(headers, rows):
    from nova_gpu_ext.cmd import inspect
    return inspect._table(headers, rows)


def _or(value, unknown='?'):
    return unknown if value is None else value


def _pct(fraction):
    return sharing.format_percent(fraction)


def render_table(result):
    """The whole explanation: the header, then every section that has
    something to say."""
    parts = [_header(result)]
    sections = SECTIONS if result['request']['kind'] is not None else \
        SECTIONS[-1:]
    parts.extend(section(result) for section in sections)
    return ''.join(parts)


def _header(result):
    req = result['request']
    parts = ['Host: %s\n' % result['host']]
    specs_text = ' '.join('%s=%s' % kv
                          for kv in sorted(req['extra_specs'].items()))
    parts.append('Flavor: %d vCPUs, %d MiB; %s\n' % (
        req['vcpus'], req['memory_mb'], specs_text or 'no extra specs'))
    if req['kind'] is None:
        parts.append('\n%s\n' % ' '.join(result['reasons']))
    return ''.join(parts)


def _request(result):
    req = result['request']
    what = {VGPU: 'vGPU (mdev)', RENDER: 'render node only',
            PCI: 'PCI device'}[req['kind']]
    if 'device_type' in req:
        what += ' x%d, type %s' % (req['count'], _or(req['device_type']))
    parts = ['Asks for: %s; NUMA policy %s (%s)\n' % (
        what, req['numa_affinity_policy'],
        req['numa_affinity_policy_source'])]
    notes = req.get('numa_affinity_policy_notes', ())
    parts.extend('  %s\n' % n for n in notes)
    if 'placement' in req:
        parts.append('Shared GPU: %s (%s), minimum share %s, sharing '
                     'parameters from %s\n' % (
                         req['placement'], req['placement_source'],
                         _pct(req['min_share']) if req['min_share']
                         else 'none', _or(req.get('sharing_profile_source'),
                                          '-')))
    return ''.join(parts)


def _nodes(result):
    parts = ['\nNUMA nodes\n', _table(
        ('node', 'socket', 'CPUs free/total', 'memory MiB free/total'),
        [(n['id'], _or(n['socket']),
          '%g/%d' % (n['free_cpus'], n['total_cpus']),
          '%d/%d' % (n['free_memory_mb'], n['total_memory_mb']))
         for n in result['nodes']])]
    if result.get('node_usage'):
        parts.append('\nCommitted per NUMA node by the guests\' domain XML '
                     '(cells: in Nova\'s books; bound: old-style binding)\n')
        parts.append(_table(
            ('node', 'guests', 'cells MiB/vCPUs', 'bound MiB/vCPUs'),
            [(node, row['guests'],
              '%d/%d' % (row['cells_mb'], row['cells_vcpus']),
              '%d/%d' % (row['bound_mb'], row['bound_vcpus']))
             for node, row in sorted(result['node_usage'].items())]))
    return ''.join(parts)


def _shared(result):
    if not result['shared_gpus']:
        return ''
    parts = ['\nShared physical GPUs (time-sliced)\n', _table(
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
         for s in result['shared_gpus']])]
    for s in result['shared_gpus']:
        parts.append('  %s: %s\n    next tenant: %s\n' % (
            s['address'], s['summary'], s['next_tenant']))
    return ''.join(parts)


def _gpus(result):
    if not result['gpus']:
        return ''
    return '\nCandidate GPUs\n' + _table(
        ('GPU', 'kind', 'NUMA', 'socket', 'status', 'bind node',
         'binding', 'reason'),
        [(g['address'], g['kind'], _or(g['numa_node']),
          _or(g['socket']), g['status'], _or(g['node'], '-'),
          _or(g['binding'], '-'), g['reason'])
         for g in result['gpus']])


def _render(result):
    render = result['render']
    if render is None:
        return ''
    return '\nRender node: %s\n' % (
        '%s (%s) on NUMA node %s: %s' % (
            render['name'], render['path'], _or(render['node'], '-'),
            render['reason']) if render['ok'] else
        'REFUSED: %s' % render['reason'])


def _decision(result):
    parts = ['\n']
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
    return ''.join(parts)


def _warnings(result):
    if not result['warnings']:
        return ''
    return ''.join(['\nDiscovery warnings (%d):\n' % len(result['warnings'])] +
                   ['  ! %s\n' % w for w in result['warnings']])


def _address_space(result):
    return explain_address.render(result.get('address_space'))


#: the sections after the header, in order (see the module docstring)
SECTIONS = [_request, _nodes, _shared, _gpus, _render, _decision, _warnings,
            _address_space]
