#!/bin/bash
#
# plugin.sh - devstack plugin of nova-gpu-ext: a phase dispatcher
#
# devstack sources this file as "plugin.sh <mode> [phase]"; the work is in
# devstack/lib/nova-gpu-ext.sh. Phases:
#
#   stack install      pip install the package (and make the driver shim
#                      importable next to a development-mode Nova)
#   stack post-config  nova.conf: compute_driver, [filter_scheduler] filters
#                      and weighers next to Nova's, [gpu_ext], fake sysfs,
#                      [devices] for the sample mdev type when it is loaded
#   stack extra        sample mdev type if it was not ready (restarts
#                      nova-compute), sample flavors with gpu: extra specs
#   stack test-config  tempest's scheduler_enabled_filters
#   unstack            nothing to stop: no service of our own
#   clean              remove the shim link and the fake sysfs

NOVA_GPU_EXT_PLUGIN_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$NOVA_GPU_EXT_PLUGIN_DIR/lib/nova-gpu-ext.sh"

if is_service_enabled nova-gpu-ext; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing nova-gpu-ext"
        install_nova_gpu_ext
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring nova-gpu-ext"
        if is_service_enabled n-cpu; then
            configure_nova_gpu_ext_compute
            if [[ -n "$NOVA_GPU_EXT_MDEV_SAMPLE" ]]; then
                setup_nova_gpu_ext_mdev_early
            fi
        fi
        if is_service_enabled n-sch; then
            configure_nova_gpu_ext_scheduler
        fi
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        if is_service_enabled n-cpu && [[ -n "$NOVA_GPU_EXT_MDEV_SAMPLE" ]]; then
            echo_summary "Configuring the nova-gpu-ext sample mdev type"
            setup_nova_gpu_ext_mdev_late
        fi
        if is_service_enabled n-api && \
                [[ "$NOVA_GPU_EXT_CREATE_FLAVORS" == "True" ]]; then
            echo_summary "Creating nova-gpu-ext sample flavors"
            create_nova_gpu_ext_flavors
        fi
    elif [[ "$1" == "stack" && "$2" == "test-config" ]]; then
        if is_service_enabled tempest; then
            configure_nova_gpu_ext_tempest
        fi
    fi

    if [[ "$1" == "unstack" ]]; then
        # Nothing to stop: the driver, filters and weighers run inside
        # Nova's own services.
        :
    fi

    if [[ "$1" == "clean" ]]; then
        cleanup_nova_gpu_ext
    fi
fi
