#!/usr/bin/env bash
# Builds the tracker: Rust → wasm32 (size profile) → wasm-bindgen (web glue) → wasm-opt -Oz,
# then esbuild bundles the glue with tracker-wasm/js/{host,embed}.js (minified) into the
# <script> embed, and the npm package is assembled from the same wasm and host.js. The glue
# imports `./host.js` (see src/web.rs), so the JS files are put beside it before bundling:
#   target/tracker/{pathlight.js, pathlight_bg.wasm}   served by the collector (`tracker_dir`)
#   target/tracker/npm/                                 @pathlight/tracker (ESM + .d.ts)
# Prints the sizes; `--record` also rewrites bench/results/tracker-size.md.
# Tools come from scripts/setup.sh: wasm-bindgen-cli matching Cargo.lock; binaryen and esbuild
# from npm (tests/package-lock.json).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=target/tracker
mkdir -p "$out"

cargo build -p pathlight-tracker --target wasm32-unknown-unknown --profile wasm-size
raw=target/wasm32-unknown-unknown/wasm-size/pathlight_tracker.wasm
rm -rf "$out/gen" "$out/npm"
wasm-bindgen --target web --no-typescript --out-dir "$out/gen" --out-name pathlight "$raw"
# The features Rust's wasm32 target emits by default; without them wasm-opt refuses the module.
tests/node_modules/.bin/wasm-opt -Oz --strip-debug --strip-producers \
  --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  "$out/gen/pathlight_bg.wasm" -o "$out/pathlight_bg.wasm"
cp tracker-wasm/js/{host,embed}.js "$out/gen/"
tests/node_modules/.bin/esbuild "$out/gen/embed.js" --bundle --minify --format=iife \
  --target=es2020 --log-level=warning --log-override:empty-import-meta=silent \
  --outfile="$out/pathlight.js"
mkdir -p "$out/npm"
cp tracker-wasm/npm/{package.json,index.js,index.d.ts} tracker-wasm/js/host.js "$out/npm/"
cp "$out/gen/pathlight.js" "$out/pathlight_bg.wasm" "$out/npm/"

size() { wc -c <"$1" | tr -d ' '; }
gz() { gzip -9 -c "$1" | wc -c | tr -d ' '; }
js=$out/pathlight.js wasm=$out/pathlight_bg.wasm
total_gz=$(( $(gz "$js") + $(gz "$wasm") ))
table="| file | raw | gzip -9 |
|---|---:|---:|
| pathlight.js (glue + embed, minified) | $(size "$js") B | $(gz "$js") B |
| pathlight_bg.wasm (after wasm-opt -Oz) | $(size "$wasm") B | $(gz "$wasm") B |
| wasm before wasm-opt | $(size "$out/gen/pathlight_bg.wasm") B | $(gz "$out/gen/pathlight_bg.wasm") B |
| **embed total (js + wasm)** | | **$total_gz B** |"
echo "$table"
budget=12288
if [ "$total_gz" -gt "$budget" ]; then
  echo "error: the embed build is $total_gz B gzip, over the ${budget} B budget (issue 3);" \
    "see bench/results/tracker-size.md for where the bytes go (node bench/wasm-funcs.mjs)" >&2
  exit 1
fi
if [ "${1:-}" = "--record" ]; then
  # Keep the hand-written analysis under "## Notes" across re-recordings.
  notes=$(sed -n '/^## Notes/,$p' bench/results/tracker-size.md 2>/dev/null || true)
  {
    echo "# Tracker size"
    echo
    echo "Budget: embed build (loader JS + wasm, gzip -9) ≤ 12 KB (12288 B)."
    echo "Date: $(date -u +%F). Command: \`scripts/build-tracker.sh --record\` (rustc $(rustc --version | cut -d' ' -f2), wasm-bindgen $(wasm-bindgen --version | cut -d' ' -f2), wasm-opt from npm binaryen $(node -p 'require("./tests/node_modules/binaryen/package.json").version'))."
    echo
    echo "$table"
    if [ -n "$notes" ]; then echo; echo "$notes"; fi
  } >bench/results/tracker-size.md
fi
