#!/usr/bin/env bash
# Start or stop a private NATS server with JetStream, bound to 127.0.0.1, its store under one
# directory (scale-out mode: collectors publish, `pathlight load` consumes).
#
#   scripts/nats.sh start [DIR] [PORT]   # prints the nats:// URL once /healthz answers
#   scripts/nats.sh stop  [DIR]
#   scripts/nats.sh url   [DIR]
#   scripts/nats.sh install              # only make sure the server is installed
#
# DIR defaults to .data/nats (git-ignored); PORT to $PL_NATS_PORT or 4222. The monitoring
# port (for /healthz) is picked free. PL_NATS_OWNER=PID stops the server once that process
# exits, and PL_NATS_CLEANUP=1 then deletes DIR, as scripts/clickhouse.sh does.
# Debian's nats-server is installed with apt when missing.
set -euo pipefail
# Its settings are PL_NATS_*, not PATHLIGHT_*: those are the collector's config overrides, and
# pathlight refuses one that names no key. Names from before the rename are refused, not ignored.
renamed=$(compgen -v | grep -E '^PATHLIGHT_NATS_[A-Z]' || true)
if [ -n "$renamed" ]; then
  echo "$0: $(echo $renamed) renamed: use PL_NATS_* instead" >&2
  exit 2
fi

cmd=${1:-}
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${2:-$root/.data/nats}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# shellcheck source=scripts/server-lib.sh
. "$root/scripts/server-lib.sh"

ensure_installed() {
  command -v nats-server >/dev/null 2>&1 && return 0
  echo "nats-server missing: installing Debian's package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq nats-server >&2
  command -v nats-server >/dev/null 2>&1 || { echo "could not install nats-server" >&2; exit 1; }
}

url() { echo "nats://127.0.0.1:$(cat "$dir/port")"; }

case "$cmd" in
  start)
    ensure_installed
    if running_pid >/dev/null; then url; exit 0; fi
    port=${3:-${PL_NATS_PORT:-4222}}
    monitor=$(free_port)
    echo "$port" >"$dir/port"
    # Not daemonized: it stays in our process group, so Ctrl-C on `make demo` stops it too.
    nohup nats-server -js -sd "$dir/store" -a 127.0.0.1 -p "$port" -m "$monitor" \
      -l "$dir/server.log" >/dev/null 2>&1 &
    echo $! >"$dir/pid"
    watch_owner "${PL_NATS_OWNER:-}" "${PL_NATS_CLEANUP:-}"
    for _ in $(seq 1 100); do
      if curl -fsS "http://127.0.0.1:$monitor/healthz" >/dev/null 2>&1; then url; exit 0; fi
      kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
      sleep 0.1
    done
    echo "nats-server did not become healthy; last log lines:" >&2
    tail -n 20 "$dir/server.log" >&2 2>/dev/null || true
    exit 1
    ;;
  stop) stop_server ;;
  url) url ;;
  install) ensure_installed ;;
  *) echo "usage: $0 start|stop|url|install [DIR] [PORT]" >&2; exit 2 ;;
esac
