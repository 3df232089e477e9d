"""The shim and the options are reachable the way Nova reaches them."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def test_tree_ships_only_the_shim_under_the_nova_name():
    assert os.path.exists(
        os.path.join(ROOT, 'nova', 'virt', 'gpu_ext', '__init__.py'))
    assert not os.path.exists(os.path.join(ROOT, 'nova', '__init__.py'))
    assert not os.path.exists(
        os.path.join(ROOT, 'nova', 'virt', '__init__.py'))


def test_shim_does_not_shadow_real_nova():
    import nova
    import nova.virt.gpu_ext as shim
    from nova_gpu_ext.virt import driver
    assert os.path.exists(os.path.join(os.path.dirname(nova.__file__),
                                       'virt', 'libvirt', 'driver.py'))
    assert shim.GPULibvirtDriver is driver.GPULibvirtDriver


def test_config_generator_prints_gpu_ext_section():
    out = subprocess.run(
        [sys.executable, '-m', 'oslo_config.generator',
         '--namespace', 'nova_gpu_ext'],
        capture_output=True, text=True, check=True).stdout
    assert '[gpu_ext]' in out
    assert '#enabled = true' in out
    assert 'Possible values' in out
