#!/usr/bin/env bash
# Builds (once, cached under .test-cache/debian-guest/) a Debian 12 cloud guest the way Debian's
# cloud images are made, from Debian packages with mmdebstrap: systemd, udev, dbus,
# systemd-resolved, netplan.io, cloud-init, openssh-server, sudo, curl, the cloud kernel and an initramfs, on
# one ext4 partition booted by a GRUB core embedded in the MBR gap. Like Debian's images it adds
# NO cloud-init and NO network configuration: cloud-init must find its datasource from what the
# hypervisor gives (DMI), and the network stack runs on Debian's defaults. The only changes:
# locale C.UTF-8 (cloud-init's locale module fails without one), e2scrub_reap masked (30 s of the
# one emulated CPU at boot), an initramfs of the two modules the root disk needs, the fstab and
# resolv.conf link Debian's image build writes, and its cleanup (no ssh host keys, empty
# machine-id and hostname). netplan.io is what Debian 12's cloud images carry, and what makes the
# first boot work: cloud-init renders its fallback config for netplan, whose generator starts
# systemd-networkd; with cloud-init's own networkd renderer nothing starts networkd on the first
# boot, the NIC stays down and the NoCloudNet seed cannot be fetched.
#
# Outputs in the printed directory:
#   base.qcow2    the stock image
#   deploy.qcow2  the same root with deploy/guest/ installed by running, in the root, exactly the
#                 block deploy/README.md marks <!-- guest-install -->
#   vmlinuz, initrd.img, root-partuuid   for direct kernel boot of either disk
# Needs root, mmdebstrap, e2fsprogs, fdisk, grub-pc-bin, qemu-utils.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="$PWD/.test-cache/debian-guest"
RECIPE=4 # bump when the recipe below changes
readme_block() { # the shell block after the marker <!-- $1 --> in deploy/README.md
  awk -v m="<!-- $1 -->" '$0 == m { on = 1; next } on && /^```/ { if (inside) exit; inside = 1; next } inside { print }' deploy/README.md
}
INSTALL=$(readme_block guest-install)
[ -n "$INSTALL" ] || { echo "debian-guest: deploy/README.md has no <!-- guest-install --> block" >&2; exit 1; }
# The cache key: the recipe, the install block and the files it names.
KEY="$RECIPE $( (echo "$INSTALL"; for f in deploy/guest/*; do case "$INSTALL" in *"${f##*/}"*) cat "$f" ;; esac; done) | sha256sum | cut -c1-16)"
ready() { [ -f "$OUT/ready" ] && [ "$(cat "$OUT/ready")" = "$KEY" ]; }
if ready; then echo "$OUT"; exit 0; fi
exec 9>/tmp/uncloud-debian-guest.lock
flock 9
if ready; then echo "$OUT"; exit 0; fi
rm -rf "$OUT"; mkdir -p "$OUT"
TMP=$(mktemp -d /tmp/uncloud-debian-guest.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
ROOT="$TMP/root"

# The mirror this machine's apt uses (deb822 or one-line sources).
MIRROR=$(grep -hs '^URIs:' /etc/apt/sources.list.d/debian.sources | head -1 | awk '{print $2}')
[ -n "$MIRROR" ] || MIRROR=$(grep -hs '^deb ' /etc/apt/sources.list | grep -v security | head -1 | awk '{print $2}')
[ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian

DISKID=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
PARTUUID="$DISKID-01"
# Debian's cloud images: /etc/fstab by PARTUUID, systemd-resolved enabled with /etc/resolv.conf
# pointing at its list of upstream servers (debian-cloud-images: 20-enable-systemd-resolved).
mmdebstrap --quiet --variant=minbase \
  --include=systemd-sysv,udev,dbus,libpam-systemd,systemd-resolved,libnss-myhostname,netplan.io,cloud-init,openssh-server,sudo,curl,iproute2,initramfs-tools,linux-image-cloud-amd64 \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --setup-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" && echo MODULES=list > "$1/etc/initramfs-tools/conf.d/uncloud-test.conf"' \
  --customize-hook='printf "virtio_pci\nvirtio_blk\n" >> "$1/etc/initramfs-tools/modules" && chroot "$1" update-initramfs -u -k all' \
  --customize-hook="echo 'PARTUUID=$PARTUUID / ext4 rw,discard,errors=remount-ro,x-systemd.growfs 0 1' > \"\$1/etc/fstab\"" \
  --customize-hook='echo LANG=C.UTF-8 > "$1/etc/default/locale"' \
  --customize-hook='chroot "$1" systemctl mask e2scrub_reap.service' \
  --customize-hook='chroot "$1" systemctl enable systemd-resolved.service' \
  --customize-hook='ln -sf /run/systemd/resolve/resolv.conf "$1/etc/resolv.conf"' \
  --customize-hook='rm -f "$1"/etc/ssh/ssh_host_* "$1/var/lib/dbus/machine-id" && : > "$1/etc/hostname" && : > "$1/etc/machine-id"' \
  bookworm "$ROOT" "$MIRROR" >&2
KVER=$(ls "$ROOT/lib/modules" | head -1)
[ -f "$ROOT/boot/initrd.img-$KVER" ] || { echo "debian-guest: no initramfs was built" >&2; exit 1; }
cp "$ROOT/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
cp "$ROOT/boot/initrd.img-$KVER" "$OUT/initrd.img"
echo "$PARTUUID" > "$OUT/root-partuuid"

# disk ROOT OUT.qcow2: one partition from 1 MiB to the end of a 2 GiB disk, GRUB's core in the
# gap before it, booting the kernel with Debian's cloud console settings.
disk() {
  local size=2048
  rm -f "$TMP/fs.img" "$TMP/disk.raw"
  mke2fs -q -t ext4 -L root -d "$1" "$TMP/fs.img" "$((size - 1))M"
  truncate -s "${size}M" "$TMP/disk.raw"
  printf 'label: dos\nlabel-id: 0x%s\nstart=2048, type=83, bootable\n' "$DISKID" | sfdisk -q "$TMP/disk.raw"
  dd if="$TMP/fs.img" of="$TMP/disk.raw" bs=1M seek=1 conv=notrunc,sparse status=none
  cat > "$TMP/early.cfg" <<EOF
set root=(hd0,msdos1)
linux /boot/vmlinuz-$KVER root=PARTUUID=$PARTUUID ro console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 consoleblank=0
initrd /boot/initrd.img-$KVER
boot
EOF
  grub-mkimage -O i386-pc -o "$TMP/core.img" -p '(hd0,msdos1)/boot/grub' -c "$TMP/early.cfg" biosdisk part_msdos ext2 linux boot
  [ "$(stat -c %s "$TMP/core.img")" -lt $((2047 * 512)) ] || { echo "debian-guest: GRUB core does not fit the MBR gap" >&2; exit 1; }
  dd if=/usr/lib/grub/i386-pc/boot.img of="$TMP/disk.raw" bs=440 count=1 conv=notrunc status=none
  dd if="$TMP/core.img" of="$TMP/disk.raw" bs=512 seek=1 conv=notrunc status=none
  qemu-img convert -c -O qcow2 "$TMP/disk.raw" "$2"
}
disk "$ROOT" "$OUT/base.qcow2"

# The deploy variant: deploy/guest/ copied in, then the README's block run as root in the root.
mkdir "$ROOT/tmp/uncloud-deploy-guest"
cp -a deploy/guest/. "$ROOT/tmp/uncloud-deploy-guest/"
chroot "$ROOT" sh -ec "cd /tmp/uncloud-deploy-guest
$INSTALL"
rm -rf "$ROOT/tmp/uncloud-deploy-guest"
disk "$ROOT" "$OUT/deploy.qcow2"

echo "$KEY" > "$OUT/ready"
echo "$OUT"
