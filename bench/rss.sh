#!/usr/bin/env bash
# Collector memory over a long run: `pathlight serve` (release, spool with fsync, real
# ClickHouse) on core 0 under a fixed load on core 1 — 125 k events/s by default, half of
# issue 9's throughput target — for SECONDS, printing RSS every minute. Loopback, bounded.
#   bench/rss.sh [SECONDS] [REQUESTS_PER_S]
set -euo pipefail
secs=${1:-600} rate=${2:-6250}
. "$(dirname "$0")/lib.sh" rss
port=$(free)
config bench_rss "[spool]" "dir = \"$dir/spool\""
serve http
loadgen "$port" --concurrency 64 --rate "$rate" --seconds "$secs" --max-requests 100000000 >"$dir/load.txt" 2>&1 &
load=$!
pids+=("$load")
echo "Collector RSS under $((rate * 20)) events/s ($rate requests/s of 20 events), spool with fsync:"
echo
echo "| minute | RSS MB | spool MB |"
echo "|---:|---:|---:|"
for m in $(seq 1 $((secs / 60))); do
  sleep 60
  rss=$(( $(awk '/VmRSS/ {print $2}' "/proc/$collector/status") / 1024 ))
  spool=$(du -sm "$dir/spool" | cut -f1)
  echo "| $m | $rss | $spool |"
done
wait $load || true
echo
echo "Load over the whole run:"
echo
cat "$dir/load.txt"
rows=$(curl -sS "$ch/" --data-binary "SELECT count() FROM bench_rss.events")
echo
echo "Rows in ClickHouse at the end: $rows"
