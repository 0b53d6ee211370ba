#!/usr/bin/env bash
# p50 of 7 calls of each query-API path through a running collector, for spot checks beside
# bench/queries.sh (whose collector it does not need):
#   bench/api-calls.sh PORT PATH...      e.g. bench/api-calls.sh 18990 'stats?site=bench'
# The API token is `bench`, as bench/queries.sh's config has it (PL_BENCH_TOKEN overrides).
set -euo pipefail
port=$1; shift
for p in "$@"; do
  times=$(for _ in 1 2 3 4 5 6 7; do
    curl -sS -o /dev/null --fail-with-body -H "authorization: Bearer ${PL_BENCH_TOKEN:-bench}" \
      -w '%{time_total}\n' "http://127.0.0.1:$port/api/v1/$p"
  done | awk '{print $1*1000}' | sort -n)
  echo "$p p50=$(echo "$times" | sed -n 4p) all=$(echo $times)"
done
