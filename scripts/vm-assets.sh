#!/usr/bin/env bash
# Builds (once, cached under .test-cache/vm/) what the real-VM tests boot: Debian's kernel with
# the virtio network modules, and a base initramfs of busybox-static, those modules, a tiny RA
# listener that writes resolv.conf from RDNSS/DNSSL, and an /init that brings eth0 up, waits
# for SLAAC and then runs /test.sh (which a test appends as a second cpio archive), then idles.
# Prints the cache directory. Needs apt-get (download only), dpkg, gcc, cpio, busybox-static.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="$PWD/.test-cache/vm"
VERSION=3 # bump when the recipe below changes
if [ -f "$OUT/ready" ] && [ "$(cat "$OUT/ready")" = "$VERSION" ]; then echo "$OUT"; exit 0; fi
exec 9>/tmp/uncloud-vm-assets.lock
flock 9
if [ -f "$OUT/ready" ] && [ "$(cat "$OUT/ready")" = "$VERSION" ]; then echo "$OUT"; exit 0; fi
rm -rf "$OUT"; mkdir -p "$OUT/dl"
MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net"

(
  cd "$OUT/dl"
  apt-get download linux-image-amd64 >/dev/null 2>&1 || { apt-get update -qq && apt-get download linux-image-amd64 >/dev/null; }
  versioned=$(dpkg-deb -f linux-image-amd64_*.deb Depends | tr ',' '\n' | grep -o 'linux-image-[0-9][^ ]*' | head -1)
  apt-get download "$versioned" >/dev/null
  dpkg -x linux-image-[0-9]*.deb x
)
cp "$OUT"/dl/x/boot/vmlinuz-* "$OUT/vmlinuz"

ROOT="$OUT/initramfs"
mkdir -p "$ROOT"/{bin,sbin,etc,proc,sys,dev,tmp,lib/modules,root}
cp /bin/busybox "$ROOT/bin/busybox"
for app in $(/bin/busybox --list); do [ "$app" = busybox ] || ln -sf busybox "$ROOT/bin/$app"; done
for m in $MODULES; do
  f=$(find "$OUT/dl/x/lib/modules" -name "$m.ko*" | head -1)
  [ -n "$f" ] || { echo "vm-assets: module $m not found in the kernel package" >&2; exit 1; }
  case "$f" in
    *.xz) xz -dc "$f" > "$ROOT/lib/modules/$m.ko" ;;
    *.zst) zstd -dcq "$f" > "$ROOT/lib/modules/$m.ko" ;;
    *) cp "$f" "$ROOT/lib/modules/$m.ko" ;;
  esac
done
gcc -static -O2 -o "$ROOT/bin/ra-dns" test/e2e/guest/ra-dns.c
cat > "$ROOT/init" <<INIT
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $MODULES; do insmod /lib/modules/\$m.ko || echo "GUEST: insmod \$m failed"; done
ip link set lo up
ra-dns /etc/resolv.conf &
ip link set eth0 up
echo GUEST: booted
for i in \$(seq 1 600); do
  if ip -6 addr show dev eth0 scope global | grep -q inet6 && ! ip -6 addr show dev eth0 | grep -q tentative; then break; fi
  sleep 0.1
done
echo "GUEST: addr \$(ip -6 addr show dev eth0 scope global | grep -o 'inet6 [^ ]*' | head -1)"
for i in \$(seq 1 100); do [ -s /etc/resolv.conf ] && break; sleep 0.1; done
echo "GUEST: resolv \$(tr '\n' ';' < /etc/resolv.conf)"
[ -x /test.sh ] && /test.sh
echo GUEST: done
# Stay up: the agent treats a qemu that exits as a crash and restarts it.
while true; do sleep 3600; done
INIT
chmod +x "$ROOT/init"
(cd "$ROOT" && find . | cpio -o -H newc --quiet | gzip -1 > "$OUT/base.cpio.gz")
rm -rf "$OUT/dl"
echo "$VERSION" > "$OUT/ready"
echo "$OUT"
