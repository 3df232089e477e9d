"""Discovery of GPU BARs and the host's address limits (fake sysfs)."""

import os

from nova_gpu_ext import model
from nova_gpu_ext.topology import bars
from nova_gpu_ext.topology import discover
from nova_gpu_ext.sim import fake_sysfs
from nova_gpu_ext.topology import paths as sysfs_paths

GiB, MiB = 1 << 30, 1 << 20

# A real H100 PCIe's resource file (lspci -v: Memory at ... 16M, 128G
# 64-bit prefetchable, 32M 64-bit prefetchable); ROM and unused lines 0.
H100_RESOURCE = """\
0x00000000d8000000 0x00000000d8ffffff 0x0000000000040200
0x0000220000000000 0x0000221fffffffff 0x000000000014220c
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000222000000000 0x0000222001ffffff 0x000000000014220c
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
"""


def test_parse_resource_of_a_hopper_gpu():
    assert bars.parse_resource(H100_RESOURCE) == (
        model.BAR(0, 16 * MiB, False, False),
        model.BAR(1, 128 * GiB, True, True),
        model.BAR(3, 32 * MiB, True, True))


def test_parse_resource_drops_io_and_garbage():
    text = ('0x0000000000001000 0x000000000000107f 0x0000000000040101\n'
            'not hex at all\n')
    assert bars.parse_resource(text) == ()


def test_cpuinfo_and_iommu_widths():
    assert bars.parse_cpuinfo(
        'flags\t\t: fpu pdpe1gb lm\n'
        'address sizes\t: 52 bits physical, 57 bits virtual\n') == (52, True)
    assert bars.parse_cpuinfo('flags : fpu\n') == (None, False)
    assert bars.parse_intel_cap('8d2078c106f0466') == 48
    assert bars.parse_intel_cap('d2008c40660462') == 39
    # EFR HATS (bits 11:10): 0 = 4 levels (48 bits), 1 = 5 levels
    assert bars.parse_amd_features('0:0') == 48
    assert bars.parse_amd_features('400') == 57


def h100_host(tmp_path):
    """A fake host with one H100 PCIe (10de:2331) at 0000:1b:00.0."""
    root = str(tmp_path / 'sys')
    fs = fake_sysfs.FakeSysfs(root)
    fs.add_node(0, [0, 1], 65536, 0)
    fs.add_gpu('0000:1b:00.0', fake_sysfs.NVIDIA, 0x2331, 0, 'vfio-pci',
               iommu_group=10)
    return root, fs


def test_discovery_reads_bars_and_limits(tmp_path):
    root, fs = h100_host(tmp_path)
    fs.add_gpu('0000:af:00.0', fake_sysfs.NVIDIA, 0x1eb8, 0, 'vfio-pci',
               iommu_group=11)
    fs.set_address_limits(cpu_bits=52, vtd_cap='d2008c40660462')
    topo = discover.discover_host(sysfs_paths.SysfsPaths(root))
    h100 = topo.gpu('0000:1b:00.0')
    assert model.BAR(1, 128 * GiB, True, True) in h100.bars
    assert topo.gpu('0000:af:00.0').bars[1].size == 256 * MiB
    assert topo.address_limits == model.AddressLimits(52, 39, True)


def test_missing_files_are_unknown(tmp_path):
    paths = sysfs_paths.SysfsPaths(str(tmp_path))
    assert bars.read_bars(paths, '0000:3b:00.0') == ()
    assert bars.read_address_limits(paths) == model.AddressLimits()


def test_fifo_or_garbage_in_place_of_the_files_never_blocks(tmp_path):
    # Found by test_discovery_fuzz: open() of a FIFO blocked discovery.
    root, fs = h100_host(tmp_path)
    resource = os.path.join(fs.device_dir('0000:1b:00.0'), 'resource')
    os.unlink(resource)
    os.mkfifo(resource)
    cpuinfo = os.path.join(root, '_proc', 'cpuinfo')
    os.unlink(cpuinfo)
    os.mkfifo(cpuinfo)
    with open(os.path.join(root, 'class', 'iommu', 'dmar0', 'intel-iommu',
                           'cap'), 'w') as f:
        f.write('not hex\n')
    topo = discover.discover_host(sysfs_paths.SysfsPaths(root))
    assert topo.gpu('0000:1b:00.0').bars == ()
    assert topo.address_limits == model.AddressLimits()
    assert any('resource' in w for w in topo.warnings)
