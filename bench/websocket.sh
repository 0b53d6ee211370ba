#!/usr/bin/env bash
# The live feed's fan-out (`realtime/ws`, protocol v1): `pathlight-bench ws-fanout` opens
# CLIENTS WebSocket viewers of one site on a release `pathlight serve` pinned to core 0, posts
# one single-event batch every INTERVAL ms and notes when each event reaches each viewer.
# ClickHouse 18.16 on core 1; the bench tool unpinned. Three set-ups, one table each:
#   insert  - the default ack: answered (and fanned out) once ClickHouse has the rows
#             (clickhouse.flush_interval_ms = FLUSH);
#   spool   - answered once the spool fsynced them;
#   broker  - two collectors sharing a nats-server (scale-out mode); the viewers on one, the
#             events posted to the other, so each event crosses NATS.
#   bench/websocket.sh [CLIENTS] [EVENTS] [INTERVAL_MS] [FLUSH_INTERVAL_MS]
set -euo pipefail
clients=${1:-50} events=${2:-200} interval=${3:-20} flush=${4:-50}
. "$(dirname "$0")/lib.sh" websocket
token=bench-token
# The site needs an API token for its live feed.
site_token() { sed -i "s/^id = \"bench\"\$/&\napi_token = \"$token\"/" "$dir/pathlight.toml"; }
fanout() { "$bench" ws-fanout --site bench --token "$token" --clients "$clients" --events "$events" --interval-ms "$interval" "$@"; }
echo "Collector: release build on core 0; ClickHouse 18.16 on core 1; bench tool unpinned."
echo

port=$(free)
config bench_ws_insert "flush_interval_ms = $flush"
site_token
serve http
echo "**insert** (answered once inserted, flush_interval_ms = $flush)"
echo
fanout --viewers "127.0.0.1:$port"
echo
kill "$collector"; wait "$collector" 2>/dev/null || true

port=$(free)
config bench_ws_spool "[spool]" "dir = \"$dir/spool\""
site_token
serve http
echo "**spool** (answered once fsynced in the spool)"
echo
fanout --viewers "127.0.0.1:$port"
echo
kill "$collector"; wait "$collector" 2>/dev/null || true

nats=$(PL_NATS_OWNER=$$ PL_NATS_CLEANUP=1 scripts/nats.sh start "$dir/nats" "$(free)")
config bench_ws_broker "[broker]" "url = \"$nats\"" "stream = \"BENCH_WS\""
site_token
port=$(free)
serve http
viewers=$port
port=$(free)
serve http
echo "**broker** (two collectors on one nats-server: viewers on one, events posted to the other; answered once the stream stored them)"
echo
fanout --viewers "127.0.0.1:$viewers" --post "127.0.0.1:$port"
scripts/nats.sh stop "$dir/nats" >/dev/null || true
