#!/usr/bin/env bash
# Heatmap and page queries over 10 million generated events on the local ClickHouse (Debian's
# 18.16): p50/p90 of each analytics query for one page, run 11 times, straight over HTTP and
# through the collector's API. Prints a Markdown table.
#   bench/queries.sh [EVENTS]          (default 10000000; builds the release collector)
# PL_BENCH_OPTIMIZE=0 leaves the tables as ingestion leaves them, with unmerged parts (a live
# table is never fully merged); PL_BENCH_BIN=PATH uses that pathlight binary instead of
# building the release one. PL_BENCH_CLICKHOUSE=URL uses that server (its `bench` database)
# and keeps it: the events are loaded only if it does not hold them yet, so a second run (after
# a change to the queries) measures the same data without loading it again.
# PL_BENCH_API_ONLY=1 measures only the API's calls of the dashboards (not each SQL statement,
# nor `exact=true`, which reads every raw event: minutes each at 100 M); PL_BENCH_RUNS sets the
# calls per row (default 11).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
events=${1:-10000000}
dir=$(mktemp -d /tmp/pathlight-bench-queries-XXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ch=${PL_BENCH_CLICKHOUSE:-}
[ -n "$ch" ] || ch=$(PL_CLICKHOUSE_OWNER=$$ PL_CLICKHOUSE_CLEANUP=1 scripts/clickhouse.sh start "$dir" "$port")
export PATHLIGHT_CLICKHOUSE__URL=$ch PATHLIGHT_CLICKHOUSE__DATABASE=bench PATHLIGHT_LOG=warn
bin=${PL_BENCH_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --bin pathlight 2>&1 | tail -1 >&2
  bin=target/release/pathlight
fi
$bin migrate >/dev/null
q() { curl -sS --fail-with-body "$ch/?database=bench" --data-binary "$1"; }

# The shape of issue 27: 120 pages; per page 60 % clicks clustered on 12 elements, the rest
# page views, scrolls and engagement; 30 days; 2.5 M sessions of 4 consecutive events
# (s = number / 4), 400 k visitors; three layout widths (one per session); per session a
# referrer (a third direct), a country, a campaign (half none), a browser and an OS.
start=$(date +%s)
loaded=$(q "SELECT count() FROM events")
# In ten inserts of consecutive rows, as the collector inserts in batches: each insert runs the
# marts' views over its block, whose GROUP BYs hold one state per session in the block.
chunk=$(( (events + 9) / 10 ))
for part in $(seq 0 9); do
[ "$loaded" = "$events" ] && break
q "INSERT INTO events (site_id, event_id, event_type, timestamp, timestamp_ms, received_at, session_id, visitor_id,
     url, host, path, viewport_w, viewport_h, document_w, document_h, x, y, selector, tag, rel_x, rel_y,
     scroll_depth, device, browser, os, referrer_host, country, utm_campaign)
   SELECT 'bench', generateUUIDv4(),
     multiIf(intHash32(number * 7) % 10 < 6, 'click', intHash32(number * 7) % 10 < 8, 'pageview', intHash32(number * 7) % 10 < 9, 'scroll', 'engagement'),
     toDateTime(now() - intDiv(number * 2592, 1000) % 2592000), number % 1000, now(),
     concat('s', toString(intDiv(number, 4))), intHash64(intDiv(number, 4) % 400000),
     concat('https://shop.example/p', toString(number % 120)), 'shop.example', concat('/p', toString(number % 120)),
     [375, 768, 1440][intDiv(number, 4) % 3 + 1], 800, [375, 768, 1440][intDiv(number, 4) % 3 + 1], 4000,
     toInt32(([375, 768, 1440][intDiv(number, 4) % 3 + 1]) * ((intHash32(number) % 12) + 0.5) / 12 + (intHash32(number + 1) % 40) - 20),
     toInt32(300 * (intHash32(number) % 12) + (intHash32(number + 2) % 40)),
     concat('#el-', toString(intHash32(number) % 12)), 'button',
     (intHash32(number + 3) % 100) / 100, (intHash32(number + 4) % 100) / 100,
     toUInt8(intHash32(number) % 101), ['mobile', 'tablet', 'desktop'][intDiv(number, 4) % 3 + 1],
     ['Chrome', 'Safari', 'Firefox', 'Edge', 'Samsung Internet'][intHash32(intDiv(number, 4) * 3) % 5 + 1],
     ['Windows', 'macOS', 'iOS', 'Android', 'Linux'][intHash32(intDiv(number, 4) * 5) % 5 + 1],
     ['', '', 'google.com', 'news.ycombinator.com', 't.co', 'bing.com', 'duckduckgo.com', 'reddit.com', 'github.com'][intHash32(intDiv(number, 4) * 7) % 9 + 1],
     ['US', 'DE', 'FR', 'GB', 'IN', 'BR', 'JP', 'CA', 'NL', 'ES', 'IT', 'PL'][intHash32(intDiv(number, 4) * 11) % 12 + 1],
     ['', '', '', 'winter', 'launch', 'newsletter'][intHash32(intDiv(number, 4) * 13) % 6 + 1]
   FROM numbers($events) WHERE intDiv(number, $chunk) = $part"
done
load=$(( $(date +%s) - start ))
# Merged, as background merges leave a table that is not being written; the marts too.
if [ "${PL_BENCH_OPTIMIZE:-1}" != 0 ]; then
  for t in events heatmap_clicks heatmap_anchors page_daily element_days sessions traffic_daily traffic_hourly; do
    q "OPTIMIZE TABLE $t FINAL" || true
  done
fi
parts=$(q "SELECT count() FROM system.parts WHERE database = 'bench' AND active AND table = 'events'")
rows=$(q "SELECT count() FROM events")

cat > "$dir/pathlight.toml" <<TOML
hash_secret = "bench-secret-not-for-production"
[[sites]]
id = "bench"
api_token = "bench"
# The queries' own times: each call is made 11 times, which the answer cache would serve
# (bench/results/query-cache.md measures it).
[query_cache]
ttl_secs = 0
TOML
listen=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$bin --config "$dir/pathlight.toml" serve --listen "127.0.0.1:$listen" >/dev/null &
collector=$!
trap 'kill $collector 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$listen/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
# The collector rolls the finished days' session figures up as it starts (rollup.rs): measured
# once it has, as a collector that has been running finds them.
start=$(date +%s)
for _ in $(seq 1 3600); do
  [ "$(q "SELECT count() FROM (SELECT DISTINCT day FROM session_days)")" -ge 27 ] &&
    [ "$(q "SELECT count() FROM (SELECT DISTINCT day FROM anomaly_days)")" -ge 28 ] && break
  sleep 1
done
echo "Rollups (session figures and behaviour up to today): $(( $(date +%s) - start ))s after the collector started."

params="site=bench&path=/p7&width=1440"
percentiles() { sort -n | awk '{a[NR]=$1} END {printf "%.0f | %.0f", a[int(NR*0.5)+1], a[int(NR*0.9)+1]}'; }
echo "Events: $rows in $parts parts of events, loaded in ${load}s. One page has $(q "SELECT count() FROM events WHERE path = '/p7' AND event_type = 'click'") clicks."
echo
echo "| query (path=/p7, width 1440, 30 days) | p50 ms | p90 ms |"
echo "|---|---:|---:|"
# `pathlight sql` prints each query as a "-- name" line and a one-line statement.
runs=${PL_BENCH_RUNS:-11}
$bin sql --params "$params&steps=/p1,/p2&session=s1" > "$dir/queries.sql"
[ "${PL_BENCH_API_ONLY:-0}" = 1 ] && : > "$dir/queries.sql"
while IFS= read -r name && IFS= read -r sql; do
  # Writes, not reads: the collector's own rollup runs them.
  case "$name" in "-- session rollup"*|"-- behaviour rollup "*) continue ;; esac
  times=$(for _ in $(seq 1 "$runs"); do curl -sS -o /dev/null -w '%{time_total}\n' "$ch/?database=bench" --data-binary "${sql%;}"; done | awk '{print $1*1000}')
  echo "| ${name#-- } | $(printf '%s\n' "$times" | percentiles) |"
done < "$dir/queries.sql"
api() {
  case "$1" in *exact=true*) [ "${PL_BENCH_API_ONLY:-0}" = 1 ] && return ;; esac
  times=$(for _ in $(seq 1 "$runs"); do curl -sS -o /dev/null --fail-with-body -H 'authorization: Bearer bench' -w '%{time_total}\n' "http://127.0.0.1:$listen/api/v1/$1"; done | awk '{print $1*1000}')
  echo "| **API /api/v1/$1** | $(printf '%s\n' "$times" | percentiles) |"
}
# Each endpoint runs all its queries (concurrently) and writes the JSON; `exact=true` reads
# events FINAL instead of the marts.
api "heatmap?$params&layers=clicks,scroll"
api "heatmap?$params&layers=clicks,scroll&exact=true"
api "heatmap?$params&layers=frustration"
api "elements?$params"
api "elements?$params&exact=true"
api "stats?site=bench"
api "stats?site=bench&exact=true"
api "sessions?site=bench&limit=100"
api "sessions?site=bench&limit=100&offset=2000"
api "funnel?site=bench&steps=/p1,/p2,/p3"
api "anomalies?site=bench"
api "patterns?site=bench"
api "sessions/s7?site=bench"
api "realtime?site=bench"
