"""Run the devstack plugin through every phase against a stand-in devstack.

Layer rule: test of a shell adapter. The stand-in implements the devstack
functions the plugin calls (``iniset``, ``iniadd``, ``is_service_enabled``,
``pip_install``, ...) with devstack's semantics, and fake ``openstack``,
``modprobe``, ``modinfo``, ``sudo`` and ``python`` commands that record
their calls. Nothing needs devstack, root, the network or a kernel module.
"""

import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import textwrap

import pytest

from nova_gpu_ext.core import spec as specs

REPO = pathlib.Path(__file__).resolve().parents[2]
DEVSTACK = REPO / 'devstack'

DEVSTACK_NOVA_FILTERS = (
    'ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,'
    'ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter,'
    'SameHostFilter,DifferentHostFilter')

# devstack's ini functions (inc/ini-config), re-implemented on lines in
# Python so the stand-in keeps multi-valued options as devstack does.
INI_TOOL = r'''
import sys

def load(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []

def section_range(lines, section):
    start = None
    for i, line in enumerate(lines):
        if line.strip() == '[%s]' % section:
            start = i
        elif start is not None and line.startswith('['):
            return start, i
    return (start, len(lines)) if start is not None else (None, None)

def values(lines, section, option):
    start, end = section_range(lines, section)
    out = []
    if start is None:
        return out
    for line in lines[start + 1:end]:
        key, sep, value = line.partition('=')
        if sep and key.strip() == option and not line.startswith('#'):
            out.append(value.strip())
    return out

def set_values(path, section, option, vals):
    lines = load(path)
    start, end = section_range(lines, section)
    if start is None:
        lines += ['[%s]' % section]
        start, end = len(lines) - 1, len(lines)
    kept = [line for line in lines[start + 1:end]
            if line.startswith('#') or
            line.partition('=')[0].strip() != option]
    new = ['%s = %s' % (option, v) for v in vals]
    lines[start + 1:end] = new + kept
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')

cmd, path, section, option = sys.argv[1:5]
args = sys.argv[5:]
if cmd == 'set':
    set_values(path, section, option, [' '.join(args)])
elif cmd == 'setm':
    set_values(path, section, option, args)
elif cmd == 'add':
    set_values(path, section, option,
               values(load(path), section, option) + args)
elif cmd == 'get':
    vals = values(load(path), section, option)
    print(vals[0] if vals else '')
elif cmd == 'getm':
    print(' '.join(values(load(path), section, option)))
elif cmd == 'comment':
    lines = load(path)
    start, end = section_range(lines, section)
    if start is not None:
        for i in range(start + 1, end):
            if lines[i].partition('=')[0].strip() == option:
                lines[i] = '#' + lines[i]
        with open(path, 'w') as f:
            f.write('\n'.join(lines) + '\n')
'''

RECORD = r'''
# Every stub appends its call, shell-quoted, to $CALLS.
function record {
    local out="" arg
    for arg in "$@"; do
        out+="$(printf '%q' "$arg") "
    done
    echo "${out% }" >> "$CALLS"
}
'''

FUNCTIONS = RECORD + r'''
# Stand-in for the devstack functions the plugin may call.
function _ini { "$REAL_PYTHON" "$STUB_DIR/ini.py" "$@"; }
function iniset {
    [[ "$1" == "-sudo" ]] && shift
    _ini set "$@"
}
function iniset_multiline {
    [[ "$1" == "-sudo" ]] && shift
    _ini setm "$@"
}
function iniadd {
    [[ "$1" == "-sudo" ]] && shift
    _ini add "$@"
}
function iniget { _ini get "$@"; }
function iniget_multiline { _ini getm "$@"; }
function inicomment {
    [[ "$1" == "-sudo" ]] && shift
    _ini comment "$@"
}
function trueorfalse {
    local default=$1 name=$2
    local value=${!name:-$default}
    case "${value,,}" in
        1|yes|true|on|y|t) echo True ;;
        *) echo False ;;
    esac
}
function is_service_enabled {
    local service
    for service in "$@"; do
        [[ ",$ENABLED_SERVICES," == *",$service,"* ]] && return 0
    done
    return 1
}
function enable_service { record enable_service "$@"; }
function define_plugin { record define_plugin "$@"; }
function plugin_requires { record plugin_requires "$@"; }
function echo_summary { echo "summary: $*"; }
function die {
    shift
    echo "DIE: $*" >&2
    exit 3
}
function pip_install { record pip_install "$@"; }
function stop_nova_compute { record stop_nova_compute; }
function start_nova_compute {
    record start_nova_compute
    # What devstack does first: nova-cpu.conf is a copy of nova.conf.
    cp "$NOVA_CONF" "$NOVA_CPU_CONF"
}
'''

