// The <script> embed's loader, appended to wasm-bindgen's `no-modules` glue inside one block,
// so the glue's `wasm_bindgen` binding stays private to this file.
//   <script async src="https://collector/pathlight.js" data-site="SITE"
//           data-endpoint="https://collector/v1/batch"></script>
// Optional: data-respect-dnt="false", data-flush-events="20", data-flush-ms="5000".
// Calls made before the wasm is ready (window.pathlight.track(...)) are queued and replayed.
(function () {
  var script = document.currentScript;
  var api = window.pathlight || {};
  if (!script || api.loaded) return;
  var d = script.dataset;
  var queue = api.q || [];
  var methods = ["track", "page", "flush", "optOut", "optIn"];
  api.loaded = true;
  methods.forEach(function (m) {
    api[m] = api[m] || function () { queue.push([m, arguments]); };
  });
  window.pathlight = api;
  // Never throw into the host page.
  function safe(f) {
    return function () { try { return f.apply(null, arguments); } catch (e) { /* counted in wasm */ } };
  }
  wasm_bindgen({ module_or_path: new URL(d.wasm || "pathlight_bg.wasm", script.src) }).then(function () {
    var w = wasm_bindgen;
    api.optIn = safe(w.optIn);
    api.optOut = safe(w.optOut);
    var endpoint = d.endpoint || new URL("/v1/batch", script.src).href;
    if (!w.start(d.site || "", endpoint, d.respectDnt !== "false", +d.flushEvents || 20, +d.flushMs || 5000)) return;
    api.track = safe(function (name, props) { w.track(String(name), props || {}); });
    api.page = safe(w.page);
    api.flush = safe(w.flush);
    api.errors = safe(w.errors);
    ["pushState", "replaceState"].forEach(function (k) {
      var orig = history[k];
      history[k] = function () {
        var r = orig.apply(this, arguments);
        // After the app's own handler has set the new title.
        setTimeout(api.page, 0);
        return r;
      };
    });
    addEventListener("popstate", api.page);
    addEventListener("hashchange", api.page);
    queue.forEach(function (c) { api[c[0]].apply(null, c[1]); });
  }, function () {});
})();
