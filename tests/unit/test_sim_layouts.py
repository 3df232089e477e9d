"""sim/gpu_layouts: fake libvirt and fake sysfs describe the same host, and
the Nova test code and internals the sim and the restart recovery rely on
(listed in doc/source/reference/nova-internals.rst, "Issue 11")."""

import inspect
import types

from lxml import etree
import pytest

from nova_gpu_ext.topology import host_facts
from nova_gpu_ext.sim import gpu_layouts
from nova_gpu_ext.virt import sharing_claim


def _libvirt_view(info):
    """{address: (physfn, vfs, {type: available})} from the node devices'
    XML, parsed by Nova's ``LibvirtConfigNodeDevice``."""
    from nova.virt.libvirt import config as vconfig
    out = {}
    for name, device in info.devices.items():
        cfg = vconfig.LibvirtConfigNodeDevice()
        cfg.parse_str(device.XMLDesc(0))
        cap = cfg.pci_capability
        address = '%04x:%02x:%02x.%x' % (
            cap.domain, cap.bus, cap.slot, cap.function)
        physfn, vfs = None, []
        for fun in cap.fun_capability:
            found = ['%04x:%02x:%02x.%x' % a for a in fun.device_addrs]
            if fun.type == 'phys_function':
                physfn = found[0]
            elif fun.type == 'virt_functions':
                vfs = found
        types_ = {t['type']: t['availableInstances']
                  for m in cap.mdev_capability for t in m.mdev_types}
        assert name == 'pci_' + address.replace(':', '_').replace('.', '_')
        assert device.is_capable_of_mdevs is bool(types_)
        out[address] = (physfn, vfs, types_)
    return out


def _sysfs_view(root):
    topology = host_facts.discover(root)
    return {str(g.address): (
        str(g.physfn) if g.physfn is not None else None,
        [str(v) for v in g.vfs],
        {t.name: t.available_instances for t in g.mdev_types})
        for g in topology.gpus}


@pytest.mark.parametrize('name', sorted(gpu_layouts.LAYOUTS))
def test_fake_libvirt_and_fake_sysfs_describe_the_same_host(name, tmp_path):
    host = gpu_layouts.LAYOUTS[name].host()
    info = host.pci_info()
    host.write_sysfs(str(tmp_path))
    assert _libvirt_view(info) == _sysfs_view(str(tmp_path))
    # Nova creates an mdev on the first parent: both views change alike.
    parent = next((f for f in host.functions.values() if f.mdev_types),
                  None)
    if parent is None:
        return
    host.mdev_created(parent.libvirt_name, parent.mdev_types[0].name,
                      '12345678-0000-4000-8000-000000000000')
    libvirt, sysfs = _libvirt_view(info), _sysfs_view(str(tmp_path))
    assert libvirt == sysfs
    before = parent.mdev_types[0].instances
    assert sysfs[parent.address][2][parent.mdev_types[0].name] == (
        0 if parent.physfn else before - 1)
    topology = host_facts.discover(str(tmp_path))
    assert [m.type_name for m in topology.gpu(parent.address).mdevs] == [
        parent.mdev_types[0].name]


def _numa_view(root):
    topology = host_facts.discover(root)
    return ({n.id: (n.socket, len(n.cpus)) for n in topology.numa_nodes},
            {str(g.address): g.numa_node for g in topology.gpus})


@pytest.mark.parametrize('host', ['sample', 'issue10', 'one-socket'])
def test_sample_and_numa_hosts_are_one_description_in_both_views(
        host, tmp_path):
    """The sample host and the NUMA hosts are gpu_layouts descriptions
    too: fakelibvirt's stock devices and the fake sysfs tree agree."""
    from nova_gpu_ext.sim import numa_host
    from nova_gpu_ext.sim import samplehost
    layout = {
        'sample': samplehost.layout(),
        'issue10': numa_host.ISSUE_10.layout(),
        'one-socket': numa_host.NumaHost(
            sockets=1, nodes_per_socket=2,
            gpus=samplehost.GPUS[:2]).layout(),
    }[host]
    assert isinstance(layout, gpu_layouts.Layout)
    info = layout.stock_pci_info()
    layout.host().write_sysfs(str(tmp_path))
    assert _libvirt_view(info) == _sysfs_view(str(tmp_path))
    nodes, gpu_nodes = _numa_view(str(tmp_path))
    assert nodes == {n: (layout.socket_of(n), layout.cpus_per_node)
                     for n in range(layout.nodes)}
    assert gpu_nodes == {g.address: g.numa_node for g in layout.gpus}
    if host == 'sample':    # hex-letter addresses, as on real hosts
        assert {'0000:3b:00.0', '0000:d8:00.0'} <= set(gpu_nodes)


def test_sriov_vgpu_layout_is_the_documented_one():
    layout = gpu_layouts.SRIOV_VGPU
    pf = layout.gpus[0]
    # NVIDIA Ampere: first VF at function 4 (sriov-manage -e), hex letters
    assert pf.vf_addresses() == [
        '0000:3b:00.4', '0000:3b:00.5', '0000:3b:00.6', '0000:3b:00.7',
        '0000:3b:01.0', '0000:3b:01.1', '0000:3b:01.2', '0000:3b:01.3']
    assert layout.gpus[1].address == '0000:af:00.0'
    assert all(t.instances == 1 for t in pf.vf_mdev_types)


