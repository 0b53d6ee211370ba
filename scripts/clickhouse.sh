#!/usr/bin/env bash
# Start or stop a private ClickHouse server bound to 127.0.0.1, with all its data under one directory.
#
#   scripts/clickhouse.sh start [DIR] [HTTP_PORT]   # prints the HTTP URL once /ping answers
#   scripts/clickhouse.sh stop  [DIR]
#   scripts/clickhouse.sh url   [DIR]
#   scripts/clickhouse.sh kill  [DIR]                # SIGKILL: a crash, for outage tests
#   scripts/clickhouse.sh install                   # only make sure the server is installed
#
# DIR defaults to .data/clickhouse (git-ignored); HTTP_PORT defaults to $PL_CLICKHOUSE_PORT or 8123.
# The native TCP port is picked free by the script, since only the HTTP interface is used,
# unless PL_CLICKHOUSE_TCP_PORT names it (shards of a cluster reach each other there).
# PL_CLICKHOUSE_CLUSTER=NAME=PORT,PORT,... writes a `remote_servers` cluster NAME with
# one shard per native port on 127.0.0.1 (cluster mode's tests run two servers like that).
# With PL_CLICKHOUSE_OWNER=PID the server stops by itself once that process exits
# (test runs use it, so no server outlives the tests that started it); with
# PL_CLICKHOUSE_CLEANUP=1 as well, DIR is then deleted.
# Debian's clickhouse-server (18.16) is installed with apt when missing.
set -euo pipefail
# Its settings are PL_CLICKHOUSE_*, not PATHLIGHT_*: those are the collector's config overrides, and
# pathlight refuses one that names no key. Names from before the rename are refused, not ignored.
renamed=$(compgen -v | grep -E '^PATHLIGHT_CLICKHOUSE_[A-Z]' || true)
if [ -n "$renamed" ]; then
  echo "$0: $(echo $renamed) renamed: use PL_CLICKHOUSE_* instead" >&2
  exit 2
fi

cmd=${1:-}
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${2:-$root/.data/clickhouse}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# shellcheck source=scripts/server-lib.sh
. "$root/scripts/server-lib.sh"

ensure_installed() {
  command -v clickhouse-server >/dev/null 2>&1 && return 0
  echo "clickhouse-server missing: installing Debian's package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # The package's postinst tries to start a system-wide service; policy-rc.d may refuse it, which is fine.
  apt-get install -y -qq clickhouse-server clickhouse-client >&2 || {
    command -v clickhouse-server >/dev/null 2>&1 || { echo "could not install clickhouse-server" >&2; exit 1; }
  }
}

remote_servers() {
  local spec=${PL_CLICKHOUSE_CLUSTER:-}
  [ -n "$spec" ] || return 0
  local name=${spec%%=*} ports=${spec#*=} port
  printf '  <remote_servers><%s>' "$name"
  for port in ${ports//,/ }; do
    printf '<shard><replica><host>127.0.0.1</host><port>%s</port></replica></shard>' "$port"
  done
  printf '</%s></remote_servers>\n' "$name"
}

write_config() {
  local http_port=$1 tcp_port=$2
  mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas" "$dir/log"
  # 18.x reads <yandex> as the config root; current servers accept it too.
  cat >"$dir/config.xml" <<XML
<yandex>
  <logger><level>warning</level><log>$dir/log/server.log</log><errorlog>$dir/log/error.log</errorlog><size>10M</size><count>2</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$http_port</http_port>
  <tcp_port>$tcp_port</tcp_port>
  <path>$dir/data/</path>
  <tmp_path>$dir/tmp/</tmp_path>
  <user_files_path>$dir/user_files/</user_files_path>
  <format_schema_path>$dir/format_schemas/</format_schema_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>200</max_concurrent_queries>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
$(remote_servers)
</yandex>
XML
  cat >"$dir/users.xml" <<XML
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage><log_queries>0</log_queries></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
  echo "$http_port" >"$dir/http_port"
}

url() { echo "http://127.0.0.1:$(cat "$dir/http_port")"; }

case "$cmd" in
  start)
    ensure_installed
    if pid=$(running_pid); then url; exit 0; fi
    http_port=${3:-${PL_CLICKHOUSE_PORT:-8123}}
    write_config "$http_port" "${PL_CLICKHOUSE_TCP_PORT:-$(free_port)}"
    # Not --daemon: the server then stays in our process group, so Ctrl-C on `make demo` stops it too.
    nohup clickhouse-server --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 &
    echo $! >"$dir/pid"
    watch_owner "${PL_CLICKHOUSE_OWNER:-}" "${PL_CLICKHOUSE_CLEANUP:-}"
    for _ in $(seq 1 300); do
      if curl -fsS "$(url)/ping" >/dev/null 2>&1; then url; exit 0; fi
      kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
      sleep 0.1
    done
    echo "clickhouse-server did not answer /ping; last log lines:" >&2
    tail -n 20 "$dir/log/error.log" "$dir/log/stdout.log" >&2 2>/dev/null || true
    exit 1
    ;;
  stop) stop_server ;;
  kill)
    if pid=$(running_pid); then
      kill -9 "$pid"
      while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    fi
    rm -f "$dir/pid"
    ;;
  url) url ;;
  install) ensure_installed ;;
  *) echo "usage: $0 start|stop|kill|url|install [DIR] [HTTP_PORT]" >&2; exit 2 ;;
esac
