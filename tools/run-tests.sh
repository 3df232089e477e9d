#!/usr/bin/env bash
# The project's test command (README: "Run the tests"): unit tests, Nova's
# functional harness in both threading modes, style checks, and, where real
# libvirt/QEMU are installed, the boot tier.
set -euo pipefail
cd "$(dirname "$0")/.."
export PBR_VERSION="${PBR_VERSION:-0.1.0}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# tox drives every test environment. On a machine without it, install it
# into a small virtualenv of its own (.tox-venv, or $NOVA_GPU_EXT_TOOLS_VENV):
# no root, and nothing written into the system's Python (Debian's is
# "externally managed" and refuses pip).
tox=tox
if ! command -v tox >/dev/null 2>&1; then
    tools_venv="${NOVA_GPU_EXT_TOOLS_VENV:-$PWD/.tox-venv}"
    if [ ! -x "$tools_venv/bin/tox" ]; then
        echo "run-tests: installing tox into $tools_venv" >&2
        python3 -m venv "$tools_venv"
        "$tools_venv/bin/python" -m pip install --quiet 'tox>=4'
    fi
    tox="$tools_venv/bin/tox"
fi
# functional runs the harness in both threading modes.
envs="py3,functional,pep8"
# Tiers that land with their issues: docs (Sphinx), Nova's own libvirt
# functional modules on our driver, checked against upstream's recorded
# results (see doc/source/contributor/ci.rst), and the real boot tier.
for extra in docs nova-functional e2e cloud; do
    if ! grep -q "^\\[testenv:$extra\\]" tox.ini; then
        continue
    fi
    # The boot tier needs libvirtd/QEMU and libvirt's headers (for
    # libvirt-python): tools/install-e2e-deps.sh, which .ci/run runs.
    if [ "$extra" = e2e ] && ! { command -v virsh >/dev/null 2>&1 &&
            pkg-config --exists libvirt 2>/dev/null; }; then
        echo "run-tests: no libvirt here, skipping the boot tier (e2e);" \
             "sudo tools/install-e2e-deps.sh installs it" >&2
        continue
    fi
    # The cloud tier (tools/cloud) installs Debian's MariaDB and RabbitMQ
    # and starts services: root, apt-get and libvirt needed.
    # NOVA_GPU_EXT_CLOUD_TIER=skip leaves it out (it adds ~20-30 minutes
    # on the 2-core machine; doc/source/contributor/ci.rst).
    if [ "$extra" = cloud ] && [ "${NOVA_GPU_EXT_CLOUD_TIER:-}" = skip ]; then
        echo "run-tests: NOVA_GPU_EXT_CLOUD_TIER=skip, skipping the cloud tier" >&2
        continue
    fi
    if [ "$extra" = cloud ] && ! { [ "$(id -u)" = 0 ] &&
            command -v apt-get >/dev/null 2>&1 &&
            command -v virsh >/dev/null 2>&1; }; then
        echo "run-tests: not root on Debian with libvirt, skipping the" \
             "cloud tier (tools/cloud)" >&2
        continue
    fi
    envs="$envs,$extra"
done
# Only pass "--" with arguments: an empty "--" would make tox hand every
# env empty posargs, and nova-functional's default module list would be lost.
run_tox() {
    local which=$1
    shift
    if [ "$#" -gt 0 ]; then
        "$tox" -e "$which" -- "$@"
    else
        "$tox" -e "$which"
    fi
}
case ",$envs," in
    *,cloud,*)
        # The cloud's install (Debian packages, its venv, the guest image)
        # is I/O and the mirror's: it runs in the background while the
        # other tiers run, and the cloud tier starts when both are done.
        others=${envs%,cloud}
        prepare_log=${TMPDIR:-/tmp}/nova-gpu-ext-cloud-prepare.log
        echo "run-tests: preparing the cloud tier in the background" \
             "(log: $prepare_log)" >&2
        "${NOVA_GPU_EXT_CLOUD_TOOL:-tools/cloud}" prepare \
            >"$prepare_log" 2>&1 &
        prepare=$!
        rc=0
        run_tox "$others" "$@" || rc=$?
        if ! wait "$prepare"; then
            tail -n 30 "$prepare_log" >&2
            echo "run-tests: tools/cloud prepare failed" >&2
            exit 1
        fi
        run_tox cloud "$@" || rc=$?
        exit "$rc"
        ;;
esac
if [ "$#" -gt 0 ]; then
    exec "$tox" -e "$envs" -- "$@"
fi
exec "$tox" -e "$envs"
