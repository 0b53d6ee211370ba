// The <script> embed, bundled by esbuild (with the wasm-bindgen glue and host.js beside it)
// into p.js:
//   <script async src="/_pl/p.js" data-site="SITE"></script>
// The wasm (p.HASH.wasm) and the batch endpoint (v1/batch) are found beside the script, so a
// path of the site's own proxied to the collector or the edge worker needs no other setting.
// Optional: data-endpoint (URL batches are posted to), data-wasm (URL of the wasm, when the
// files are self-hosted elsewhere), data-respect-dnt="false", data-flush-events="20",
// data-flush-ms="1000".
// Calls made before the wasm is ready (window.pathlight.track(...)) are queued and replayed.
import { initSync } from "./pathlight.js";
import { METHODS, compile, install } from "./host.js";

const script = document.currentScript;
const stub = window.pathlight || {};
// Opened by the dashboard's "Open on site" (an overlay token in the fragment, which leaves the
// address bar) or framed by the heatmap viewer (?pathlight-viewer=): not a visit. The overlay
// module (o.HASH.js, named by PATHLIGHT_OVERLAY at build time) draws the heatmap on the page,
// or answers the viewer's questions about the page's layout.
const overlay = /[#&]pathlight-overlay=([\w.]+)/.exec(location.hash);
// Not loaded (a CSP without 'wasm-unsafe-eval' or the tracker's origin: README): one line.
const warn = (e) => console.warn("Pathlight is off: " + e);
if (script && (overlay || /[?&]pathlight-viewer=/.test(location.search))) {
  if (overlay) history.replaceState(history.state, "", location.href.split("#")[0]);
  import(new URL(PATHLIGHT_OVERLAY, script.src)).then((m) => m.open(overlay && overlay[1], script), warn);
} else if (script && !stub.loaded) {
  const d = script.dataset;
  const queue = stub.q || [];
  stub.loaded = true;
  for (const m of METHODS) stub[m] = stub[m] || ((...args) => queue.push([m, args]));
  window.pathlight = stub;
  // PATHLIGHT_WASM: the wasm's content-hashed name, set by scripts/build-tracker.sh.
  compile(new URL(d.wasm || PATHLIGHT_WASM, script.src)).then((module) => {
    initSync({ module });
    Object.assign(
      stub,
      install({
        site: d.site,
        endpoint: new URL(d.endpoint || "v1/batch", script.src).href,
        respectDnt: d.respectDnt !== "false",
        flushEvents: +d.flushEvents,
        flushMs: +d.flushMs,
      }),
    );
    for (const [m, args] of queue) stub[m](...args);
  }, warn);
}
