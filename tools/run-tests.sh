#!/usr/bin/env bash
# The project's test command (README: "Run the tests"): unit tests, Nova's
# functional harness in both threading modes, style checks, and, where real
# libvirt/QEMU are installed, the boot tier.
set -euo pipefail
cd "$(dirname "$0")/.."
export PBR_VERSION="${PBR_VERSION:-0.1.0}"
# functional runs the harness in both threading modes.
envs="py3,functional,pep8"
# Tiers that land with their issues: docs (Sphinx), Nova's own libvirt
# functional modules on our driver and on upstream's (about 15 min, see
# doc/source/contributor/ci.rst) and the real boot tier.
for extra in docs nova-functional e2e; do
    if grep -q "^\\[testenv:$extra\\]" tox.ini; then
        envs="$envs,$extra"
    fi
done
exec tox -e "$envs" -- "$@"
