// The <script> embed, bundled by esbuild (with the wasm-bindgen glue and host.js beside it)
// into pathlight.js:
//   <script async src="https://collector/pathlight.js" data-site="SITE"
//           data-endpoint="https://collector/v1/batch"></script>
// Optional: data-respect-dnt="false", data-flush-events="20", data-flush-ms="1000",
// data-wasm (URL of pathlight_bg.wasm; default: beside the script).
// Calls made before the wasm is ready (window.pathlight.track(...)) are queued and replayed.
import { initSync } from "./pathlight.js";
import { METHODS, compile, install } from "./host.js";

const script = document.currentScript;
const stub = window.pathlight || {};
// Pages shown inside the heatmap viewer are not visits.
const inViewer = /[?&]pathlight-viewer=/.test(location.search);
if (script && !stub.loaded && !inViewer) {
  const d = script.dataset;
  const queue = stub.q || [];
  stub.loaded = true;
  for (const m of METHODS) stub[m] = stub[m] || ((...args) => queue.push([m, args]));
  window.pathlight = stub;
  compile(new URL(d.wasm || "pathlight_bg.wasm", script.src)).then((module) => {
    initSync({ module });
    Object.assign(
      stub,
      install({
        site: d.site,
        endpoint: d.endpoint || new URL("/v1/batch", script.src).href,
        respectDnt: d.respectDnt !== "false",
        flushEvents: +d.flushEvents,
        flushMs: +d.flushMs,
      }),
    );
    for (const [m, args] of queue) stub[m](...args);
  }, () => {});
}
