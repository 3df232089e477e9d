"""One table of NUMA cases that the scheduler filter, the compute claim
plan, the guest config and ``nova-gpu-ext explain`` all answer alike.

Each case is a GPU kind (mdev vGPU, SR-IOV VF from a PCI alias, whole GPU
from a PCI alias, whole GPU from a ``resources:CUSTOM_*`` class, render
node), one policy word from one source (the flavor's
``gpu:numa_affinity_policy``, the flavor's ``hw:pci_numa_affinity_policy``,
the image's ``hw_pci_numa_affinity_policy``, a port's
``numa_affinity_policy``), and a host with 1, 2 or 4 NUMA nodes (the GPU on
the last one, so that Nova's own first choice, node 0, is not the GPU's
node) or a host whose firmware reports no NUMA node for the GPU. Hosts are
fake sysfs trees of documented layouts (hex-letter PCI addresses); Nova's
side is Nova's objects (``NUMATopology``, ``InstancePCIRequest``, a real
``PciDeviceStats``).

Each adapter runs its real code with only its fact sources faked:

* filter: ``GPUPlacementFilter.host_passes`` on a ``HostState``-like object
  (the stats summary the driver publishes, Nova's NUMA topology and PCI
  stats), then the cells it recorded for Nova's consume;
* claim: ``numa_claim.plan`` and ``numa_claim.test_numa_topology`` (Nova's
  fit, steered) with the compute node's topology and the PCI tracker's
  stats;
* guest config: ``gpu_affinity.apply`` on a guest with the device, the
  instance carrying the cells the claim fitted;
* explain: ``explain.explain`` with the same facts.

All four must give the same policy word, the same verdict (placeable or
refused) and the same locality (the guest's cell or binding on the GPU's
node). What Nova itself does decides the expected answer: Nova applies
``hw:pci_numa_affinity_policy`` (``hardware.get_pci_numa_policy_constraint``)
only to its PCI requests (``pci_request.get_pci_requests_from_flavor``:
PCI aliases; ``neutron.create_resource_requests``: SR-IOV ports, whose own
``numa_affinity_policy`` wins), never to a ``resources:CUSTOM_*`` placement
class or to a vGPU; ``gpu:numa_affinity_policy`` only narrows it, and
tenant input (image, port) only narrows the flavor's bound.
"""

import dataclasses
import itertools
import json
import types

from nova import objects
from nova.pci import stats as pci_stats_mod
from nova.pci import whitelist
from nova.virt.libvirt import config as vconfig
import pytest

from nova_gpu_ext.cmd import explain
from nova_gpu_ext import conf as gpu_conf
from nova_gpu_ext.core import spec as specs
from nova_gpu_ext.scheduler import filters
from nova_gpu_ext.scheduler import numa_candidates
from nova_gpu_ext.scheduler import request as sched_request
from nova_gpu_ext.sim import fake_sysfs
from nova_gpu_ext.topology import host_facts
from nova_gpu_ext.virt import driver as gpu_driver
from nova_gpu_ext.virt import gpu_affinity
from nova_gpu_ext.virt import guest_config
from nova_gpu_ext.virt import numa_claim
from nova_gpu_ext.virt import sharing_claim
from tests.unit import test_numa_books

objects.register_all()
CONF = gpu_conf.CONF

KINDS = ('vgpu', 'vf', 'alias', 'custom', 'render')
SOURCES = ('gpu', 'hw', 'image', 'port')
WORDS = ('required', 'socket', 'preferred', 'legacy')
HOSTS = (1, 2, 4, 'unknown')
ORDER = {'legacy': 0, 'preferred': 1, 'socket': 2, 'required': 3}

CPUS, MEMORY = 4, 8192
VCPUS, GUEST_MB = 2, 2048

# Documented devices: a Tesla T4 (Nova's vGPU guide; 10de:1eb8), an AMD
# FirePro S7150 MxGPU PF and its VFs (1002:6929 / 692f), a Radeon render
# GPU (amdgpu, 1002:73bf), a ConnectX-5 VF for the SR-IOV port (15b3:1018).
T4 = '0000:3b:00.0'
MXGPU = '0000:af:00.0'
RADEON = '0000:c1:00.0'
NIC_VF = '0000:5e:00.2'
ALIASES = {'vf': ('mxgpu', '1002', '692f'), 'alias': ('t4', '10de', '1eb8')}


