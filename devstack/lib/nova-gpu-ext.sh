#!/bin/bash
#
# lib/nova-gpu-ext.sh - functions of the nova-gpu-ext devstack plugin
#
# Sourced by devstack/plugin.sh, which only dispatches the phases. Uses the
# globals of devstack (DEST, NOVA_CONF, NOVA_CPU_CONF, PYTHON, ...) and of
# devstack/settings (NOVA_GPU_EXT_*).
#
# Why $NOVA_CONF and not $NOVA_CPU_CONF: devstack's start_nova_compute
# recreates nova-cpu.conf as a copy of nova.conf (plus local.conf's
# post-config '$NOVA_CPU_CONF' section) after the post-config phase, so
# anything written to nova-cpu.conf in post-config is lost. Everything the
# compute needs is written to nova.conf, which the copy carries over; the
# API and scheduler ignore the compute-only options.

# Save trace setting
_XTRACE_NOVA_GPU_EXT=$(set +o | grep xtrace)
set +o xtrace

NOVA_GPU_EXT_NOVA_FILTERS_DEFAULT="ComputeFilter,ComputeCapabilitiesFilter"
NOVA_GPU_EXT_NOVA_FILTERS_DEFAULT+=",ImagePropertiesFilter"
NOVA_GPU_EXT_NOVA_FILTERS_DEFAULT+=",ServerGroupAntiAffinityFilter"
NOVA_GPU_EXT_NOVA_FILTERS_DEFAULT+=",ServerGroupAffinityFilter"

# _nova_gpu_ext_list_add LIST ITEM... - append each ITEM missing from the
# comma-separated LIST; print the result.
function _nova_gpu_ext_list_add {
    local list=$1
    shift
    local item
    for item in "$@"; do
        if [[ ",$list," != *",$item,"* ]]; then
            list=${list:+$list,}$item
        fi
    done
    echo "$list"
}

# _nova_gpu_ext_multi_add FILE SECTION OPTION VALUE... - add each VALUE that
# the multi-valued OPTION does not hold yet (a MultiStrOpt: one line each).
function _nova_gpu_ext_multi_add {
    local file=$1 section=$2 option=$3
    shift 3
    local existing value
    existing=$(iniget_multiline "$file" "$section" "$option")
    for value in "$@"; do
        if [[ " $existing " != *" $value "* ]]; then
            iniadd "$file" "$section" "$option" "$value"
            existing="$existing $value"
        fi
    done
}

# install_nova_gpu_ext - install the package into devstack's python
function install_nova_gpu_ext {
    # --no-deps: Nova and every library nova-gpu-ext uses are already
    # installed by devstack (Nova from source); letting pip resolve
    # "nova>=34,<35" could replace devstack's Nova with a PyPI release.
    pip_install --no-deps "$NOVA_GPU_EXT_DIR"
    _nova_gpu_ext_link_shim
}

# _nova_gpu_ext_link_shim - make nova.virt.gpu_ext importable
#
# Nova imports compute drivers as nova.virt.<compute_driver>. The package
# ships the shim nova/virt/gpu_ext/ for a Nova installed in site-packages;
# devstack installs Nova in development mode (from $NOVA_DIR), and then the
# regular package nova.virt in the source tree hides the shim. Link it
# into that tree in that case.
function _nova_gpu_ext_link_shim {
    if $PYTHON -c 'import nova.virt.gpu_ext' >/dev/null 2>&1; then
        return 0
    fi
    local virt_dir
    virt_dir=$($PYTHON -c \
        'import os, nova.virt; print(os.path.dirname(nova.virt.__file__))')
    echo "nova-gpu-ext: linking the driver shim into $virt_dir"
    ln -sfn "$NOVA_GPU_EXT_DIR/nova/virt/gpu_ext" "$virt_dir/gpu_ext"
    $PYTHON -c 'import nova.virt.gpu_ext' || \
        die $LINENO "nova.virt.gpu_ext cannot be imported"
}

# _nova_gpu_ext_unlink_shim - undo _nova_gpu_ext_link_shim
function _nova_gpu_ext_unlink_shim {
    local virt_dir
    virt_dir=$($PYTHON -c \
        'import os, nova.virt; print(os.path.dirname(nova.virt.__file__))' \
        2>/dev/null) || return 0
    if [[ -L "$virt_dir/gpu_ext" ]]; then
        rm -f "$virt_dir/gpu_ext"
    fi
}

