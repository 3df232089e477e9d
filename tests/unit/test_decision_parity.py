"""One table of sharing cases that the scheduler filter, the compute's
admission and ``nova-gpu-ext explain`` all pass, case by case.

Each case is a host (a fake sysfs tree from a documented layout, PCI
addresses with hex letters), the tenants already on the physical GPU under
test, a flavor, options, and the expected verdict. The three callers are
run through their real code with only their fact sources faked:

* filter: ``GPUPlacementFilter.host_passes`` on a ``HostState``-like object
  whose stats carry the summary ``GPULibvirtDriver.gpu_host_summary``
  builds, placement's usage returning the tenants;
* compute: ``SharingClaims.admit`` with libvirt's view of the residents;
* explain: ``explain.explain`` with ``--tenants``.
"""

import dataclasses
import types

from nova.virt.libvirt import config as vconfig
import pytest

from nova_gpu_ext.cmd import explain
from nova_gpu_ext import conf as gpu_conf
from nova_gpu_ext.conf import sharing as sharing_conf
from nova_gpu_ext.topology import host_facts
from nova_gpu_ext.core import affinity
from nova_gpu_ext.core import decide
from nova_gpu_ext.core import spec as specs
from nova_gpu_ext.scheduler import filters
from nova_gpu_ext.sim import gpu_layouts
from nova_gpu_ext.sim import fake_sysfs
from nova_gpu_ext.virt import driver as gpu_driver
from nova_gpu_ext.virt import gpu_affinity
from nova_gpu_ext.virt import sharing_claim

CONF = gpu_conf.CONF


@pytest.fixture(autouse=True)
def _as_new_claim(monkeypatch):
    """Driver admission runs as in spawn, a new claim, where it refuses
    (in-place restarts only warn: virt/operations.py)."""
    from nova_gpu_ext.virt import operations
    monkeypatch.setattr(operations, 'current', lambda instance: (
        operations.NEW_CLAIM, 'spawn'))


# -- layouts (documented sysfs layouts, hex-letter addresses) ----------------

def mdev_host(root, tenants=0, total=4, created=0):
    """Time-sliced vGPU on the PF's mdevs (NVIDIA vGPU before Ampere, the
    layout of Nova's virtual-GPU guide): one Tesla T4 at 0000:3b:00.0
    offering ``total`` instances of nvidia-222. As the kernel shows it:
    one mdev per tenant (and ``created`` in all, the rest created and
    freed), ``available_instances`` what is left to create."""
    fs = fake_sysfs.FakeSysfs(root)
    fs.add_node(0, range(8), 65536, socket=0)
    fs.add_gpu('0000:3b:00.0', fake_sysfs.NVIDIA, 0x1eb8, 0, 'nvidia',
               iommu_group=30)
    created = max(created, tenants)
    fs.add_mdev_type('0000:3b:00.0', 'nvidia-222', 'GRID T4-4Q',
                     total - created)
    for i in range(created):
        fs.add_mdev('0000:3b:00.0', 'nvidia-222',
                    uuid='b%07d-0000-4000-8000-000000000000' % i)
    return fs


def mxgpu_host(root, tenants=0, vfs=8):
    """AMD MxGPU: a FirePro S7150 PF at 0000:af:00.0 with ``vfs`` VFs."""
    fs = fake_sysfs.FakeSysfs(root)
    fs.add_node(0, range(8), 65536, socket=0)
    fs.add_gpu('0000:af:00.0', fake_sysfs.AMD, 0x6929, 0, 'gim',
               iommu_group=20)
    fs.add_vfs('0000:af:00.0', vfs, totalvfs=16, vf_device=0x692f,
               first_iommu_group=100)
    return fs


