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
/** The signed-in user's id (`identify`), carried by this site's events from page to page. */
const USER = "pathlight:user";
/**
 * Batches to send again, base64, comma-separated: at most QUEUE_MAX, and QUEUE_CHARS chars.
 * A batch sent as the page goes away waits here too until its answer comes: a page that is
 * closed or left never hears it, so the next page of the site sends the batch again (`?r=1`),
 * and the collector, which knows the batches it stored lately, stores it once and counts a
 * batch it had not received as undelivered at first.
 */
const QUEUE = "pathlight:queue";
const QUEUE_MAX = 30;
const QUEUE_CHARS = 256 * 1024;
/** Batches dropped from the full queue, reported with the next send (`d=`). */
const DROPPED = "pathlight:dropped";
/** Elements a click is attributed to when it lands inside one (an icon in a button). */
const INTERACTIVE = "a,button,input,select,textarea,label,summary,[role=button],[role=link],[data-track]";
const TRACK_ATTRS = ["data-track", "data-testid", "data-test", "data-pathlight"];
const MAX_SELECTOR = 256;
/** Scroll position is read at most this often (the last position is never lost). */
const SCROLL_MS = 100;

let endpoint = "";
/** Batches the bounded queue had to drop, and storage refusals (added to the wasm's count). */
let dropped = 0;
let warned = false;

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

/** A stored string (sessionStorage unless `local`), or null. */
const load = (key, local) => safe(() => storage(local).getItem(key))() ?? null;

/** wasm import: stores `value` (empty removes); false when the browser refused. */
export const save = (key, value, local) =>
  !!safe(() => (value ? storage(local).setItem(key, value) : storage(local).removeItem(key), 1))();

const queued = () => (load(QUEUE, true) || "").split(",").filter(Boolean);

/** Keeps a batch to send again, dropping the oldest past the bounds (counted). */
function keep(entry) {
  const q = queued();
  let lost = 0;
  for (q.push(entry); q.length > QUEUE_MAX || q.join().length > QUEUE_CHARS; lost++) q.shift();
  if (!save(QUEUE, q.join(), true)) lost++;
  dropped += lost;
  if (lost) save(DROPPED, +load(DROPPED, true) + lost + "", true);
}

/**
 * POSTs a batch (`entry`: base64) with keepalive, so the request outlives the page; no
 * Content-Type, so no CORS preflight. Past keepalive's 64 KiB in flight the browser refuses
 * it, and it is kept like any failed send; a batch larger than that alone goes without
 * keepalive (it arrives if the page stays). A batch sent `again` says so (`r=1`), and the
 * drops not yet reported ride along (`d=`). An entry in the queue (`kept`) leaves it once
 * answered. The wasm judges the answer.
 */
function post(entry, again, kept) {
  const lost = +load(DROPPED, true);
  const body = Uint8Array.from(atob(entry), (c) => c.charCodeAt(0));
  fetch(endpoint + (again || lost ? "?r=" + +again + "&d=" + lost : ""), { method: "POST", body, keepalive: body.length < 65e3, credentials: "omit" })
    .then((r) => r.status, () => 0)
    .then((status) => {
      if (kept) save(QUEUE, queued().filter((e) => e != entry).join(), true);
      if (safe(wasm.answered)(status, again)) {
        warned ||= !console.warn("Pathlight: send failed");
        keep(entry);
      } else if (lost && status > 199 && status < 300) save(DROPPED, +load(DROPPED, true) - lost + "", true);
    });
}

/**
 * wasm import: sends a batch. When the page is going away (`leaving`) its answer may never be
 * heard, so the batch is queued first and leaves the queue once answered.
 */
export function send(bytes, leaving) {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  const entry = btoa(bin);
  if (leaving) keep(entry);
  post(entry, false, leaving);
}

/** wasm import: sends the oldest kept batch again (queued until answered); false when there is none. */
export function resend() {
  const [first] = queued();
  return !!first && !post(first, true, true);
}

/**
 * Click text as recorded: whitespace collapsed, at most 32 characters (code points, so an
 * emoji is never split). Only the start of a long text is looked at: clicks must stay cheap.
 */
const shortText = (t) => [...t.slice(0, 256).replace(/\s+/g, " ").trim()].slice(0, 32).join("").trimEnd();