# configure_nova_gpu_ext_compute - compute driver and [gpu_ext] options
function configure_nova_gpu_ext_compute {
    iniset "$NOVA_CONF" DEFAULT compute_driver "$NOVA_GPU_EXT_COMPUTE_DRIVER"
    local pair
    for pair in $NOVA_GPU_EXT_OPTIONS; do
        iniset "$NOVA_CONF" gpu_ext "${pair%%=*}" "${pair#*=}"
    done
    if [[ -n "$NOVA_GPU_EXT_FAKE_SYSFS" ]]; then
        build_nova_gpu_ext_fake_sysfs
    fi
}

# configure_nova_gpu_ext_scheduler - our filters and weighers, after Nova's
function configure_nova_gpu_ext_scheduler {
    local filter paths=() names=()
    for filter in $NOVA_GPU_EXT_FILTERS; do
        paths+=("$NOVA_GPU_EXT_FILTER_MODULE.$filter")
        names+=("$filter")
    done
    # available_filters is a MultiStrOpt: keep Nova's all_filters (the
    # default, gone as soon as one line is written) and add ours.
    _nova_gpu_ext_multi_add "$NOVA_CONF" filter_scheduler available_filters \
        nova.scheduler.filters.all_filters "${paths[@]}"

    # enabled_filters takes class names; devstack wrote $NOVA_FILTERS.
    local enabled
    enabled=$(iniget "$NOVA_CONF" filter_scheduler enabled_filters)
    enabled=${enabled:-${NOVA_FILTERS:-$NOVA_GPU_EXT_NOVA_FILTERS_DEFAULT}}
    enabled=$(_nova_gpu_ext_list_add "$enabled" "${names[@]}")
    iniset "$NOVA_CONF" filter_scheduler enabled_filters "$enabled"

    # weight_classes is a ListOpt of dotted paths: a second line would
    # replace the first, so write one comma-separated value.
    local weighers
    weighers=$(iniget "$NOVA_CONF" filter_scheduler weight_classes)
    weighers=${weighers:-nova.scheduler.weights.all_weighers}
    # shellcheck disable=SC2086
    weighers=$(_nova_gpu_ext_list_add "$weighers" $NOVA_GPU_EXT_WEIGHERS)
    iniset "$NOVA_CONF" filter_scheduler weight_classes "$weighers"
}

# build_nova_gpu_ext_fake_sysfs - a fake sysfs tree for GPU-less hosts
function build_nova_gpu_ext_fake_sysfs {
    local cmd=$NOVA_GPU_EXT_FAKE_SYSFS_CMD
    if [[ -z "$cmd" ]]; then
        if nova-gpu-ext fake-sysfs --help >/dev/null 2>&1; then
            cmd="nova-gpu-ext fake-sysfs"
        else
            die $LINENO "NOVA_GPU_EXT_FAKE_SYSFS is set but neither" \
                "NOVA_GPU_EXT_FAKE_SYSFS_CMD nor 'nova-gpu-ext fake-sysfs'" \
                "is available to build it"
        fi
    fi
    rm -rf "$NOVA_GPU_EXT_FAKE_SYSFS"
    mkdir -p "$NOVA_GPU_EXT_FAKE_SYSFS"
    # shellcheck disable=SC2086
    $cmd "$NOVA_GPU_EXT_FAKE_SYSFS" || \
        die $LINENO "could not build the fake sysfs with: $cmd"
    iniset "$NOVA_CONF" gpu_ext sysfs_root "$NOVA_GPU_EXT_FAKE_SYSFS"
}

# _nova_gpu_ext_mdev_parent_dir - sysfs directory of the mdev parent
function _nova_gpu_ext_mdev_parent_dir {
    # Nova maps a virtual parent name such as mtty_mtty to
    # /sys/devices/virtual/mtty/mtty.
    echo "$NOVA_GPU_EXT_HOST_SYSFS/devices/virtual/${NOVA_GPU_EXT_MDEV_PARENT//_//}"
}

# load_nova_gpu_ext_mdev_sample - load the sample mdev driver, if built
function load_nova_gpu_ext_mdev_sample {
    if [[ -d "$(_nova_gpu_ext_mdev_parent_dir)" ]]; then
        return 0
    fi
    if modinfo "$NOVA_GPU_EXT_MDEV_SAMPLE" >/dev/null 2>&1; then
        sudo modprobe "$NOVA_GPU_EXT_MDEV_SAMPLE"
    fi
    [[ -d "$(_nova_gpu_ext_mdev_parent_dir)" ]]
}

# configure_nova_gpu_ext_mdev - [devices] for the sample mdev type
function configure_nova_gpu_ext_mdev {
    iniset "$NOVA_CONF" devices enabled_mdev_types "$NOVA_GPU_EXT_MDEV_TYPE"
    iniset "$NOVA_CONF" "mdev_$NOVA_GPU_EXT_MDEV_TYPE" device_addresses \
        "$NOVA_GPU_EXT_MDEV_PARENT"
}

