// The live heatmap overlay, drawn on the site's own page: no iframe, so logins, the page's CSP
// (beyond the tracker's own directives) and framing rules do not matter. The embed loads this
// module (o.HASH.js, beside p.js) only when the page was opened by the dashboard's "Open on
// site" with an overlay token in its fragment, and then records nothing of the visit.
//
// It reads the page's heatmap and element figures from the collector beside the tracker, with
// the token (read-only, one site, minutes long, refused from origins the site does not list),
// and draws them over the page as rendered now: click heat anchored to the element found by
// selector (so it follows reflow, sticky bars and scrolling containers: positions are read from
// the live layout at every frame that needs them), badges per element (clicks, click-to-view
// rate, visitors), rage and dead click markers, and scroll-reach lines. A small panel picks
// the date range, device, width bucket and layers. It follows scrolling, resizing, SPA route
// changes and elements that appear later, and leaves nothing behind when closed.
//
// What it drew last is in `window.pathlightOverlay.marks` (viewport coordinates), and every
// drawing dispatches `pathlight-overlay-drawn` on window: tests assert positions from these.

const Z = 2147483000;
const LAYERS = ["heat", "badges", "frustration", "scroll"];

/** The element a stored selector names (" >>> " steps into an open shadow root), or null. */
export function find(selector) {
  let root = document;
  let el = null;
  try {
    for (const part of selector.split(" >>> ")) {
      el = root && root.querySelector(part);
      if (!el) return null;
      root = el.shadowRoot;
    }
  } catch {
    return null;
  }
  return el;
}

const day = (d) => d.toISOString().slice(0, 10);

/**
 * In the heatmap viewer's frame (no token): answers the viewer's layout questions — the page
 * boxes of the selectors it names and the document's size — by postMessage, and only when
 * framed by the viewer. The viewer is the collector's page: on the origin the tracker was loaded
 * from, when the tag names the collector. With a first-party tag (`/_pl/p.js`, the site's own
 * origin) the viewer is elsewhere: its questions then carry a viewer token, which the collector
 * behind that path checks for this site and the asking origin (`viewer-check`) before anything
 * is answered to it. An origin that frames the page without such a token learns nothing (the
 * boxes would tell it, say, whether a visitor is signed in).
 */
function respond(script) {
  const own = new URL(script.src).origin;
  const checked = new Map();
  const vouched = (origin, token) => {
    const key = origin + " " + token;
    if (!checked.has(key)) {
      const q = new URLSearchParams({ site: script.dataset.site || "", viewer: origin, token });
      checked.set(key, fetch(new URL("api/v1/viewer-check?" + q, script.src), { credentials: "omit" }).then((r) => r.ok, () => false));
    }
    return checked.get(key);
  };
  addEventListener("message", async (e) => {
    const q = e.data;
    if (e.source !== parent || !q || q.pathlight !== "layout") return;
    if (e.origin !== own && !(typeof q.token == "string" && (await vouched(e.origin, q.token)))) return;
    const boxes = {};
    for (const s of (q.selectors || []).slice(0, 5000)) {
      const el = typeof s == "string" && find(s);
      if (!el) continue;
      const r = el.getBoundingClientRect();
      boxes[s] = [r.left + scrollX, r.top + scrollY, r.width, r.height];
    }
    const d = document.documentElement;
    parent.postMessage({ pathlight: "layout", id: q.id, boxes, doc: [d.scrollWidth, d.scrollHeight] }, e.origin);
  });
}

/**
 * Opens the overlay with `token` for the site of the tracker's `script` tag; returns a close
 * function. Without a token: the viewer's frame (see `respond`).
 */
