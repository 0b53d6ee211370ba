#!/usr/bin/env bash
# Whether ClickHouse keeps up, not only the collector: the collector at fixed rates (20-event
# batches, spool with fsync, 64 requests in flight) for SECONDS each, on a fresh collector and
# database per row, reading the spool's backlog (`pathlight_spool_bytes`) every 4 s. A rate the
# whole pipeline sustains keeps the backlog near one segment (what 500 ms of events take); one
# it does not grows it until the spool's cap (then 503). Pinned like bench/limits.sh.
#   bench/sustained.sh [SECONDS] [EVENTS_PER_SEC|full ...]     BIN=other/pathlight for another build,
#   NICE=-10 for the generator's priority over ClickHouse on core 1 (as in bench/limits.sh),
#   SPOOL='segment_bytes = 67108864' for a line more in the collector's [spool] section
set -euo pipefail
secs=${1:-20} nice=${NICE:-0}
. "$(dirname "$0")/lib.sh" sustained
need_root_for_nice "$nice"
bin=${BIN:-$bin}
rates=("${@:2}")
[ ${#rates[@]} -gt 0 ] || rates=(150000 200000 250000)
echo "| offered events/s | answered events/s | p50 ms | p99 ms | non-2xx | spool MB every 4 s |"
echo "|---:|---:|---:|---:|---:|---|"
for rate in "${rates[@]}"; do
  config "sustained_$rate" "[spool]" "dir = \"$dir/spool-$rate\"" ${SPOOL:+"$SPOOL"}
  port=$(free)
  serve http
  limit=(); [ "$rate" != full ] && limit=(--rate $((rate / 20)))
  loadrow "$port" --concurrency 64 --seconds "$secs" "${limit[@]}" >"$dir/row" &
  lg=$!
  backlog=()
  for _ in $(seq 4 4 "$secs"); do
    sleep 4
    backlog+=("$(curl -fsS "http://127.0.0.1:$port/metrics" | awk '/^pathlight_spool_bytes/ {printf "%.0f", $2 / 1e6}')")
  done
  wait $lg
  kill "$collector"; wait "$collector" 2>/dev/null || true
  awk -F'|' -v r="$rate" -v b="${backlog[*]}" '{printf "| %s |%s|%s|%s|%s| %s |\n", r, $3, $4, $6, $9, b}' "$dir/row"
done
