"""The Zuul job definitions and the gate scripts they run.

Layer rule: test of CI files. ``.zuul.yaml`` must be valid YAML, every
playbook and script it names must exist, the devstack job must enable the
plugin under the name ``devstack/settings`` defines and set only variables
the plugin knows; the gate's XML comparison must tell changed domains from
unchanged ones.
"""

import pathlib
import re
import subprocess
import sys

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
ZUUL = REPO / '.zuul.yaml'
COMPARE = REPO / 'devstack' / 'gate' / 'compare_domains.py'

PLAYBOOK_KEYS = ('pre-run', 'run', 'post-run', 'cleanup-run')


def _load():
    return yaml.safe_load(ZUUL.read_text())


def _jobs():
    return {item['job']['name']: item['job']
            for item in _load() if 'job' in item}


def _playbooks(job):
    for key in PLAYBOOK_KEYS:
        value = job.get(key) or []
        for path in [value] if isinstance(value, str) else value:
            yield path


def test_zuul_yaml_is_a_list_of_jobs_and_one_project():
    data = _load()
    assert isinstance(data, list)
    kinds = [next(iter(item)) for item in data]
    assert set(kinds) <= {'job', 'project', 'project-template'}
    assert kinds.count('project') == 1
    for job in _jobs().values():
        assert job.get('parent'), job['name']
        assert job.get('description'), job['name']


def test_referenced_playbooks_exist():
    seen = 0
    for job in _jobs().values():
        for path in _playbooks(job):
            assert (REPO / path).is_file(), path
            yaml.safe_load((REPO / path).read_text())
            seen += 1
    assert seen, 'no job runs a playbook of this repository'


def test_scripts_run_by_playbooks_exist_and_are_executable():
    scripts = set()
    for job in _jobs().values():
        for path in _playbooks(job):
            text = (REPO / path).read_text()
            scripts.update(re.findall(r'(devstack/gate/[\w./-]+)', text))
    assert scripts
    for script in scripts:
        path = REPO / script
        assert path.is_file(), script
        assert path.stat().st_mode & 0o111, '%s is not executable' % script


def test_pipeline_jobs_are_defined_here_or_upstream():
    project = next(item['project'] for item in _load() if 'project' in item)
    jobs = _jobs()
    for pipeline in ('check', 'gate'):
        for entry in project[pipeline]['jobs']:
            name = entry if isinstance(entry, str) else next(iter(entry))
            assert name in jobs or name.startswith('openstack-tox-'), name
    # Every job defined here runs in check.
    check = {e if isinstance(e, str) else next(iter(e))
             for e in project['check']['jobs']}
    assert set(jobs) <= check


def test_devstack_job_enables_the_plugin_with_known_settings():
    settings = (REPO / 'devstack' / 'settings').read_text()
    plugin_name = re.search(r'^define_plugin (\S+)', settings, re.M).group(1)
    known = set(re.findall(r'^(NOVA_GPU_EXT_\w+)=', settings, re.M))
    devstack_jobs = [job for job in _jobs().values()
                     if plugin_name in job.get('vars', {}).get(
                         'devstack_plugins', {})]
    assert devstack_jobs, 'no job enables the devstack plugin'
    for job in devstack_jobs:
        localrc = job['vars'].get('devstack_localrc', {})
        ours = {key for key in localrc if key.startswith('NOVA_GPU_EXT_')}
        assert ours <= known, ours - known
        # GPU-less CI: the sample mdev driver stands in for a vGPU.
        assert localrc.get('NOVA_GPU_EXT_MDEV_SAMPLE') == 'mtty'


DOMAIN = '''<domain type="qemu">
  <name>instance-%(n)s</name>
  <uuid>%(uuid)s</uuid>
  <metadata>
    <nova:instance
        xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:name>%(name)s</nova:name>
    </nova:instance>
  </metadata>
  <memory>524288</memory>
  <os><type>hvm</type>%(os)s</os>
  <devices>
    <disk type="file">
      <source file="/var/lib/nova/instances/%(uuid)s/disk"/>
    </disk>
    <hostdev mode="subsystem" type="mdev" model="vfio-pci">
      <source><address uuid="%(mdev)s"/></source>
    </hostdev>
  </devices>
</domain>
'''


def _domain(tmp_path, name, n, uuid, mdev, os_extra=''):
    path = tmp_path / ('%s.xml' % name)
    path.write_text(DOMAIN % dict(n=n, uuid=uuid, name=name, mdev=mdev,
                                  os=os_extra))
    return path


def _compare(a, b):
    return subprocess.run([sys.executable, str(COMPARE), str(a), str(b)],
                          capture_output=True, text=True, timeout=30)


def test_compare_domains_masks_what_differs_per_server(tmp_path):
    upstream = _domain(tmp_path, 'up', '00000001', 'a' * 8, 'b' * 8)
    ours = _domain(tmp_path, 'ours', '00000002', 'c' * 8, 'd' * 8)
    proc = _compare(upstream, ours)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'changed nothing' in proc.stdout


def test_compare_domains_prints_what_the_driver_changed(tmp_path):
    upstream = _domain(tmp_path, 'up', '00000001', 'a' * 8, 'b' * 8)
    ours = _domain(tmp_path, 'ours', '00000002', 'c' * 8, 'd' * 8,
                   os_extra='<bootmenu enable="no"/>')
    proc = _compare(upstream, ours)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '+' in proc.stdout and 'bootmenu' in proc.stdout


@pytest.mark.parametrize('content', ['', '<domain>'])
def test_compare_domains_rejects_bad_xml(tmp_path, content):
    bad = tmp_path / 'bad.xml'
    bad.write_text(content)
    good = _domain(tmp_path, 'up', '00000001', 'a' * 8, 'b' * 8)
    assert _compare(good, bad).returncode == 2
