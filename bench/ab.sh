#!/usr/bin/env bash
# Two collector builds against each other, alternated so the VM's drift falls on both: each
# round runs A then B at full rate and at 125 k events/s (20-event batches, spool with fsync,
# 64 requests in flight), each on a fresh collector and database. Prints one line per run with
# the load generator's row, the collector's CPU time per event (user + system, from
# /proc/PID/stat: the build's cost whether or not the generator's core is the limit) and its
# RSS. Pinned like bench/half-load.sh.
#   bench/ab.sh A_BIN B_BIN [SECONDS] [ROUNDS]
set -euo pipefail
a=$1 b=$2 secs=${3:-8} rounds=${4:-3}
. "$(dirname "$0")/lib.sh" ab
echo "| build | rate | requests/s | events/s | p50 ms | p90 ms | p99 ms | p999 ms | max ms | non-2xx | CPU µs/event | RSS MB |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for round in $(seq 1 "$rounds"); do
  for which in A B; do
    bin=$a; [ "$which" = B ] && bin=$b
    for rate in full 6250; do
      config "ab_${round}_${which}_$rate" "[spool]" "dir = \"$dir/spool-$round-$which-$rate\""
      port=$(free)
      serve http
      limit=(); [ "$rate" != full ] && limit=(--rate "$rate")
      before=$(ticks "$collector")
      row=$(loadrow "$port" --concurrency 64 --seconds "$secs" "${limit[@]}")
      cpu=$(( $(ticks "$collector") - before ))
      events=$(echo "$row" | awk -F'|' '{gsub(/ /, "", $3); print $3 * '"$secs"'}')
      per=$(awk -v c="$cpu" -v e="$events" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", c / hz * 1e6 / e }')
      rss=$(( $(awk '/VmRSS/ {print $2}' "/proc/$collector/status") / 1024 ))
      kill "$collector"; wait "$collector" 2>/dev/null || true
      echo "| $which | $rate $row $per | $rss |"
    done
  done
done
