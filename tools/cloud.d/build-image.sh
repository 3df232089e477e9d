#!/bin/bash
#
# build-image.sh DIR KERNEL - the cloud's guest image, built locally
#
# A raw 48 MiB disk: MBR + one bootable FAT16 partition with SYSLINUX, the
# Debian cloud kernel (tools/install-e2e-deps.sh unpacks it) and a busybox
# initramfs whose /init prints the marker on ttyS0 and then stays up (a
# Nova guest must not power itself off). SeaBIOS boots it from disk as any
# Nova guest; no download. Writes DIR/cloud-guest.img (reused when there).
set -euo pipefail

dir=$1
kernel=$2
marker=${NOVA_GPU_EXT_CLOUD_MARKER:-NOVA-GPU-EXT-CLOUD-GUEST-UP}
image=$dir/cloud-guest.img
[ -s "$image" ] && exit 0

busybox=$(command -v busybox || true)
for b in /bin/busybox /usr/bin/busybox; do
    [ -x "$b" ] && busybox=$b
done
[ -n "$busybox" ] || { echo "build-image: busybox-static missing" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
mkdir -p "$root"/{bin,dev,proc,sys}
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
cat >"$root/init" <<INIT
#!/bin/busybox sh
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/busybox mount -t proc proc /proc
echo $marker > /dev/ttyS0
while true; do /bin/busybox sleep 3600; done
INIT
chmod 755 "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -6) >"$tmp/initrd.gz"

disk=$tmp/disk.img
truncate -s 48M "$disk"
echo '2048,,6,*' | sfdisk -q "$disk"
offset=$((2048 * 512))
mkfs.fat -F 16 --offset 2048 -n CLOUDGUEST "$disk" >/dev/null
cat >"$tmp/syslinux.cfg" <<CFG
SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  INITRD initrd.gz
  APPEND console=ttyS0,115200 earlyprintk=serial,ttyS0,115200 panic=-1 rdinit=/init
CFG
export MTOOLS_SKIP_CHECK=1
mcopy -o -i "$disk@@$offset" "$kernel" ::vmlinuz
mcopy -o -i "$disk@@$offset" "$tmp/initrd.gz" ::initrd.gz
mcopy -o -i "$disk@@$offset" "$tmp/syslinux.cfg" ::syslinux.cfg
syslinux --install --offset "$offset" "$disk"
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$disk" bs=440 count=1 conv=notrunc \
    status=none
mkdir -p "$dir"
mv "$disk" "$image"
chmod 644 "$image"
