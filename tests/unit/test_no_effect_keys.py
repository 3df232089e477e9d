"""A ``gpu:`` key that can do nothing for a guest is said, by ``explain``
(and, at INFO, by the compute for the build: see
tests/functional/test_dropin_calls.py)."""

import io

from nova_gpu_ext.cmd import main as cli
from nova_gpu_ext.core import spec


def explain(*specs_):
    out = io.StringIO()
    args = cli.build_parser().parse_args(
        ['explain', '--sample', 'nvidia_vgpu_mdev', '--spec'] +
        list(specs_))
    code = args.func(args, out=out)
    return code, out.getvalue()


def test_explain_says_policy_without_gpu_has_no_effect():
    code, text = explain('gpu:numa_affinity_policy=required')
    assert code == 0
    assert 'gpu:numa_affinity_policy=required can have no effect: the ' \
        'guest has no GPU device and no render node.' in text


def test_explain_says_nothing_when_the_key_applies():
    _code, text = explain('resources:VGPU=1',
                          'gpu:numa_affinity_policy=required')
    assert 'no effect' not in text


def test_no_effect_keys():
    request = spec.parse({'gpu:numa_affinity_policy': 'required',
                          'gpu:placement': 'pack',
                          'gpu:fast_boot': 'true'})
    assert spec.no_effect_keys(request, 0) == [
        'gpu:numa_affinity_policy', 'gpu:placement']
    assert spec.no_effect_keys(request, 1) == []
    assert spec.no_effect_keys(spec.parse(
        {'gpu:render_node': 'numa-local'}), 0) == []
    assert spec.no_effect_keys(spec.parse(
        {'gpu:render_node': 'none'}), 0) == ['gpu:render_node']
