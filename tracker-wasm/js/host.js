// The tracker's JS host, shared by the <script> embed (embed.js) and the npm package
// (npm/index.js). It is the wasm's senses and voice: it listens to the page, reads the DOM
// (element, box, selector, text) and hands plain values to the wasm, which decides what to
// record, keeps sessions, batches, encodes and decides what to retry and when; the wasm calls
// back only for the clock, random bytes, storage and sending (the exports marked "wasm
// import"). The bytes of batches to retry wait here, in a bounded localStorage queue.
// Reading the DOM here rather than through web-sys is what keeps the embed within its size
// budget (see src/web.rs). Nothing here may throw into the host page.
import * as wasm from "./pathlight.js";

const OPT_OUT = "pathlight:optout";
/** Undelivered batches, base64, comma-separated: at most QUEUE_MAX, and QUEUE_CHARS chars. */
const QUEUE = "pathlight:queue";
const QUEUE_MAX = 30;
const QUEUE_CHARS = 256 * 1024;
/** Elements a click is attributed to when it lands inside one (an icon in a button). */
const INTERACTIVE = "a,button,input,select,textarea,label,summary,[role=button],[role=link],[data-track]";
const TRACK_ATTRS = ["data-track", "data-testid", "data-test", "data-pathlight"];
const MAX_SELECTOR = 256;
/** Scroll position is read at most this often (the last position is never lost). */
const SCROLL_MS = 100;

let endpoint = "";
/** Batches the bounded queue had to drop, and storage refusals (added to the wasm's count). */
let dropped = 0;

const safe = (f) => (...args) => {
  try {
    return f(...args);
  } catch {
    // A wasm trap or a browser refusal; the wasm counts what it can, the page sees nothing.
  }
};

/** wasm import: ms since the epoch. */
export const now = () => Date.now();

/** wasm import: fills `buf` from the browser's CSPRNG. */
export const random = (buf) => void crypto.getRandomValues(buf);

const storage = (local) => (local ? localStorage : sessionStorage);

/** wasm import: a stored string, or null. */
export const load = (key, local) => safe(() => storage(local).getItem(key))() ?? null;

/** wasm import: stores `value` (empty removes); false when the browser refused. */
export const save = (key, value, local) =>
  !!safe(() => (value ? storage(local).setItem(key, value) : storage(local).removeItem(key), 1))();

const queued = () => (load(QUEUE, true) || "").split(",").filter(Boolean);

/** Keeps a batch the wasm wants retried, dropping the oldest past the bounds. */
function keep(body) {
  const q = queued();
  let bin = "";
  for (const b of body) bin += String.fromCharCode(b);
  q.push(btoa(bin));
  while (q.length > QUEUE_MAX || q.join().length > QUEUE_CHARS) q.shift(), dropped++;
  save(QUEUE, q.join(), true) || dropped++;
}

/** POSTs raw bytes: no Content-Type, so no CORS preflight. The wasm judges the answer. */
const post = (body, again) =>
  fetch(endpoint, { method: "POST", body, keepalive: true })
    .then((r) => r.status, () => 0)
    .then((status) => safe(wasm.answered)(status, again) && keep(body));

/** wasm import: sends a batch, by beacon when the page is going away and the browser takes it. */
export function send(bytes, beacon) {
  // The view points into wasm memory, which the next allocation may move.
  const body = bytes.slice();
  (beacon && safe(() => navigator.sendBeacon(endpoint, body))()) || post(body, false);
}

/** wasm import: sends the oldest kept batch again; false when there is none. */
export function resend() {
  const [first, ...rest] = queued();
  if (!first) return false;
  save(QUEUE, rest.join(), true);
  post(Uint8Array.from(atob(first), (c) => c.charCodeAt(0)), true);
  return true;
}

/**
 * Click text as recorded: whitespace collapsed, at most 32 characters (code points, so an
 * emoji is never split). Only the start of a long text is looked at: clicks must stay cheap.
 */
const shortText = (t) => [...t.slice(0, 256).replace(/\s+/g, " ").trim()].slice(0, 32).join("").trimEnd();

