"""``nova-gpu-ext explain`` on the sample hosts, as an operator runs it."""

import io
import json

import pytest

from nova_gpu_ext.cmd import main as cli


def run(*argv):
    out = io.StringIO()
    args = cli.build_parser().parse_args(['explain'] + list(argv))
    code = args.func(args, out=out)
    return code, out.getvalue()


def decide(*argv):
    code, text = run('--format', 'json', *argv)
    return code, json.loads(text)


def conf_file(tmp_path, text):
    path = tmp_path / 'nova.conf'
    path.write_text(text)
    return str(path)


# -- vGPU (mdev) --------------------------------------------------------------

def test_vgpu_required_goes_to_node_1_when_node_0_is_full():
    code, result = decide(
        '--sample', 'nvidia_vgpu_mdev', '--used-cpus', '0=all',
        '--spec', 'resources:VGPU=1', 'gpu:numa_affinity_policy=required')
    assert code == 0 and result['placeable']
    decision = result['decision']
    assert decision['node'] == 1 and decision['binding'] == 'strict'
    assert decision['numa_local']
    assert decision['gpu'] in ('0000:88:00.0', '0000:89:00.0')
    refused = {g['address']: g['reason'] for g in result['gpus']
               if g['status'] == 'refused'}
    assert set(refused) == {'0000:3d:00.0', '0000:3e:00.0'}
    assert '0 CPUs free < 2 vCPUs' in refused['0000:3d:00.0']


def test_vgpu_required_refused_when_no_node_fits():
    code, text = run(
        '--sample', 'nvidia_vgpu_mdev', '--used-cpus', '0=all', '1=7',
        '--spec', 'resources:VGPU=1', 'gpu:numa_affinity_policy=required')
    assert code == 1
    assert 'Decision: REFUSED' in text
    assert 'GPU 0000:88:00.0 on node 1: 1 CPUs free < 2 vCPUs' in text


def test_vgpu_preferred_falls_back_unbound_never_refused():
    code, result = decide(
        '--sample', 'nvidia_vgpu_mdev', '--used-cpus', '0=all', '1=all',
        '--spec', 'resources:VGPU=1', 'gpu:numa_affinity_policy=preferred')
    assert code == 0
    assert result['decision']['binding'] is None
    assert not result['decision']['numa_local']


def test_pack_uses_the_gpu_with_tenants_spread_the_empty_one():
    # 0000:3d:00.0 already has 2 nvidia-18 mdevs (sample), 3e none.
    common = ('--sample', 'nvidia_vgpu_mdev', '--used-cpus', '1=all',
              '--spec', 'resources:VGPU=1',
              'gpu:numa_affinity_policy=required')
    _code, packed = decide(*common, 'gpu:placement=pack')
    _code, spread = decide(*common, 'gpu:placement=spread')
    assert packed['decision']['gpu'] == '0000:3d:00.0'
    assert spread['decision']['gpu'] == '0000:3e:00.0'
    assert packed['request']['placement_source'] == 'flavor gpu:placement'
    tenants = {s['address']: s['tenants'] for s in packed['shared_gpus']}
    assert tenants['0000:3d:00.0'] == 2 and tenants['0000:3e:00.0'] == 0


def test_default_placement_and_policy_come_from_options(tmp_path):
    path = conf_file(tmp_path, '[gpu_ext]\nsharing_default_placement = '
                               'pack\nnuma_affinity_policy = required\n')
    code, result = decide(
        '--sample', 'nvidia_vgpu_mdev', '--config-file', path,
        '--used-cpus', '1=all', '--spec', 'resources:VGPU=1')
    assert code == 0
    req = result['request']
    assert req['placement'] == 'pack'
    assert req['placement_source'] == '[gpu_ext] sharing_default_placement'
    assert req['numa_affinity_policy'] == 'required'
    assert result['decision']['gpu'] == '0000:3d:00.0'
    _code, default = decide('--sample', 'nvidia_vgpu_mdev',
                            '--spec', 'resources:VGPU=1')
    assert default['request']['placement'] == 'spread'
    assert default['request']['numa_affinity_policy'] == 'preferred'


