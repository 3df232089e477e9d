#!/usr/bin/env bash
# The project's demo command (README: "The two commands"): creates its own
# virtualenv (.venv, or $NOVA_GPU_EXT_VENV) the first time, installs this
# checkout into it from constraints.txt, then runs `nova-gpu-ext demo`.
# Later runs reuse the environment and reinstall only when a requirements
# file changed. Arguments go to `nova-gpu-ext demo` (e.g. --dump-xml DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
export PBR_VERSION="${PBR_VERSION:-0.1.0}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
venv="${NOVA_GPU_EXT_VENV:-$PWD/.venv}"
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null 2>&1; then
    echo "demo: needs Python 3.10+ as '$python' (Debian: apt-get install" \
         "python3 python3-venv)" >&2
    exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
    echo "demo: creating the virtualenv $venv" >&2
    if ! "$python" -m venv "$venv"; then
        echo "demo: '$python -m venv' failed (Debian: apt-get install" \
             "python3-venv)" >&2
        exit 1
    fi
fi
# Reinstall when what the environment was built from changed.
stamp="$venv/.nova-gpu-ext-installed"
want=$(cat constraints.txt requirements.txt test-requirements.txt \
       pyproject.toml setup.cfg | cksum)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "demo: installing nova-gpu-ext and Nova into $venv" \
         "(first run: a few minutes)" >&2
    "$venv/bin/python" -m pip install --quiet -c constraints.txt \
        -r requirements.txt -r test-requirements.txt
    "$venv/bin/python" -m pip install --quiet --no-deps .
    echo "$want" > "$stamp"
fi
exec "$venv/bin/nova-gpu-ext" demo "$@"
