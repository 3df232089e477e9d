"""prealloc_threads and hugepages on guests as upstream builds them."""

from nova.virt.libvirt import config as vconfig
import pytest

from nova_gpu_ext import model
from nova_gpu_ext.virt.tweaks import memory
from tests.unit import test_tweaks_common as common

PREALLOC = memory.PreallocThreads()
HUGEPAGES = memory.HugePages()


def _allocation(guest):
    return common.to_tree(guest).find('memoryBacking/allocation')


@pytest.mark.parametrize('numa,cap,threads,why', [
    ([0], 16, 6, 'node 0 has 6 CPUs, cap 16'),
    ([0, 1], 16, 12, 'nodes 0,1 have 12 CPUs, cap 16'),
    ([0, 1], 8, 8, 'nodes 0,1 have 12 CPUs, cap 8'),
])
def test_threads_follow_the_guest_numa_nodes(numa, cap, threads, why):
    guest = common.upstream_guest(numa=numa)
    ctx = common.context(settings={'prealloc_max_threads': cap})
    lines = PREALLOC.apply(guest, ctx)
    assert lines == ['memoryBacking: allocation immediate, %d threads (%s)'
                     % (threads, why)]
    assert _allocation(guest).attrib == {'mode': 'immediate',
                                         'threads': str(threads)}


def test_threads_from_cpuset_of_a_guest_without_numa():
    guest = common.upstream_guest(cpuset={0, 1, 2, 3})
    lines = PREALLOC.apply(guest, common.context())
    assert 'the guest runs on 4 host CPUs' in lines[0]
    assert _allocation(guest).get('threads') == '4'


def test_threads_from_all_host_cpus_then_the_fallback():
    guest = common.upstream_guest()
    PREALLOC.apply(guest, common.context())
    assert _allocation(guest).get('threads') == '12'
    # A host whose topology has no NUMA nodes: the count the driver passes.
    empty = model.HostTopology(numa_nodes=(), gpus=())
    guest = common.upstream_guest(numa=[0])
    lines = PREALLOC.apply(guest, common.context(
        host=empty, settings={'host_cpu_count': 3}))
    assert lines == ['memoryBacking: allocation immediate, 3 threads (the '
                     'host has 3 CPUs, cap 16)']


def test_one_thread_changes_nothing():
    guest = common.upstream_guest(numa=[0])
    xml = guest.to_xml()
    assert PREALLOC.apply(guest, common.context(
        settings={'prealloc_max_threads': 1})) == []
    assert guest.to_xml() == xml


def test_keeps_upstream_hugepages_and_locked_memory():
    backing = vconfig.LibvirtConfigGuestMemoryBacking()
    page = vconfig.LibvirtConfigGuestMemoryBackingPage()
    page.size_kb = 2048
    page.nodeset = [0]
    backing.hugepages = [page]
    backing.locked = True
    guest = common.upstream_guest(numa=[0], membacking=backing)
    PREALLOC.apply(guest, common.context())
    tree = common.to_tree(guest).find('memoryBacking')
    assert [c.tag for c in tree] == ['hugepages', 'locked', 'allocation']
    assert tree.find('hugepages/page').attrib == {
        'size': '2048', 'nodeset': '0', 'unit': 'KiB'}
    assert guest.membacking is backing


def test_idempotent_and_schema_valid():
    guest = common.upstream_guest(numa=[1])
    ctx = common.context()
    assert PREALLOC.apply(guest, ctx)
    xml = guest.to_xml()
    assert PREALLOC.apply(guest, ctx) == []
    assert guest.to_xml() == xml
    common.validate_schema(xml)


def test_version_gate_names_the_versions():
    assert PREALLOC.supported(common.context(libvirt_version=8001000)) == \
        'libvirt 8.1.0 < 8.2.0'
    assert PREALLOC.supported(common.context(qemu_version=4002000)) == \
        'QEMU 4.2.0 < 5.0.0'
    assert PREALLOC.supported(common.context(libvirt_version=8002000)) is None


# -- hugepages --------------------------------------------------------------

def test_hugepages_is_not_a_default():
    assert HUGEPAGES.default_for_gpu_guests is False


