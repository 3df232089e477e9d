"""GPU health from sysfs alone: links, AER counters, vanished or failed
GPUs; traits, inspect, and logging once per change."""

import io
import logging
import os
import shutil

from nova_gpu_ext.topology import host_facts
from nova_gpu_ext.cmd import main as cli
from nova_gpu_ext.sim import sample_hosts
from nova_gpu_ext.topology import health
from nova_gpu_ext.topology import summary

GPU_A = '0000:3d:00.0'     # nvidia_vgpu_mdev: 4 Tesla M60, 2 per node
GPU_B = '0000:88:00.0'


def _host(tmp_path):
    fs = sample_hosts.nvidia_vgpu_mdev(str(tmp_path))
    return fs, str(tmp_path)


def test_healthy_host_has_no_health_traits(tmp_path):
    _fs, root = _host(tmp_path)
    topology = host_facts.discover(root)
    assert len(topology.health) == 4
    for gpu in topology.gpus:
        assert not (summary.gpu_traits(topology, gpu) &
                    set(health.HEALTH_TRAITS))
    entry = topology.health_of(GPU_A)
    assert (entry.link_width, entry.max_link_width) == (16, 16)
    assert entry.aer == (('correctable', 0), ('nonfatal', 0), ('fatal', 0))


def test_downtrained_width_and_speed(tmp_path):
    fs, root = _host(tmp_path)
    fs.degrade_link(GPU_A, width=8)
    fs.degrade_link(GPU_B, speed='2.5 GT/s PCIe')
    topology = host_facts.discover(root)
    traits = host_facts.provider_traits(topology, 'cn1')
    assert health.LINK_DEGRADED_TRAIT in traits['cn1_pci_0000_3d_00_0']
    assert health.LINK_SLOW_TRAIT not in traits['cn1_pci_0000_3d_00_0']
    assert health.LINK_SLOW_TRAIT in traits['cn1_pci_0000_88_00_0']
    assert 'CUSTOM_GPU_NUMA_NODE_0' in traits['cn1_pci_0000_3d_00_0']
    assert dict(health.problems(topology.health_of(GPU_A)))[
        health.LINK_DEGRADED_TRAIT] == 'PCIe link trained at x8 of x16'


def test_aer_uncorrectable_at_once_correctable_when_rising(tmp_path):
    fs, root = _host(tmp_path)
    fs.add_aer_errors(GPU_A, 'correctable', 5)      # since boot: not yet
    fs.add_aer_errors(GPU_B, 'nonfatal', 1)
    first = host_facts.discover(root)
    assert health.AER_TRAIT not in health.traits(first.health_of(GPU_A))
    assert health.AER_TRAIT in health.traits(first.health_of(GPU_B))
    fs.add_aer_errors(GPU_A, 'correctable', 9)
    second = host_facts.discover(root, previous=first)
    assert second.health_of(GPU_A).aer_rising == ('correctable',)
    assert health.AER_TRAIT in health.traits(second.health_of(GPU_A))
    # Sticky: no new errors since, still above the first reading.
    third = host_facts.discover(root, previous=second)
    assert health.AER_TRAIT in health.traits(third.health_of(GPU_A))


def test_vanished_and_failed_reset_gpus_keep_a_failed_trait(tmp_path):
    fs, root = _host(tmp_path)
    first = host_facts.discover(root)
    fs.fail_device(GPU_A)
    gone = os.path.join(root, 'bus', 'pci', 'devices', GPU_B)
    os.unlink(gone)
    shutil.rmtree(fs.device_dir(GPU_B))
    second = host_facts.discover(root, previous=first)
    assert second.gpu(GPU_A) is None and second.gpu(GPU_B) is None
    assert not second.health_of(GPU_A).responds
    assert not second.health_of(GPU_B).present
    traits = host_facts.provider_traits(second, 'cn1')
    assert traits['cn1_pci_0000_3d_00_0'] == {health.FAILED_TRAIT}
    assert traits['cn1_pci_0000_88_00_0'] == {health.FAILED_TRAIT}
    # Still watched on the next refresh.
    third = host_facts.discover(root, previous=second)
    assert health.FAILED_TRAIT in health.traits(third.health_of(GPU_B))


def test_logged_once_when_it_changes(tmp_path, caplog):
    fs, root = _host(tmp_path)
    caplog.set_level(logging.INFO, logger='nova_gpu_ext.topology.host_facts')
    topology = host_facts.discover(root)
    fs.degrade_link(GPU_A, width=4)
    for _ in range(3):
        topology = host_facts.discover(root, previous=topology)
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING]
    assert warnings == ['GPU %s: PCIe link trained at x4 of x16' % GPU_A]
    fs.degrade_link(GPU_A, width=16)
    host_facts.discover(root, previous=topology)
    assert caplog.records[-1].levelno == logging.INFO
    assert 'no longer PCIe link trained at x4' in \
        caplog.records[-1].getMessage()


def test_unknown_numa_reason_logged_at_warning_once(tmp_path, caplog):
    sample_hosts.two_node_numa_unknown(str(tmp_path))
    caplog.set_level(logging.WARNING,
                     logger='nova_gpu_ext.topology.host_facts')
    topology = host_facts.discover(str(tmp_path))
    host_facts.discover(str(tmp_path), previous=topology)
    numa = [r.getMessage() for r in caplog.records
            if 'locality is unknown' in r.getMessage()]
    assert numa and len(numa) == len(set(numa))
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_inspect_shows_health(tmp_path):
    fs, root = _host(tmp_path)
    fs.degrade_link(GPU_A, width=8)
    fs.add_aer_errors(GPU_B, 'fatal', 2)
    out = io.StringIO()
    args = cli.build_parser().parse_args(['inspect', '--sysfs-root', root])
    assert args.func(args, out=out) == 0
    text = out.getvalue()
    assert 'GPU health (2 problem(s))' in text
    assert '%s: PCIe link trained at x8 of x16 (%s)' % (
        GPU_A, health.LINK_DEGRADED_TRAIT) in text
    assert 'fatal 2' in text
    assert health.LINK_DEGRADED_TRAIT in text.split('What Nova will see')[1]


def test_parsers():
    assert health.parse_speed('16.0 GT/s PCIe') == 16.0
    assert health.parse_speed('Unknown') is None
    assert health.parse_aer_total('RxErr 1\nTOTAL_ERR_COR 7\n') == 7
