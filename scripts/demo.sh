#!/usr/bin/env bash
# `make demo`: a local ClickHouse plus `pathlight serve`, which serves the dashboards (/) and,
# on an origin of its own, the demo site (/demo/). Ctrl-C stops everything this script started.
#
#   scripts/demo.sh [CLICKHOUSE_HTTP_PORT] [COLLECTOR_ADDR] [DEMO_ADDR]
#
# Its own settings are PL_*, never PATHLIGHT_*: those override pathlight's config keys, and
# pathlight refuses one that names no key.
#   PL_DEMO_EVENTS=N   generated events loaded on first start (default 200000; 0 skips them)
#   PL_DEMO_DATA=DIR   ClickHouse's data and the demo's secrets (default .data)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ -n "${PATHLIGHT_DEMO_EVENTS+x}" ]; then
  echo "$0: PATHLIGHT_DEMO_EVENTS is now PL_DEMO_EVENTS" >&2
  exit 2
fi
ch_port=${1:-8123}
addr=${2:-127.0.0.1:8080}
demo=${3:-127.0.0.1:8081}
events=${PL_DEMO_EVENTS:-200000}
data=${PL_DEMO_DATA:-$root/.data}
ch_dir=$data/clickhouse

# The deployment's secret and the demo site's API token (for programs; people sign in): made at
# first start, kept out of the repository, readable by this user only.
secrets=$data/demo-secrets
hash_secret=$(sed -n 's/^hash_secret=//p' "$secrets" 2>/dev/null || true)
token=$(sed -n 's/^api_token=//p' "$secrets" 2>/dev/null || true)
if [ -z "$hash_secret" ] || [ -z "$token" ]; then
  hash_secret=$(target/debug/pathlight secret)
  token=$(target/debug/pathlight secret)
  mkdir -p "$data"
  (umask 077 && printf 'hash_secret=%s\napi_token=%s\n' "$hash_secret" "$token" >"$secrets.new")
  mv "$secrets.new" "$secrets"
  echo "made a hash_secret and the demo site's API token in $secrets (mode 0600)"
fi

ch_url=$(scripts/clickhouse.sh start "$ch_dir" "$ch_port")
collector=
cleanup() {
  trap - EXIT INT TERM
  [ -n "$collector" ] && kill "$collector" 2>/dev/null && wait "$collector" 2>/dev/null
  scripts/clickhouse.sh stop "$ch_dir"
  echo "demo stopped"
}
trap cleanup EXIT INT TERM

# The demo pages are the site: their origin (the demo's address) is the site's origin.
export PATHLIGHT_CLICKHOUSE__URL=$ch_url PATHLIGHT_HASH_SECRET=$hash_secret
export PATHLIGHT_SITES="[{id = \"demo\", api_token = \"$token\", origins = [\"http://$demo\", \"http://localhost:${demo##*:}\"]}]"
PATHLIGHT_LISTEN=$addr PATHLIGHT_DEMO_LISTEN=$demo \
  target/debug/pathlight --config demo-site/pathlight.toml serve &
collector=$!

for _ in $(seq 1 100); do
  curl -fsS "http://$addr/healthz" >/dev/null 2>&1 && break
  kill -0 "$collector" 2>/dev/null || { echo "pathlight serve exited; see the log above" >&2; exit 1; }
  sleep 0.2
done
# Full dashboards on first start: PL_DEMO_EVENTS (200,000) generated events over the last two
# weeks, imported once beside the running collector through the same stages (0 skips it).
have=$(curl -fsS "$ch_url/?query=SELECT+count()+FROM+pathlight_demo.events" 2>/dev/null || echo 0)
if [ "$events" -gt 0 ] && [ "$have" -lt "$events" ]; then
  file=target/demo-events.ndjson
  echo "loading $events generated events (pathlight gen, then pathlight import)…"
  target/debug/pathlight gen --events "$events" --days 14 --base-url "http://$demo/demo/" --out "$file"
  PATHLIGHT_LOG=warn target/debug/pathlight --config demo-site/pathlight.toml import --site demo "$file"
fi
# The dashboards need a signed-in account. None on first start: the first-start form (which
# answers on this machine only) makes it, so no password is chosen here or kept in a file.
if curl -fsS "http://$addr/api/v1/setup" 2>/dev/null | grep -q '"open":true'; then
  account="First start: the dashboard opens the form that makes your admin account
  (an email and a password; the form answers on this machine only), then the dashboard."
else
  account="The dashboard asks you to sign in with your account."
fi
cat <<MSG

  Pathlight demo is running (Ctrl-C stops it):
    demo site    http://$demo/demo/
    dashboard    http://$addr/?site=demo&steps=/demo/index.html,/demo/catalog.html,/demo/product.html,/demo/checkout.html
    heatmaps     http://$addr/heatmap.html?site=demo&path=/demo/catalog.html
    metrics      http://$addr/metrics
    ClickHouse   $ch_url  (database pathlight_demo)
      e.g. curl '$ch_url/?query=SELECT+event_type,count()+FROM+pathlight_demo.events+GROUP+BY+event_type'
  $account
  Programs read with the demo site's API token, in $secrets.

MSG
wait "$collector"