export function open(token, script) {
  if (!token) return respond(script);
  const site = script.dataset.site || "";
  const api = new URL("api/v1/", script.src);
  const host = document.createElement("pathlight-overlay");
  host.style.cssText = `position:fixed;inset:0;pointer-events:none;z-index:${Z}`;
  const shadow = host.attachShadow({ mode: "open" });
  const canvas = document.createElement("canvas");
  canvas.style.cssText = "position:fixed;left:0;top:0;pointer-events:none";
  const marks = document.createElement("div");
  const panel = document.createElement("form");
  // A constructed sheet: a page's CSP that refuses inline <style> does not apply to it.
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(`    form{position:fixed;top:12px;right:12px;pointer-events:auto;font:12px/1.4 system-ui,sans-serif;background:#fff;color:#111;
      border:1px solid #ccc;border-radius:6px;padding:8px;box-shadow:0 2px 8px #0003;display:grid;gap:4px;max-width:230px}
    label{display:flex;gap:4px;align-items:center}
    .badge{position:fixed;transform:translate(-50%,-100%);background:#111;color:#fff;border-radius:4px;padding:1px 5px;
      font:11px system-ui,sans-serif;white-space:nowrap}
    .rage,.dead{position:fixed;transform:translate(-50%,0);border-radius:4px;padding:1px 5px;font:11px system-ui,sans-serif;color:#fff}
    .rage{background:#c00}.dead{background:#666}
    .reach{position:fixed;left:0;right:0;border-top:2px dashed #06c;font:11px system-ui,sans-serif;color:#06c}
    .reach span{background:#fff;padding:0 4px}`);
  shadow.adoptedStyleSheets = [sheet];
  panel.innerHTML = `<b>Pathlight heatmap</b>
  <label>From <input name="from" type="date"></label>
  <label>To <input name="to" type="date"></label>
  <label>Device <select name="device"><option value="">all</option><option>desktop</option><option>tablet</option><option>mobile</option></select></label>
  <label>Width <select name="width"><option value="this">this width</option><option value="">all</option><option value="375">&lt; 600 px</option><option value="768">600–1000 px</option><option value="1440">≥ 1000 px</option></select></label>
  ${LAYERS.map((l) => `<label><input type="checkbox" name="${l}" checked> ${l}</label>`).join("")}
  <output name="status"></output>
  <button type="button" name="close">Close</button>`;
  shadow.append(canvas, marks, panel);
  const f = panel.elements;
  const now = new Date();
  f.to.value = day(now);
  f.from.value = day(new Date(now - 29 * 86400e3));

  const state = { heat: null, elements: null, marks: [], close };
  window.pathlightOverlay = state;
  let path = location.pathname;
  let frame = 0;
  let loading = 0;

  async function get(endpoint, extra = {}) {
    const q = new URLSearchParams({ site, path, token, from: f.from.value, to: f.to.value, ...extra });
    if (f.device.value) q.set("device", f.device.value);
    const width = f.width.value === "this" ? String(innerWidth) : f.width.value;
    if (width) q.set("width", width);
    const r = await fetch(new URL(endpoint + "?" + q, api), { credentials: "omit" });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || String(r.status));
    return body;
  }

  async function load() {
    const mine = ++loading;
    f.status.value = "loading…";
    try {
      const [heat, elements] = await Promise.all([get("heatmap"), get("elements")]);
      if (mine !== loading) return;
      Object.assign(state, { heat, elements, error: null });
      f.status.value = `${heat.clicks} clicks · ${elements.views} views`;
      draw();
    } catch (e) {
      state.error = String(e.message || e);
      f.status.value = "not shown: " + state.error;
      dispatchEvent(new CustomEvent("pathlight-overlay-drawn", { detail: state }));
    }
  }

  /** Draws from the live layout: every element's box is read now, in viewport coordinates. */
  function draw() {
    frame = 0;
    const { heat, elements } = state;
    if (!heat) return;
    const w = innerWidth, h = innerHeight;
    const dpr = devicePixelRatio || 1;
    canvas.width = w * dpr;
    canvas.height = h * dpr;
    canvas.style.width = w + "px";
    canvas.style.height = h + "px";
    const ctx = canvas.getContext("2d");
    ctx.scale(dpr, dpr);
    ctx.clearRect(0, 0, w, h);
    marks.replaceChildren();
    const drawn = [];
    const boxes = new Map();
    const box = (selector) => {
      if (!boxes.has(selector)) {
        const el = find(selector);
        boxes.set(selector, el && el.getBoundingClientRect());
      }
      return boxes.get(selector);
    };
    if (f.heat.checked) {
      const pts = [];
      for (const a of heat.anchored) {
        const r = box(a.selector);
        if (r && r.width + r.height) pts.push([r.left + a.rel_x * r.width, r.top + a.rel_y * r.height, a.n, a.selector]);
      }
      // Clicks whose element is gone: where they were on the page, scaled to its width now;
      // those in a fixed or sticky context (a menu bar) where they were on screen.
      if (!pts.length) {
        const docW = document.documentElement.scrollWidth;
        for (const p of heat.points) pts.push(p.fixed ? [p.x * w, p.y, p.n, null] : [p.x * docW - scrollX, p.y - scrollY, p.n, null]);
      }
      const max = Math.max(1, ...pts.map((p) => p[2]));
      ctx.globalCompositeOperation = "lighter";
      for (const [x, y, n, selector] of pts) {
        drawn.push({ layer: "heat", selector, x, y, n });
        if (x < -20 || y < -20 || x > w + 20 || y > h + 20) continue;
        const g = ctx.createRadialGradient(x, y, 0, x, y, 18);
        g.addColorStop(0, `rgba(255,40,0,${0.35 + 0.65 * (n / max)})`);
        g.addColorStop(1, "rgba(255,40,0,0)");
        ctx.fillStyle = g;
        ctx.fillRect(x - 18, y - 18, 36, 36);
      }
    }
    const label = (cls, x, y, text, data) => {
      const m = document.createElement("div");
      m.className = cls;
      m.style.left = x + "px";
      m.style.top = y + "px";
      m.textContent = text;
      marks.append(m);
      drawn.push({ layer: cls, x, y, ...data });
    };
    if (f.badges.checked) {
      for (const e of elements.elements) {
        const r = box(e.selector);
        if (!r || !(r.width + r.height)) continue;
        const ctr = (e.ctr * 100).toFixed(1);
        label("badge", r.left + r.width / 2, r.top, `${e.clicks} · ${ctr}% · ${e.clickers} visitors`, { selector: e.selector, clicks: e.clicks });
      }
    }
    if (f.frustration.checked) {
      for (const [list, cls, text] of [[heat.rage || [], "rage", "rage"], [heat.dead || [], "dead", "dead clicks"]]) {
        for (const e of list) {
          const r = box(e.selector);
          if (r && r.width + r.height) label(cls, r.left + r.width / 2, r.bottom + 2, `${text} ×${e.count}`, { selector: e.selector });
        }
      }
    }
    if (f.scroll.checked && heat.scroll_reach?.length) {
      const docH = document.documentElement.scrollHeight;
      for (const share of [0.75, 0.5, 0.25]) {
        // The deepest 10 % step that at least `share` of the sessions reached.
        const i = heat.scroll_reach.findLastIndex((s) => s >= share);
        if (i < 1) continue;
        const y = (i / 10) * docH - scrollY;
        const m = document.createElement("div");
        m.className = "reach";
        m.style.top = y + "px";
        m.innerHTML = "<span></span>";
        m.firstChild.textContent = `${share * 100}% of sessions reach here`;
        marks.append(m);
        drawn.push({ layer: "scroll", y, share });
      }
    }
    state.marks = drawn;
    dispatchEvent(new CustomEvent("pathlight-overlay-drawn", { detail: state }));
  }

  const later = () => (frame ||= requestAnimationFrame(draw));
  const routed = () => {
    if (location.pathname !== path) {
      path = location.pathname;
      load();
    } else later();
  };
  // Route changes of single-page apps: the history methods are wrapped while open.
  const originals = {};
  for (const k of ["pushState", "replaceState"]) {
    originals[k] = history[k];
    history[k] = function (...args) {
      const r = originals[k].apply(this, args);
      setTimeout(routed, 0);
      return r;
    };
  }
  const listeners = [[window, "scroll"], [window, "resize"], [window, "popstate"], [document, "scroll"]];
  const on = (t, n) => t.addEventListener(n, n === "popstate" ? routed : later, { capture: true, passive: true });
  for (const [t, n] of listeners) on(t, n);
  // Elements that appear later (and the overlay's own marks, which are not in this tree).
  const observer = new MutationObserver(later);
  observer.observe(document.body || document.documentElement, { childList: true, subtree: true, attributes: true });
  panel.addEventListener("change", (e) => (LAYERS.includes(e.target.name) ? later() : load()));
  f.close.addEventListener("click", close);

  function close() {
    observer.disconnect();
    for (const [t, n] of listeners) t.removeEventListener(n, n === "popstate" ? routed : later, { capture: true });
    for (const k of Object.keys(originals)) history[k] = originals[k];
    cancelAnimationFrame(frame);
    host.remove();
    delete window.pathlightOverlay;
    dispatchEvent(new CustomEvent("pathlight-overlay-closed"));
  }

  document.documentElement.append(host);
  load();
  return close;
}