def sriov_vgpu_host(root, tenants=0, vfs=4):
    """SR-IOV vGPU (NVIDIA Ampere and later, ``sriov-manage -e``): an A10
    PF at 0000:ca:00.0 whose VFs each offer one instance of the vGPU type
    (``/sys/bus/pci/devices/<VF>/mdev_supported_types/nvidia-593``); a VF
    whose mdev exists (one per tenant) has none available."""
    fs = fake_sysfs.FakeSysfs(root)
    fs.add_node(0, range(8), 65536, socket=0)
    fs.add_gpu('0000:ca:00.0', fake_sysfs.NVIDIA, 0x2236, 0, 'nvidia',
               iommu_group=50)
    for i, vf in enumerate(fs.add_vfs('0000:ca:00.0', vfs, totalvfs=32,
                                      driver='nvidia',
                                      first_iommu_group=150)):
        fs.add_mdev_type(vf, 'nvidia-593', 'NVIDIA A10-4Q',
                         0 if i < tenants else 1)
        if i < tenants:
            fs.add_mdev(vf, 'nvidia-593',
                        uuid='c%07d-0000-4000-8000-000000000000' % i)
    return fs


def layout_host(layout):
    """A host of :mod:`nova_gpu_ext.sim.gpu_layouts` (the functional
    tests' layouts), its first physical GPU holding ``tenants`` guests: an
    mdev each on its first parents (the VFs, or the PF itself), or VFs in
    guests' domains (PCI layouts, see :class:`FakeDriver`)."""
    pf = layout.gpus[0]

    def build(root, tenants=0):
        host = layout.host()
        host.write_sysfs(root)
        parents = ([pf.address] * tenants if pf.mdev_types
                   else pf.vf_addresses()[:tenants] if pf.vf_mdev_types
                   else [])
        types_ = pf.mdev_types or pf.vf_mdev_types
        for i, parent in enumerate(parents):
            host.mdev_created(parent, types_[0].name,
                              'e%07d-0000-4000-8000-000000000000' % i)
        # The other physical GPUs are full (see _other_gpus_full).
        n = len(parents)
        for other in layout.gpus[1:]:
            for parent in other.vf_addresses() if other.vf_mdev_types \
                    else ():
                host.mdev_created(parent, other.vf_mdev_types[0].name,
                                  'e%07d-0000-4000-8000-000000000000' % n)
                n += 1
        return host.sysfs

    build.__name__ = 'layout %s' % layout.name
    build.gpus = layout.gpus
    build.pci = not (pf.mdev_types or pf.vf_mdev_types)
    PHYSICAL[build] = pf.address
    return build


PHYSICAL = {mdev_host: '0000:3b:00.0', mxgpu_host: '0000:af:00.0',
            sriov_vgpu_host: '0000:ca:00.0'}
SIM_SRIOV = layout_host(gpu_layouts.SRIOV_VGPU)
SIM_MIG = layout_host(gpu_layouts.MIG_VGPU)
SIM_GVTG = layout_host(gpu_layouts.GVT_G)
SIM_VARIANT = layout_host(gpu_layouts.VFIO_VARIANT)
SIM_MXGPU = layout_host(gpu_layouts.AMD_MXGPU)


@dataclasses.dataclass
class Case:
    name: str
    layout: object
    tenants: int
    admitted: bool
    layout_args: dict = dataclasses.field(default_factory=dict)
    specs: dict = dataclasses.field(default_factory=dict)
    options: dict = dataclasses.field(default_factory=dict)   # group: opts
    reason: str = ''

    @property
    def kind(self):
        return 'vf' if self.layout is mxgpu_host or getattr(
            self.layout, 'pci', False) else 'vgpu'


SLOW = {'gpu_ext': {'timeout_margin': 0.75}}