@dataclasses.dataclass(frozen=True)
class Case:
    kind: str
    source: str
    word: str
    nodes: object            # 1, 2, 4 or 'unknown'
    extra: tuple = ()         # more flavor extra specs

    @property
    def name(self):
        return '%s-%s=%s-%s%s' % (self.kind, self.source, self.word,
                                  self.nodes, ''.join(
                                      '-%s=%s' % kv for kv in self.extra))

    @property
    def node_count(self):
        return 2 if self.nodes == 'unknown' else self.nodes

    @property
    def gpu_node(self):
        return None if self.nodes == 'unknown' else self.node_count - 1

    def sockets(self):
        return {1: [0], 2: [0, 1], 4: [0, 0, 1, 1]}[self.node_count]

    def extra_specs(self):
        out = {'vgpu': {'resources:VGPU': '1'},
               'vf': {'pci_passthrough:alias': 'mxgpu:1'},
               'alias': {'pci_passthrough:alias': 't4:1'},
               'custom': {'resources:CUSTOM_GPU_T4': '1'},
               'render': {'gpu:render_node': 'numa-local'}}[self.kind]
        out = dict(out)
        if self.source == 'gpu':
            out['gpu:numa_affinity_policy'] = self.word
        elif self.source == 'hw':
            out['hw:pci_numa_affinity_policy'] = self.word
        out.update(dict(self.extra))
        return out

    def image_properties(self):
        if self.source == 'image':
            return {'hw_pci_numa_affinity_policy': self.word}
        return {}


def expected(case):
    """(policy, placeable, local): what Nova's rule and ours say."""
    extra = case.extra_specs()
    pci = case.kind in ('vf', 'alias')
    bound = [extra.get('gpu:numa_affinity_policy')]
    if pci:
        # Nova applies hw:pci_numa_affinity_policy to PCI-alias devices
        # only; ours narrows it, never widens it.
        bound.append(extra.get('hw:pci_numa_affinity_policy'))
    bound = [w for w in bound if w]
    policy = max(bound, key=ORDER.get) if bound else 'preferred'
    if case.source in ('image', 'port') and \
            ORDER[case.word] > ORDER[policy]:
        policy = case.word
    if policy == 'legacy':
        return policy, True, False
    if case.gpu_node is None:
        return policy, policy == 'preferred', False
    return policy, True, True


CASES = [Case(k, s, w, h) for k, s, w, h in
         itertools.product(KINDS, SOURCES, WORDS, HOSTS)] + [
    # Two words: gpu: may narrow Nova's PCI policy, never widen it.
    Case('alias', 'hw', 'required', 'unknown',
         (('gpu:numa_affinity_policy', 'preferred'),)),
    Case('vf', 'hw', 'socket', 'unknown',
         (('gpu:numa_affinity_policy', 'legacy'),)),
    Case('alias', 'hw', 'preferred', 'unknown',
         (('gpu:numa_affinity_policy', 'required'),)),
    Case('custom', 'hw', 'required', 'unknown',
         (('gpu:numa_affinity_policy', 'preferred'),)),
]
#: The case of issue 23: explain said "binding strict" while the filter and
#: the driver resolved "preferred".
ISSUE_23 = Case('custom', 'hw', 'required', 2)
assert ISSUE_23 in CASES


# -- the host -----------------------------------------------------------------

