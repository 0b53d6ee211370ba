#!/usr/bin/env bash
# The half-load latency target alone (issue 9): the collector at 125 k events/s (20-event
# batches, fixed rate), with the spool's fsync on and then off, each on a fresh collector and
# database, so the difference is the disk's. Each run first measures the transport limit at the
# same rate (`pathlight-bench discard`: reads each body and answers, nothing else), the floor this rig
# puts under any server's p99. Pinned like bench/limits.sh (server on core 0, load generator and
# ClickHouse on core 1). Prints a Markdown table with the hypervisor's steal over each row's run,
# the share of group commits slower than 3.2 and 6.4 ms (`pathlight_spool_commit_seconds`), and
# the collector's own view of the answers (`pathlight_ingest_request_seconds`, headers to
# answer): the bucket bound its p99 falls under, and its share over 10 ms. The load generator's
# p99 minus that is the transport's and the generator's share.
#   bench/half-load.sh [SECONDS] [RUNS]     BIN=other/pathlight compares another build
# NICE=-10 runs the load generator at that priority, as in bench/limits.sh; CLICKHOUSE_DIR, as in
# bench/lib.sh, puts ClickHouse's data on another file system than the spool's; SPOOL='key = value'
# adds a line (or several, newline-separated) to the collector's [spool] section.
set -euo pipefail
secs=${1:-10} runs=${2:-2} nice=${NICE:-0}
. "$(dirname "$0")/lib.sh" half
need_root_for_nice "$nice"
bin=${BIN:-$bin}
# Of the metrics text $m with $total commits: the commits slower than the bucket bound $1.
bucket() { echo "$m" | awk -v le="$1" -F'[ "]' '$0 ~ "spool_commit_seconds_bucket\\{le=\""le"\"" {print $NF}'; }
# The collector's own answer times: the bucket bound (ms) its p99 is under; its share over 10 ms.
srv_p99() { echo "$m" | awk -F'[ "]' '/ingest_request_seconds_bucket/ && /route="batch"/ {
  for (i = 1; i <= NF; i++) if ($i ~ /le=$/) le = $(i + 1); n[++k] = $NF; b[k] = le }
  END { for (i = 1; i <= k; i++) if (n[i] >= 0.99 * n[k]) { printf "%g", b[i] * 1000; exit } }'; }
srv_over() { echo "$m" | awk -F'[ "]' '/ingest_request_seconds_bucket/ && /route="batch"/ {
  for (i = 1; i <= NF; i++) if ($i ~ /le=$/) le = $(i + 1); if (le == "0.01") a = $NF; t = $NF }
  END { if (t > 0) printf "%.2f %%", 100 * (t - a) / t; else print "-" }'; }
share() { awk -v t="$total" -v b="$(bucket "$1")" 'BEGIN{ if (t > 0) printf "%.2f %%", 100 * (t - b) / t; else print "-" }'; }
# load PORT: the generator at the half-load rate against 127.0.0.1:PORT; its table row.
load() {
  loadrow "$1" --concurrency 64 --seconds "$secs" --rate 6250
}
echo "| server | events/s | p50 ms | p90 ms | p99 ms | p999 ms | steal | commits | > 3.2 ms | > 6.4 ms | collector p99 ≤ ms | collector > 10 ms |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for run in $(seq 1 "$runs"); do
  # The transport limit at the same rate, same cores: the floor this VM puts under every p99.
  port=$(free)
  start_discard "$port"
  a=$(grep '^cpu ' /proc/stat)
  row=$(load "$port")
  kill "$discard"; wait "$discard" 2>/dev/null || true
  echo "$row" | awk -F'|' -v s="$(stolen "$a")" \
    '{printf "| transport limit |%s|%s|%s|%s|%s| %s | | | | | |\n", $3, $4, $5, $6, $7, s}'
  for fsync in true false; do
    config "bench_half_${run}_$fsync" "[spool]" "dir = \"$dir/spool-$run-$fsync\"" "fsync = $fsync" ${SPOOL:+"$SPOOL"}
    port=$(free)
    serve http
    a=$(grep '^cpu ' /proc/stat)
    row=$(load "$port")
    s=$(stolen "$a")
    m=$(curl -s "http://127.0.0.1:$port/metrics")
    kill "$collector"; wait "$collector" 2>/dev/null || true
    total=$(echo "$m" | awk '/spool_commit_seconds_count/ {print $2}')
    echo "$row" | awk -F'|' -v f="collector, fsync $fsync" -v s="$s" -v c="$total" -v a="$(share 0.0032)" \
      -v b="$(share 0.0064)" -v p="$(srv_p99)" -v o="$(srv_over)" \
      '{printf "| %s |%s|%s|%s|%s|%s| %s | %s | %s | %s | %s | %s |\n", f, $3, $4, $5, $6, $7, s, c, a, b, p, o}'
  done
done
