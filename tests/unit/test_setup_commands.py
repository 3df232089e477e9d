"""The README's two set-up commands work on a machine with nothing set up.

A new user types exactly what "The two commands" shows. These tests run the
two scripts with stub ``python3``/``pip``/``tox`` executables on ``PATH``
(and no ``tox``), and check that each script creates what it needs itself:
the demo its virtualenv, installed from the constraints; the test command
tox. The real thing (a fresh clone, a real install) is tried by hand before
a release; see README "The two commands".
"""

import os
import re
import stat
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# A python3 that understands "-m venv DIR" (creates DIR/bin/python, this
# same stub) and "-m pip install ..." (logs it; installing tox creates
# bin/tox, installing the project creates bin/nova-gpu-ext); every other
# call is logged. Tools it creates log their argv.
STUB = r'''#!/bin/sh
log="$STUB_LOG"
echo "$0 $*" >> "$log"
bindir=$(dirname "$0")
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    mkdir -p "$3/bin"
    cp "$0" "$3/bin/python"
    cp "$0" "$3/bin/python3"
    exit 0
fi
if [ "$1" = "-m" ] && [ "$2" = "pip" ] && [ "$3" = "install" ]; then
    case "$*" in
        *tox*) name=tox ;;
        *--no-deps*) name=nova-gpu-ext ;;
        *) exit 0 ;;
    esac
    printf '#!/bin/sh\necho "%s $*" >> "%s"\n' "$name" "$log" \
        > "$bindir/$name"
    chmod +x "$bindir/$name"
    exit 0
fi
exit 0
'''


def _stub_env(tmp_path):
    stubs = tmp_path / 'stubs'
    stubs.mkdir()
    python3 = stubs / 'python3'
    python3.write_text(STUB)
    python3.chmod(python3.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / 'log'
    log.write_text('')
    env = {'PATH': '%s:/usr/bin:/bin' % stubs, 'HOME': str(tmp_path),
           'STUB_LOG': str(log), 'NOVA_GPU_EXT_VENV': str(tmp_path / 'v'),
           'NOVA_GPU_EXT_TOOLS_VENV': str(tmp_path / 'tools-v'),
           'NOVA_GPU_EXT_SKIP_E2E_DEPS': '1'}
    return env, log


def readme_commands():
    with open(os.path.join(ROOT, 'README.md')) as f:
        text = f.read()
    section = text.split('## The two commands', 1)[1].split('\n## ', 1)[0]
    blocks = re.findall(r'```console\n(.*?)```', section, re.S)
    return [line[2:].strip() for block in blocks
            for line in block.splitlines() if line.startswith('$ ')]


def test_readme_shows_exactly_two_commands_and_they_exist():
    commands = readme_commands()
    assert len(commands) == 2, commands
    for command in commands:
        script = command.split()[0]
        path = os.path.join(ROOT, script)
        assert os.path.isfile(path), command
        assert os.access(path, os.X_OK), command


def test_demo_command_creates_its_environment(tmp_path):
    env, log = _stub_env(tmp_path)
    demo = readme_commands()[0].split()
    proc = subprocess.run([os.path.join(ROOT, demo[0])] + demo[1:],
                          cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    assert any('-m venv %s' % env['NOVA_GPU_EXT_VENV'] in c for c in calls)
    installs = [c for c in calls if '-m pip install' in c]
    assert any('-c constraints.txt' in c and 'requirements.txt' in c
               for c in installs), calls
    assert any('--no-deps' in c for c in installs), calls
    assert calls[-1].startswith('nova-gpu-ext demo'), calls


def test_demo_command_reuses_its_environment(tmp_path):
    env, log = _stub_env(tmp_path)
    demo = os.path.join(ROOT, readme_commands()[0].split()[0])
    for _ in range(2):
        subprocess.run([demo], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=60)
    calls = log.read_text().splitlines()
    assert len([c for c in calls if '-m venv' in c]) == 1, calls
    assert [c for c in calls if c.startswith('nova-gpu-ext demo')] == [
        'nova-gpu-ext demo'] * 2


def test_test_command_installs_tox_when_missing(tmp_path):
    env, log = _stub_env(tmp_path)
    env['NOVA_GPU_EXT_CLOUD_TIER'] = 'skip'
    tests = readme_commands()[1].split()
    proc = subprocess.run([os.path.join(ROOT, tests[0])] + tests[1:],
                          cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    assert any('install' in c and 'tox' in c for c in calls), calls
    assert calls[-1].startswith('tox -e py3,functional,pep8'), calls


def test_cloud_tier_is_prepared_in_the_background_and_runs_last(tmp_path):
    """Where the cloud tier runs (root, apt-get, libvirt), its install
    overlaps the other tiers and ``tox -e cloud`` runs after both."""
    if os.geteuid() != 0 or not all(
            os.path.exists(p) for p in ('/usr/bin/apt-get', '/usr/bin/virsh')):
        import pytest
        pytest.skip('the cloud tier runs only as root with apt and libvirt')
    env, log = _stub_env(tmp_path)
    tool = tmp_path / 'cloud'
    tool.write_text('#!/bin/sh\nsleep 0.5; echo "cloud $*" >> "%s"\n' % log)
    tool.chmod(0o755)
    env['NOVA_GPU_EXT_CLOUD_TOOL'] = str(tool)
    tests = readme_commands()[1].split()
    proc = subprocess.run([os.path.join(ROOT, tests[0])] + tests[1:],
                          cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    calls = [c for c in log.read_text().splitlines()
             if c.startswith(('tox ', 'cloud '))]
    assert calls[0].startswith('tox -e py3,functional,pep8'), calls
    assert 'cloud' not in calls[0].split()[2].split(','), calls
    # prepare (0.5 s) was still running when the other tiers started
    assert calls[1:] == ['cloud prepare', 'tox -e cloud'], calls
