"""[gpu_ext] sharing options, [gpu_sharing_<type>] groups and profile_for."""

import textwrap

import pytest
from oslo_config import cfg

from nova_gpu_ext import conf as gpu_conf
from nova_gpu_ext.conf import sharing as conf_sharing
from nova_gpu_ext.core import sharing


def make_conf(tmp_path, text=''):
    conf = cfg.ConfigOpts()
    gpu_conf.register_opts(conf)
    path = tmp_path / 'nova.conf'
    path.write_text(textwrap.dedent(text))
    conf(args=[], project='nova', default_config_files=[str(path)])
    return conf


def test_defaults(tmp_path):
    conf = make_conf(tmp_path)
    assert conf.gpu_ext.sharing_default_placement == 'spread'
    assert conf.gpu_ext.guest_timeout_ms == 2000
    assert conf.gpu_ext.timeout_margin == 0.75
    assert conf.gpu_ext.sharing_types == []
    assert conf_sharing.profile_for(conf, 'nvidia-35') == (
        sharing.SharingProfile(slice_ms=conf.gpu_ext.default_slice_ms,
                               switch_ms=conf.gpu_ext.default_switch_ms,
                               max_tenants=None, guest_timeout_ms=2000.0,
                               margin=0.75))


@pytest.mark.parametrize('type_name,section,expected', [
    ('nvidia-35', """
        [gpu_sharing_nvidia-35]
        slice_ms = 100
        switch_ms = 0
        max_tenants = 16
        """, sharing.SharingProfile(100.0, 0.0, 16, 2000.0, 0.75)),
    # A VF type named by vendor:device.
    ('1002:6865', """
        [gpu_sharing_1002:6865]
        slice_ms = 6
        guest_timeout_ms = 5000
        """, sharing.SharingProfile(6.0, 0.5, None, 5000.0, 0.75)),
    # Another type's group does not leak into this one.
    ('i915-GVTg_V5_4', """
        [gpu_sharing_nvidia-35]
        slice_ms = 100
        """, sharing.SharingProfile(2.0, 0.5, None, 2000.0, 0.75)),
])
def test_profile_for_reads_the_type_group_over_the_defaults(
        tmp_path, type_name, section, expected):
    conf = make_conf(tmp_path, """
        [gpu_ext]
        default_slice_ms = 2
        default_switch_ms = 0.5
        """ + section)
    assert conf_sharing.profile_for(conf, type_name) == expected


def test_margin_and_timeout_reach_the_admission(tmp_path):
    text = """
        [gpu_ext]
        timeout_margin = %s
        [gpu_sharing_nvidia-35]
        slice_ms = 100
        switch_ms = 0
        """
    strict = conf_sharing.profile_for(make_conf(tmp_path, text % 0.75),
                                      'nvidia-35')
    exact = conf_sharing.profile_for(make_conf(tmp_path, text % 1.0),
                                     'nvidia-35')
    # 16 tenants x 100 ms: inside 2 s, refused under the 0.75 margin.
    assert sharing.admit(exact, 15).ok
    assert not sharing.admit(strict, 15).ok


def test_register_dynamic_opts_from_sharing_types(tmp_path):
    conf = make_conf(tmp_path, """
        [gpu_ext]
        sharing_types = nvidia-35, 1002:6865
        [gpu_sharing_nvidia-35]
        max_tenants = 8
        """)
    with pytest.raises(cfg.NoSuchOptError):
        conf['gpu_sharing_nvidia-35']
    conf_sharing.register_dynamic_opts(conf)
    assert conf['gpu_sharing_nvidia-35'].max_tenants == 8
    assert conf['gpu_sharing_1002:6865'].slice_ms is None
    # Registering again (as profile_for does) is harmless.
    conf_sharing.register_dynamic_opts(conf, ['nvidia-35'])
    assert conf_sharing.profile_for(conf, 'nvidia-35').max_tenants == 8


def test_register_dynamic_opts_includes_nova_enabled_mdev_types(tmp_path):
    conf = make_conf(tmp_path, """
        [devices]
        enabled_mdev_types = nvidia-11
        [gpu_sharing_nvidia-11]
        slice_ms = 3
        """)
    conf.register_opt(cfg.ListOpt('enabled_mdev_types', default=[]),
                      group='devices')
    conf_sharing.register_dynamic_opts(conf)
    assert conf['gpu_sharing_nvidia-11'].slice_ms == 3.0


@pytest.mark.parametrize('name,value', [
    ('timeout_margin', '1.5'),
    ('timeout_margin', '0'),
    ('sharing_default_placement', 'fill'),
    ('guest_timeout_ms', '0'),
    ('default_switch_ms', '-1'),
])
def test_bad_static_values_are_refused(tmp_path, name, value):
    conf = make_conf(tmp_path, '[gpu_ext]\n%s = %s\n' % (name, value))
    with pytest.raises(ValueError):
        getattr(conf.gpu_ext, name)


def test_bad_type_values_are_refused(tmp_path):
    conf = make_conf(tmp_path, """
        [gpu_sharing_nvidia-35]
        max_tenants = 0
        """)
    with pytest.raises(ValueError):
        conf_sharing.profile_for(conf, 'nvidia-35')


def test_empty_type_name_is_refused(tmp_path):
    with pytest.raises(ValueError):
        conf_sharing.profile_for(make_conf(tmp_path), ' ')


def test_static_options_are_listed_in_gpu_ext_with_help_sections():
    groups = {group.name: opts for group, opts in conf_sharing.list_opts()}
    names = {opt.dest for opt in groups['gpu_ext']}
    assert {'sharing_default_placement', 'guest_timeout_ms', 'timeout_margin',
            'default_slice_ms', 'default_switch_ms'} <= names
    for opt in groups['gpu_ext']:
        assert 'Possible values:' in opt.help, opt.dest
        assert 'Related options:' in opt.help, opt.dest
    # The package-level list merges them into the one [gpu_ext] group.
    merged = {group.name if isinstance(group, cfg.OptGroup) else group:
              opts for group, opts in gpu_conf.list_opts()}
    assert names <= {opt.dest for opt in merged['gpu_ext']}
