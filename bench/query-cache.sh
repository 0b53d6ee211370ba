#!/usr/bin/env bash
# The query API's result cache (collector/src/query/cache.rs) over generated traffic: each
# dashboard call asked 11 times in a row through a collector without the cache (every call a
# query) and through one with it as deployed (5 s TTL: the first call a miss, the next ten hits),
# then 8 identical dashboard loads at once through each. Prints Markdown.
#   bench/query-cache.sh [EVENTS]   (default 1000000; the debug build, as `make demo` runs it)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
events=${1:-1000000}
cargo build --bin pathlight 2>&1 | tail -1 >&2
bin=${CARGO_TARGET_DIR:-target}/debug/pathlight
dir=$(mktemp -d /tmp/pathlight-bench-cache-XXXX)
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
trap '[ ${#pids[@]} -eq 0 ] || { kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null; } || true
  scripts/clickhouse.sh stop "$dir/clickhouse" || true
  rm -rf "$dir"' EXIT
ch=$(PL_CLICKHOUSE_OWNER=$$ PL_CLICKHOUSE_CLEANUP=1 scripts/clickhouse.sh start "$dir/clickhouse" "$(free)")
export PATHLIGHT_CLICKHOUSE__URL=$ch PATHLIGHT_CLICKHOUSE__DATABASE=bench PATHLIGHT_LOG=warn \
  PATHLIGHT_HASH_SECRET=bench-secret-not-for-production \
  PATHLIGHT_SITES='[{id = "demo", origins = ["*"], api_token = "bench"}]'

start=$(date +%s)
"$bin" gen --events "$events" --days 30 --out "$dir/events.ndjson" >/dev/null
"$bin" import --site demo "$dir/events.ndjson" >/dev/null
load=$(( $(date +%s) - start ))
rows=$(curl -sS "$ch/?database=bench" --data-binary "SELECT count() FROM events")

# serve TTL: a collector with query_cache.ttl_secs = TTL on 127.0.0.1:$port.
serve() {
  port=$(free)
  PATHLIGHT_QUERY_CACHE__TTL_SECS=$1 "$bin" serve --listen "127.0.0.1:$port" >/dev/null &
  pids+=($!)
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
}
serve 0
off=$port
serve 5
on=$port
# call PORT QUERY: the answer's time, ms, or "error STATUS".
call() {
  curl -sS -o /dev/null -H 'authorization: Bearer bench' -w '%{http_code} %{time_total}\n' "http://127.0.0.1:$1/api/v1/$2" |
    awk '$1 == 200 {printf "%.1f\n", $2 * 1000; next} {print "error " $1}'
}
# The median of the times read, or the first error.
p50() { sort -n | awk '/error/ {if (!e) e = $0; next} {a[++n] = $1} END {print e ? e : a[int((n + 1) / 2)]}'; }

echo "Events: $rows (\`pathlight gen --events $events --days 30\`, imported in ${load}s)."
echo
echo "| call | no cache, p50 of 11 ms | cache: 1st call (miss) ms | cache: p50 of the next 10 (hits) ms |"
echo "|---|---:|---:|---:|"
page=/demo/catalog.html
for q in "stats?site=demo" "stats?site=demo&interval=hour" "anomalies?site=demo" \
  "funnel?site=demo&steps=/demo/index.html,/demo/catalog.html,/demo/product.html,/demo/checkout.html" \
  "sessions?site=demo&limit=50" "heatmap?site=demo&path=$page&width=1440" "elements?site=demo&path=$page&width=1440"; do
  plain=$(for _ in $(seq 1 11); do call "$off" "$q"; done | p50)
  first=$(call "$on" "$q")
  hits=$(for _ in $(seq 1 10); do call "$on" "$q"; done | p50)
  echo "| \`$q\` | $plain | $first | $hits |"
done

# 8 people open the dashboard at once: the same stats question (one not asked before).
together() {
  local t0 t1
  t0=$(date +%s%N)
  for _ in $(seq 1 8); do call "$1" "stats?site=demo&device=$2" >/dev/null & done
  wait
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 ))
}
echo
echo "8 identical \`stats\` calls at once (wall time until all answered): no cache $(together "$off" desktop) ms;" \
  "cache $(together "$on" mobile) ms."
echo
echo "Cache counters after the run: \`$(curl -sS "http://127.0.0.1:$on/metrics" | grep -E '^pathlight_query_cache_(hits|misses)_total\{endpoint="stats"\}' | tr '\n' ' ')\`"
