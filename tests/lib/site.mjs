// A site owner's website for the tests: static pages nobody here wrote (the Rust book, made
// by mdBook, and the standard library's rustdoc pages, both shipped with the Rust toolchain)
// served from an origin of their own, with the tracker's tag put in each page's <head> as the
// README shows it, and with the site's own response headers (a CSP, framing rules).
import { execFileSync } from "node:child_process";
import { createReadStream, existsSync, readFileSync, statSync } from "node:fs";
import { createServer, request } from "node:http";
import { extname, join, normalize } from "node:path";
import assert from "node:assert/strict";
import { eventually } from "./stack.mjs";

/** The toolchain's HTML docs: book/ (mdBook) and std/, core/ (rustdoc). */
export const DOCS = join(execFileSync("rustc", ["--print", "sysroot"], { encoding: "utf8" }).trim(), "share", "doc", "rust", "html");
if (!existsSync(join(DOCS, "book", "ch04-01-what-is-ownership.html"))) {
  throw new Error(`${DOCS} has no Rust book: the toolchain's rust-docs component is missing (rustup component add rust-docs)`);
}

/** An ordinary desktop Chrome: headless Chromium's own User-Agent is a bot to the collector. */
export const USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36";

const TYPES = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
  ".png": "image/png", ".woff2": "font/woff2", ".woff": "font/woff", ".ttf": "font/ttf", ".json": "application/json",
};

/**
 * Serves `dir` on 127.0.0.1:`port` (0: any free one), `tag` inserted before `</head>` of every HTML page.
 * `headers(path)` gives extra response headers for a file; `proxy(req, res)` may answer a
 * request first (return true), for paths the site forwards elsewhere.
 */
