#!/usr/bin/env bash
# Where the half-load tail waits (issue 9): the collector at 125 k events/s as in
# bench/half-load.sh (fixed rate, 20-event batches, spool, real ClickHouse; collector on core 0,
# load generator and ClickHouse on core 1), with `perf sched record -a` over SECONDS in the
# middle of the run. Prints the load generator's row, then per process how many of its threads'
# wake-ups waited over 1 ms and over 5 ms for a core (perf's "sch delay") and the longest wait,
# and for the collector's busiest tokio thread (its one worker; the blocking pool's threads share
# the name) how many times it ran over 2 and 5 ms without a switch, and the longest: while it
# runs, no other connection is read.
#   bench/sched-delays.sh [SECONDS] [RUNS]     FSYNC=false, NICE=-10 (the generator), BIN=…
set -euo pipefail
secs=${1:-6} runs=${2:-1} nice=${NICE:-0}
. "$(dirname "$0")/lib.sh" sched
bin=${BIN:-$bin}
need_root_for_nice "$nice"
data=$dir/sched.data
# delays TID_PATTERN: wake-up waits of the threads whose "[tid/pid]" matches.
delays() {
  grep -E "$1" "$dir/timehist" | awk '{ if ($5 + 0 > 1) a++; if ($5 + 0 > 5) b++; if ($5 + 0 > m) m = $5 + 0 }
    END { printf "waits > 1 ms: %d, > 5 ms: %d, longest %.1f ms", a, b, m }'
}
for run in $(seq 1 "$runs"); do
  config "bench_sched_$run" "[spool]" "dir = \"$dir/spool-$run\"" "fsync = ${FSYNC:-true}"
  port=$(free)
  serve http
  loadrow "$port" --concurrency 64 --seconds "$((secs + 6))" --rate 6250 >"$dir/row" &
  load=$!
  sleep 3
  generator=$(pgrep -n -f "loadgen --url http://127.0.0.1:$port/") || { echo "no load generator running" >&2; exit 1; }
  perf sched record -a -o "$data" -- sleep "$secs" >/dev/null || { echo "perf sched record failed (root?)" >&2; exit 1; }
  wait "$load"
  kill "$collector"; wait "$collector" 2>/dev/null || true
  perf sched timehist -i "$data" 2>/dev/null >"$dir/timehist"
  worker=$(grep "tokio-rt-worker\[[0-9]*/$collector]" "$dir/timehist" | awk '{print $3}' | sort | uniq -c | sort -n | tail -1 | awk '{print $2}')
  echo "run $run (fsync ${FSYNC:-true}, generator nice $nice): $(cat "$dir/row")"
  # perf names a thread comm[tid/pid], and a process's first thread comm[pid].
  echo "  collector: $(delays "[[/]$collector\]")"
  echo "  generator: $(delays "[[/]$generator\]")"
  echo "  collector's worker ran without a switch: $(grep -F "$worker" "$dir/timehist" | awk '{
    if ($6 + 0 > 2) a++; if ($6 + 0 > 5) b++; if ($6 + 0 > m) m = $6 + 0 }
    END { printf "> 2 ms: %d times, > 5 ms: %d, longest %.1f ms", a, b, m }')"
done
