#!/usr/bin/env bash
# Builds the edge worker with worker-build into edge-worker/build/ (index.js + index_bg.wasm),
# the bundle `wrangler deploy` uploads and the tests run in workerd, and lays out the tracker's
# files it serves first-party in edge-worker/build/tracker/ (the `[assets]` directory): the
# loader p.js and the content-hashed files of the tracker build (target/tracker, built first
# when missing or older than its sources). worker-build never looks
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

# The tracker's files, as scripts/build-tracker.sh leaves them: p.js, p.<hash>.wasm, the pinned
# p.<hash>.js and manifest.json naming them. Only the loader and the content-hashed files are
# served (src/tracker.rs), so only they are uploaded.
tracker=$root/target/tracker
stale=$(find ../tracker-wasm/src ../tracker-wasm/js ../tracker-wasm/Cargo.toml ../wire/src \
  ../Cargo.lock ../scripts/build-tracker.sh -newer "$tracker/manifest.json" 2>/dev/null | head -1 || true)
if [ ! -f "$tracker/manifest.json" ] || [ -n "$stale" ]; then
  "$root/scripts/build-tracker.sh" >&2
fi
if [ ! -f "$tracker/manifest.json" ]; then
  echo "error: $tracker/manifest.json is missing: the tracker build predates p.js," \
    "p.<hash>.wasm and its manifest, which the worker serves" >&2
  exit 1
fi
rm -rf build/tracker
mkdir -p build/tracker
for f in "$tracker"/*; do
  name=${f##*/}
  if [ "$name" = p.js ] || [[ $name =~ ^[a-z]+\.[0-9a-f]{8,}\.(js|wasm)$ ]]; then
    cp "$f" build/tracker/
  fi
done
for key in loader wasm; do
  name=$(sed -n "s/.*\"$key\" *: *\"\([^\"]*\)\".*/\1/p" "$tracker/manifest.json")
  if [ -z "$name" ] || [ ! -f "build/tracker/$name" ]; then
    echo "error: the tracker manifest's $key (${name:-none}) is not among the files the worker" \
      "serves (p.js and ^[a-z]+\\.[0-9a-f]{8,}\\.(js|wasm)\$)" >&2
    exit 1
  fi
done

size() { wc -c <"$1" | tr -d ' '; }
gz() { gzip -9 -c "$1" | wc -c | tr -d ' '; }
printf 'edge worker: index_bg.wasm %s B (gzip %s B), index.js %s B (gzip %s B)\n' \
  "$(size build/index_bg.wasm)" "$(gz build/index_bg.wasm)" "$(size build/index.js)" "$(gz build/index.js)"
