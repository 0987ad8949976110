#!/usr/bin/env bash
# Installs what the test suite needs when it is missing: Debian packages (etcd, dig, dnsmasq,
# qemu, nftables, radvd, cloud-init, ...) and the npm dependencies. Idempotent and quiet when
# everything is there. Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

# command-to-check  Debian-package
NEEDS=(
  "etcd etcd-server"
  "etcdctl etcd-client"
  "dig bind9-dnsutils"
  "dnsperf dnsperf"
  "wrk wrk"
  "dnsmasq dnsmasq-base"
  "nft nftables"
  "ip iproute2"
  "qemu-system-x86_64 qemu-system-x86"
  "busybox busybox-static"
  "cpio cpio"
  "gcc build-essential"
  "radvd radvd"
  "rdisc6 ndisc6"
  "curl curl"
  "cloud-init cloud-init"
  "mmdebstrap mmdebstrap"
  "qemu-img qemu-utils"
  "mke2fs e2fsprogs"
  "sfdisk fdisk"
  "grub-mkimage grub-pc-bin"
  "ssh openssh-client"
  "knotd knot"
  "../lib/python3/dist-packages/botocore python3-botocore"  # no command: the -x test below finds its directory
  "tcpdump tcpdump"
  "../lib/python3/dist-packages/google/auth python3-google-auth"  # no command: as botocore above
  "qemu-img qemu-utils"
)
missing=()
for pair in "${NEEDS[@]}"; do
  set -- $pair
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || missing+=("$2")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "prereqs: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The VM test needs the static busybox specifically (the dynamic one cannot run in an initramfs).
if ! dpkg -s busybox-static >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq busybox-static >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund >/dev/null
fi