# _nova_gpu_ext_mdev_configured - did configure_nova_gpu_ext_mdev run?
function _nova_gpu_ext_mdev_configured {
    [[ "$(iniget "$NOVA_CONF" devices enabled_mdev_types)" == \
        "$NOVA_GPU_EXT_MDEV_TYPE" ]]
}

# setup_nova_gpu_ext_mdev_early - post-config: the sample, if it is there
#
# nova-compute refuses to start with a [mdev_*] device_addresses whose
# parent does not exist. When Nova's devstack plugin builds the sample
# (NOVA_COMPILE_MDEV_SAMPLES=True) the build may still be running now; then
# the configuration waits for the extra phase.
function setup_nova_gpu_ext_mdev_early {
    if load_nova_gpu_ext_mdev_sample; then
        configure_nova_gpu_ext_mdev
    else
        echo "nova-gpu-ext: mdev sample $NOVA_GPU_EXT_MDEV_SAMPLE not" \
            "available yet; [devices] is configured in the extra phase"
    fi
}

# setup_nova_gpu_ext_mdev_late - extra: configure and restart nova-compute
function setup_nova_gpu_ext_mdev_late {
    if _nova_gpu_ext_mdev_configured; then
        return 0
    fi
    load_nova_gpu_ext_mdev_sample || \
        die $LINENO "mdev sample driver $NOVA_GPU_EXT_MDEV_SAMPLE is not" \
            "available: build it with Nova's devstack plugin" \
            "(NOVA_COMPILE_MDEV_SAMPLES=True, enabled before nova-gpu-ext)"
    configure_nova_gpu_ext_mdev
    if is_service_enabled n-cpu; then
        # start_nova_compute copies nova.conf to nova-cpu.conf again.
        stop_nova_compute
        start_nova_compute
    fi
}

# create_nova_gpu_ext_flavors - sample flavors with gpu: extra specs
function create_nova_gpu_ext_flavors {
    local prefix=$NOVA_GPU_EXT_FLAVOR_PREFIX
    local size=(--ram "$NOVA_GPU_EXT_FLAVOR_RAM"
        --disk "$NOVA_GPU_EXT_FLAVOR_DISK"
        --vcpus "$NOVA_GPU_EXT_FLAVOR_VCPUS")
    # Extra specs are validated from microversion 2.86 on: a bad gpu: key
    # fails here, not at boot. (_nova_gpu_ext_flavor uses this osc.)
    local osc=(openstack --os-compute-api-version 2.86)
    _nova_gpu_ext_flavor "$prefix.vgpu" "${size[@]}" \
        --property resources:VGPU=1 \
        --property gpu:numa_affinity_policy=preferred \
        --property gpu:placement=pack
    # The same device with every nova-gpu-ext change switched off: upstream
    # domain XML, to compare with.
    _nova_gpu_ext_flavor "$prefix.vgpu.upstream" "${size[@]}" \
        --property resources:VGPU=1 \
        --property gpu:enabled=false
    # A GPU-less flavor opted in to the fast-boot domain XML tweaks.
    _nova_gpu_ext_flavor "$prefix.fastboot" "${size[@]}" \
        --property gpu:fast_boot=true
}

function _nova_gpu_ext_flavor {
    local name=$1
    shift
    if "${osc[@]}" flavor show "$name" >/dev/null 2>&1; then
        return 0
    fi
    "${osc[@]}" flavor create "$name" "$@"
}

# configure_nova_gpu_ext_tempest - tell tempest about our filters
function configure_nova_gpu_ext_tempest {
    local filters
    filters=$(iniget "$TEMPEST_CONFIG" compute-feature-enabled \
        scheduler_enabled_filters)
    if [[ -z "$filters" || "$filters" == "all" ]]; then
        return 0
    fi
    # shellcheck disable=SC2086
    filters=$(_nova_gpu_ext_list_add "$filters" $NOVA_GPU_EXT_FILTERS)
    iniset "$TEMPEST_CONFIG" compute-feature-enabled \
        scheduler_enabled_filters "$filters"
}

# cleanup_nova_gpu_ext - remove what the plugin created on the host
function cleanup_nova_gpu_ext {
    _nova_gpu_ext_unlink_shim
    if [[ -n "$NOVA_GPU_EXT_FAKE_SYSFS" ]]; then
        rm -rf "$NOVA_GPU_EXT_FAKE_SYSFS"
    fi
}

# Restore xtrace
$_XTRACE_NOVA_GPU_EXT