def test_hugepages_per_cell_on_its_host_node():
    guest = common.upstream_guest(numa=[0, 1], memory_mb=4096)
    lines = HUGEPAGES.apply(guest, common.context())
    pages = common.to_tree(guest).findall('memoryBacking/hugepages/page')
    assert [p.attrib for p in pages] == [
        {'size': '1048576', 'nodeset': '0', 'unit': 'KiB'},
        {'size': '1048576', 'nodeset': '1', 'unit': 'KiB'}]
    assert lines[0] == ('memoryBacking: 1048576 KiB huge pages for 2048 MiB '
                        'of guest cell 0 on host node 0 (2 of 8 free pages)')
    assert HUGEPAGES.apply(guest, common.context()) == []
    common.validate_schema(guest.to_xml())


def test_hugepages_falls_back_to_a_size_that_fits():
    # 1 GiB pages: only 1 free on the node; 2 MiB pages: plenty.
    host = common.host_topology(hugepages=((2048, 4096), (1048576, 1)))
    guest = common.upstream_guest(numa=[0], memory_mb=3072)
    HUGEPAGES.apply(guest, common.context(host=host))
    page = common.to_tree(guest).find('memoryBacking/hugepages/page')
    assert page.get('size') == '2048'


def test_hugepages_without_numa_use_all_nodes_and_no_nodeset():
    guest = common.upstream_guest(memory_mb=16384)
    lines = HUGEPAGES.apply(guest, common.context())
    page = common.to_tree(guest).find('memoryBacking/hugepages/page')
    assert page.attrib == {'size': '1048576', 'unit': 'KiB'}
    assert 'on host nodes 0,1 (16 of 16 free pages)' in lines[0]
    common.validate_schema(guest.to_xml())


@pytest.mark.parametrize('hugepages', [(), ((2048, 100),)])
def test_hugepages_not_enough_free_pages_is_a_no_op(hugepages):
    host = common.host_topology(hugepages=hugepages)
    guest = common.upstream_guest(numa=[0], memory_mb=4096)
    assert HUGEPAGES.apply(guest, common.context(host=host)) == []
    assert guest.membacking is None


def test_hugepages_never_override_an_explicit_page_size():
    guest = common.upstream_guest(numa=[0])
    ctx = common.context({'pci_passthrough:alias': 'gpu:1',
                          'hw:mem_page_size': 'small'})
    assert HUGEPAGES.apply(guest, ctx) == []
    ctx = common.context(hw_mem_page_size='2048')
    assert HUGEPAGES.apply(guest, ctx) == []
    assert guest.membacking is None


def test_hugepages_unknown_host_is_a_no_op():
    guest = common.upstream_guest()
    assert HUGEPAGES.apply(guest, common.context(host=None)) == []


def test_hugepages_compose_with_prealloc_threads():
    guest = common.upstream_guest(numa=[0])
    ctx = common.context()
    HUGEPAGES.apply(guest, ctx)
    PREALLOC.apply(guest, ctx)
    tree = common.to_tree(guest).find('memoryBacking')
    assert [c.tag for c in tree] == ['hugepages', 'allocation']
    common.validate_schema(guest.to_xml())


def test_no_prealloc_for_a_render_node_only_guest():
    """virgl guests have no VFIO pinning to hide: preallocation would only
    add boot time and remove memory overcommit (issue 14)."""
    guest = common.upstream_guest(numa=[0], pci=())
    xml = guest.to_xml()
    ctx = common.context(extra_specs={'gpu:render_node': 'numa-local'})
    assert PREALLOC.apply(guest, ctx) == []
    assert guest.to_xml() == xml
    # A flavor that asks for it explicitly (measured to help) still gets it.
    ctx = common.context(extra_specs={'gpu:render_node': 'numa-local',
                                      'gpu:tweak:prealloc_threads': 'true'})
    assert PREALLOC.apply(guest, ctx)
    assert _allocation(guest).get('threads') == '6'


def test_prealloc_for_an_mdev_guest():
    guest = common.upstream_guest(numa=[0], pci=(),
                                  mdevs=('4b20d080-1b54-4048-85b3-'
                                         'a6a62d165c01',))
    assert PREALLOC.apply(guest, common.context(
        extra_specs={'resources:VGPU': '1'}))