def build_host(case, root):
    fs = fake_sysfs.FakeSysfs(root)
    for node, socket in enumerate(case.sockets()):
        fs.add_node(node, range(node * CPUS, (node + 1) * CPUS), MEMORY,
                    socket=socket)
    node = -1 if case.gpu_node is None else case.gpu_node
    if case.kind == 'vgpu':
        fs.add_gpu(T4, fake_sysfs.NVIDIA, 0x1eb8, node, 'nvidia',
                   iommu_group=30)
        fs.add_mdev_type(T4, 'nvidia-222', 'GRID T4-4Q', 4)
    elif case.kind == 'vf':
        fs.add_gpu(MXGPU, fake_sysfs.AMD, 0x6929, node, 'gim',
                   iommu_group=20)
        fs.add_vfs(MXGPU, 4, totalvfs=16, vf_device=0x692f,
                   first_iommu_group=100)
    elif case.kind in ('alias', 'custom'):
        fs.add_gpu(T4, fake_sysfs.NVIDIA, 0x1eb8, node, 'vfio-pci',
                   iommu_group=30)
    else:
        fs.add_gpu(RADEON, fake_sysfs.AMD, 0x73bf, node, 'amdgpu',
                   iommu_group=40, render=True)
    return host_facts.discover(root)


def device_address(case, topology):
    if case.kind == 'vf':
        return str(topology.gpu(MXGPU).vfs[0])
    return {'vgpu': T4, 'alias': T4, 'custom': T4}.get(case.kind)


def nova_host(case, used=None):
    return test_numa_books.host(case.node_count, CPUS, MEMORY, used,
                                case.sockets())


def pci_requests(case):
    """The guest's InstancePCIRequests as Nova's API builds them."""
    requests = []
    extra = case.extra_specs()
    nova_word = extra.get('hw:pci_numa_affinity_policy') or \
        case.image_properties().get('hw_pci_numa_affinity_policy')
    if case.kind in ALIASES:
        name, vendor, product = ALIASES[case.kind]
        requests.append(objects.InstancePCIRequest(
            count=1, spec=[{'vendor_id': vendor, 'product_id': product}],
            alias_name=name, numa_policy=nova_word or 'legacy',
            request_id=None))
    if case.source == 'port':
        requests.append(objects.InstancePCIRequest(
            count=1, spec=[{'vendor_id': '15b3', 'product_id': '1018'}],
            alias_name=None, requester_id='port-1', numa_policy=case.word,
            request_id=None))
    return objects.InstancePCIRequests(requests=requests)


def pci_stats(case, topology, host):
    """Nova's PciDeviceStats of the host: the GPU functions a PCI alias
    may get and the port's NIC VF, on the GPU's node."""
    specs_ = [{'vendor_id': '15b3', 'product_id': '1018'}]
    devices = [(NIC_VF, '15b3', '1018', 'type-VF', '0000:5e:00.0')]
    if case.kind in ALIASES:
        _name, vendor, product = ALIASES[case.kind]
        specs_.append({'vendor_id': vendor, 'product_id': product})
        if case.kind == 'vf':
            devices += [(str(v), vendor, product, 'type-VF', MXGPU)
                        for v in topology.gpu(MXGPU).vfs]
        else:
            devices.append((T4, vendor, product, 'type-PCI', None))
    stats = pci_stats_mod.PciDeviceStats(host, dev_filter=whitelist.Whitelist(
        [json.dumps(s) for s in specs_]))
    for address, vendor, product, dev_type, parent in devices:
        stats.add_device(objects.PciDevice(
            compute_node_id=1, address=address, vendor_id=vendor,
            product_id=product, numa_node=case.gpu_node, dev_type=dev_type,
            status='available', parent_addr=parent,
            dev_id='pci_' + address.replace(':', '_').replace('.', '_'),
            label='label_%s_%s' % (vendor, product), extra_info={}))
    return stats


class FakeDriver:
    """What the adapters read from the driver besides the topology."""

    def __init__(self, case, topology):
        self.case = case
        self._gpu_host_topology = topology
        self._gpu_provider_uuids = {str(g.address): 'rp-%s' % g.address
                                    for g in topology.gpus}
        self._sharing_claims = sharing_claim.SharingClaims()
        self._render_nodes = gpu_affinity.RenderNodeTracker()
        self._host = types.SimpleNamespace(
            list_guests=lambda only_running=False: [])
        self._dev_root = None

    def _get_all_assigned_mediated_devices(self, instance=None):
        return {}

    def _get_mediated_devices(self):
        return []

    def _get_mediated_device_information(self, name):
        return {'parent': self._gpu_host_topology.gpu(T4).address.libvirt_name,
                'type': 'nvidia-222'}

    def _get_vgpu_type_per_pgpu(self, name):
        return None