CASES = [
    Case('mdev: room left', mdev_host, 3, True),
    Case('mdev: every instance in use', mdev_host, 4, False,
         reason='all 4 instance(s) of the type are in use'),
    Case('mdev: created and freed mdevs are free', mdev_host, 2, True,
         layout_args=dict(created=4)),
    Case('mdev: created and freed, one left', mdev_host, 3, True,
         layout_args=dict(created=4)),
    Case('mdev: past the time bound', mdev_host, 3, False,
         options=dict(SLOW, **{'gpu_sharing_nvidia-222': {
             'slice_ms': 500, 'switch_ms': 0}}),
         reason='4 tenants with 500 ms slices wait 2.0 s between turns, '
                'over the 1.5 s limit'),
    Case('mdev: min share cannot hold', mdev_host, 2, False,
         specs={'gpu:min_share_percent': '40'},
         reason='below the requested 40.0% minimum share'),
    Case('MxGPU VF: room left', mxgpu_host, 7, True),
    Case('MxGPU VF: every VF in use', mxgpu_host, 8, False,
         reason='all 8 instance(s) of the type are in use'),
    Case('MxGPU VF: bound read for the PF type', mxgpu_host, 3, False,
         options=dict(SLOW, **{'gpu_sharing_1002:6929': {
             'slice_ms': 500, 'switch_ms': 0}}),
         reason='over the 1.5 s limit'),
    Case('SR-IOV vGPU: bound per physical GPU', sriov_vgpu_host, 3, False,
         options=dict(SLOW, **{'gpu_sharing_nvidia-593': {
             'slice_ms': 500, 'switch_ms': 0}}),
         reason='over the 1.5 s limit'),
    Case('SR-IOV vGPU: a VF left', sriov_vgpu_host, 3, True),
    Case('SR-IOV vGPU: every VF in use', sriov_vgpu_host, 4, False,
         reason='all 4 instance(s) of the type are in use'),
    # The layouts of the functional tests (sim/gpu_layouts).
    Case('sim SR-IOV vGPU: a VF left', SIM_SRIOV, 7, True),
    Case('sim SR-IOV vGPU: every VF in use', SIM_SRIOV, 8, False,
         reason='all 8 instance(s) of the type are in use'),
    Case('sim SR-IOV vGPU: bound per physical GPU', SIM_SRIOV, 3, False,
         options=dict(SLOW, **{'gpu_sharing_nvidia-566': {
             'slice_ms': 500, 'switch_ms': 0}}),
         reason='4 tenants with 500 ms slices wait 2.0 s between turns, '
                'over the 1.5 s limit'),
    Case('sim MIG-backed vGPU: not time-sliced', SIM_MIG, 6, True,
         options=dict(SLOW, **{'gpu_sharing_nvidia-699': {
             'slice_ms': 500, 'switch_ms': 0}})),
    Case('sim MIG-backed vGPU: every instance in use', SIM_MIG, 7, False,
         reason='all 7 instance(s) of the type are in use'),
    Case('sim GVT-g: room left', SIM_GVTG, 1, True),
    Case('sim GVT-g: every instance in use', SIM_GVTG, 2, False,
         reason='all 2 instance(s) of the type are in use'),
    Case('sim GVT-g: past the time bound', SIM_GVTG, 1, False,
         options=dict(SLOW, **{'gpu_sharing_i915-GVTg_V5_4': {
             'slice_ms': 1000, 'switch_ms': 0}}),
         reason='2 tenants with 1000 ms slices wait 2.0 s between turns'),
    Case('sim VFIO variant VF: room left', SIM_VARIANT, 3, True),
    Case('sim VFIO variant VF: every VF in use', SIM_VARIANT, 4, False,
         reason='all 4 instance(s) of the type are in use'),
    Case('sim VFIO variant VF: bound read for the PF type', SIM_VARIANT, 3,
         False, options=dict(SLOW, **{'gpu_sharing_10de:26b9': {
             'slice_ms': 500, 'switch_ms': 0}}),
         reason='over the 1.5 s limit'),
    Case('sim MxGPU VF: bound read for the PF type', SIM_MXGPU, 3, False,
         options=dict(SLOW, **{'gpu_sharing_1002:6929': {
             'slice_ms': 500, 'switch_ms': 0}}),
         reason='over the 1.5 s limit'),
]


@pytest.fixture
def host(request, tmp_path):
    case = request.param
    case.layout(str(tmp_path), tenants=case.tenants, **case.layout_args)
    topology = host_facts.discover(str(tmp_path))
    sharing_conf.register_dynamic_opts(
        CONF, [g[len('gpu_sharing_'):] for g in case.options
               if g.startswith('gpu_sharing_')])
    for group, opts in case.options.items():
        for name, value in opts.items():
            CONF.set_override(name, value, group=group)
    yield case, topology
    CONF.reset()
    for group, opts in case.options.items():
        for name in opts:
            CONF.clear_override(name, group=group)


# -- the three callers -------------------------------------------------------

def _residents(case, topology):
    """[(instance uuid, device)]: mdevs on the parent (the VFs for SR-IOV
    vGPU), or VFs of the PF, one per resident tenant."""
    pf = topology.gpu(PHYSICAL[case.layout])
    if pf.mdev_types:
        parents = [pf] * case.tenants
    else:
        parents = [topology.gpu(v) for v in pf.vfs][:case.tenants]
    return [('resident-%d' % i, parent)
            for i, parent in enumerate(parents)]


