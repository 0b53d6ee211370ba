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