@pytest.fixture(autouse=True)
def _as_new_claim(monkeypatch):
    from nova_gpu_ext.virt import domcaps
    from nova_gpu_ext.virt import operations
    monkeypatch.setattr(operations, 'current', lambda instance: (
        operations.NEW_CLAIM, 'spawn'))
    monkeypatch.setattr(domcaps, 'device_exists', lambda driver, path: True)


@dataclasses.dataclass
class Facts:
    case: Case
    topology: object
    driver: FakeDriver
    flavor: object
    image: object
    pci: object
    host: object
    stats: object

    @property
    def request(self):
        return specs.parse(self.flavor.extra_specs)


@pytest.fixture
def facts(request, tmp_path):
    case = request.param
    topology = build_host(case, str(tmp_path))
    host = nova_host(case)
    return Facts(
        case, topology, FakeDriver(case, topology),
        objects.Flavor(vcpus=VCPUS, memory_mb=GUEST_MB,
                       extra_specs=case.extra_specs()),
        objects.ImageMeta.from_dict(
            {'properties': case.image_properties()}),
        pci_requests(case), host, pci_stats(case, topology, host))


# -- the four adapters -------------------------------------------------------

def _local(node, case):
    return node is not None and node == case.gpu_node


def gpu_allocation(case):
    """The placement allocation of the GPU: a VGPU of the T4's provider,
    or (PCI in placement, a device spec with ``resource_class:
    CUSTOM_GPU_T4``) the whole T4's own provider."""
    if case.kind == 'vgpu':
        return {'rp-%s' % T4: {'resources': {'VGPU': 1}}}
    if case.kind == 'custom':
        return {'rp-%s' % T4: {'resources': {'CUSTOM_GPU_T4': 1}}}
    return {}


def run_filter(f):
    summary = gpu_driver.GPULibvirtDriver._gpu_host_summary(
        f.driver, f.topology)
    allocations = {'compute-rp': {'resources': {'VCPU': VCPUS}}}
    allocations.update(gpu_allocation(f.case))
    host_state = types.SimpleNamespace(
        host='host1', stats={'gpu_ext': summary.to_stats()},
        numa_topology=f.host, cpu_allocation_ratio=1.0,
        ram_allocation_ratio=1.0, pci_stats=f.stats, limits={},
        allocation_candidates=[{'allocations': allocations,
                                'mappings': {}}])
    spec_obj = types.SimpleNamespace(
        flavor=f.flavor, image=f.image, pci_requests=f.pci,
        numa_topology=None, instance_uuid='guest-1')
    flt = filters.GPUPlacementFilter()
    flt._usage = lambda rp_uuid, default: 0
    passed = flt.host_passes(host_state, spec_obj)
    policy = sched_request.resolved(
        spec_obj, f.request, CONF.gpu_ext.numa_affinity_policy).policy
    node = None
    fitted = numa_candidates.fitted_for(host_state, spec_obj) \
        if passed else None
    if fitted and fitted[0] is not None:
        node = fitted[0].cells[0].id
    return policy, passed, _local(node, f.case)


class _ComputeNode(dict):
    def __getattr__(self, name):
        return self[name]


def run_claim(f):
    """(policy, placeable, local, fitted cells) of the compute claim."""
    instance = types.SimpleNamespace(
        flavor=f.flavor, uuid='guest-1', image_meta=f.image,
        pci_requests=f.pci)
    claim = types.SimpleNamespace(
        instance=instance, flavor=f.flavor, image_meta=f.image,
        numa_topology=None, _pci_requests=f.pci, context=None,
        claimed_numa_topology=None,
        tracker=types.SimpleNamespace(
            reportclient=types.SimpleNamespace(
                get_allocations_for_consumer=lambda c, u: gpu_allocation(
                    f.case)),
            pci_tracker=types.SimpleNamespace(stats=f.stats)))
    plan = numa_claim.plan(f.driver, claim)
    if plan is None:
        # upstream's claim: Nova's own rule, no cell for a guest without
        # a topology
        return numa_claim.claim_policy(f.driver, claim), True, False, None
    node = _ComputeNode(numa_topology=f.host._to_json(),
                        cpu_allocation_ratio=1.0, ram_allocation_ratio=1.0)
    error = numa_claim.test_numa_topology(claim, node, None, plan)
    fitted = claim.claimed_numa_topology
    cell = fitted.cells[0].id if fitted else None
    return plan.policy, error is None, _local(cell, f.case), fitted


