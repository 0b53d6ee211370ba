#!/usr/bin/env bash
# Where the cores went during a half-load run (125 k events/s, 20-event batches, fsync on and
# off), to tell the collector's limits from the VM's: each core's busy share and the part the
# hypervisor stole (/proc/stat), and the collector's own CPU (/proc/PID/stat), over 8 s of a
# 10 s run. Pinned like bench/half-load.sh (collector on core 0; generator and ClickHouse on 1).
#   bench/cores.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh" cores
echo "| fsync | events/s | p99 ms | core 0 busy | of which steal | collector's own use | core 1 busy | of which steal |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for fsync in true false; do
  config "cores_$fsync" "[spool]" "dir = \"$dir/spool-$fsync\"" "fsync = $fsync"
  port=$(free)
  serve http
  loadrow "$port" --concurrency 64 --seconds 10 --rate 6250 >"$dir/row" &
  lg=$!
  sleep 1
  c0a=$(grep '^cpu0 ' /proc/stat) c1a=$(grep '^cpu1 ' /proc/stat)
  pa=$(ticks "$collector")
  sleep 8
  c0b=$(grep '^cpu0 ' /proc/stat) c1b=$(grep '^cpu1 ' /proc/stat)
  pb=$(ticks "$collector")
  wait $lg
  kill "$collector"; wait "$collector" 2>/dev/null || true
  own=$(( (pb - pa) * 100 / (8 * $(getconf CLK_TCK)) ))
  awk -F'|' -v f="$fsync" -v c0="$(core_use "$c0a" "$c0b")" -v c1="$(core_use "$c1a" "$c1b")" -v o="$own" \
    '{printf "| %s |%s|%s| %s | %s %% | %s |\n", f, $3, $6, c0, o, c1}' "$dir/row"
done