const cssString = (v) => '"' + v.replace(/["\\]/g, "\\$&") + '"';

/**
 * A stable selector: the element's id; else a tracking/test attribute; else a tag +
 * `:nth-of-type` path up to the nearest ancestor with an id (or `body`), keeping the deepest
 * steps within MAX_SELECTOR characters.
 */
function selector(el) {
  const steps = [];
  for (let e = el; e; e = e.parentElement) {
    if (e.id) {
      steps.push(/^[A-Za-z][\w-]*$/.test(e.id) ? "#" + e.id : "[id=" + cssString(e.id) + "]");
      break;
    }
    const attr = TRACK_ATTRS.find((a) => e.hasAttribute(a));
    if (attr) {
      steps.push("[" + attr + "=" + cssString(e.getAttribute(attr)) + "]");
      break;
    }
    const tag = e.tagName.toLowerCase();
    if (tag == "body" || tag == "html") {
      steps.push(tag);
      break;
    }
    const same = [...e.parentNode.children].filter((o) => o.tagName == e.tagName);
    steps.push(same.length > 1 ? tag + ":nth-of-type(" + (same.indexOf(e) + 1) + ")" : tag);
  }
  let out = "";
  for (const step of steps) {
    const joined = out ? step + " > " + out : step;
    if (joined.length > MAX_SELECTOR) break;
    out = joined;
  }
  return out;
}

/**
 * Fetches and compiles the wasm, streaming where the server sends `application/wasm`.
 * (wasm-bindgen's own loader does the same with far more code; its `initSync` then
 * instantiates the compiled module.)
 */
export const compile = (url) =>
  WebAssembly.compileStreaming(fetch(url)).catch(() =>
    fetch(url).then((r) => r.arrayBuffer()).then((b) => WebAssembly.compile(b)),
  );

/** Starts tracking with `opts` ({site, endpoint, respectDnt, flushEvents, flushMs}). */
export function install(opts) {
  const doc = document;
  const root = doc.documentElement;
  const nav = navigator;
  const on = (target, name, f) => target.addEventListener(name, safe(f), { capture: true, passive: true });
  const sizes = () => [innerWidth, innerHeight, root.scrollWidth, root.scrollHeight];
  const privacy = nav.doNotTrack == "1" || nav.globalPrivacyControl === true;
  endpoint = opts.endpoint;
  let started =
    !load(OPT_OUT, true) &&
    !(opts.respectDnt !== false && privacy) &&
    !!safe(() => (wasm.start(opts.site || "", doc.visibilityState == "visible", opts.flushEvents || 20), 1))();

  let lastScroll = 0;
  let scrollTimer = 0;
  const measure = () => {
    clearTimeout(scrollTimer);
    scrollTimer = 0;
    lastScroll = Date.now();
    wasm.scroll(scrollY + innerHeight, root.scrollHeight);
  };
  const api = {
    started,
    page: safe(() => {
      if (!started) return;
      measure();
      wasm.page(location.href, doc.referrer, doc.title, ...sizes());
    }),
    track: safe((name, props) => {
      if (!started) return;
      for (const [k, v] of Object.entries(props || {})) {
        const kind = v === null ? 0 : ["boolean", "number", "string"].indexOf(typeof v) + 1;
        if (kind) wasm.prop(k, kind, +v || 0, kind == 3 ? v : "");
      }
      wasm.track(String(name));
    }),
    flush: safe(() => started && wasm.flush(false)),
    optOut: safe(() => {
      save(OPT_OUT, "1", true);
      save(QUEUE, "", true);
      started = api.started = false;
      wasm.stop();
    }),
    optIn: safe(() => save(OPT_OUT, "", true)),
    errors: safe(() => wasm.errors() + dropped),
  };
  if (!started) return api;

  on(doc, "click", (e) => {
    const target = e.target;
    if (!started || !(target instanceof Element)) return;
    const el = target.closest(INTERACTIVE) || target;
    const r = el.getBoundingClientRect();
    const tag = el.tagName.toLowerCase();
    const masked = el.closest("[data-pathlight-mask]") || /^(input|textarea|select)$/.test(tag);
    const href = el.hasAttribute("href") && typeof el.href == "string" ? el.href : "";
    const round = Math.round;
    wasm.click(
      round(e.pageX),
      round(e.pageY),
      el.id,
      selector(el),
      tag,
      masked ? "" : shortText(el.textContent || ""),
      href,
      r.width ? (e.clientX - r.left) / r.width : 0,
      r.height ? (e.clientY - r.top) / r.height : 0,
      round(r.left + scrollX),
      round(r.top + scrollY),
      round(r.width),
      round(r.height),
      ...sizes(),
    );
  });
  on(window, "scroll", () => {
    if (!started) return;
    if (Date.now() - lastScroll >= SCROLL_MS) measure();
    else scrollTimer ||= setTimeout(safe(measure), SCROLL_MS);
  });
  const hidden = (visible) => {
    if (!started) return;
    measure();
    wasm.visible(visible);
  };
  on(doc, "visibilitychange", () => hidden(doc.visibilityState == "visible"));
  on(window, "pagehide", () => hidden(false));
  on(window, "online", () => started && wasm.online());
  // Every second by default: a click is queryable within ~2 s (bench/results/freshness.md), and
  // the timer only sends when something is buffered.
  setInterval(safe(() => started && wasm.tick()), Math.max(opts.flushMs || 1000, 250));

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
  api.page();
  return api;
}

/** The methods callable before the wasm is ready; calls are queued and replayed. */
export const METHODS = ["track", "page", "flush", "optOut", "optIn"];
