# Shared by scripts/clickhouse.sh and scripts/nats.sh: a private server whose pid lives in
# "$dir/pid". Source it after setting $dir.

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Prints the server's pid if it runs; fails otherwise.
running_pid() {
  [ -f "$dir/pid" ] || return 1
  local pid; pid=$(cat "$dir/pid")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# SIGTERM, up to ten seconds for a clean exit, then SIGKILL.
stop_server() {
  local pid
  if pid=$(running_pid); then
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/pid"
}

# With OWNER (a pid) set: once that process is gone, stop whichever server then runs in $dir
# and, with CLEANUP = 1, delete $dir. One watchdog per directory, so a test may kill and
# restart the server without losing its data.
watch_owner() {
  local owner=$1 cleanup=":"
  [ -n "$owner" ] || return 0
  [ -f "$dir/watchdog" ] && kill -0 "$(cat "$dir/watchdog")" 2>/dev/null && return 0
  [ "${2:-}" = 1 ] && cleanup="rm -rf '$dir'"
  nohup setsid bash -c "while kill -0 $owner; do sleep 1; done
    if p=\$(cat '$dir/pid'); then kill \$p; while kill -0 \$p; do sleep 0.2; done; fi
    $cleanup" >/dev/null 2>&1 &
  echo $! >"$dir/watchdog"
}
