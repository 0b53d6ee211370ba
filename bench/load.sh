#!/usr/bin/env bash
# Collector throughput with its real ClickHouse sink: `pathlight-bench loadgen` against a release
# `pathlight serve` pinned to core 0 (taskset), load generator and ClickHouse on core 1.
# Prints a Markdown table per protocol. Loopback only, bounded in time.
#   bench/load.sh [SECONDS] [CONCURRENCY] [FLUSH_INTERVAL_MS] [SPOOL]
# SPOOL: none (acknowledge after the insert), fsync (acknowledge after the spool's fdatasync),
# nofsync (spool without fsync: only to measure what the fsync costs).
set -euo pipefail
secs=${1:-10} conc=${2:-64} flush=${3:-50} spool=${4:-none}
. "$(dirname "$0")/lib.sh" load
port=$(free)
config bench_load "flush_interval_ms = $flush"
case $spool in
  none) ack="a request is answered once its rows are inserted" ;;
  fsync | nofsync)
    fsync=true ack="a request is answered once its rows are fsynced in the spool"
    [ "$spool" = nofsync ] && fsync=false ack="spool without fsync: answered once written to the page cache"
    printf '[spool]\ndir = "%s"\nfsync = %s\n' "$dir/spool" "$fsync" >>"$dir/pathlight.toml" ;;
  *) echo "SPOOL must be none, fsync or nofsync" >&2; exit 2 ;;
esac
serve http
echo "Collector: release build on core 0; load generator and ClickHouse 18.16 on core 1. 20-event CBOR batches,"
echo "$conc requests in flight, ${secs} s per run, flush_interval_ms = $flush ($ack)."
echo
for proto in http1 http2; do
  flag=""; [ "$proto" = http2 ] && flag="--http2"
  echo "**$proto**"
  echo
  loadgen "$port" --concurrency "$conc" --seconds "$secs" $flag
  echo
done
rows=$(curl -sS "$ch/" --data-binary "SELECT count() FROM bench_load.events")
echo "Rows in ClickHouse after both runs: $rows"
echo
echo "Collector RSS after the runs: $(( $(awk '/VmRSS/ {print $2}' /proc/$collector/status) / 1024 )) MB"