class FakeDriver:
    """What the driver's admission and summary read from libvirt."""

    def __init__(self, case, topology):
        self.gpu_topology = topology
        self.case = case
        self.residents = _residents(case, topology)
        self.sharing_claims = sharing_claim.SharingClaims()
        self._gpu_provider_uuids = {
            str(g.address): 'rp-%s' % g.address for g in topology.gpus}
        self.render_nodes = gpu_affinity.RenderNodeTracker()
        self._host = types.SimpleNamespace(list_guests=self._guests)
        self.new_device = self._free_device()

    def _free_device(self):
        pf = self.gpu_topology.gpu(PHYSICAL[self.case.layout])
        if pf.mdev_types:
            return pf
        used = {str(p.address) for _u, p in self.residents}
        free = [v for v in pf.vfs if str(v) not in used]
        return self.gpu_topology.gpu(free[0] if free else pf.vfs[-1])

    def _get_all_assigned_mediated_devices(self, instance=None):
        if self.case.kind == 'vf':
            return {}
        return {'mdev-%d' % i: uuid
                for i, (uuid, _p) in enumerate(self.residents)}

    def _get_mediated_devices(self):
        return [{'uuid': 'mdev-%d' % i,
                 'parent': parent.address.libvirt_name}
                for i, (_u, parent) in enumerate(self.residents)] + [
            {'uuid': 'mdev-new',
             'parent': self.new_device.address.libvirt_name}]

    def _get_mediated_device_information(self, name):
        return {'parent': self.new_device.address.libvirt_name,
                'type': self.new_device.mdev_types[0].name}

    def _get_vgpu_type_per_pgpu(self, name):
        return None

    def _guests(self, only_running=False):
        if self.case.kind != 'vf':
            return []
        out = []
        for uuid, vf in self.residents:
            a = vf.address
            xml = ("<domain><devices><hostdev type='pci'><source><address "
                   "domain='0x%04x' bus='0x%02x' slot='0x%02x' "
                   "function='0x%x'/></source></hostdev></devices></domain>"
                   % (a.domain, a.bus, a.slot, a.function))
            out.append(types.SimpleNamespace(
                uuid=uuid, get_xml_desc=lambda xml=xml: xml))
        return out


def _flavor_specs(case):
    extra = dict(case.specs)
    if case.kind == 'vf':
        extra['pci_passthrough:alias'] = 'mxgpu:1'
    else:
        extra['resources:VGPU'] = '1'
    return extra


def filter_admits(case, topology, numa_topology=None):
    driver = FakeDriver(case, topology)
    summary = gpu_driver.GPULibvirtDriver.gpu_host_summary(driver, topology)
    entry = next(g for g in summary.gpus
                 if g.addr == PHYSICAL[case.layout])
    rp = (entry.vf_rps or [entry.rp])[0]
    host_state = types.SimpleNamespace(
        host='host1', stats={'gpu_ext': summary.to_stats()},
        numa_topology=None, cpu_allocation_ratio=1.0,
        allocation_candidates=[{'allocations': {rp: {'resources': {}}}}])
    flavor = types.SimpleNamespace(extra_specs=_flavor_specs(case), vcpus=1,
                                   memory_mb=1024)
    spec_obj = types.SimpleNamespace(flavor=flavor,
                                     numa_topology=numa_topology)
    flt = filters.GPUPlacementFilter()
    flt._usage = lambda rp_uuid, default: (
        case.tenants if rp_uuid == rp else 0)
    return flt.host_passes(host_state, spec_obj)


