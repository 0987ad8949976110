#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds the CLI, runs every test against real
# etcd, dig, dnsmasq, cloud-init, qemu and nftables. A missing prerequisite fails loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prereqs.sh
npm run -s build
exec npx vitest run --reporter=default --reporter=./test/support/summary-reporter.ts "$@"