# External commands, as executables on PATH.
COMMANDS = {
    'openstack': r'''
        record openstack "$@"
        # "flavor show" finds nothing: every flavor is new.
        [[ " $* " == *" flavor show "* ]] && exit 1
        exit 0
    ''',
    'sudo': r'''
        record sudo "$@"
        exec "$@"
    ''',
    'modinfo': r'''
        record modinfo "$@"
        [[ -e "$STUB_DIR/module-built" ]]
    ''',
    'modprobe': r'''
        record modprobe "$@"
        [[ -e "$STUB_DIR/module-built" ]] || exit 1
        # What loading mtty does: its virtual parent device appears.
        mkdir -p "$NOVA_GPU_EXT_HOST_SYSFS/devices/virtual/mtty/mtty"
    ''',
    'fake-python': r'''
        record python "$@"
        case "$2" in
            *"import nova.virt.gpu_ext"*)
                [[ -n "$SHIM_IMPORTABLE" || -e "$FAKE_NOVA_VIRT/gpu_ext" ]]
                ;;
            *"nova.virt.__file__"*) echo "$FAKE_NOVA_VIRT" ;;
        esac
    ''',
    'build-fake-sysfs': r'''
        record build-fake-sysfs "$@"
        mkdir -p "$1/bus/pci/devices"
    ''',
}


