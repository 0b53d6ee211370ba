#!/usr/bin/env bash
# The edge worker (issue 5): bundle sizes, cold start in workerd, time per 20-event batch,
# events/s in queue mode on loopback (bench/edge-worker.mjs). workerd runs under Node 22 from
# tests/node_modules (wrangler/miniflare need it); ClickHouse 18.16 on core 1.
#   bench/edge-worker.sh [SECONDS] [CONCURRENCY]
set -euo pipefail
secs=${1:-10} conc=${2:-16}
. "$(dirname "$0")/lib.sh" edge
scripts/build-worker.sh
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_HIDE_BANNER=true
tests/node_modules/.bin/node bench/edge-worker.mjs "$ch" "$(realpath "$bin")" "$(realpath "$bench")" "$secs" "$conc"
