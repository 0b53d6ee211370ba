#!/usr/bin/env bash
# Is the storage limit the old server's? The same rows, built by the collector's stages
# (`pathlight insert-limit --write`, four files of 100 k rows with ids of their own), inserted
# as fast as each ClickHouse takes them on core 1, RUNS times alternated, SECONDS each, every
# run on a fresh database with all migrations (the five marts' views included):
# - ClickHouse 18.16 (the server here) and current ClickHouse (chdb's embedded 26.x, with the
#   legacy schema and with the modern one: LowCardinality, TTL, a deduplication window) each
#   read the files themselves, `INSERT INTO events (...) SELECT * FROM file(...)`: no HTTP, no
#   LZ4, the same work on each. chdb is a library in a Node process, not the server users run:
#   its legacy column tells the build's own cost from the schema's;
# - 18.16 through the collector's own insert (HTTP, LZ4; `insert-limit`, the client on core 0),
#   the storage limit of bench/limits.sh, for scale.
#   bench/modern-storage.sh [SECONDS] [RUNS]
set -euo pipefail
secs=${1:-10} runs=${2:-3}
. "$(dirname "$0")/lib.sh" modern-storage
[ -d tests/node_modules/chdb ] || (cd tests && npm ci --silent)
config unused
rows=100000
files=()
for i in 0 1 2 3; do
  files+=("$chdir/user_files/rows-$i.bin")
  columns=$("$bin" --config "$dir/pathlight.toml" insert-limit --rows-per-insert "$rows" --write "${files[-1]}")
done
sql() { curl -fsS "$ch/" --data-binary "$1"; }

# old_file DB: rows/s of 18.16 reading the files itself, for $secs.
old_file() {
  config "$1"
  PATHLIGHT_LOG=warn "$bin" --config "$dir/pathlight.toml" migrate >/dev/null
  local structure
  structure=$(sql "DESCRIBE TABLE $1.events FORMAT TabSeparatedRaw" | python3 -c "
import sys
types = dict(l.split('\t')[:2] for l in sys.stdin if l.strip())
cols = '''$columns'''.split(', ')
print(', '.join(f\"{c} {'Int8' if types[c].startswith('Enum8') else types[c]}\" for c in cols).replace(\"'\", \"\\\\'\"))")
  local n=0 i=0 t0 end
  t0=$(date +%s%N) end=$(( $(date +%s%N) + secs * 1000000000 ))
  while [ "$(date +%s%N)" -lt "$end" ]; do
    sql "INSERT INTO $1.events ($columns) SELECT * FROM file('rows-$((i % 4)).bin', 'RowBinary', '$structure')"
    n=$((n + rows)) i=$((i + 1))
  done
  echo $(( n * 1000000000 / ($(date +%s%N) - t0) ))
}
# new_file DIALECT SECONDS: "ROWS/S VERSION" of chdb reading them.
new_file() { taskset -c 1 node bench/chdb-insert.mjs "$bin" "$1" "$2" "$rows" "$columns" "${files[@]}"; }
old_http() {
  config "$1"
  PATHLIGHT_LOG=warn taskset -c 0 "$bin" --config "$dir/pathlight.toml" insert-limit --seconds "$secs" | awk '{print $1}'
}

echo "Rows of $(( $(stat -c %s "${files[0]}") / rows )) bytes (RowBinary), $rows per insert; ClickHouse on core 1."
echo
v=$(new_file modern 0 | awk '{print $2}')
echo "| run | 18.16, file(), rows/s | chdb $v, 18.16's schema | chdb $v, modern schema | modern ÷ 18.16 | 18.16, collector's insert (HTTP, LZ4) |"
echo "|---:|---:|---:|---:|---:|---:|"
for r in $(seq 1 "$runs"); do
  old=$(old_file "file_$r")
  legacy=$(new_file legacy "$secs" | awk '{print $1}')
  modern=$(new_file modern "$secs" | awk '{print $1}')
  http=$(old_http "http_$r")
  echo "| $r | $old | $legacy | $modern | $(awk -v a="$modern" -v b="$old" 'BEGIN{printf "%.2f", a/b}') | $http |"
done
