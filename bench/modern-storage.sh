#!/usr/bin/env bash
# Is the storage limit the old server's? The same rows, built by the collector's stages
# (`pathlight-bench insert-limit --write`: files of 100 k rows, event ids distinct across files),
# inserted as fast as each ClickHouse takes them on core 1, SECONDS per measurement, each file
# at most once per measurement and every measurement on a fresh database with all migrations
# (the five marts' views included). RUNS rounds, the four measurements in turn:
# - ClickHouse 18.16 (the server here) and current ClickHouse (chdb's embedded 26.x, with 18.16's
#   schema and with the modern one: LowCardinality, TTL, a deduplication window) each read the
#   files themselves, `INSERT INTO events (...) SELECT * FROM file(...)`: no HTTP, no LZ4, the
#   same work on each. chdb is a library in a Node process, not the server users run: its
#   column with 18.16's schema tells the build's own cost from the schema's;
# - 18.16 through the collector's own insert (HTTP, LZ4; `insert-limit`, the client on core 0),
#   the storage limit of bench/limits.sh, for scale.
# 18.16's databases are dropped after each measurement, so their merges do not run into the next.
#   bench/modern-storage.sh [SECONDS] [RUNS]
set -euo pipefail
# A failed insert inside $(old_file ...) must end the script, not count as rows.
shopt -s inherit_errexit
secs=${1:-10} runs=${2:-3}
. "$(dirname "$0")/lib.sh" modern-storage
[ -d tests/node_modules/chdb ] || (cd tests && npm ci --silent)
config unused
rows=100000
# Enough files for 400 k rows/s, each ~38 MB: no measurement should run out.
count=$((secs * 4 < 4 ? 4 : secs * 4))
columns=$("$bench" insert-limit --config "$dir/pathlight.toml" --rows-per-insert "$rows" \
  --write "$chdir/user_files/rows" --files "$count")
files=()
for i in $(seq 0 $((count - 1))); do files+=("$chdir/user_files/rows-$i.bin"); done
sql() { curl -fsS "$ch/" --data-binary "$1"; }
# ran_out USED: warns when a measurement used every file (its rate is then a lower bound).
ran_out() { [ "$1" -lt "$count" ] || echo "warning: a measurement used all $count files" >&2; }

# old_file DB: rows/s of 18.16 reading the files itself.
old_file() {
  config "$1"
  PATHLIGHT_LOG=warn "$bin" --config "$dir/pathlight.toml" migrate >/dev/null
  local structure
  structure=$(sql "DESCRIBE TABLE $1.events FORMAT TabSeparatedRaw" | python3 -c "
import sys
types = dict(l.split('\t')[:2] for l in sys.stdin if l.strip())
cols = '''$columns'''.split(', ')
print(', '.join(f\"{c} {'Int8' if types[c].startswith('Enum8') else types[c]}\" for c in cols).replace(\"'\", \"\\\\'\"))")
  local used=0 t0 end
  t0=$(date +%s%N) end=$(($(date +%s%N) + secs * 1000000000))
  while [ "$used" -lt "$count" ] && [ "$(date +%s%N)" -lt "$end" ]; do
    sql "INSERT INTO $1.events ($columns) SELECT * FROM file('rows-$used.bin', 'RowBinary', '$structure')"
    used=$((used + 1))
  done
  local rate=$((used * rows * 1000000000 / ($(date +%s%N) - t0)))
  sql "DROP DATABASE $1"
  ran_out "$used"
  echo "$rate"
}
# new_file DIALECT SECONDS: "ROWS/S VERSION FILES_USED" of chdb reading them.
new_file() {
  taskset -c 1 node bench/chdb-insert.mjs "$bin" "$dir/pathlight.toml" "$1" "$2" "$rows" "$columns" "${files[@]}"
}
# old_http DB: rows/s of 18.16 through the collector's insert (four bodies of its own, in turn).
old_http() {
  config "$1"
  PATHLIGHT_LOG=warn taskset -c 0 "$bench" insert-limit --config "$dir/pathlight.toml" --seconds "$secs" | awk '{print $1}'
  sql "DROP DATABASE $1"
}

echo "Rows of $(($(stat -c %s "${files[0]}") / rows)) bytes (RowBinary), $rows per insert; ClickHouse on core 1."
echo
v=$(new_file modern 0 | awk '{print $2}')
echo "| run | 18.16, file(), rows/s | chdb $v, 18.16's schema | chdb $v, modern schema | modern ÷ 18.16 | 18.16, collector's insert (HTTP, LZ4) |"
echo "|---:|---:|---:|---:|---:|---:|"
for r in $(seq 1 "$runs"); do
  old=$(old_file "file_$r")
  read -r legacy _ used < <(new_file legacy "$secs")
  ran_out "$used"
  read -r modern _ used < <(new_file modern "$secs")
  ran_out "$used"
  http=$(old_http "http_$r")
  echo "| $r | $old | $legacy | $modern | $(awk -v a="$modern" -v b="$old" 'BEGIN{printf "%.2f", a/b}') | $http |"
done
