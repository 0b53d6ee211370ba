#!/usr/bin/env bash
# Batch posts over HTTP/1.1, HTTP/2 and HTTP/3, all over TLS on one collector (self-signed
# certificate, spool with fsync), on loopback: `pathlight-bench loadgen` with the same batch size
# and concurrency for each protocol, one run each. Collector pinned to core 0, ClickHouse and the
# load generator to core 1. Prints a Markdown table per protocol.
#   bench/http3.sh [SECONDS] [CONCURRENCY] [BATCH]
set -euo pipefail
secs=${1:-10} conc=${2:-64} batch=${3:-20}
. "$(dirname "$0")/lib.sh" h3
port=$(free)
config bench_h3 "[spool]" "dir = \"$dir/spool\"" "[tls]" "self_signed = true" "http3 = true"
serve https
echo "Collector: release build on core 0, TLS (self-signed, rustls + ring) with HTTP/3 on the same port,"
echo "spool with fsync (a request is answered once its rows are fsynced). Load generator and ClickHouse 18.16"
echo "on core 1. $batch-event CBOR batches, $conc requests in flight, ${secs} s per protocol. HTTP/2 and HTTP/3"
echo "multiplex every request on one connection; HTTP/1.1 opens one connection per request in flight."
echo
for proto in http1 http2 http3; do
  flag=""; [ "$proto" != http1 ] && flag="--$proto"
  echo "**$proto over TLS**"
  echo
  taskset -c 1 "$bench" loadgen --url "https://127.0.0.1:$port/v1/batch" --insecure --site bench --batch "$batch" \
    --concurrency "$conc" --seconds "$secs" $flag
  echo
done
rows=$(curl -sS "$ch/" --data-binary "SELECT count() FROM bench_h3.events")
echo "Rows in ClickHouse after the runs (shipping may still be finishing): $rows"
