#!/usr/bin/env bash
# A cpu-clock profile of the release collector at full rate (20-event batches, spool with
# fsync, 64 requests in flight), pinned like bench/half-load.sh: `perf record` with DWARF call
# graphs on the collector for 8 s of a 12 s load, then its top symbols by self time. The data
# stays in $OUT (default /tmp/pathlight-collector.perf) for `perf report -i`. Needs Debian's
# linux-perf; cpu-clock works where hardware counters are not exposed (VMs).
#   bench/profile.sh
set -euo pipefail
out=${OUT:-/tmp/pathlight-collector.perf}
. "$(dirname "$0")/lib.sh" profile
config profile "[spool]" "dir = \"$dir/spool\""
port=$(free)
serve http
loadgen "$port" --concurrency 64 --seconds 12 2>/dev/null | sed -n 1,3p &
lg=$!
sleep 2
perf record -e cpu-clock -F 499 --call-graph dwarf,32768 -o "$out" -p "$collector" -- sleep 8 2>&1 | tail -1 >&2
wait $lg
kill "$collector"; wait "$collector" 2>/dev/null || true
perf report -i "$out" --no-children --stdio --sort dso,symbol 2>/dev/null | grep -E '^ +[0-9]' | head -30