def compute_admits(case, topology):
    driver = FakeDriver(case, topology)
    dev = driver.new_device
    if case.kind == 'vf':
        device = vconfig.LibvirtConfigGuestHostdevPCI()
        a = dev.address
        device.domain, device.bus = '%04x' % a.domain, '%02x' % a.bus
        device.slot, device.function = '%02x' % a.slot, '%x' % a.function
    else:
        device = vconfig.LibvirtConfigGuestHostdevMDEV()
        device.uuid = '11111111-2222-4333-8444-555555555555'
    guest = types.SimpleNamespace(devices=[device])
    instance = types.SimpleNamespace(
        uuid='newcomer', flavor=types.SimpleNamespace(vcpus=1,
                                                      memory_mb=1024))
    request = specs.parse(_flavor_specs(case))
    try:
        driver.sharing_claims.admit(
            driver, guest, instance, request,
            lambda t: sharing_conf.profile_for(CONF, t), 'pack')
    except gpu_affinity.Refused as exc:
        return False, str(exc)
    return True, ''


def _other_gpus_full(case, topology):
    """``--tenants`` filling the layout's other physical GPUs (whose
    mdevs all exist, :func:`layout_host`): the filter and the compute are
    asked about the GPU under test only (its candidate, its device),
    explain about the whole host."""
    out = []
    for gpu in getattr(case.layout, 'gpus', ())[1:]:
        entry = host_facts.gpu_entry(topology, topology.gpu(gpu.address))
        facts = host_facts.gpu_facts(
            entry, 0, lambda t: sharing_conf.profile_for(CONF, t))
        out.append('%s=%d' % (gpu.address, decide.capacity(facts)))
    return out


def explain_admits(case, topology):
    args = types.SimpleNamespace(
        tenants=['%s=%d' % (PHYSICAL[case.layout], case.tenants)] +
        _other_gpus_full(case, topology),
        vcpus=1, memory_mb=1024, used_cpus=[], used_memory_mb=[],
        mdev_type=None, pci_kind=case.kind if case.kind == 'vf' else 'whole')
    extra = _flavor_specs(case)
    result = explain.explain(topology, extra, specs.parse(extra), args,
                             CONF)
    return result['placeable'], ' '.join(result['reasons'])


@pytest.mark.parametrize('host', CASES, indirect=True,
                         ids=[c.name for c in CASES])
def test_filter_compute_and_explain_agree(host, caplog):
    case, topology = host
    caplog.set_level('INFO')
    passed = filter_admits(case, topology)
    admitted, compute_reason = compute_admits(case, topology)
    placeable, explain_reason = explain_admits(case, topology)
    assert (passed, admitted, placeable) == (case.admitted,) * 3
    if not case.admitted:
        assert case.reason in caplog.text           # the scheduler log
        assert case.reason in compute_reason
        assert case.reason in explain_reason


def test_resident_min_share_holds_at_scheduler_and_compute(tmp_path):
    """A resident asked for 40 %: a third tenant would leave it a third."""
    case = Case('resident min share', mdev_host, 2, False)
    mdev_host(str(tmp_path), tenants=2)
    topology = host_facts.discover(str(tmp_path))
    driver = FakeDriver(case, topology)
    driver.sharing_claims._claims['resident-0'] = {'0000:3b:00.0': 1}
    driver.sharing_claims._min_shares['resident-0'] = 0.4
    summary = gpu_driver.GPULibvirtDriver.gpu_host_summary(driver, topology)
    assert summary.gpus[0].min_share == 0.4
    # compute
    device = vconfig.LibvirtConfigGuestHostdevMDEV()
    device.uuid = '11111111-2222-4333-8444-555555555555'
    with pytest.raises(gpu_affinity.Refused,
                       match='already on this GPU needs at least 40.0%'):
        driver.sharing_claims.admit(
            driver, types.SimpleNamespace(devices=[device]),
            types.SimpleNamespace(uuid='new', flavor=types.SimpleNamespace(
                vcpus=1, memory_mb=1024)),
            specs.parse({'resources:VGPU': '1'}),
            lambda t: sharing_conf.profile_for(CONF, t), 'pack')
    # scheduler: the same facts, from the published summary
    entry = summary.gpus[0]
    facts = host_facts.gpu_facts(
        entry, 2, lambda t: sharing_conf.profile_for(CONF, t),
        entry.min_share)
    decision = decide.decide(decide.DecisionRequest(
        needs=affinity.GuestNeeds(1, 1024, 'legacy')),
        decide.HostFacts(nodes=(), gpus=(facts,)))
    assert not decision.ok
    assert 'already on this GPU needs at least 40.0%' in ' '.join(
        decision.reasons)


