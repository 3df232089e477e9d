#!/bin/bash
#
# The few devstack functions that devstack/lib/nova-gpu-ext.sh calls, so that
# tools/cloud can run the plugin's own configuration code outside devstack
# (no systemd and no git remotes here: stack.sh itself cannot run).

_CLOUD_INI="$(dirname "${BASH_SOURCE[0]}")/ini.py"

function iniset {
    python3 "$_CLOUD_INI" set "$1" "$2" "$3" "$4"
}

function iniadd {
    local file=$1 section=$2 option=$3
    shift 3
    local value
    for value in "$@"; do
        python3 "$_CLOUD_INI" add "$file" "$section" "$option" "$value"
    done
}

function iniget {
    python3 "$_CLOUD_INI" get "$1" "$2" "$3"
}

function iniget_multiline {
    python3 "$_CLOUD_INI" get_multiline "$1" "$2" "$3"
}

function die {
    shift
    echo "cloud: ERROR: $*" >&2
    exit 1
}

function echo_summary {
    echo "cloud: $*"
}

function is_service_enabled {
    return 0
}

function trueorfalse {
    local default=$1 name=$2
    case "${!name:-$default}" in
        1|yes|Yes|YES|true|True|TRUE|on|On|ON) echo True ;;
        *) echo False ;;
    esac
}

function define_plugin {
    :
}

function enable_service {
    :
}