def guest_device(f):
    if f.case.kind == 'render':
        return None
    if f.case.kind == 'vgpu':
        dev = vconfig.LibvirtConfigGuestHostdevMDEV()
        dev.uuid = '11111111-2222-4333-8444-555555555555'
        return dev
    address = f.topology.gpu(device_address(f.case, f.topology)).address
    dev = vconfig.LibvirtConfigGuestHostdevPCI()
    dev.domain, dev.bus = '%04x' % address.domain, '%02x' % address.bus
    dev.slot, dev.function = '%02x' % address.slot, '%x' % address.function
    return dev


def run_guest_config(f, fitted):
    guest = vconfig.LibvirtConfigGuest()
    guest.cpuset = None
    device = guest_device(f)
    if device is not None:
        guest.add_device(device)
    instance = types.SimpleNamespace(
        uuid='guest-1', flavor=f.flavor, numa_topology=fitted,
        pci_requests=f.pci, image_meta=f.image)
    request = f.request
    policy = guest_config.gpu_inputs(instance, request, f.image).policy
    try:
        gpu_affinity.apply(f.driver, guest, instance, request, f.topology,
                           policy, f.driver._render_nodes, 0)
    except gpu_affinity.Refused:
        return policy, False, False
    if fitted is not None:
        node = fitted.cells[0].id
    elif guest.numatune is not None:
        node = guest.numatune.memory.nodeset[0]
    else:
        node = None
    return policy, True, _local(node, f.case)


def run_explain(f):
    args = types.SimpleNamespace(
        tenants=[], vcpus=VCPUS, memory_mb=GUEST_MB, used_cpus=[],
        used_memory_mb=[], domain_xml=[], mdev_type=None,
        pci_kind='vf' if f.case.kind == 'vf' else 'whole',
        image_property=['%s=%s' % kv
                        for kv in f.case.image_properties().items()],
        port_policy=(['port-1=%s' % f.case.word]
                     if f.case.source == 'port' else []))
    result = explain.explain(f.topology, f.case.extra_specs(), f.request,
                             args, CONF)
    decision = result['decision'] or {}
    node = decision.get('node') if decision.get('binding') else None
    return (result['request']['numa_affinity_policy'], result['placeable'],
            _local(node, f.case))


@pytest.mark.parametrize('facts', CASES, indirect=True,
                         ids=[c.name for c in CASES])
def test_filter_claim_guest_config_and_explain_agree(facts):
    case = facts.case
    want = expected(case)
    policy, placeable, local, fitted = run_claim(facts)
    got = {
        'filter': run_filter(facts),
        'claim': (policy, placeable, local),
        'guest config': run_guest_config(facts, fitted) if placeable
        else (policy, False, False),
        'explain': run_explain(facts),
    }
    assert got == dict.fromkeys(got, want), case.name


def test_custom_class_ignores_novas_pci_policy_in_explain(tmp_path):
    """Issue 23: ``resources:CUSTOM_GPU_T4=1
    hw:pci_numa_affinity_policy=required``. Nova applies its PCI policy to
    PCI requests only (aliases, ports), so the filter and the driver
    resolve ``preferred``; explain said ``binding strict``."""
    topology = build_host(ISSUE_23, str(tmp_path))
    extra = ISSUE_23.extra_specs()
    args = types.SimpleNamespace(
        tenants=[], vcpus=VCPUS, memory_mb=GUEST_MB, used_cpus=[],
        used_memory_mb=[], domain_xml=[], mdev_type=None, pci_kind='whole',
        image_property=[], port_policy=[])
    result = explain.explain(topology, extra, specs.parse(extra), args, CONF)
    assert result['request']['numa_affinity_policy'] == 'preferred'
    assert result['decision']['binding'] == 'preferred'
    assert 'hw:pci_numa_affinity_policy' in ' '.join(
        result['request']['numa_affinity_policy_notes'])