def test_fakelibvirt_fake_pci_device_signature():
    """The sim subclasses fakelibvirt's FakePCIDevice and fills
    HostPCIDevicesInfo.devices itself."""
    from nova.tests.fixtures import libvirt as fakelibvirt
    params = inspect.signature(fakelibvirt.FakePCIDevice.__init__).parameters
    assert list(params)[:7] == ['self', 'dev_type', 'bus', 'slot',
                                'function', 'iommu_group', 'numa_node']
    for name in ('vf_ratio', 'parent', 'vend_id', 'vend_name', 'prod_id',
                 'prod_name', 'driver_name'):
        assert name in params
    template = fakelibvirt.FakePCIDevice.pci_device_template
    for key in ('bus', 'slot', 'function', 'vend_id', 'vend_name', 'prod_id',
                'prod_name', 'driver', 'capability', 'vpd_capability',
                'iommu_group', 'numa_node', 'parent'):
        assert '%%(%s)' % key in template
    info = fakelibvirt.HostPCIDevicesInfo(num_pci=0, num_pfs=0, num_vfs=0)
    assert info.devices == {}
    assert info.get_all_mdev_capable_devices() == []
    # listDevices('mdev_types') lists what is_capable_of_mdevs marks
    src = inspect.getsource(fakelibvirt.Connection.listDevices)
    assert 'get_all_mdev_capable_devices' in src


def test_vgpu_test_base_fakes_create_mdev():
    from nova.tests.functional.libvirt import test_vgpu
    assert list(inspect.signature(
        test_vgpu.VGPUTestBase._create_mdev).parameters) == [
        'self', 'dev_name', 'mdev_type', 'uuid']
    assert "'nova.virt.libvirt.driver.LibvirtDriver._create_mdev'" in \
        inspect.getsource(test_vgpu.VGPUTestBase.setUp)


def test_init_host_loads_instances_with_flavors():
    """SharingClaims.recover reads the flavors of the instances Nova hands
    process_instances_at_startup."""
    from nova.compute import manager
    src = inspect.getsource(manager.ComputeManager.init_host)
    assert "'flavor'" in src and 'expected_attrs' in src
    assert 'process_instances_at_startup' in src


class _Driver:
    """What recover reads: the topology and the defined domains' mdevs."""

    def __init__(self, topology, owners):
        self.gpu_topology = topology
        self._owners = owners           # mdev uuid -> (instance, parent)

    def _get_all_assigned_mediated_devices(self, instance=None):
        return {m: owner for m, (owner, _p) in self._owners.items()}

    def _get_mediated_devices(self):
        return [{'uuid': m, 'parent': p} for m, (_o, p) in
                self._owners.items()]


def _instance(uuid, specs, deleted=False):
    return types.SimpleNamespace(
        uuid=uuid, deleted=deleted,
        flavor=types.SimpleNamespace(extra_specs=specs))


def test_recover_residents_min_shares(tmp_path):
    host = gpu_layouts.SRIOV_VGPU.host()
    host.write_sysfs(str(tmp_path))
    topology = host_facts.discover(str(tmp_path))
    driver = _Driver(topology, {
        'm1': ('greedy', 'pci_0000_3b_00_4'),
        'm2': ('plain', 'pci_0000_3b_00_5'),
        'm3': ('gone', 'pci_0000_af_00_4')})
    claims = sharing_claim.SharingClaims()
    assert claims.recover(driver, [
        _instance('greedy', {'resources:VGPU': '1',
                             'gpu:min_share_percent': '40'}),
        _instance('plain', {'resources:VGPU': '1'}),
        _instance('gone', {'gpu:min_share_percent': '50'}, deleted=True),
        _instance('bad', {'gpu:min_share_percent': 'lots'}),
    ]) == 1
    # on the physical GPU (the VF's PF), counted once with its domain
    assert claims.resident_min_share('0000:3b:00.0') == 0.4
    assert claims.resident_min_share('0000:af:00.0') is None
    assert claims.in_use(driver, topology) == {'0000:3b:00.0': 2,
                                               '0000:af:00.0': 1}
    # a second call (another startup path) changes nothing
    assert claims.recover(driver, [_instance(
        'greedy', {'gpu:min_share_percent': '40'})]) == 0
    claims.release('greedy')
    assert claims.resident_min_share('0000:3b:00.0') is None


def test_layout_xml_is_libvirt_nodedev_xml():
    host = gpu_layouts.SRIOV_VGPU.host()
    xml = host.pci_info().devices['pci_0000_3b_00_4'].XMLDesc(0)
    root = etree.fromstring(xml.encode())
    caps = [c.get('type') for c in root.findall('./capability/capability')]
    assert caps == ['phys_function', 'mdev_types']


def test_recovery_failure_never_stops_the_compute_starting():
    class Broken:
        sharing_claims = sharing_claim.SharingClaims()

        @property
        def gpu_topology(self):
            raise RuntimeError('sysfs went away')

    instance = _instance('greedy', {'gpu:min_share_percent': '40'})
    assert sharing_claim.recover_at_startup(Broken(), [instance]) == 0
    assert sharing_claim.recover_at_startup(object(), [instance]) == 0
