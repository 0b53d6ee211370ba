#!/usr/bin/env bash
# What the load generator itself costs: `pathlight-bench loadgen` (20-event batches, 64 requests
# in flight, as fast as answered) against `pathlight-bench discard` (reads and drops the
# bodies), the server on core 0 and the generator on core 1, as in every bench here. Prints the
# generator's CPU time (user + system) per request: its share of core 1 is not ClickHouse's in
# the other benches. One row per build and run, the builds alternated. (Relative BIN paths are
# taken from the repository's root.)
#   bench/generator.sh [SECONDS] [RUNS] [BIN...]     (default: the release pathlight-bench; a
#   `pathlight` from before the tools moved out runs the same subcommands)
# LOADGEN_FLAGS adds flags to every loadgen run (`--http2`: one shared connection, prior knowledge).
set -euo pipefail
secs=${1:-5} runs=${2:-2}
NO_CLICKHOUSE=1 . "$(dirname "$0")/lib.sh" generator
builds=("${@:3}")
TIMEFORMAT='%U %S'
[ ${#builds[@]} -gt 0 ] || builds=("$bench")
echo "| build | requests/s | events/s | p50 ms | p90 ms | p99 ms | p999 ms | max ms | non-2xx | generator CPU µs/request |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for _ in $(seq 1 "$runs"); do
  for b in "${builds[@]}"; do
    port=$(free)
    start_discard "$port" "$b"
    # bash's `time` reports the generator's user and system seconds (TIMEFORMAT below).
    { time taskset -c 1 "$b" loadgen --url "http://127.0.0.1:$port/v1/batch" --site bench \
      --batch 20 --concurrency 64 --seconds "$secs" ${LOADGEN_FLAGS:-} 2>/dev/null |
      sed -n 3p >"$dir/row"; } 2>"$dir/cpu"
    kill "$discard"; wait "$discard" 2>/dev/null || true
    per=$(awk -v r="$(awk -F'|' '{gsub(/ /, "", $2); print $2}' "$dir/row")" -v s="$secs" \
      '{ printf "%.1f", ($1 + $2) * 1e6 / (r * s) }' "$dir/cpu")
    echo "| $b $(cat "$dir/row") $per |"
  done
done
