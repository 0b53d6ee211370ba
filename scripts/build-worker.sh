#!/usr/bin/env bash
# Builds the edge worker with worker-build into edge-worker/build/ (index.js + index_bg.wasm),
# the bundle `wrangler deploy` uploads and the tests run in workerd. worker-build never looks
# on PATH and would download its tools, which fails offline: it gets them through
# WASM_BINDGEN_BIN (the CLI matching Cargo.lock, scripts/setup.sh), WASM_OPT_BIN and ESBUILD_BIN
# (npm, tests/package-lock.json). The size profile is the tracker's (Cargo.toml), so the two
# wasm builds share one profile. Prints the bundle's sizes; `--record` is bench/edge-worker.sh's.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/tests/node_modules/.bin
export WASM_BINDGEN_BIN=${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}
export WASM_OPT_BIN=${WASM_OPT_BIN:-$bin/wasm-opt}
export ESBUILD_BIN=${ESBUILD_BIN:-$bin/esbuild}
cd "$root/edge-worker"
# Nothing to do when the build is newer than every input (wrangler's [build] runs this again).
newer=$(find src ../wire/src ../ingest/src Cargo.toml ../Cargo.lock -newer build/index_bg.wasm 2>/dev/null | head -1 || true)
if [ ! -f build/index_bg.wasm ] || [ -n "$newer" ]; then
  mkdir -p "$root/target"
  worker-build --profile wasm-size >/dev/null 2>"$root/target/worker-build.log" || {
    cat "$root/target/worker-build.log" >&2
    exit 1
  }
fi
size() { wc -c <"$1" | tr -d ' '; }
gz() { gzip -9 -c "$1" | wc -c | tr -d ' '; }
printf 'edge worker: index_bg.wasm %s B (gzip %s B), index.js %s B (gzip %s B)\n' \
  "$(size build/index_bg.wasm)" "$(gz build/index_bg.wasm)" "$(size build/index.js)" "$(gz build/index.js)"
