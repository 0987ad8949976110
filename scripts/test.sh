#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds the CLI, runs every test against real
# etcd, dig, dnsmasq, cloud-init, qemu and nftables, then the quick benchmark (ratios only, with
# generous margins; run alone so the suite's own load does not skew it). A missing prerequisite
# fails loudly. The last line is the total: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/prereqs.sh || { echo "prereqs: failed" >&2; exit 1; }
npm run -s build || exit 1
mkdir -p .test-cache
rm -f .test-cache/summary.json
npx vitest run --reporter=default --reporter=./test/support/summary-reporter.ts "$@"
tests=$?
bench=0
if [ $# -eq 0 ] && [ "${UNCLOUD_SKIP_BENCH:-}" != 1 ]; then
  node bench/run.mjs --quick || bench=1
fi
node -e '
  const fs = require("fs");
  let s = { passed: 0, failed: 0, skipped: 0 };
  try { s = JSON.parse(fs.readFileSync(".test-cache/summary.json", "utf8")); } catch { s.failed++; }
  const benchRan = process.argv[2] === "1", benchFailed = process.argv[3] === "1";
  if (benchRan) benchFailed ? s.failed++ : s.passed++;
  console.log(`\n${s.passed} passed, ${s.failed} failed${s.skipped ? `, ${s.skipped} skipped` : ""}`);
' "$([ $# -eq 0 ] && [ "${UNCLOUD_SKIP_BENCH:-}" != 1 ] && echo 1 || echo 0)" "$bench"
[ $tests -eq 0 ] && [ $bench -eq 0 ]
