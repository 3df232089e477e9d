#!/usr/bin/env bash
# Real libvirt + QEMU for the boot tier (tox -e e2e) and benchmarks/bench_boot.py.
#
# Run as root on Debian 12 (CI runs it from .ci/run before the tests).
# Idempotent and fast when everything is already there:
#   1. Debian packages: QEMU, libvirtd, virsh/virt-xml-validate, the headers
#      libvirt-python builds against, busybox-static for the guest's
#      initramfs, SYSLINUX + FAT tools for the small BIOS-boot disk;
#   2. a Debian cloud kernel, unpacked from its .deb into $E2E_DIR (no
#      initramfs-tools or bootloader hooks, which fail in a container);
#   3. /dev/kvm permissions as udev sets them on a normal host (without them
#      libvirt re-probes QEMU on every domain start: ~88 s instead of ~0.5 s);
#   4. virtlogd + libvirtd started by hand (there is no systemd here).
#
# CI must boot at least one driver-generated domain on real QEMU, so this
# script fails loudly when it cannot install; it never skips silently.
set -euo pipefail

E2E_DIR="${NOVA_GPU_EXT_E2E_DIR:-/var/lib/nova-gpu-ext-e2e}"
PACKAGES=(
    qemu-system-x86 qemu-utils seabios ipxe-qemu ovmf
    libvirt-daemon-system libvirt-clients libxml2-utils
    libvirt-dev pkg-config gcc
    busybox-static cpio
    syslinux syslinux-common mtools dosfstools fdisk
)

log() { echo "install-e2e-deps: $*"; }
die() { echo "install-e2e-deps: ERROR: $*" >&2; exit 1; }

if [ "$(id -u)" != 0 ]; then
    die "must run as root (apt-get, /dev/kvm, libvirtd)"
fi
if ! command -v apt-get >/dev/null 2>&1; then
    die "needs a Debian-like system with apt-get (Debian 12 tested)"
fi

missing_packages() {
    local pkg status
    for pkg in "${PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
        if [ "$status" != "install ok installed" ]; then
            echo "$pkg"
        fi
    done
}

apt_updated=0
apt_update() {
    if [ "$apt_updated" = 0 ]; then
        apt-get update -q >/dev/null || die "apt-get update failed (no package network?)"
        apt_updated=1
    fi
}

# 1. Packages.
mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt_update
    # No systemd: keep package scripts from trying to start services.
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" \
            >/tmp/install-e2e-deps.apt.log 2>&1; then
        tail -n 30 /tmp/install-e2e-deps.apt.log >&2
        die "apt-get install failed (log: /tmp/install-e2e-deps.apt.log)"
    fi
fi

# 2. The guest kernel, unpacked from Debian's cloud kernel package.
mkdir -p "$E2E_DIR"
chmod 755 "$E2E_DIR"
if [ ! -s "$E2E_DIR/vmlinuz" ]; then
    apt_update
    image_pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    [ -n "$image_pkg" ] || die "cannot resolve linux-image-cloud-amd64"
    log "unpacking the kernel of $image_pkg"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    chmod 755 "$tmp"  # apt-get download runs as _apt
    (cd "$tmp" && apt-get download -q "$image_pkg" >/dev/null) ||
        die "apt-get download $image_pkg failed"
    dpkg-deb --fsys-tarfile "$tmp"/*.deb |
        tar -x -C "$tmp" --wildcards './boot/vmlinuz-*'
    install -m 644 "$tmp"/boot/vmlinuz-* "$E2E_DIR/vmlinuz.new"
    echo "$image_pkg" >"$E2E_DIR/vmlinuz.package"
    mv "$E2E_DIR/vmlinuz.new" "$E2E_DIR/vmlinuz"
fi

# 3. /dev/kvm as udev would set it (libvirt-qemu is in group kvm).
if [ -e /dev/kvm ]; then
    getent group kvm >/dev/null || groupadd -r kvm
    chgrp kvm /dev/kvm && chmod 660 /dev/kvm ||
        log "warning: cannot fix /dev/kvm permissions; guests will use TCG"
    if id libvirt-qemu >/dev/null 2>&1; then
        id -nG libvirt-qemu | grep -qw kvm || usermod -a -G kvm libvirt-qemu
    fi
fi

# 4. The daemons (no systemd: started by hand, daemonized).
running() {
    local pidfile=$1 pid
    [ -s "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}
if ! running /run/virtlogd.pid; then
    log "starting virtlogd"
    virtlogd -d || die "virtlogd did not start"
fi
if ! running /run/libvirtd.pid; then
    log "starting libvirtd"
    libvirtd -d || die "libvirtd did not start"
fi
for _ in $(seq 1 100); do
    if virsh -q -c qemu:///system version >/dev/null 2>&1; then
        break
    fi
    sleep 0.2
done
virsh -q -c qemu:///system version >/dev/null 2>&1 ||
    die "libvirtd does not answer on qemu:///system"

log "ready: $(virsh -c qemu:///system version 2>/dev/null |
    awk -F': ' '/Using library|Running hypervisor/ {printf "%s, ", $2}')kernel $E2E_DIR/vmlinuz"