def test_min_share_refuses_the_crowded_gpu_with_the_reason():
    # 25 %: 3 tenants of 96.7 % get 32.2 % each, 4 would get 24.1 %.
    code, result = decide(
        '--sample', 'nvidia_vgpu_mdev', '--used-cpus', '1=all',
        '--tenants', '0000:3e:00.0=3',
        '--spec', 'resources:VGPU=1', 'gpu:numa_affinity_policy=required',
        'gpu:min_share_percent=25', 'gpu:placement=pack')
    assert code == 0
    assert result['decision']['gpu'] == '0000:3d:00.0'
    row = next(s for s in result['shared_gpus']
               if s['address'] == '0000:3e:00.0')
    assert not row['next_tenant_admitted']
    assert 'below the requested 25.0% minimum share' in row['next_tenant']


def test_unknown_mdev_type_instances_used_up():
    # nvidia-22 has no free instance on 0000:3d:00.0 (its mdevs use it).
    code, result = decide(
        '--sample', 'nvidia_vgpu_mdev', '--mdev-type', 'nvidia-22',
        '--used-cpus', '1=all', '--spec', 'resources:VGPU=1',
        'gpu:numa_affinity_policy=required')
    assert code == 0
    assert result['decision']['gpu'] == '0000:3e:00.0'
    row = next(g for g in result['gpus'] if g['address'] == '0000:3d:00.0')
    assert 'all 0 instance(s) of the type are in use' in row['reason']


# -- whole GPUs ---------------------------------------------------------------

def test_whole_gpu_required_node_0_full_goes_to_node_1():
    code, result = decide(
        '--sample', 'dgx_2socket_8gpu', '--used-memory-mb', '0=all',
        '--spec', 'pci_passthrough:alias=a100:2',
        'gpu:numa_affinity_policy=required')
    assert code == 0
    gpus = result['decision']['gpus']
    assert len(gpus) == 2
    node_of = {g['address']: g['numa_node'] for g in result['gpus']}
    assert {node_of[a] for a in gpus} == {1}
    assert result['decision']['node'] == 1


def test_whole_gpus_in_use_are_refused_and_socket_policy_moves_on():
    busy = ['%s=1' % a for a in ('0000:87:00.0', '0000:90:00.0',
                                 '0000:b7:00.0', '0000:bd:00.0')]
    code, result = decide(
        '--sample', 'dgx_2socket_8gpu', '--used-cpus', '0=all',
        '--tenants', *busy, '--spec', 'pci_passthrough:alias=a100:1',
        'gpu:numa_affinity_policy=required')
    assert code == 1
    assert any('in use by 1 guest(s)' in r for r in result['reasons'])
    assert any('0 CPUs free' in r for r in result['reasons'])


def test_hw_pci_policy_applies_when_no_gpu_policy():
    code, result = decide(
        '--sample', 'two_node_numa_unknown',
        '--spec', 'pci_passthrough:alias=t4:1',
        'hw:pci_numa_affinity_policy=required')
    assert code == 1
    assert result['request']['numa_affinity_policy_source'] == (
        'flavor hw:pci_numa_affinity_policy')


def test_unknown_numa_required_is_refused_with_the_reason():
    code, text = run(
        '--sample', 'two_node_numa_unknown',
        '--spec', 'pci_passthrough:alias=t4:1',
        'gpu:numa_affinity_policy=required')
    assert code == 1
    assert ('GPU 0000:41:00.0: NUMA node unknown, policy required needs it'
            in text)
    code, result = decide(
        '--sample', 'two_node_numa_unknown',
        '--spec', 'pci_passthrough:alias=t4:1',
        'gpu:numa_affinity_policy=preferred')
    assert code == 0
    assert result['decision']['binding'] is None


# -- SR-IOV VFs and the timeout -----------------------------------------------

