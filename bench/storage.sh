#!/usr/bin/env bash
# The storage limit's own costs: `pathlight-bench insert-limit` (pre-built rows, 100 k per insert, the
# collector's insert) on core 0 and ClickHouse 18.16 on core 1, as in bench/limits.sh.
# 1. Alternates a database with the five marts' materialized views and one without them, RUNS
#    times, SECONDS each: what the views cost ClickHouse per row.
# 2. Profiles ClickHouse (`perf record -e cpu-clock` on the server, 8 s of one more run) and
#    prints its share by thread and its top symbols. The data stays in $OUT (default
#    /tmp/pathlight-clickhouse.perf).
#   bench/storage.sh [SECONDS] [RUNS]
set -euo pipefail
secs=${1:-10} runs=${2:-3} out=${OUT:-/tmp/pathlight-clickhouse.perf}
. "$(dirname "$0")/lib.sh" storage
limit() {
  config "$1"
  PATHLIGHT_LOG=warn taskset -c 0 "$bench" insert-limit --config "$dir/pathlight.toml" --seconds "$2" | awk '{print $1}'
}
limit with_marts 1 >/dev/null
limit no_marts 1 >/dev/null
for v in heatmap_clicks heatmap_anchors page_daily element_days sessions; do
  curl -fsS "$ch/" --data-binary "DROP TABLE no_marts.${v}_mv"
done
echo "| run | with the marts' views, rows/s | without, rows/s |"
echo "|---:|---:|---:|"
for r in $(seq 1 "$runs"); do
  echo "| $r | $(limit with_marts "$secs") | $(limit no_marts "$secs") |"
done
limit with_marts 12 >/dev/null &
sleep 2
server=$(cat "$chdir/pid") # written by scripts/clickhouse.sh
perf record -q -e cpu-clock -p "$server" -o "$out" -- sleep 8 2>/dev/null
wait
echo
echo "ClickHouse's samples by thread:"
perf report -i "$out" --sort comm --stdio 2>/dev/null | grep '%' | head -4
echo
echo "Top symbols:"
perf report -i "$out" --sort dso,symbol --stdio 2>/dev/null | grep '%' | head -15 | cut -c1-110
