#!/usr/bin/env bash
# Installs what building, testing and the demo need, from the project's own files only:
# rustup targets, Debian packages, pinned cargo tools and `npm ci` as later parts need them.
# Idempotent: each step first checks whether its tool is already there at the right version,
# so a second run takes well under a second.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

step() { printf '[setup] %s\n' "$*" >&2; }

# The tracker and the edge worker build `wire` for wasm32; CI checks that it still does.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  step "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

if ! command -v curl >/dev/null 2>&1; then
  step "apt-get install curl"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl
fi

# wasm-bindgen CLI at exactly the version of the wasm-bindgen crate in Cargo.lock (the two
# must match). No --locked: it fails to resolve for 0.2.130.
wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$root/Cargo.lock")
if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$wb_version" ]; then
  step "cargo install wasm-bindgen-cli --version $wb_version (a few minutes, once)"
  cargo install wasm-bindgen-cli --version "$wb_version"
fi

# worker-build at the version of the worker crate in Cargo.lock (they are released together).
wk_version=$(awk '/^name = "worker"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$root/Cargo.lock")
if [ "$(worker-build --version 2>/dev/null | cut -d' ' -f2)" != "$wk_version" ]; then
  step "cargo install worker-build --version $wk_version --locked (a few minutes, once)"
  cargo install worker-build --version "$wk_version" --locked
fi

# Real Chromium for the browser tests (never `playwright install`: Debian's build).
if [ ! -x /usr/bin/chromium ]; then
  step "apt-get install chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi

# nginx as the real reverse proxy of the first-party proxy test (tests/browser/proxy.test.mjs).
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  step "apt-get install nginx"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nginx >/dev/null
  # Debian starts the packaged service; the tests run their own on free ports.
  systemctl disable --now nginx >/dev/null 2>&1 || service nginx stop >/dev/null 2>&1 || true
fi

# promtool checks and unit-tests the alert rules of ops/prometheus (tests/ops); Debian ships it
# with the server, whose packaged service the tests do not use.
if ! command -v promtool >/dev/null 2>&1; then
  step "apt-get install prometheus (for promtool)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  systemctl disable --now prometheus >/dev/null 2>&1 || service prometheus stop >/dev/null 2>&1 || true
fi

# Real ClickHouse for tests and the demo (Debian's 18.16).
"$root/scripts/clickhouse.sh" install

# NATS with JetStream for scale-out mode's tests (Debian's nats-server).
"$root/scripts/nats.sh" install

# Schemathesis, which holds the query API to its OpenAPI document (tests/api/contract.test.mjs),
# from PyPI at the versions of its requirements file, into a venv of its own outside the work
# tree (a fresh clone reuses it). The venv is named by the version; a stamp of the file's hash
# says whether it is complete, so a second run only compares two hashes.
st_reqs=$root/tests/api/schemathesis-requirements.txt
st_version=$(sed -n 's/^schemathesis==//p' "$st_reqs")
st_venv=${XDG_CACHE_HOME:-$HOME/.cache}/pathlight/schemathesis-$st_version
st_hash=$(sha256sum "$st_reqs" | cut -d' ' -f1)
if [ "$(cat "$st_venv/.pathlight-requirements-sha256" 2>/dev/null)" != "$st_hash" ]; then
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    step "apt-get install python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3 python3-venv >/dev/null
  fi
  step "schemathesis $st_version into $st_venv"
  rm -rf "$st_venv"
  python3 -m venv "$st_venv"
  "$st_venv/bin/pip" install -q --disable-pip-version-check --no-deps -r "$st_reqs"
  echo "$st_hash" >"$st_venv/.pathlight-requirements-sha256"
fi

# Node packages of the cross-component tests (chdb: current ClickHouse embedded), exactly as
# locked. `npm ci` wipes and reinstalls, so it runs only when the lock file changed.
if ! command -v npm >/dev/null 2>&1; then
  step "apt-get install nodejs npm"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
lock_hash=$(sha256sum "$root/tests/package-lock.json" | cut -d' ' -f1)
stamp=$root/tests/node_modules/.pathlight-lock-sha256
if [ "$(cat "$stamp" 2>/dev/null)" != "$lock_hash" ]; then
  step "npm ci (tests/)"
  (cd "$root/tests" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_hash" >"$stamp"
fi