class Devstack:
    """A temp dir with the stand-in devstack and the files it writes."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.stub = tmp_path / 'stub'
        self.bin = self.stub / 'bin'
        self.bin.mkdir(parents=True)
        (self.stub / 'ini.py').write_text(INI_TOOL)
        (self.stub / 'functions').write_text(FUNCTIONS)
        for name, body in COMMANDS.items():
            path = self.bin / name
            path.write_text('#!/bin/bash\n%s\n%s\n' % (
                RECORD, textwrap.dedent(body)))
            path.chmod(0o755)
        self.etc = tmp_path / 'etc'
        self.etc.mkdir()
        self.nova_conf = self.etc / 'nova.conf'
        self.cpu_conf = self.etc / 'nova-cpu.conf'
        self.tempest_conf = self.etc / 'tempest.conf'
        self.calls_file = tmp_path / 'calls'
        self.calls_file.touch()
        self.sysfs = tmp_path / 'sys'
        self.nova_virt = tmp_path / 'nova-src' / 'nova' / 'virt'
        self.nova_virt.mkdir(parents=True)
        self.env = {
            'PATH': '%s:%s' % (self.bin, os.environ.get('PATH', '')),
            'HOME': str(tmp_path),
            'STUB_DIR': str(self.stub),
            'CALLS': str(self.calls_file),
            'REAL_PYTHON': sys.executable,
            'PYTHON': str(self.bin / 'fake-python'),
            'FAKE_NOVA_VIRT': str(self.nova_virt),
            'DEST': str(tmp_path / 'opt-stack'),
            'NOVA_GPU_EXT_DIR': str(REPO),
            'NOVA_CONF': str(self.nova_conf),
            'NOVA_CPU_CONF': str(self.cpu_conf),
            'TEMPEST_CONFIG': str(self.tempest_conf),
            'NOVA_FILTERS': DEVSTACK_NOVA_FILTERS,
            'NOVA_GPU_EXT_HOST_SYSFS': str(self.sysfs),
            'ENABLED_SERVICES': 'n-api,n-sch,n-cpu,n-cond,placement-api,'
                                'tempest,nova-gpu-ext',
        }
        # What devstack's create_nova_conf wrote before post-config.
        self.nova_conf.write_text(textwrap.dedent('''\
            [DEFAULT]
            compute_driver = libvirt.LibvirtDriver
            [filter_scheduler]
            enabled_filters = %s
            ''' % DEVSTACK_NOVA_FILTERS))

    def run(self, *phases, check=True, **env):
        """Source settings and plugin.sh for each phase in one shell.

        devstack sources plugin.sh into stack.sh's shell, phase after
        phase; so does this.
        """
        lines = ['set -o errexit -o pipefail',
                 'source %s' % shlex.quote(str(self.stub / 'functions')),
                 'source %s' % shlex.quote(str(DEVSTACK / 'settings'))]
        for phase in phases:
            if phase == 'start-compute':
                # stack.sh starts nova-compute between post-config and
                # extra.
                lines.append('start_nova_compute')
            else:
                lines.append('source %s %s' % (
                    shlex.quote(str(DEVSTACK / 'plugin.sh')), phase))
        script = self.tmp / 'run.sh'
        script.write_text('\n'.join(lines) + '\n')
        full_env = dict(self.env, **env)
        proc = subprocess.run(['bash', str(script)], env=full_env,
                              capture_output=True, text=True, timeout=60)
        if check:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def stack(self, **env):
        return self.run('stack install', 'stack post-config',
                        'start-compute', 'stack extra',
                        'stack test-config', **env)

    def calls(self):
        return [shlex.split(line)
                for line in self.calls_file.read_text().splitlines()]

    def calls_of(self, name):
        return [call[1:] for call in self.calls() if call[0] == name]


def read_ini(path):
    """(section, option) -> list of values; keeps repeated options."""
    out = {}
    section = None
    for line in pathlib.Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        if line.startswith('['):
            section = line[1:-1]
            continue
        key, _, value = line.partition('=')
        out.setdefault((section, key.strip()), []).append(value.strip())
    return out


@pytest.fixture
def devstack(tmp_path):
    if not shutil.which('bash'):
        pytest.skip('bash is not installed')
    return Devstack(tmp_path)


def test_settings_defaults_and_plugin_definition(devstack):
    devstack.run()
    calls = devstack.calls()
    assert ['define_plugin', 'nova-gpu-ext'] in calls
    assert ['enable_service', 'nova-gpu-ext'] in calls


def test_install_pip_installs_package_without_deps(devstack):
    devstack.run('stack install', SHIM_IMPORTABLE='1')
    assert devstack.calls_of('pip_install') == [['--no-deps', str(REPO)]]
    # The shim is importable (site-packages Nova): nothing is linked.
    assert not (devstack.nova_virt / 'gpu_ext').exists()


def test_install_links_shim_into_development_mode_nova(devstack):
    devstack.run('stack install')
    link = devstack.nova_virt / 'gpu_ext'
    assert link.is_symlink()
    assert link.resolve() == (REPO / 'nova' / 'virt' / 'gpu_ext').resolve()
    # clean removes only that link.
    devstack.run('clean')
    assert not link.exists() and not link.is_symlink()
    assert devstack.nova_virt.is_dir()


def test_post_config_sets_driver_filters_and_weighers(devstack):
    devstack.run('stack post-config')
    conf = read_ini(devstack.nova_conf)
    assert conf['DEFAULT', 'compute_driver'] == ['gpu_ext.GPULibvirtDriver']
    # MultiStrOpt: Nova's all_filters stays, ours is added.
    assert conf['filter_scheduler', 'available_filters'] == [
        'nova.scheduler.filters.all_filters',
        'nova_gpu_ext.scheduler.filters.GPUExtHostFilter',
        'nova_gpu_ext.scheduler.filters.GPUPlacementFilter']
    enabled = conf['filter_scheduler', 'enabled_filters']
    assert len(enabled) == 1
    assert enabled[0].split(',') == (
        DEVSTACK_NOVA_FILTERS.split(',') +
        ['GPUExtHostFilter', 'GPUPlacementFilter'])
    # ListOpt: one comma-separated line, Nova's weighers kept.
    assert conf['filter_scheduler', 'weight_classes'] == [
        'nova.scheduler.weights.all_weighers,'
        'nova_gpu_ext.scheduler.weighers.GPUHostAvoidanceWeigher,'
        'nova_gpu_ext.scheduler.weighers.GPUAffinityWeigher,'
        'nova_gpu_ext.scheduler.weighers.GPUSharingWeigher']
    # No sample mdev driver asked for: [devices] untouched.
    assert ('devices', 'enabled_mdev_types') not in conf


def test_post_config_twice_adds_nothing_twice(devstack):
    devstack.run('stack post-config', 'stack post-config')
    conf = read_ini(devstack.nova_conf)
    assert len(conf['filter_scheduler', 'available_filters']) == 3
    enabled = conf['filter_scheduler', 'enabled_filters'][0].split(',')
    assert enabled.count('GPUExtHostFilter') == 1
    assert enabled.count('GPUPlacementFilter') == 1
    weighers = conf['filter_scheduler', 'weight_classes'][0].split(',')
    assert len(weighers) == len(set(weighers)) == 4


def test_operator_settings_are_kept(devstack):
    devstack.nova_conf.write_text(textwrap.dedent('''\
        [filter_scheduler]
        available_filters = nova.scheduler.filters.all_filters
        available_filters = my.filters.Mine
        enabled_filters = ComputeFilter,PciPassthroughFilter
        weight_classes = nova.scheduler.weighers.ram.RAMWeigher
        '''))
    devstack.run('stack post-config',
                 NOVA_GPU_EXT_FILTERS='GPUExtHostFilter GPUOtherFilter',
                 NOVA_GPU_EXT_OPTIONS='enabled=false '
                                      'gpu_host_avoidance_weight_multiplier=2')
    conf = read_ini(devstack.nova_conf)
    assert conf['filter_scheduler', 'available_filters'] == [
        'nova.scheduler.filters.all_filters', 'my.filters.Mine',
        'nova_gpu_ext.scheduler.filters.GPUExtHostFilter',
        'nova_gpu_ext.scheduler.filters.GPUOtherFilter']
    assert conf['filter_scheduler', 'enabled_filters'] == [
        'ComputeFilter,PciPassthroughFilter,GPUExtHostFilter,GPUOtherFilter']
    assert conf['filter_scheduler', 'weight_classes'] == [
        'nova.scheduler.weighers.ram.RAMWeigher,'
        'nova_gpu_ext.scheduler.weighers.GPUHostAvoidanceWeigher,'
        'nova_gpu_ext.scheduler.weighers.GPUAffinityWeigher,'
        'nova_gpu_ext.scheduler.weighers.GPUSharingWeigher']
    assert conf['gpu_ext', 'enabled'] == ['false']
    assert conf['gpu_ext', 'gpu_host_avoidance_weight_multiplier'] == ['2']


def test_compute_config_reaches_nova_cpu_conf(devstack):
    # devstack rebuilds nova-cpu.conf from nova.conf when it starts the
    # compute, after post-config: what we wrote must survive that.
    devstack.cpu_conf.write_text('[DEFAULT]\nstale = 1\n')
    devstack.run('stack post-config', 'start-compute')
    cpu = read_ini(devstack.cpu_conf)
    assert cpu['DEFAULT', 'compute_driver'] == ['gpu_ext.GPULibvirtDriver']
    assert ('DEFAULT', 'stale') not in cpu


def test_compute_only_node(devstack):
    devstack.stack(ENABLED_SERVICES='n-cpu,nova-gpu-ext')
    conf = read_ini(devstack.nova_conf)
    assert conf['DEFAULT', 'compute_driver'] == ['gpu_ext.GPULibvirtDriver']
    assert ('filter_scheduler', 'available_filters') not in conf
    assert devstack.calls_of('openstack') == []


def test_plugin_disabled_does_nothing(devstack):
    before = devstack.nova_conf.read_text()
    devstack.stack(ENABLED_SERVICES='n-api,n-sch,n-cpu')
    assert devstack.nova_conf.read_text() == before
    names = {call[0] for call in devstack.calls()}
    assert names <= {'define_plugin', 'enable_service', 'start_nova_compute'}


def _flavors(devstack):
    flavors = {}
    for call in devstack.calls_of('openstack'):
        if 'create' not in call:
            continue
        assert call[:2] == ['--os-compute-api-version', '2.86']
        name = call[call.index('create') + 1]
        props = dict(call[i + 1].split('=', 1)
                     for i, arg in enumerate(call) if arg == '--property')
        flavors[name] = props
    return flavors


def test_extra_creates_sample_flavors_with_valid_gpu_specs(devstack):
    devstack.stack()
    flavors = _flavors(devstack)
    assert set(flavors) == {'gpu.vgpu', 'gpu.vgpu.upstream', 'gpu.fastboot'}
    assert flavors['gpu.vgpu']['resources:VGPU'] == '1'
    assert flavors['gpu.vgpu.upstream']['gpu:enabled'] == 'false'
    for name, props in flavors.items():
        gpu_keys = [key for key in props if key.startswith(specs.PREFIX)]
        assert gpu_keys, name
        # The same parser as the API validators: every key and value the
        # plugin sets is accepted.
        specs.parse(props)


def test_extra_without_flavors(devstack):
    devstack.stack(NOVA_GPU_EXT_CREATE_FLAVORS='False')
    assert _flavors(devstack) == {}


def test_mdev_sample_loaded_at_post_config(devstack):
    (devstack.stub / 'module-built').touch()
    devstack.stack(NOVA_GPU_EXT_MDEV_SAMPLE='mtty')
    assert ['mtty'] in devstack.calls_of('modprobe')
    for path in (devstack.nova_conf, devstack.cpu_conf):
        conf = read_ini(path)
        assert conf['devices', 'enabled_mdev_types'] == ['mtty-2']
        assert conf['mdev_mtty-2', 'device_addresses'] == ['mtty_mtty']
    # Configured before the compute started: no restart.
    assert devstack.calls_of('stop_nova_compute') == []


def test_mdev_sample_built_late_restarts_compute(devstack):
    # Nova's plugin is still building the module at post-config...
    devstack.run('stack install', 'stack post-config',
                 NOVA_GPU_EXT_MDEV_SAMPLE='mtty')
    assert ('devices', 'enabled_mdev_types') not in read_ini(
        devstack.nova_conf)
    devstack.run('start-compute')
    # ... and has finished by the extra phase.
    (devstack.stub / 'module-built').touch()
    devstack.run('stack extra', NOVA_GPU_EXT_MDEV_SAMPLE='mtty',
                 NOVA_GPU_EXT_CREATE_FLAVORS='False')
    names = [call[0] for call in devstack.calls()]
    assert names.index('stop_nova_compute') < names.index(
        'start_nova_compute', names.index('stop_nova_compute'))
    cpu = read_ini(devstack.cpu_conf)
    assert cpu['devices', 'enabled_mdev_types'] == ['mtty-2']
    assert cpu['mdev_mtty-2', 'device_addresses'] == ['mtty_mtty']


def test_mdev_sample_missing_fails_with_a_reason(devstack):
    proc = devstack.run('stack post-config', 'start-compute', 'stack extra',
                        check=False, NOVA_GPU_EXT_MDEV_SAMPLE='mtty')
    assert proc.returncode != 0
    assert 'NOVA_COMPILE_MDEV_SAMPLES' in proc.stderr


def test_fake_sysfs_built_with_hook_command(devstack):
    root = devstack.tmp / 'fake-sysfs'
    devstack.run('stack post-config', NOVA_GPU_EXT_FAKE_SYSFS=str(root),
                 NOVA_GPU_EXT_FAKE_SYSFS_CMD='build-fake-sysfs')
    assert devstack.calls_of('build-fake-sysfs') == [[str(root)]]
    assert (root / 'bus' / 'pci' / 'devices').is_dir()
    conf = read_ini(devstack.nova_conf)
    assert conf['gpu_ext', 'sysfs_root'] == [str(root)]
    devstack.run('clean', NOVA_GPU_EXT_FAKE_SYSFS=str(root))
    assert not root.exists()


def test_fake_sysfs_without_a_builder_fails(devstack):
    proc = devstack.run('stack post-config', check=False,
                        NOVA_GPU_EXT_FAKE_SYSFS=str(devstack.tmp / 'fs'),
                        PATH='%s:/usr/bin:/bin' % devstack.bin)
    assert proc.returncode != 0
    assert 'NOVA_GPU_EXT_FAKE_SYSFS_CMD' in proc.stderr


def test_test_config_adds_filters_to_tempest(devstack):
    devstack.tempest_conf.write_text(
        '[compute-feature-enabled]\n'
        'scheduler_enabled_filters = ComputeFilter,NUMATopologyFilter\n')
    devstack.run('stack test-config')
    conf = read_ini(devstack.tempest_conf)
    assert conf['compute-feature-enabled', 'scheduler_enabled_filters'] == [
        'ComputeFilter,NUMATopologyFilter,GPUExtHostFilter,'
        'GPUPlacementFilter']


def test_test_config_keeps_tempest_all(devstack):
    devstack.tempest_conf.write_text(
        '[compute-feature-enabled]\nscheduler_enabled_filters = all\n')
    devstack.run('stack test-config')
    conf = read_ini(devstack.tempest_conf)
    assert conf['compute-feature-enabled', 'scheduler_enabled_filters'] == [
        'all']


def test_unstack_is_harmless(devstack):
    before = devstack.nova_conf.read_text()
    devstack.run('unstack')
    assert devstack.nova_conf.read_text() == before


def test_bashate_clean():
    bashate = shutil.which('bashate') or shutil.which(
        'bashate', path=os.path.dirname(sys.executable))
    if not bashate:
        pytest.skip('bashate is not installed (tox -e pep8 runs it)')
    files = [str(p) for p in DEVSTACK.rglob('*')
             if p.is_file() and (p.suffix == '.sh' or p.name == 'settings')]
    proc = subprocess.run([bashate, '-i', 'E006'] + files,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
