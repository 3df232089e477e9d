"""``nova-gpu-ext explain``: the core's decisions, as rows of the result.

Layer rule: adapter (CLI). Each function hands the gathered facts to the
core the scheduler filter and the driver call (:func:`decide.decide` for
shared GPUs, :func:`affinity.rank` for whole GPUs,
:func:`affinity.choose_render_node`, the NUMA rule of
:mod:`nova_gpu_ext.core.numa`) and records what it said; no rule of its
own.
"""

import dataclasses

from nova_gpu_ext.cmd.explain.facts import VGPU
from nova_gpu_ext.core import affinity
from nova_gpu_ext.core import numa
from nova_gpu_ext.core import packing
from nova_gpu_ext.core import sharing
from nova_gpu_ext import model


def decide_shared(result, topology, needs, nodes, facts, strategy,
                  min_share):
    from nova_gpu_ext.core import decide
    if not facts:
        return refuse(result, 'No physical GPU on this host offers %s.' % (
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
        return refuse(result, *_reasons(rows))
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


def decide_whole(result, topology, needs, nodes, tenants, count):
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
        return refuse(result, 'No whole GPU on this host (PCI '
                      'passthrough candidates: GPUs without VFs or mdev '
                      'types).')
    if not accepted:
        return refuse(result, *_reasons(rows))
    chosen = accepted[0]
    # A guest with several GPUs is placed by its first; under a strict
    # binding the others must be on the same node (affinity's rule).
    group = [chosen] + [c for c in accepted[1:]
                        if not numa.every_gpu_on_one_node(needs.policy) or
                        c.gpu.numa_node == chosen.gpu.numa_node]
    if len(group) < count:
        return refuse(result, 'The flavor needs %d whole GPUs; %d are '
                      'accepted%s.' % (
                          count, len(group),
                          ' on NUMA node %s' % chosen.node
                          if numa.every_gpu_on_one_node(needs.policy)
                          else ''))
    for c in group[:count]:
        rows[c.gpu.address]['status'] = 'chosen'
    _record(result, chosen, [c.gpu.address for c in group[:count]])
    return chosen


def decide_render(result, topology, needs, nodes, tenants, conf, only_node,
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
        refuse(result, 'Render node: %s.' % choice.reason)
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


def refuse(result, *reasons):
    result['placeable'] = False
    result['reasons'].extend(reasons)
    return None
