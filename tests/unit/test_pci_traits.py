"""Pins the Nova internals nova_gpu_ext.virt.pci_traits relies on."""

import inspect

from nova.compute import pci_placement_translator as translator
from nova.compute import provider_tree

from nova_gpu_ext.topology import host_facts
from nova_gpu_ext.sim import sample_hosts
from nova_gpu_ext.topology import summary
from nova_gpu_ext.nova_glue import wraps
from nova_gpu_ext.virt import numa_claim
from nova_gpu_ext.virt import pci_traits


def test_translator_entry_point_and_provider_names():
    params = list(inspect.signature(
        translator.update_provider_tree_for_pci).parameters)
    assert params[:2] == ['provider_tree', 'nodename']
    view = translator.PlacementView('node1', [])
    # Nova names a PCI provider by the address in upper case.
    assert view._get_rp_name_for_address('0000:3b:00.0') == \
        'node1_0000:3B:00.0'


def test_translator_replaces_traits_and_we_add_ours_back(tmp_path):
    sample_hosts.nvidia_vgpu_mdev(str(tmp_path))
    host = host_facts.discover(str(tmp_path))
    tree = provider_tree.ProviderTree()
    tree.new_root('node1', 'root-uuid')
    tree.new_child('node1_0000:3D:00.0', 'node1', uuid='pci-uuid')
    tree.new_child('node1_pci_0000_3d_00_0', 'node1', uuid='pgpu-uuid')
    tree.add_traits('node1_pci_0000_3d_00_0', 'CUSTOM_GPU_A100',
                    'CUSTOM_GPU_NUMA_NODE_7')
    uuids = pci_traits.update_gpu_providers(tree, host, 'node1')
    assert uuids['0000:3d:00.0'] in ('pci-uuid', 'pgpu-uuid')
    # Ours replace our stale one; the operator's stays.
    assert tree.data('node1_pci_0000_3d_00_0').traits == {
        'CUSTOM_GPU_A100', 'CUSTOM_GPU_NUMA_NODE_0', 'CUSTOM_GPU_SOCKET_0'}
    # What the translator does to a PCI provider, then our wrapper.
    tree.update_traits('node1_0000:3D:00.0', ['COMPUTE_MANAGED_PCI_DEVICE'])
    pci_traits.reapply(tree, 'node1')
    assert tree.data('node1_0000:3D:00.0').traits == {
        'COMPUTE_MANAGED_PCI_DEVICE', 'CUSTOM_GPU_NUMA_NODE_0',
        'CUSTOM_GPU_SOCKET_0'}


def test_install_wraps_once():
    wraps.install_compute(pci_traits.reapply, numa_claim.test_numa_topology)
    first = translator.update_provider_tree_for_pci
    wraps.install_compute(pci_traits.reapply, numa_claim.test_numa_topology)
    assert translator.update_provider_tree_for_pci is first


def test_owned_traits():
    assert summary.is_owned_trait('CUSTOM_GPU_NUMA_NODE_3')
    assert summary.is_owned_trait('CUSTOM_GPU_SOCKET_0')
    assert summary.is_owned_trait('CUSTOM_GPU_NUMA_UNKNOWN')
    assert not summary.is_owned_trait('CUSTOM_GPU_A100')
    assert not summary.is_owned_trait('CUSTOM_GPU_EXT')


def test_libvirt_driver_vgpu_type_per_pgpu():
    # sharing_claim.nova_vgpu_type: the type Nova allocates on a parent.
    from nova.virt.libvirt import driver as libvirt_driver
    params = list(inspect.signature(
        libvirt_driver.LibvirtDriver._get_vgpu_type_per_pgpu).parameters)
    assert params == ['self', 'device_address']