const cssString = (v) => '"' + v.replace(/["\\]/g, "\\$&") + '"';

/** Class names that say what an element is, not its state or a build's hash. */
const STABLE_CLASS = /^(?!is-|has-|active|open|show|hidden)[a-z][a-z_-]{1,30}$/i;

/**
 * One step of a selector for `e` within its tree: its tag, up to two stable classes, and an
 * `:nth-of-type` only where siblings share that much.
 */
function step(e) {
  const tag = e.localName;
  const same = [...e.parentNode.children].filter((o) => o.localName == tag);
  const s = [tag, ...[...e.classList].filter((c) => STABLE_CLASS.test(c)).slice(0, 2)].join(".");
  return same[1] ? s + ":nth-of-type(" + (same.indexOf(e) + 1) + ")" : s;
}

/**
 * A short, stable selector: the element's id; else a tracking/test attribute; else steps (see
 * `step`) up to the nearest ancestor with an id or attribute, or only as far up as makes the
 * selector unique, so content inserted above (a banner) does not break it. An element inside an
 * open shadow root is its host's selector, " >>> ", then its own within the root (the viewer
 * and overlay resolve them root by root). At most MAX_SELECTOR characters, deepest steps kept.
 */
function selector(el) {
  let inner = "";
  let part = "";
  let root = el.getRootNode();
  for (let e = el; e; ) {
    const id = e.id;
    const attr = TRACK_ATTRS.find((a) => e.hasAttribute(a));
    const done = id || attr || /^(body|html)$/.test(e.localName);
    const st = id
      ? /^[A-Za-z][\w-]*$/.test(id) ? "#" + id : "[id=" + cssString(id) + "]"
      : attr ? "[" + attr + "=" + cssString(e.getAttribute(attr)) + "]" : done ? e.localName : step(e);
    const next = part ? st + " > " + part : st;
    if ((inner ? next + " >>> " + inner : next).length > MAX_SELECTOR) break;
    part = next;
    e = done || safe(() => !root.querySelectorAll(part)[1])() ? null : e.parentElement;
    // Out of a shadow root: on with its host, in the tree around it.
    if (!e && root.host) inner = part + (inner && " >>> " + inner), part = "", e = root.host, root = e.getRootNode();
  }
  return part && inner ? part + " >>> " + inner : part || inner;
}

/**
 * Fetches and compiles the wasm, streaming: the server must send it as `application/wasm`
 * (the collector, the edge worker and common static servers do; README: self-hosting).
 * wasm-bindgen's own loader does the same with far more code; its `initSync` then
 * instantiates the compiled module.
 */
export const compile = (url) => WebAssembly.compileStreaming(fetch(url));

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
    !!safe(() => (wasm.start(opts.site || "", doc.visibilityState == "visible", opts.flushEvents || 20, load("pathlight:session") || ""), 1))();

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
      wasm.page([location.href, doc.referrer, doc.title].join("\0"), ...sizes());
    }),
    track: safe((name, props) => {
      if (!started) return;
      for (const [k, v] of Object.entries(props || {})) {
        const kind = v === null ? 0 : ["boolean", "number", "string"].indexOf(typeof v) + 1;
        if (kind) wasm.prop(k, kind, +v || 0, kind == 3 ? v : "");
      }
      wasm.track(String(name));
    }),
    flush: safe(() => started && wasm.life(1)),
    // Names the user (later events carry the id; null forgets it, at sign-out) and posts
    // their traits to v1/identify beside v1/batch, as text (no CORS preflight). Off, like
    // everything, under opt-out and DNT/GPC: then nothing about the user leaves the page. A
    // refused or lost identify is said in the console and counted in `errors()`.
    identify: safe((user, traits) => {
      if (!started) return;
      user = (user ?? "") + "";
      save(USER, user, true);
      wasm.prop("", 4, 0, user);
      if (user && traits)
        fetch(new URL("identify", endpoint), { method: "POST", body: JSON.stringify({ site: opts.site, user_id: user, traits }), keepalive: true, credentials: "omit" })
          .then((r) => r.ok, () => 0)
          .then((ok) => ok || (dropped++, console.warn("Pathlight: identify failed")));
    }),
    optOut: safe(() => {
      save(OPT_OUT, "1", true);
      save(QUEUE, "", true);
      save(USER, "", true);
      started = api.started = false;
      wasm.stop();
    }),
    optIn: safe(() => save(OPT_OUT, "", true)),
    errors: safe(() => wasm.errors() + dropped),
  };
  if (!started) return api;
  // The user a page of this site named before.
  api.identify(load(USER, true));

  on(doc, "click", (e) => {
    // The element under the pointer, inside open shadow roots too (`target` is their host).
    const path = e.composedPath();
    const target = path.find((n) => n instanceof Element);
    if (!started || !target) return;
    const el = path.find((n) => n instanceof Element && n.matches(INTERACTIVE)) || target;
    const r = el.getBoundingClientRect();
    const tag = el.localName;
    const masked = el.closest("[data-pathlight-mask]") || /^(input|textarea|select)$/.test(tag);
    const href = el.hasAttribute("href") && typeof el.href == "string" ? el.href : "";
    const round = Math.round;
    // In a fixed or sticky context (a menu bar, a chat button) the element stays on screen as
    // the page moves: its click is where it was on screen, in viewport coordinates.
    let fixed = 0;
    for (let n = el; n && !fixed; n = n.parentElement || n.getRootNode().host) fixed = ["fixed", "sticky"].indexOf(getComputedStyle(n).position) + 1;
    const sx = fixed ? 0 : scrollX;
    const sy = fixed ? 0 : scrollY;
    wasm.click(
      round(e.clientX + sx),
      round(e.clientY + sy),
      // One string, not four: each string argument costs glue on both sides (src/web.rs).
      [selector(el), tag, masked ? "" : shortText(el.textContent || ""), href].join("\0"),
      r.width ? (e.clientX - r.left) / r.width : 0,
      r.height ? (e.clientY - r.top) / r.height : 0,
      round(r.left + sx),
      round(r.top + sy),
      round(r.width),
      round(r.height),
      ...sizes(),
      fixed,
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
    wasm.life(visible ? 2 : 3);
  };
  on(doc, "visibilitychange", () => hidden(doc.visibilityState == "visible"));
  on(window, "pagehide", () => hidden(false));
  // Every second by default: a click is queryable within ~2 s (bench/results/freshness.md), and
  // the timer only sends when something is buffered.
  setInterval(safe(() => started && wasm.life(0)), Math.max(opts.flushMs || 1000, 250));

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
export const METHODS = ["track", "page", "flush", "optOut", "optIn", "identify"];
