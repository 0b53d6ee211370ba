#!/usr/bin/env bash
# The collector against its two limits, measured in the same run on the same core (issue 9):
#   transport: a minimal hyper server that reads and discards the same bodies
#              (`pathlight-bench discard`)
#   storage:   ClickHouse ingesting the same rows, pre-built, through the collector's insert
#              (`pathlight-bench insert-limit`)
#   collector: `pathlight serve` with its spool (fsync) and real ClickHouse sink, as fast as it
#              answers, then at half the 250 k events/s target (fixed rate) for the latency target.
# Whatever is measured runs on core 0 (taskset); the load generator and ClickHouse on core 1.
# Loopback only, bounded in time. Prints a Markdown table.
# After the full-rate run it waits until ClickHouse holds every event the collector accepted
# and prints how long that took: a rate ClickHouse does not keep up with only grows the spool.
#   bench/limits.sh [SECONDS] [CONCURRENCY]
# NICE=-10 runs the load generator at that priority: on core 1 it otherwise gets a thread's
# share against ClickHouse's many merge threads, and the rate measured can be the generator's.
set -euo pipefail
secs=${1:-10} conc=${2:-64} nice=${NICE:-0}
. "$(dirname "$0")/lib.sh" limits
need_root_for_nice "$nice"
config bench_limits "[spool]" "dir = \"$dir/spool\""
load() { loadrow "$1" --concurrency "$conc" --seconds "$secs" "${@:2}"; }
col() { echo "$1" | awk -F'|' -v c="$2" '{gsub(/ /, "", $c); print $c}'; }

port=$(free)
start_discard "$port"
transport=$(load "$port")
kill "$discard"

storage=$(PATHLIGHT_LOG=warn taskset -c 0 "$bench" insert-limit --config "$dir/pathlight.toml" --seconds "$secs" | awk '{print $1}')

port=$(free)
serve http
# Over the full-rate run: the collector's own CPU, and how busy each core was, so a rate held
# down by core 1 (the generator and ClickHouse) is told from one held down by the collector.
# The full run's rows: the storage limit's went in earlier (and shrink as their repeated ids
# are merged away), the half-load run's go in later.
start=$(date +%s)
stored() { curl -fsS "$ch/?query=SELECT+count()+FROM+bench_limits.events+WHERE+received_at+>=+toDateTime($start)" || echo 0; }
c0a=$(grep '^cpu0 ' /proc/stat) c1a=$(grep '^cpu1 ' /proc/stat) pa=$(ticks "$collector")
full=$(load "$port")
c0b=$(grep '^cpu0 ' /proc/stat) c1b=$(grep '^cpu1 ' /proc/stat) pb=$(ticks "$collector")
accepted=$(curl -fsS "http://127.0.0.1:$port/metrics" | awk '/^pathlight_events_accepted_total/ {n += $2} END {print n}')
t0=$(date +%s%N)
for _ in $(seq 1 1200); do n=$(stored); [ "$n" -ge "$accepted" ] && break; sleep 0.1; done
drained=$(( ($(date +%s%N) - t0) / 1000000 ))
missing=$(( accepted - n ))
half=$(load "$port" --rate 6250)
rss=$(( $(awk '/VmRSS/ {print $2}' "/proc/$collector/status") / 1024 ))

t=$(col "$transport" 3) c=$(col "$full" 3)
echo "20-event CBOR batches over HTTP/1.1, $conc requests in flight, ${secs} s per run; measured process on core 0,"
echo "load generator (nice $nice) and ClickHouse 18.16 on core 1. Collector: release build, spool with fsync."
echo
echo "| run | events/s | p50 ms | p99 ms | p999 ms | non-2xx | collector ÷ this |"
echo "|---|---:|---:|---:|---:|---:|---:|"
echo "| transport limit (read + discard) | $t | $(col "$transport" 4) | $(col "$transport" 6) | $(col "$transport" 7) | $(col "$transport" 9) | $(awk -v a="$c" -v b="$t" 'BEGIN{printf "%.2f", a/b}') |"
echo "| storage limit (ClickHouse, pre-built rows, 100 k per insert) | $storage | | | | | $(awk -v a="$c" -v b="$storage" 'BEGIN{printf "%.2f", a/b}') |"
echo "| collector, as fast as answered | $c | $(col "$full" 4) | $(col "$full" 6) | $(col "$full" 7) | $(col "$full" 9) | 1.00 |"
echo "| collector at 125 k events/s (half the target) | $(col "$half" 3) | $(col "$half" 4) | $(col "$half" 6) | $(col "$half" 7) | $(col "$half" 9) | |"
per=$(awk -v t="$((pb - pa))" -v e="$c" -v s="$secs" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz * 1e6 / (e * s) }')
echo
echo "Collector RSS after the runs: $rss MB"
echo
echo "During the full-rate run: the collector spent $per µs of CPU per event (at that cost one core"
echo "holds $(awk -v p="$per" 'BEGIN { printf "%.0f", 1e6 / p }') events/s); core 0 busy | steal: $(core_use "$c0a" "$c0b"); core 1 (generator + ClickHouse): $(core_use "$c1a" "$c1b")."
if [ "$missing" -le 0 ]; then
  echo "All $accepted events it accepted were in ClickHouse $drained ms after the run ended."
else
  echo "Of $accepted events it accepted, $missing were still not in ClickHouse $drained ms after the run ended."
fi
