"""``nova-gpu-ext explain``: where a flavor would go on one host, and why.

The package: this module (the command and the composition),
:mod:`.facts` (gathering facts), :mod:`.verdicts` (the core's answers as
rows), :mod:`.output` (the table, one section per function).

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
* :func:`nova_gpu_ext.core.affinity.choose_render_node`;
* :func:`nova_gpu_ext.core.inputs.resolve` (the NUMA rule of
  :mod:`nova_gpu_ext.core.numa`): the policy word and where it came from,
  the filter's, the claim's and the driver's resolver (``--image-property``
  and ``--port-policy`` stand for the image and the ports).

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

from nova_gpu_ext.cmd.explain.facts import PCI
from nova_gpu_ext.cmd.explain.facts import RENDER
from nova_gpu_ext.cmd.explain.facts import UsageError
from nova_gpu_ext.cmd.explain.facts import VGPU
from nova_gpu_ext.cmd import explain_address
from nova_gpu_ext.cmd.explain import facts as gather
from nova_gpu_ext.cmd.explain.output import render_table
from nova_gpu_ext.cmd.explain import verdicts
from nova_gpu_ext.cmd import host_source
from nova_gpu_ext.core import affinity
from nova_gpu_ext.core import inputs
from nova_gpu_ext.core import spec as specs

PLACEABLE = 0
REFUSED = 1
USAGE = 2

__all__ = ['PCI', 'RENDER', 'VGPU', 'UsageError', 'explain', 'load_conf',
           'register', 'render_table', 'run']


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
    explain_address.add_arguments(parser)
    parser.add_argument('--format', choices=('table', 'json'),
                        default='table')
    parser.set_defaults(func=run)


def run(args, out=None):
    out = out or sys.stdout
    try:
        conf = load_conf(args.config_file)
        extra_specs = gather.pairs(args.spec, '--spec', str)
        request = specs.parse(extra_specs)
        topology, source = host_source.discover_host(args)
        result = explain(topology, extra_specs, request, args, conf)
    except (UsageError, host_source.UnknownSample, specs.InvalidExtraSpec,
            cfg.Error) as exc:
        sys.stderr.write('nova-gpu-ext explain: %s\n' % exc)
        return USAGE
    result['host'] = source
    result['address_space'] = explain_address.explain(
        topology, result, extra_specs, args.memory_mb, args.firmware,
        args.machine)
    if result['address_space']['refused']:
        # GPUAddressSpaceFilter refuses such a host (same core plan)
        verdicts.refuse(result, 'Address space: %s' %
                        result['address_space']['refused'])
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
    tenants = gather.pairs(args.tenants, '--tenants', int)
    kind = _request_kind(request)
    # The filter's, the claim's and the driver's resolver (core.numa).
    image = gather.pairs(getattr(args, 'image_property', None) or [],
                         '--image-property', str)
    ports = gather.pairs(getattr(args, 'port_policy', None) or [],
                         '--port-policy', str)
    resolved = inputs.resolve(
        extra_specs, image, tuple(ports.items()),
        conf.gpu_ext.numa_affinity_policy, request=request)
    policy, policy_source = resolved.policy, resolved.policy_source
    strategy = request.placement or conf.gpu_ext.sharing_default_placement
    strategy_source = ('flavor gpu:placement' if request.placement else
                       '[gpu_ext] sharing_default_placement')
    min_share = request.min_share
    needs = affinity.GuestNeeds(args.vcpus, args.memory_mb, policy)
    node_usage = gather.domain_usage(args)
    nodes = gather.node_capacities(topology, args, node_usage)
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
        no_effect = specs.no_effect_keys(request, 0)
        if no_effect:
            # The compute says the same at INFO for such a build.
            result['reasons'].append(
                '%s can have no effect: the guest has no GPU device and no '
                'render node.' % ', '.join('%s=%s' % (k, extra_specs[k])
                                           for k in no_effect))
        return result

    chosen = None
    if kind == VGPU or (kind == PCI and args.pci_kind == 'vf'):
        result['request'].update(placement=strategy,
                                 placement_source=strategy_source,
                                 min_share=min_share)
        loads, type_name, profile_source = gather.shared_facts(
            topology, kind, args, tenants, conf)
        result['request'].update(device_type=type_name,
                                 sharing_profile_source=profile_source,
                                 count=_device_count(request, kind))
        chosen = verdicts.decide_shared(result, topology, needs, nodes,
                                        loads, strategy, min_share)
    elif kind == PCI:
        result['request'].update(device_type='whole GPU',
                                 count=_device_count(request, kind))
        chosen = verdicts.decide_whole(result, topology, needs, nodes,
                                       tenants, _device_count(request, kind))
    if request.wants_render_node:
        only_node = None
        if chosen is not None:
            only_node = chosen.node
        if kind == RENDER or chosen is not None:
            verdicts.decide_render(result, topology, needs, nodes, tenants,
                                   conf, only_node, kind == RENDER)
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
