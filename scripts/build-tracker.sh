#!/usr/bin/env bash
# Builds the tracker: Rust → wasm32 (size profile) → wasm-bindgen (web glue) → wasm-opt -Oz,
# then esbuild bundles the glue with tracker-wasm/js/{host,embed}.js (minified) into the
# <script> embed, and the npm package is assembled from the same wasm and host.js. The glue
# imports `./host.js` (see src/web.rs), so the JS files are put beside it before bundling:
#   target/tracker/p.js               the loader a site's tag names: its address never changes
#   target/tracker/p.HASH.js          the same loader under its content hash (SRI-pinned tags)
#   target/tracker/p.HASH.wasm        the wasm under its content hash (cached for a year)
#   target/tracker/o.HASH.js          the heatmap overlay, loaded only by "Open on site"
#   target/tracker/manifest.json      those names and the pinned loader's SRI integrity value
#   target/tracker/npm/               @pathlight/tracker (ESM + .d.ts)
# Served by the collector (`tracker_dir`) and the edge worker. The names are neutral on purpose:
# blockers' generic rules match words such as "analytics" or "track" in request paths.
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
# The features Rust's wasm32 target emits by default; without them binaryen refuses the module.
features="--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-mutable-globals --enable-reference-types --enable-multivalue"
# Rust's default allocation-error handler formats "memory allocation of N bytes failed", which
# keeps core::fmt's integer printing in the module (stable Rust cannot replace the handler in
# no_std). Its body becomes a trap, as a panic is here anyway (src/web.rs), and wasm-opt then
# drops the formatting code: ~180 B gzip of the 12 KB budget.
bin=tests/node_modules/.bin
$bin/wasm-dis "$out/gen/pathlight_bg.wasm" -o "$out/gen/bg.wat"
node -e '
  const fs = require("fs");
  const [src, dst] = process.argv.slice(1);
  const lines = fs.readFileSync(src, "utf8").split("\n");
  const at = lines.findIndex((l) => l.startsWith(" (func ") && l.includes("__rdl_alloc_error_handler"));
  if (at < 0) { console.log(src + ": no __rdl_alloc_error_handler; nothing to stub"); process.exit(0); }
  let end = at + 1;
  while (!/^ [(]|^[)]$/.test(lines[end])) end++;
  lines.splice(at + 1, end - at - 1, "  (unreachable)", " )");
  fs.writeFileSync(dst, lines.join("\n"));
' "$out/gen/bg.wat" "$out/gen/bg.wat"
# shellcheck disable=SC2086
$bin/wasm-as $features "$out/gen/bg.wat" -o "$out/gen/bg.wasm"
# shellcheck disable=SC2086
$bin/wasm-opt -Oz --strip-debug --strip-producers $features "$out/gen/bg.wasm" -o "$out/pathlight_bg.wasm"
cp tracker-wasm/js/{host,embed}.js "$out/gen/"
hash8() { sha256sum "$1" | cut -c1-8; }
wasm_name=p.$(hash8 "$out/pathlight_bg.wasm").wasm
rm -f "$out"/p.*.wasm "$out"/p.*.js "$out/pathlight.js"
mv "$out/pathlight_bg.wasm" "$out/$wasm_name"
# The heatmap overlay (issue 26): a module of its own, loaded by the loader only on pages
# opened with an overlay token, outside the embed's budget.
rm -f "$out"/o.*.js
tests/node_modules/.bin/esbuild tracker-wasm/js/overlay.js --bundle --minify --format=esm \
  --target=es2020 --log-level=warning --outfile="$out/gen/overlay.min.js"
overlay_name=o.$(hash8 "$out/gen/overlay.min.js").js
cp "$out/gen/overlay.min.js" "$out/$overlay_name"
# The loader finds the wasm and the overlay beside itself under the names this build gave them.
tests/node_modules/.bin/esbuild "$out/gen/embed.js" --bundle --minify --format=iife \
  --target=es2020 --log-level=warning --log-override:empty-import-meta=silent \
  --define:PATHLIGHT_WASM="\"$wasm_name\"" --define:PATHLIGHT_OVERLAY="\"$overlay_name\"" \
  --outfile="$out/p.js"
pinned=p.$(hash8 "$out/p.js").js
cp "$out/p.js" "$out/$pinned"
integrity=$(node -p '"sha384-" + require("crypto").createHash("sha384")
  .update(require("fs").readFileSync(process.argv[1])).digest("base64")' "$out/p.js")
printf '{"loader":"p.js","pinned":"%s","wasm":"%s","overlay":"%s","integrity":"%s"}\n' \
  "$pinned" "$wasm_name" "$overlay_name" "$integrity" >"$out/manifest.json"
mkdir -p "$out/npm"
cp tracker-wasm/npm/{package.json,index.js,index.d.ts} tracker-wasm/js/host.js "$out/npm/"
cp "$out/gen/pathlight.js" "$out/npm/"
cp "$out/$wasm_name" "$out/npm/pathlight_bg.wasm"

size() { wc -c <"$1" | tr -d ' '; }
gz() { gzip -9 -c "$1" | wc -c | tr -d ' '; }
js=$out/p.js wasm=$out/$wasm_name
total_gz=$(( $(gz "$js") + $(gz "$wasm") ))
table="| file | raw | gzip -9 |
|---|---:|---:|
| p.js (glue + embed, minified) | $(size "$js") B | $(gz "$js") B |
| p.HASH.wasm (after wasm-opt -Oz) | $(size "$wasm") B | $(gz "$wasm") B |
| wasm before wasm-opt | $(size "$out/gen/pathlight_bg.wasm") B | $(gz "$out/gen/pathlight_bg.wasm") B |
| **embed total (js + wasm)** | | **$total_gz B** |
| o.HASH.js (heatmap overlay, loaded only by \"Open on site\"; budget 25 KB) | $(size "$out/$overlay_name") B | $(gz "$out/$overlay_name") B |"
echo "$table"
budget=12288
if [ "$total_gz" -gt "$budget" ]; then
  echo "error: the embed build is $total_gz B gzip, over the ${budget} B budget (issue 3);" \
    "see bench/results/tracker-size.md for where the bytes go (node bench/wasm-funcs.mjs)" >&2
  exit 1
fi
if [ "$(gz "$out/$overlay_name")" -gt 25600 ]; then
  echo "error: the overlay module is $(gz "$out/$overlay_name") B gzip, over its 25 KB budget (issue 26)" >&2
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
