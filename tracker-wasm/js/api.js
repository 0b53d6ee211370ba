// The tracker's JS surface, shared by the <script> embed (embed.js) and the npm package
// (npm/index.js): starts the wasm, follows SPA navigation, and never throws into the page.
export function install(wasm, opts) {
  const safe = (f) => (...args) => {
    try {
      return f(...args);
    } catch {
      // The wasm counts its own errors; a throw here must not reach the host page.
    }
  };
  const started = !!safe(wasm.start)(
    opts.site || "",
    opts.endpoint,
    opts.respectDnt !== false,
    opts.flushEvents || 20,
    opts.flushMs || 5000,
  );
  const api = {
    started,
    track: safe((name, props) => started && wasm.track(String(name), props || {})),
    page: safe(() => started && wasm.page()),
    flush: safe(() => started && wasm.flush()),
    optOut: safe(() => wasm.optOut()),
    optIn: safe(() => wasm.optIn()),
    errors: safe(() => wasm.errors()),
  };
  if (started) {
    for (const k of ["pushState", "replaceState"]) {
      const orig = history[k];
      history[k] = function (...args) {
        const r = orig.apply(this, args);
        // After the app's own code has rendered the route and set its title.
        setTimeout(api.page, 0);
        return r;
      };
    }
    addEventListener("popstate", api.page);
    addEventListener("hashchange", api.page);
  }
  return api;
}

/** The methods callable before the wasm is ready; calls are queued and replayed. */
export const METHODS = ["track", "page", "flush", "optOut", "optIn"];