def mig_vgpu_host(root, tenants=0):
    """MIG-backed vGPU (NVIDIA A100, vGPU for Compute): GPU instances of
    1 slice each, ``A100-1-5C``, one per VF (7 with the 1g.5gb layout)."""
    fs = fake_sysfs.FakeSysfs(root)
    fs.add_node(0, range(8), 65536, socket=0)
    fs.add_gpu('0000:b1:00.0', fake_sysfs.NVIDIA, 0x20b0, 0, 'nvidia',
               iommu_group=60)
    for i, vf in enumerate(fs.add_vfs('0000:b1:00.0', 7, totalvfs=16,
                                      driver='nvidia',
                                      first_iommu_group=160)):
        fs.add_mdev_type(vf, 'nvidia-699', 'NVIDIA A100-1-5C',
                         0 if i < tenants else 1)
        if i < tenants:
            fs.add_mdev(vf, 'nvidia-699',
                        uuid='d%07d-0000-4000-8000-000000000000' % i)
    return fs


@pytest.mark.parametrize('tenants,admitted', [(6, True), (7, False)])
def test_mig_backed_vgpu_is_bounded_by_instances_not_time(tmp_path,
                                                          tenants, admitted):
    # 500 ms "slices" would allow 3 time-sliced tenants; MIG-backed ones
    # run in parallel, so all 7 instances are usable.
    sharing_conf.register_dynamic_opts(CONF, ['nvidia-699'])
    CONF.set_override('slice_ms', 500, group='gpu_sharing_nvidia-699')
    try:
        mig_vgpu_host(str(tmp_path), tenants=tenants)
        topology = host_facts.discover(str(tmp_path))
        entry = host_facts.gpu_entry(topology, topology.gpu('0000:b1:00.0'))
        assert entry.mig_types == ('nvidia-699',)
        facts = host_facts.gpu_facts(
            entry, tenants, lambda t: sharing_conf.profile_for(CONF, t))
        assert not facts.time_sliced and decide.capacity(facts) == 7
        decision = decide.decide(decide.DecisionRequest(
            needs=affinity.GuestNeeds(1, 1024, 'legacy')),
            decide.HostFacts(nodes=(), gpus=(facts,)))
        assert decision.ok is admitted
        if not admitted:
            assert 'all 7 instance(s) of the type are in use' in \
                decision.reasons[0]
    finally:
        CONF.clear_override('slice_ms', group='gpu_sharing_nvidia-699')


def test_rescue_of_a_resident_never_counts_itself(tmp_path):
    """A full GPU (every instance in use): the rescue or rebuild of one of
    its guests is admitted, a newcomer is not; a failed build's claim is
    released."""
    case = Case('rescue', mdev_host, 4, False)
    mdev_host(str(tmp_path), tenants=4)
    topology = host_facts.discover(str(tmp_path))
    driver = FakeDriver(case, topology)
    device = vconfig.LibvirtConfigGuestHostdevMDEV()
    device.uuid = '11111111-2222-4333-8444-555555555555'
    guest = types.SimpleNamespace(devices=[device])

    def admit(uuid):
        return driver.sharing_claims.admit(
            driver, guest, types.SimpleNamespace(
                uuid=uuid, flavor=types.SimpleNamespace(vcpus=1,
                                                        memory_mb=1024)),
            specs.parse({'resources:VGPU': '1'}),
            lambda t: sharing_conf.profile_for(CONF, t), 'pack')

    assert admit('resident-1')              # rescue: itself not counted
    with pytest.raises(gpu_affinity.Refused, match='all 4 instance'):
        admit('newcomer')
    # A claim in flight counts until it is released.
    driver.residents = driver.residents[:3]
    assert admit('build-a')
    with pytest.raises(gpu_affinity.Refused):
        admit('build-b')
    driver.sharing_claims.release('build-a')
    assert admit('build-b')


@pytest.mark.parametrize('host', [c for c in CASES if not c.admitted],
                         indirect=True,
                         ids=[c.name for c in CASES if not c.admitted])
def test_sharing_admission_applies_to_numa_guests(host):
    """A guest with a NUMA topology (hw:numa_nodes) used to skip the
    filter's sharing admission; Nova places its cells, the bound holds."""
    case, topology = host
    assert not filter_admits(case, topology, numa_topology=object())