export async function startSite({ port = 0, dir = DOCS, tag = "", headers = () => ({}), proxy = () => false } = {}) {
  const server = createServer(async (req, res) => {
    if (await proxy(req, res)) return;
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    let file = normalize(join(dir, path));
    if (!file.startsWith(dir)) return void res.writeHead(403).end();
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, "index.html");
    if (!existsSync(file)) return void res.writeHead(404).end("not found");
    const type = TYPES[extname(file)] || (file.endsWith(".wasm") ? "application/wasm" : "application/octet-stream");
    res.setHeader("content-type", type);
    for (const [k, v] of Object.entries(headers(path))) res.setHeader(k, v);
    if (type.startsWith("text/html")) res.end(readFileSync(file, "utf8").replace("</head>", `${tag}\n</head>`));
    else createReadStream(file).pipe(res);
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return { port: server.address().port, stop: () => new Promise((r) => server.close(r)) };
}

/** The element a stored selector names (" >>> " steps into an open shadow root), or null. */
export function resolveSelector(sel) {
  let root = document;
  let el = null;
  for (const part of sel.split(" >>> ")) {
    if (!root) return null;
    el = root.querySelector(part);
    if (!el) return null;
    root = el.shadowRoot;
  }
  return el;
}

/**
 * Records the type and URL of every request of a context's pages, as Chromium reports them to
 * Playwright. Requests a page makes as it is left (keepalive fetches, beacons) are not reported
 * there, nor to the page's CDP session: `startRecorder` sees those.
 */
export function recordRequests(context) {
  const seen = [];
  // The book's own call to the Rust playground (it fails: no name resolves but ours).
  const type = { ping: "Ping", fetch: "Fetch", script: "Script", document: "Document" };
  context.on("request", (r) => new URL(r.url()).host != "play.rust-lang.org" && seen.push({ type: type[r.resourceType()] || r.resourceType(), url: r.url(), method: r.method() }));
  return seen;
}

/**
 * A pass-through in front of `target` (a base URL) on 127.0.0.1:`port` that records every
 * request as the server receives it, page-leaving ones included: `mode` is its
 * Sec-Fetch-Mode, `no-cors` for a sendBeacon and `cors` for a fetch.
 */
export async function startRecorder(target, port = 0) {
  const seen = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method, url: req.url, mode: req.headers["sec-fetch-mode"] });
    const up = request(new URL(req.url, target), { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on("error", () => res.writeHead(502).end());
    req.pipe(up);
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return { port: server.address().port, seen, stop: () => new Promise((r) => server.close(r)) };
}

/**
 * A `proxy` for startSite forwarding `prefix` (`/_pl/`) to `target` with the prefix stripped, as
 * the README's nginx block does: the first-party path a site sets up.
 */
export function forward(prefix, target) {
  return (req, res) => {
    if (!req.url.startsWith(prefix)) return false;
    const up = request(new URL(req.url.slice(prefix.length - 1), target), { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on("error", () => res.writeHead(502).end());
    req.pipe(up);
    return true;
  };
}

/**
 * Clicks `locator` at fractions (fx, fy) of its box; returns where, in page and client pixels,
 * with the scroll position, so the stored click can be drawn back at the same scroll.
 */
/**
 * What `read` returns once it stops changing (animations, sticky bars sliding in): the same
 * for three reads 100 ms apart. One repeat was not enough on a loaded machine, where a bar's
 * scroll handler may not yet have started its transition 100 ms after the scroll.
 */
async function settled(read) {
  let last = JSON.stringify(await read());
  let same = 0;
  for (let i = 0; i < 60 && same < 3; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const now = JSON.stringify(await read());
    same = now === last ? same + 1 : 0;
    last = now;
  }
  return JSON.parse(last);
}

export async function clickAt(page, locator, fx, fy, scroll = true) {
  if (scroll) await locator.scrollIntoViewIfNeeded();
  const box = await settled(() => locator.boundingBox());
  const [sx, sy] = await page.evaluate(() => [scrollX, scrollY]);
  const x = Math.round(box.x + box.width * fx);
  const y = Math.round(box.y + box.height * fy);
  // The context the page gives the element clicked, as CSS says at the click (1 fixed, 2
  // sticky, 0 in the flow; a sliding menu bar turns sticky mid-way): the truth the tracker's
  // `fixed` is checked against, read in the same dispatch as the tracker's listener.
  await page.evaluate(() => {
    addEventListener("click", (e) => {
      let context = 0;
      for (let n = e.target; n && n.nodeType === 1; n = n.parentElement) {
        const p = getComputedStyle(n).position;
        if (p === "fixed" || p === "sticky") {
          context = p === "fixed" ? 1 : 2;
          break;
        }
      }
      // Kept by the tab across a navigation the click starts (a link).
      sessionStorage.setItem("pl-test-context", String(context));
    }, { capture: true, once: true });
  });
  await page.mouse.click(x, y);
  // A click on a link may destroy the context mid-read, and again once the old document's
  // "load" state has let the first retry through: read until the new document answers.
  const read = () => page.evaluate(() => Number(sessionStorage.getItem("pl-test-context")));
  let context;
  for (let tries = 1; ; tries++) {
    try {
      context = await read();
      break;
    } catch (e) {
      if (tries === 20 || !/context was destroyed|navigat/i.test(e.message)) throw e;
      await page.waitForLoadState().catch(() => {});
      await page.waitForTimeout(50);
    }
  }
  return { x, y, sx, sy, context };
}

export const CHAPTER = "/book/ch04-01-what-is-ownership.html";
export const NEXT = "/book/ch04-02-references-and-borrowing.html";

/**
 * A visit: the chapter (text, a heading, code, the sticky menu bar's title after scrolling), a
 * click on the link to the next chapter (it leaves the page), two clicks there, then the tab
 * closes. Returns the clicks made on the first page, and how many there were in all.
 */
export async function visit(page, site, leave = false) {
  await page.goto(`${site}${CHAPTER}`);
  await page.waitForFunction(() => window.pathlight && typeof window.pathlight.errors === "function");
  const main = page.locator("main");
  const clicks = [];
  clicks.push(await clickAt(page, main.locator("h2").first(), 0.2, 0.5));
  clicks.push(await clickAt(page, main.locator("p").nth(1), 0.6, 0.3));
  clicks.push(await clickAt(page, main.locator("pre").first(), 0.5, 0.5));
  clicks.push(await clickAt(page, main.locator("p code").first(), 0.5, 0.5));
  await page.mouse.wheel(0, 1500);
  await page.waitForTimeout(300);
  await page.mouse.wheel(0, -200);
  // The bar slides back in (a transition) on scrolling up; it is clicked where it then is.
  clicks.push(await clickAt(page, page.locator(".menu-title"), 0.5, 0.5, false));
  const errors = await page.evaluate(() => window.pathlight.errors());
  assert.equal(errors, 0, "the tracker swallowed errors");
  clicks.push(await clickAt(page, page.locator('a[rel~="next"]:visible').first(), 0.5, 0.5));
  await page.waitForURL(`**${NEXT}`);
  await page.waitForFunction(() => window.pathlight && typeof window.pathlight.errors === "function");
  await clickAt(page, page.locator("main h2").first(), 0.5, 0.5);
  await clickAt(page, page.locator("main p").nth(2), 0.3, 0.5);
  // The tab closes, or (`leave`) the visitor goes elsewhere: a CDP session that pauses
  // requests must outlive the page's last send to let it go on.
  if (leave) await page.goto("about:blank");
  else await page.close({ runBeforeUnload: true });
  return { clicks, total: clicks.length + 2 };
}

/** Waits for `n` clicks and the visit's page views, scrolls and engagement, and returns them. */
export async function stored(ch, db, n) {
  const clicks = await eventually(async () => {
    const rows = await ch.rows(`SELECT path, selector, rel_x, rel_y, x, y, fixed FROM ${db}.events FINAL WHERE event_type = 'click' ORDER BY timestamp, timestamp_ms`);
    return rows.length >= n && rows;
  }, 20_000, `${n} clicks`);
  const kinds = await eventually(async () => {
    const rows = await ch.rows(`SELECT toString(event_type) AS kind, count() AS n FROM ${db}.events FINAL GROUP BY kind`);
    const by = Object.fromEntries(rows.map((r) => [r.kind, Number(r.n)]));
    return by.pageview >= 2 && by.scroll >= 2 && by.engagement >= 2 && by;
  }, 20_000, "page views, scroll depth and engagement of both pages");
  return { clicks, kinds };
}

/**
 * `rows` (as `stored` gives them) with the chapter's clicks in the order they were `made`:
 * each made click takes the stored one nearest to where it was made. Stored order is the
 * corrected time's, which adds each batch's transit time to its events, so two clicks made a
 * few ms apart that left in different batches can swap places there on a loaded machine.
 */
export function inOrderMade(rows, made) {
  const chapter = rows.filter((r) => r.path === CHAPTER);
  const left = new Set(chapter.keys());
  const ordered = made.slice(0, chapter.length).map((c) => {
    const dist = (r) => {
      const [x, y] = Number(r.fixed) > 0 ? [c.x, c.y] : [c.x + c.sx, c.y + c.sy];
      return Math.hypot(r.x - x, r.y - y);
    };
    const best = [...left].reduce((a, b) => (dist(chapter[b]) < dist(chapter[a]) ? b : a));
    left.delete(best);
    return chapter[best];
  });
  return [...ordered, ...[...left].map((i) => chapter[i]), ...rows.filter((r) => r.path !== CHAPTER)];
}

/**
 * Draws each stored click of the chapter back in a fresh load of the same page at the same
 * width and scroll: its selector must resolve, and the point at (rel_x, rel_y) of the element
 * found must be within 2 px of where the click was made. Returns the misses.
 */
export async function drawBack(context, site, width, made, rows) {
  const page = await context.newPage();
  await page.goto(`${site}${CHAPTER}?pathlight-viewer=1`);
  const misses = [];
  const at = ({ sel, rx, ry, src }) => {
    const el = (0, eval)(`(${src})`)(sel);
    if (!el) return null;
    const r = el.getBoundingClientRect();
    return { x: r.left + rx * r.width, y: r.top + ry * r.height };
  };
  for (const [i, row] of rows.filter((r) => r.path === CHAPTER).entries()) {
    const click = made[i];
    // Reached as the visit reached it, scrolling up the last stretch: the book's menu bar is
    // on screen only after scrolling up.
    const above = await page.evaluate(([sx, sy]) => {
      scrollTo(sx, sy + 200);
      return scrollY - sy;
    }, [click.sx, click.sy]);
    // Over the page's own scroller (a sidebar scrolls on its own).
    await page.mouse.move(click.x, click.y);
    if (above > 0) await page.mouse.wheel(0, -above);
    const args = { sel: row.selector, rx: row.rel_x, ry: row.rel_y, src: resolveSelector.toString() };
    const point = await settled(() => page.evaluate(at, args));
    const off = point ? Math.hypot(point.x - click.x, point.y - click.y) : Infinity;
    if (!(off <= 2)) misses.push({ width, selector: row.selector, off, point, click });
  }
  // The same selectors after content is inserted as sites do: a cookie banner at the top of
  // the page, and a notice at the top of the article. Counted: those still naming the element
  // they named before.
  const selectors = rows.filter((r) => r.path === CHAPTER).map((r) => r.selector);
  const stable = await page.evaluate(({ selectors, src }) => {
    const find = (0, eval)(`(${src})`);
    const before = selectors.map(find);
    const banner = document.createElement("div");
    banner.className = "cookie-banner";
    banner.innerHTML = "<p>We use cookies.</p><button>OK</button>";
    document.body.prepend(banner);
    const atBanner = selectors.filter((s, i) => find(s) === before[i]).length;
    const notice = document.createElement("p");
    notice.textContent = "This chapter was updated.";
    document.querySelector("main").prepend(notice);
    const atNotice = selectors.filter((s, i) => find(s) === before[i]).length;
    return { total: selectors.length, atBanner, atNotice };
  }, { selectors, src: resolveSelector.toString() });
  await page.close();
  return Object.assign(misses, { stable, selectors });
}

