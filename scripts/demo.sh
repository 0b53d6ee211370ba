#!/usr/bin/env bash
# `make demo`: a local ClickHouse plus `pathlight serve`, which also serves the demo site
# (/demo/) and the dashboards (/). Ctrl-C stops everything this script started.
#
#   scripts/demo.sh [CLICKHOUSE_HTTP_PORT] [COLLECTOR_ADDR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ch_port=${1:-8123}
addr=${2:-127.0.0.1:8080}
ch_dir=$root/.data/clickhouse

ch_url=$(scripts/clickhouse.sh start "$ch_dir" "$ch_port")
collector=
cleanup() {
  trap - EXIT INT TERM
  [ -n "$collector" ] && kill "$collector" 2>/dev/null && wait "$collector" 2>/dev/null
  scripts/clickhouse.sh stop "$ch_dir"
  echo "demo stopped"
}
trap cleanup EXIT INT TERM

# The demo pages are served by the collector, so their origin is the collector's address.
PATHLIGHT_CLICKHOUSE__URL=$ch_url PATHLIGHT_LISTEN=$addr \
PATHLIGHT_SITES="[{id = \"demo\", api_token = \"demo-token\", origins = [\"http://$addr\", \"http://localhost:${addr##*:}\"]}]" \
  target/debug/pathlight --config demo-site/pathlight.toml serve &
collector=$!

for _ in $(seq 1 100); do
  curl -fsS "http://$addr/healthz" >/dev/null 2>&1 && break
  kill -0 "$collector" 2>/dev/null || { echo "pathlight serve exited; see the log above" >&2; exit 1; }
  sleep 0.2
done
# Full dashboards on first start: PATHLIGHT_DEMO_EVENTS (200,000) generated events over the last
# two weeks, imported once beside the running collector through the same stages (0 skips it).
events=${PATHLIGHT_DEMO_EVENTS:-200000}
have=$(curl -fsS "$ch_url/?query=SELECT+count()+FROM+pathlight_demo.events" 2>/dev/null || echo 0)
if [ "$events" -gt 0 ] && [ "$have" -lt "$events" ]; then
  data=target/demo-events.ndjson
  echo "loading $events generated events (pathlight gen, then pathlight import)…"
  target/debug/pathlight gen --events "$events" --days 14 --base-url "http://$addr/demo/" --out "$data"
  PATHLIGHT_CLICKHOUSE__URL=$ch_url PATHLIGHT_LOG=warn \
    target/debug/pathlight --config demo-site/pathlight.toml import --site demo "$data"
fi
cat <<MSG

  Pathlight demo is running (Ctrl-C stops it):
    demo site    http://$addr/demo/
    dashboard    http://$addr/?site=demo&token=demo-token
    heatmaps     http://$addr/heatmap.html?site=demo&token=demo-token&path=/demo/catalog.html
    metrics      http://$addr/metrics
    ClickHouse   $ch_url  (database pathlight_demo)
      e.g. curl '$ch_url/?query=SELECT+event_type,count()+FROM+pathlight_demo.events+GROUP+BY+event_type'

MSG
wait "$collector"
