"""The typed host summary: to and from the compute node's stats.

The rolling-upgrade cases (older, newer, damaged summaries through the
filters and weighers) are in test_rolling_upgrade.py.
"""

import dataclasses
import json

import pytest

from nova_gpu_ext.core import summary as host_summary
from nova_gpu_ext.core import summary_build
from nova_gpu_ext.sim import sample_hosts
from nova_gpu_ext.topology import host_facts

HostSummary = host_summary.HostSummary
RP = '6a2f0f4e-0d5b-4f0e-9e1c-1f3d6a7b8c9d'
VF_RP = '7b3f1f5f-1e6c-4f1f-8f2d-2f4e7b8c9d0e'


def published():
    """A summary as a compute of this version publishes it (driver fields
    included: rp, used, type, min_share, vf_rps, guests, present, gl)."""
    return {
        'v': 1,
        'nodes': [{'id': 0, 'socket': 0, 'cpus': 64, 'mem_mb': 262144},
                  {'id': 1, 'socket': 1, 'cpus': 64, 'mem_mb': None}],
        'gpus': [
            {'addr': '0000:3b:00.0', 'kind': 'mdev_parent', 'node': 0,
             'socket': 0, 'vendor': '10de', 'device': '20b5', 'rp': RP,
             'used': 2, 'mdevs': 3, 'mdev_types': {'nvidia-699': 7,
                                                   'nvidia-700': None},
             'mdevs_by_type': {'nvidia-699': 3},
             'mig_types': ['nvidia-699'], 'type': 'nvidia-699',
             'min_share': 0.25, 'render': 'renderD128'},
            {'addr': '0000:af:00.0', 'kind': 'pf', 'node': None,
             'socket': None, 'vendor': '1002', 'device': '7312', 'vfs': 8,
             'used': 1, 'vf_rps': [VF_RP]}],
        'render_nodes': [{'name': 'renderD128', 'path': '/dev/dri/renderD128',
                          'node': 0, 'pci': '0000:3b:00.0', 'guests': 1,
                          'present': True}],
        'warnings': 2,
        'gl': {'egl_headless': True, 'virtio_video': False}}


def test_a_published_summary_round_trips_through_stats():
    stats = {host_summary.STATS_KEY: json.dumps(published())}
    typed = HostSummary.from_stats(stats)
    assert typed.to_dict() == published()
    assert typed.partial == 'nodes[1] has no mem_mb'
    again = HostSummary.from_stats({host_summary.STATS_KEY:
                                    typed.to_stats()})
    assert again == typed
    gpu = typed.gpus[0]
    assert (gpu.addr, gpu.node, gpu.mdev_types['nvidia-700'],
            gpu.mig_types, gpu.min_share) == (
        '0000:3b:00.0', 0, None, ('nvidia-699',), 0.25)
    assert typed.by_provider == {RP: typed.gpus[0], VF_RP: typed.gpus[1]}
    assert typed.physical_gpu_count == 2
    assert typed.render_nodes[0].usable


def test_the_entries_are_frozen():
    typed = HostSummary.from_dict(published())
    with pytest.raises(dataclasses.FrozenInstanceError):
        typed.gpus[0].used = 5


@pytest.mark.parametrize('layout', ['nvidia_vgpu_mdev', 'amd_mxgpu_sriov'])
def test_what_discovery_builds_round_trips(tmp_path, layout):
    getattr(sample_hosts, layout)(str(tmp_path))
    topology = host_facts.discover(str(tmp_path))
    built = summary_build.from_topology(topology)
    assert not built.is_partial
    stats = {host_summary.STATS_KEY: built.to_stats()}
    assert HostSummary.from_stats(stats) == built
    assert json.loads(built.to_stats()) == built.to_dict()


def test_absent_is_unknown_and_none_is_none():
    old = published()
    del old['render_nodes'], old['gl'], old['v']
    typed = HostSummary.from_dict(old)
    assert typed.render_nodes is None and not typed.knows_render_nodes
    assert typed.gl is None and typed.version is None
    assert 'render_nodes' not in typed.to_dict()
    new = published()
    new['render_nodes'] = []
    assert HostSummary.from_dict(new).render_nodes == ()


def test_unreadable_and_wrong_types_are_partial_never_raise():
    assert HostSummary.from_stats({}) is None
    assert HostSummary.from_stats(None) is None
    assert HostSummary.from_stats({host_summary.STATS_KEY: '{x'}).partial \
        == 'not JSON'
    assert HostSummary.from_dict([1]).partial == 'not a JSON object (list)'
    raw = published()
    raw['gl'] = ['egl']
    raw['gpus'][0]['vf_rps'] = 'all'
    raw['gpus'][1]['min_share'] = -1
    raw['render_nodes'][0]['present'] = 'yes'
    typed = HostSummary.from_dict(raw)
    assert typed.gl is None and typed.gpus[0].vf_rps is None
    assert typed.gpus[1].min_share is None
    assert typed.render_nodes[0].present is None
    assert typed.problems == (
        'nodes[1] has no mem_mb', "gpus[0].vf_rps is 'all'",
        'gpus[1].min_share is -1', "render_nodes[0].present is 'yes'",
        "gl is ['egl']")