def test_sixteen_tenants_of_100ms_refused_under_the_075_margin(tmp_path):
    path = conf_file(tmp_path, '[gpu_sharing_1002:6929]\nslice_ms = 100\n'
                               'switch_ms = 0\n')
    argv = ('--sample', 'amd_mxgpu_sriov', '--pci-kind', 'vf',
            '--config-file', path,
            '--tenants', '0000:03:00.0=8', '0000:83:00.0=15',
            '--spec', 'resources:CUSTOM_MXGPU_VF=1')
    code, text = run(*argv)
    assert code == 1
    assert ('0000:83:00.0 refused: 16 tenants with 100 ms slices wait 1.6 s '
            'between turns, over the 1.5 s limit (2.0 s guest timeout x '
            '0.75 margin).') in text
    assert '0000:03:00.0 refused: all 8 instance(s) of the type are in use' \
        in text
    # The same 16th tenant fits under the exact bound (margin 1.0).
    path = conf_file(tmp_path, '[gpu_ext]\ntimeout_margin = 1.0\n'
                               '[gpu_sharing_1002:6929]\nslice_ms = 100\n'
                               'switch_ms = 0\n')
    code, result = decide(*argv[:5], path, *argv[6:])
    assert code == 0
    assert result['decision']['gpu'] == '0000:83:00.0'
    row = next(s for s in result['shared_gpus']
               if s['address'] == '0000:83:00.0')
    assert row['worst_case_wait_ms'] == pytest.approx(1500.0)
    assert row['limit_ms'] == pytest.approx(2000.0)


def test_vf_default_profile_figures():
    code, result = decide('--sample', 'amd_mxgpu_sriov', '--pci-kind', 'vf',
                          '--tenants', '0000:03:00.0=2',
                          '--spec', 'pci_passthrough:alias=mxgpu:1',
                          'gpu:placement=spread')
    assert code == 0
    row = next(s for s in result['shared_gpus']
               if s['address'] == '0000:03:00.0')
    assert row['efficiency'] == pytest.approx(6 / 6.2)
    assert row['share_per_tenant'] == pytest.approx(6 / 6.2 / 2)
    assert row['worst_case_wait_ms'] == pytest.approx(12.4)
    assert result['request']['device_type'] == '1002:6929'   # the PF's id
    assert result['decision']['gpu'] == '0000:83:00.0'   # spread: empty


# -- render nodes -------------------------------------------------------------

def test_render_node_follows_the_free_node():
    code, result = decide(
        '--sample', 'virgl_2node', '--used-cpus', '0=all',
        '--spec', 'gpu:render_node=numa-local',
        'gpu:numa_affinity_policy=required')
    assert code == 0
    assert result['render']['name'] == 'renderD129'
    assert result['decision']['node'] == 1
    assert result['decision']['binding'] == 'strict'


def test_render_node_limit_from_options(tmp_path):
    path = conf_file(tmp_path, '[gpu_ext]\nrender_node_max_guests = 2\n')
    argv = ('--sample', 'virgl_2node', '--config-file', path,
            '--spec', 'gpu:render_node=numa-local',
            'gpu:numa_affinity_policy=required')
    code, result = decide(*argv, '--tenants', 'renderD128=2')
    assert code == 0 and result['render']['name'] == 'renderD129'
    code, text = run(*argv, '--tenants', 'renderD128=2', 'renderD129=2')
    assert code == 1
    assert 'every render node is at its guest limit' in text


def test_vgpu_with_render_node_uses_the_gpus_node():
    code, result = decide(
        '--sample', 'virgl_2node', '--used-memory-mb', '1=all',
        '--spec', 'resources:VGPU=1', 'gpu:render_node=numa-local',
        'gpu:numa_affinity_policy=required')
    assert code == 0
    assert result['decision']['gpu'] == '0000:81:00.0'
    assert result['render']['name'] == 'renderD128'
    assert result['render']['node'] == 0


# -- the rest -----------------------------------------------------------------

def test_no_gpu_request_is_left_to_nova():
    code, text = run('--sample', 'virgl_2node', '--spec', 'hw:cpu_policy='
                     'shared')
    assert code == 0
    assert 'leaves its placement to Nova' in text


@pytest.mark.parametrize('argv, message', [
    (('--sample', 'nope', '--spec', 'resources:VGPU=1'), 'unknown sample'),
    (('--sample', 'virgl_2node', '--spec', 'gpu:numa_affinity_policy=x'),
     'gpu:numa_affinity_policy'),
    (('--sample', 'virgl_2node', '--used-cpus', '7=1',
      '--spec', 'resources:VGPU=1'), 'NUMA node 7 is not on this host'),
    (('--sample', 'virgl_2node', '--spec', 'resources:VGPU'),
     '--spec expects KEY=VALUE'),
])
def test_usage_errors(capsys, argv, message):
    code, _text = run(*argv)
    assert code == 2
    assert message in capsys.readouterr().err
