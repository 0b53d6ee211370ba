# Shared by the bench scripts that run a release collector (most against a private ClickHouse):
#   . "$(dirname "$0")/lib.sh" NAME
# builds the release binaries, the collector ($bin) and the bench tools beside it ($bench,
# `pathlight-bench`: the load generator, the discard server, the insert limit), makes a temp dir
# ($dir), starts ClickHouse 18.16 pinned to core 1 ($ch, its data in $chdir, stopped when the
# script exits; not with NO_CLICKHOUSE=1), and defines `free` (a free loopback port), `wait_up
# URL` (until URL/healthz answers; certificates not checked, for self-signed TLS), `serve SCHEME`
# (the collector) and `loadgen`/`loadrow` (the load generator).
# Processes in $pids are killed when the script exits.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
cargo build --release --bin pathlight --bin pathlight-bench 2>&1 | tail -1 >&2
# Where cargo put them: a CARGO_TARGET_DIR of the caller's, as bench/anomalies.sh reads too.
bin=${CARGO_TARGET_DIR:-target}/release/pathlight
bench=${CARGO_TARGET_DIR:-target}/release/pathlight-bench
dir=$(mktemp -d "/tmp/pathlight-bench-$1-XXXX")
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 1 100); do curl -fsSk "$1/healthz" >/dev/null 2>&1 && return; sleep 0.1; done; }
pids=()
# ClickHouse's own data goes with it (PL_CLICKHOUSE_CLEANUP); the spools and the rest of
# $dir go here, once the processes writing there have stopped: deleted under a running collector
# or ClickHouse they log errors and leave files behind.
# (`set -e` holds in the trap too: a pid already gone must not end it.)
trap '[ ${#pids[@]} -eq 0 ] || { kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null; } || true
  [ -z "${chdir:-}" ] || scripts/clickhouse.sh stop "$chdir" || true
  rm -rf "$dir"' EXIT
# serve SCHEME: the release collector with $dir/pathlight.toml on 127.0.0.1:$port, pinned to
# core 0 ($collector is its pid), once it answers over SCHEME (http or https).
serve() {
  PATHLIGHT_LOG=warn taskset -c 0 "$bin" --config "$dir/pathlight.toml" serve --listen "127.0.0.1:$port" >/dev/null &
  collector=$!
  pids+=("$collector")
  wait_up "$1://127.0.0.1:$port"
}
# A script that measures without ClickHouse sets NO_CLICKHOUSE=1 before sourcing: an idle server
# on core 1 still wakes for its merges and logs.
# CLICKHOUSE_DIR=/dev/shm (say) keeps ClickHouse's data on another file system than the spool's,
# as where ClickHouse runs on hosts of its own: its writes then leave the spool's fsyncs alone.
if [ -z "${NO_CLICKHOUSE:-}" ]; then
  chdir=$(mktemp -d "${CLICKHOUSE_DIR:-$dir}/clickhouse-XXXX")
  ch=$(PL_CLICKHOUSE_OWNER=$$ PL_CLICKHOUSE_CLEANUP=1 taskset -c 1 scripts/clickhouse.sh start "$chdir" "$(free)")
fi
# config DB [LINE...]: $dir/pathlight.toml for the site `bench` on database DB, with no
# per-address limit (every sender is 127.0.0.1); the LINEs follow the [clickhouse] section
# (more of its keys first, then whole sections).
config() {
  local db=$1
  shift
  {
    printf 'hash_secret = "bench-secret-not-for-production"\nip_events_per_sec = 0\n[[sites]]\nid = "bench"\n'
    printf '[clickhouse]\nurl = "%s"\ndatabase = "%s"\n' \
      "${ch:?config needs ClickHouse (NO_CLICKHOUSE is set)}" "$db"
    printf '%s\n' "$@"
  } >"$dir/pathlight.toml"
}
# ticks PID: the process's CPU time so far (user + system), in clock ticks (`getconf CLK_TCK`).
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# core_use BEFORE AFTER [DIGITS]: of two /proc/stat cpu lines (cpuN, or `cpu` for all cores),
# "X % | Y %", X busy and Y the hypervisor's steal, to DIGITS decimals (0 unless given; the first
# eight fields: guest time is already counted in user).
core_use() { python3 -c "
a = list(map(int, '$1'.split()[1:])); b = list(map(int, '$2'.split()[1:]))
d = [y - x for x, y in zip(a, b)][:8]; t = sum(d); idle = d[3] + d[4]; n = ${3:-0}
print(f'{100 * (t - idle) / t:.{n}f} % | {100 * d[7] / t:.{n}f} %')"; }
# stolen BEFORE: the share of both cores' time the hypervisor took since BEFORE (the `cpu` line of
# /proc/stat): on a shared VM it comes in slices of milliseconds, which land in every tail latency.
stolen() { core_use "$1" "$(grep '^cpu ' /proc/stat)" 1 | sed 's/.*| //'; }
# loadgen PORT FLAG...: `pathlight-bench loadgen` on core 1 (at niceness $nice, 0 unless set),
# 20-event batches for the site `bench` to 127.0.0.1:PORT over HTTP/1.1, then the FLAGs
# (`--concurrency`, `--seconds`, `--rate`...). It is always this tree's $bench, so a script that
# compares another build's collector (`bin=${BIN:-$bin}`) keeps the generator the same.
# `loadrow` prints its table's row of figures alone:
# | requests/s | events/s | p50 | p90 | p99 | p999 | max ms | non-2xx |.
loadgen() {
  local port=$1
  shift
  local run=(nice -n "${nice:-0}" taskset -c 1 "$bench" loadgen
    --url "http://127.0.0.1:$port/v1/batch" --site bench --batch 20 "$@")
  # In a subshell (`loadgen … &`, a pipeline) the generator takes the subshell's place, so the
  # pid the script holds, and kills on exit, is the generator's.
  if [ "$BASHPID" != "$$" ]; then exec "${run[@]}"; fi
  "${run[@]}"
}
loadrow() { loadgen "$@" 2>/dev/null | sed -n 3p; }
# start_discard PORT [BIN]: the transport limit's server (`pathlight-bench discard`: reads each
# body and answers, nothing else; BIN, default $bench) on core 0 at 127.0.0.1:PORT, once it
# answers; its pid in $discard.
start_discard() {
  taskset -c 0 "${2:-$bench}" discard --listen "127.0.0.1:$1" >/dev/null &
  discard=$!
  pids+=("$discard")
  wait_up "http://127.0.0.1:$1"
}
# need_root_for_nice N: a negative niceness needs root; without it `nice` would only warn and the
# run would be labelled with a priority it did not have.
need_root_for_nice() { [ "$1" -ge 0 ] || [ "$(id -u)" = 0 ] || { echo "NICE=$1 needs root" >&2; exit 2; }; }
