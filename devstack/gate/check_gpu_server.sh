#!/bin/bash
#
# check_gpu_server.sh - boot GPU-flavor servers on a devstack and check them
#
# Run on the devstack node as the stack user after stack.sh, with the
# plugin's sample flavors and the sample mdev type (mtty) configured
# (NOVA_GPU_EXT_MDEV_SAMPLE=mtty). Checks:
#   1. the compute node provider has nova-gpu-ext's trait CUSTOM_GPU_EXT;
#   2. a server of flavor gpu.vgpu (resources:VGPU=1) and one of
#      gpu.vgpu.upstream (same device, gpu:enabled=false) go ACTIVE;
#   3. each domain has an mdev hostdev (the mtty vGPU);
#   4. the two domains differ: nova-gpu-ext's driver is in the path.
# Writes the domain XML files to $NOVA_GPU_EXT_CHECK_DIR.

set -o errexit
set -o pipefail

DEVSTACK_DIR=${DEVSTACK_DIR:-/opt/stack/devstack}
NOVA_GPU_EXT_CHECK_DIR=${NOVA_GPU_EXT_CHECK_DIR:-/tmp/nova-gpu-ext-check}
FLAVOR_PREFIX=${NOVA_GPU_EXT_FLAVOR_PREFIX:-gpu}
GATE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# shellcheck disable=SC1091
source "$DEVSTACK_DIR/openrc" admin admin
set -o nounset

mkdir -p "$NOVA_GPU_EXT_CHECK_DIR"

function fail {
    echo "FAIL: $*" >&2
    exit 1
}

echo "== the compute node runs nova-gpu-ext"
rp=$(openstack resource provider list --name "$(hostname)" -f value -c uuid)
[[ -n "$rp" ]] || rp=$(openstack resource provider list -f value -c uuid |
    head -n 1)
openstack --os-placement-api-version 1.6 resource provider trait list "$rp" \
    -f value | tee \
    "$NOVA_GPU_EXT_CHECK_DIR/traits.txt"
grep -qx CUSTOM_GPU_EXT "$NOVA_GPU_EXT_CHECK_DIR/traits.txt" || \
    fail "compute node provider $rp has no CUSTOM_GPU_EXT trait"

image=$(openstack image list -f value -c Name | grep -m 1 -i cirros) || \
    fail "no cirros image"

function boot {
    local name=$1 flavor=$2
    openstack --os-compute-api-version 2.37 server create --wait \
        --flavor "$flavor" --image "$image" --nic none "$name" >/dev/null
    local status
    status=$(openstack server show "$name" -f value -c status)
    [[ "$status" == "ACTIVE" ]] || fail "server $name is $status"
    local domain
    domain=$(openstack server show "$name" -f value \
        -c OS-EXT-SRV-ATTR:instance_name)
    sudo virsh dumpxml "$domain" > "$NOVA_GPU_EXT_CHECK_DIR/$name.xml"
    grep -q "<hostdev mode=.subsystem. type=.mdev." \
        "$NOVA_GPU_EXT_CHECK_DIR/$name.xml" || \
        fail "server $name has no mdev hostdev"
    echo "server $name ($flavor): ACTIVE, domain $domain has an mdev"
}

function cleanup {
    openstack server delete --wait gpu-ext-check gpu-ext-check-upstream \
        2>/dev/null || true
}
trap cleanup EXIT

echo "== boot one server per flavor"
boot gpu-ext-check "$FLAVOR_PREFIX.vgpu"
boot gpu-ext-check-upstream "$FLAVOR_PREFIX.vgpu.upstream"

echo "== what nova-gpu-ext changed in the domain XML"
python3 "$GATE_DIR/compare_domains.py" \
    "$NOVA_GPU_EXT_CHECK_DIR/gpu-ext-check-upstream.xml" \
    "$NOVA_GPU_EXT_CHECK_DIR/gpu-ext-check.xml" | \
    tee "$NOVA_GPU_EXT_CHECK_DIR/domain.diff"

echo "PASS"
