#!/usr/bin/env bash
# Runs the benchmark suite and writes each table to bench/results/latest/<name>.md with the
# command, the machine's cores and the date on top. The analysed results beside it
# (bench/results/*.md) quote runs of the same commands. Loopback only; ~10 minutes without
# the 10-minute memory run (`--long` adds it).
#   bench/run.sh [--long]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=bench/results/latest
mkdir -p "$out"
run() {
  local name=$1
  shift
  echo "== $name: $*" >&2
  {
    echo "# $name"
    echo
    echo "Command: \`$*\`. Cores: $(nproc). Date: $(date -u +%F). Commit: $(git rev-parse --short HEAD)."
    echo
    "$@" 2>&1 | grep -v -e '^\s*Compiling' -e '^\s*Finished' -e 'Benchmarking' || true
  } >"$out/$name.md"
}
run wire-pipeline cargo bench -p pathlight-wire --bench pipeline -- --warm-up-time 1 --measurement-time 3
run collector-rows cargo bench -p pathlight-collector --bench rows -- --warm-up-time 1 --measurement-time 3
run limits bench/limits.sh 10 64
run sustained bench/sustained.sh 20 150000 200000 250000
run storage bench/storage.sh 10 3
run modern-storage bench/modern-storage.sh 10 3
run load-fsync bench/load.sh 10 64 50 fsync
run http3 bench/http3.sh 10 64 20
run tracker-size scripts/build-tracker.sh
run tracker-click node bench/tracker-click.mjs 4000
run freshness node bench/freshness.mjs 40
run session-summaries node bench/session-summaries.mjs
run session-summaries-context-ua node bench/session-summaries.mjs context-ua
if [ "${1:-}" = "--long" ]; then
  run rss bench/rss.sh 600 6250
  run queries bench/queries.sh 10000000
  run query-cache bench/query-cache.sh 1000000
fi
echo "tables in $out" >&2
