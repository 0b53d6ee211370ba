#!/usr/bin/env bash
# The anomaly rules against known truth (issue 37): traffic of the demo's size from
# `pathlight gen --labels` (which says what it injected into each session), one run per seed,
# imported into ClickHouse 18.16 and scored by `pathlight score-anomalies`: per kind, the
# sessions labelled, flagged by its rule and both, precision and recall. Prints Markdown.
# BASELINE_BIN=another build's pathlight adds that build's session rules (rapid, repeated,
# loops, from its `pathlight sql`) on the same events.
#   bench/anomalies.sh [EVENTS] [SEED...]     (default 200000 events, seeds 1 2 3)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
events=${1:-200000}
seeds=("${@:2}")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
dir=$(mktemp -d /tmp/pathlight-bench-anomalies-XXXX)
trap 'rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The server stops, and deletes its directory, once this script has exited.
ch=$(PL_CLICKHOUSE_OWNER=$$ PL_CLICKHOUSE_CLEANUP=1 scripts/clickhouse.sh start \
  "$(mktemp -d /tmp/pathlight-bench-anomalies-ch-XXXX)" "$port")
cargo build --bin pathlight 2>&1 | tail -1 >&2
bin=${CARGO_TARGET_DIR:-target}/debug/pathlight
export PATHLIGHT_CLICKHOUSE__URL=$ch PATHLIGHT_LOG=warn PATHLIGHT_SITES='[{id = "demo"}]' \
  PATHLIGHT_HASH_SECRET=bench-anomalies-secret-not-for-production
for seed in "${seeds[@]}"; do
  export PATHLIGHT_CLICKHOUSE__DATABASE=anomalies_$seed
  "$bin" gen --events "$events" --seed "$seed" --days 14 --end 2026-11-01T00:00:00Z \
    --out "$dir/gen.ndjson" --labels "$dir/labels.csv" >/dev/null
  "$bin" import "$dir/gen.ndjson" --site demo >/dev/null
  echo "### seed $seed"
  echo
  "$bin" score-anomalies --labels "$dir/labels.csv" --site demo
  if [ -n "${BASELINE_BIN:-}" ]; then
    # The baseline's query as its API sends it, over every session (no LIMIT), scored alike.
    "$BASELINE_BIN" sql --params 'site=demo&from=2026-10-01&to=2026-11-01' |
      python3 -c 'import sys; q = [s for s in sys.stdin.read().split(";\n") if s.startswith("-- anomalies\n")][0]
print(q.split("\n", 1)[1].replace(" LIMIT 100", "") + " FORMAT TSV")' >"$dir/baseline.sql"
    curl -sS --fail-with-body "$ch/?database=anomalies_$seed" --data-binary "@$dir/baseline.sql" >"$dir/baseline.tsv"
    echo
    echo "Baseline ($BASELINE_BIN), its session rules on the same events:"
    echo
    python3 - "$dir/labels.csv" "$dir/baseline.tsv" <<'PY'
import csv, sys
labels = {}
for r in csv.DictReader(open(sys.argv[1])):
    labels.setdefault(r["kind"], set()).add(r["session_id"])
flagged = {"rapid": set(), "repeated": set(), "loops": set()}
for line in open(sys.argv[2]):
    s, _, rapid, repeated, loops = line.rstrip("\n").split("\t")
    for rule, n in (("rapid", rapid), ("repeated", repeated), ("loops", loops)):
        if int(n) > 0:
            flagged[rule].add(s)
print("| injected | rule | labelled | flagged | both | precision | recall |")
print("|---|---|---:|---:|---:|---:|---:|")
for kind, rule in (("stuck", "loops"), ("repeated", "repeated"), ("rapid", "rapid")):
    l, f = labels.get(kind, set()), flagged[rule]
    both = len(l & f)
    p = both / len(f) if f else 1.0
    r = both / len(l) if l else 1.0
    print(f"| {kind} | {rule} | {len(l)} | {len(f)} | {both} | {100 * p:.1f} % | {100 * r:.1f} % |")
PY
  fi
  echo
done
