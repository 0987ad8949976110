#!/bin/sh
# The etcd users and roles of uncloud-metadata, least privilege (etcd 3.4, etcdctl v3).
# Each user is the CN of its client certificate (etcd maps it when it runs with --client-cert-auth),
# so no user has a password. What each role may touch is the key layout in src/store/keys.ts.
#
#   deploy/etcd-roles.sh operator NAME                 read-write on the whole prefix
#   deploy/etcd-roles.sh appliance NAME NETWORK...     read these networks; write only their VMs' guest attributes
#   deploy/etcd-roles.sh agent HOST                    read its host's range, write its reports
#   deploy/etcd-roles.sh enable-auth                   creates root (CN root) and turns auth on
#
# Run with etcdctl's connection in the environment (ETCDCTL_ENDPOINTS, ETCDCTL_CACERT,
# ETCDCTL_CERT, ETCDCTL_KEY; once auth is on, the root certificate's). UNCLOUD_PREFIX is the
# store's key prefix (default /uncloud). Re-running is harmless: existing users and roles are kept
# and permissions granted again.
set -eu
export ETCDCTL_API=3
P="${UNCLOUD_PREFIX:-/uncloud}"
P="${P%/}"

ctl() { etcdctl "$@" >/dev/null; }
role() { etcdctl role get "$1" >/dev/null 2>&1 || ctl role add "$1"; }
user() { etcdctl user get "$1" >/dev/null 2>&1 || ctl user add "$1" --no-password; }
read_key() { ctl role grant-permission "$1" read "$2"; }
read_prefix() { ctl role grant-permission "$1" read "$2" --prefix=true; }
write_key() { ctl role grant-permission "$1" readwrite "$2"; }
write_prefix() { ctl role grant-permission "$1" readwrite "$2" --prefix=true; }
label() {
  case "$1" in
    ''|*[!A-Za-z0-9_.-]*) echo "etcd-roles: \"$1\" is not a plain name (A-Z a-z 0-9 _ . -)" >&2; exit 2 ;;
  esac
}

case "${1:-}" in
  operator)
    [ $# -eq 2 ] || { echo "usage: $0 operator NAME" >&2; exit 2; }
    label "$2"
    role uncloud-operator
    write_prefix uncloud-operator "$P/"
    user "$2"
    ctl user grant-role "$2" uncloud-operator
    ;;
  appliance)
    [ $# -ge 3 ] || { echo "usage: $0 appliance NAME NETWORK..." >&2; exit 2; }
    label "$2"
    name="$2"
    shift 2
    user "$name"
    for net in "$@"; do
      label "$net"
      # The layout marker, the network's record (one key: "lab" must not reach "lab2"), and its
      # VMs with their owners' key copies. Nothing else: no users/, no other network, no claims.
      # Its one write: what its guests report (guest attributes, vms/<net>/.attributes/).
      r="uncloud-network-$net"
      role "$r"
      read_key "$r" "$P/layout"
      read_key "$r" "$P/networks/$net"
      read_prefix "$r" "$P/vms/$net/"
      write_prefix "$r" "$P/vms/$net/.attributes/"
      ctl user grant-role "$name" "$r"
    done
    ;;
  agent)
    [ $# -eq 2 ] || { echo "usage: $0 agent HOST" >&2; exit 2; }
    label "$2"
    h="$2"
    r="uncloud-host-$h"
    role "$r"
    # Its copies of the networks its VMs use (bridges, metadata addresses, forwarding), its launch
    # specs (VMs without user-data), its heartbeat and its reports. Not networks/ (other networks),
    # not vms/ (user-data), not other hosts.
    read_key "$r" "$P/layout"
    read_prefix "$r" "$P/hosts/$h/networks/"
    # Layout 2 agents read every network record: a role made then loses that grant here.
    etcdctl role revoke-permission "$r" "$P/networks/" --prefix=true >/dev/null 2>&1 || true
    read_prefix "$r" "$P/hosts/$h/vms/"
    write_key "$r" "$P/hosts/$h"
    write_prefix "$r" "$P/hosts/$h/state/"
    user "$h"
    ctl user grant-role "$h" "$r"
    ;;
  enable-auth)
    user root
    ctl user grant-role root root
    ctl auth enable
    ;;
  *)
    sed -n '2,/^set -eu/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
