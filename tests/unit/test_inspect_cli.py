"""``nova-gpu-ext inspect`` as an operator runs it."""

import io
import json

from nova_gpu_ext.cmd import main as cli
from nova_gpu_ext.sim import sample_hosts


def run(*argv):
    out = io.StringIO()
    args = cli.build_parser().parse_args(['inspect'] + list(argv))
    code = args.func(args, out=out)
    return code, out.getvalue()


def test_this_machine_or_an_empty_tree_says_no_gpu(tmp_path):
    sample_hosts.no_gpu(str(tmp_path))
    code, text = run('--sysfs-root', str(tmp_path))
    assert code == 0
    assert 'No GPU found' in text
    assert 'NUMA' in text and '0-3' in text


def test_table_shows_gpus_traits_matrix_and_warnings(tmp_path):
    sample_hosts.broken(str(tmp_path))
    code, text = run('--sysfs-root', str(tmp_path))
    assert code == 0
    assert '0000:05:00.0' in text and 'renderD128' in text
    assert 'CUSTOM_GPU_NUMA_UNKNOWN' in text       # the garbage numa_node
    assert 'Render nodes without a GPU: renderD130 (vgem)' in text
    # 7 unreadable facts, plus why 0000:06:00.0's NUMA node is unknown.
    assert 'Warnings (8)' in text
    assert '0000:06:00.0 (' in text and 'has no readable numa_node' in text
    assert 'dangling link' in text


def test_json_is_the_model(tmp_path):
    sample_hosts.amd_mxgpu_sriov(str(tmp_path))
    code, text = run('--sysfs-root', str(tmp_path), '--format', 'json')
    data = json.loads(text)
    assert code == 0
    pfs = [g for g in data['gpus'] if g['kind'] == 'pf']
    assert [len(p['vfs']) for p in pfs] == [8, 16]
    assert data['placement_traits']['0000:83:00.0'] == [
        'CUSTOM_GPU_NUMA_NODE_1', 'CUSTOM_GPU_SOCKET_1']
    assert data['numa_nodes'][1]['cpus'] == list(range(12, 24))


def test_builtin_sample_and_vf_listing():
    code, text = run('--sample', 'amd_mxgpu_sriov', '--show-vfs')
    assert code == 0 and 'simulated' in text
    assert text.count('of 0000:83:00.0') == 16
    code, text = run('--sample', 'amd_mxgpu_sriov')
    assert 'of 0000:83:00.0' not in text and '16/16' in text


def test_unknown_sample_is_an_error(capsys):
    code, _text = run('--sample', 'nope')
    assert code == 2
    assert 'unknown sample' in capsys.readouterr().err
