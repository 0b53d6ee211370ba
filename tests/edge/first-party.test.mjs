// First-party collection (issue 34): the edge worker on a route of the site's own zone,
// shop.example.com/_pl/*. A small server here plays Cloudflare's router for that host: it
// serves pages of a site nobody here wrote (the Rust book as rustup installs it, mdBook's
// output) with the tracker's snippet added, and forwards every /_pl/* request to the worker in
// workerd, whose queue consumer stores into a real ClickHouse. Chromium resolves
// shop.example.com to that server; every request the pages make is recorded over CDP and must
// go to the site's own host, none of them a beacon (type Ping), and what the visitor did must
// be stored.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { after, before, test } from "node:test";
import { unstable_readConfig } from "wrangler";
import { startWorker } from "../lib/edge.mjs";
import { eventually, freePort, launchBrowser, root, startClickHouse } from "../lib/stack.mjs";

const HOST = "shop.example.com";
const PREFIX = "/_pl";
const SNIPPET = `<script async src="${PREFIX}/p.js" data-site="demo"></script>`;
const DB = "edge_first_party";
// An ordinary desktop Chrome: headless Chromium's own User-Agent is flagged as a bot. Set for
// the whole browser: keepalive fetches leave from the browser process, past a page's override.
const UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const BOOK = join(execFileSync("rustc", ["--print", "sysroot"], { encoding: "utf8" }).trim(), "share", "doc", "rust", "html", "book");
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css",
  ".js": "text/javascript",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff": "font/woff",
  ".woff2": "font/woff2",
  ".ttf": "font/ttf",
};
const manifest = JSON.parse(readFileSync(join(root, "target", "tracker", "manifest.json"), "utf8"));

let ch, worker, router, browser, origin;
before(async () => {
  ch = await startClickHouse("first-party");
  ch.migrate(DB);
  const port = await freePort();
  origin = `http://${HOST}:${port}`;
  worker = await startWorker({
    CLICKHOUSE_URL: ch.url,
    CLICKHOUSE_DATABASE: DB,
    PATHLIGHT_SITES: JSON.stringify([{ id: "demo", origins: [origin] }]),
  });
  router = await startRouter(port, worker.base);
  browser = await launchBrowser([`--host-resolver-rules=MAP ${HOST} 127.0.0.1`, `--user-agent=${UA}`]);
});
after(async () => {
  await browser?.close();
  await router?.stop();
  await worker?.stop();
});

/**
 * The site's zone as Cloudflare routes it: /_pl/* to the worker (Host header kept, the
 * client's address as CF-Connecting-IP), everything else from the site's own files.
 */
async function startRouter(port, workerBase) {
  const upstream = new URL(workerBase);
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    if (path.startsWith(`${PREFIX}/`)) {
      const headers = { ...req.headers, "cf-connecting-ip": req.socket.remoteAddress };
      const up = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      });
      up.on("error", () => res.destroy());
      req.pipe(up);
      return;
    }
    const file = normalize(join(BOOK, path.endsWith("/") ? `${path}index.html` : path));
    let body;
    try {
      body = file.startsWith(`${BOOK}/`) && readFileSync(file);
    } catch {}
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    const type = TYPES[extname(file)] || "application/octet-stream";
    if (extname(file) === ".html") body = body.toString("utf8").replace("</head>", `${SNIPPET}\n</head>`);
    res.writeHead(200, { "content-type": type }).end(body);
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return { stop: () => new Promise((r) => server.close(r)) };
}

/** A request to the site's host through the router, as a browser would send it. */
function get(path, headers = {}) {
  const port = new URL(origin).port;
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, headers: { host: `${HOST}:${port}`, ...headers } }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end();
  });
}

test("the tracker's files come from the site's own host with cache and cross-origin headers", async () => {
  const shared = {
    "access-control-allow-origin": "*",
    "cross-origin-resource-policy": "cross-origin",
    "x-content-type-options": "nosniff",
  };
  const pick = (h, names) => Object.fromEntries(names.map((n) => [n, h[n]]));
  const loader = await get(`${PREFIX}/p.js`);
  assert.equal(loader.status, 200);
  assert.deepEqual(loader.body, readFileSync(join(root, "target", "tracker", "p.js")));
  assert.deepEqual(pick(loader.headers, [...Object.keys(shared), "cache-control"]), { ...shared, "cache-control": "public, max-age=300" });
  assert.match(loader.headers["content-type"], /^text\/javascript/);
  assert.ok(loader.headers.etag, "the loader has an ETag");
  const again = await get(`${PREFIX}/p.js`, { "if-none-match": loader.headers.etag });
  assert.equal(again.status, 304);
  assert.equal(again.body.length, 0);
  assert.equal(again.headers.etag, loader.headers.etag);
  assert.equal(again.headers["cache-control"], "public, max-age=300");

  const hashed = Object.values(manifest).filter((f) => /^[a-z]+\.[0-9a-f]{8,}\.(js|wasm)$/.test(f));
  assert.ok(hashed.includes(manifest.wasm), `the manifest's wasm ${manifest.wasm} is content-hashed`);
  for (const name of hashed) {
    const r = await get(`${PREFIX}/${name}`);
    assert.equal(r.status, 200, name);
    assert.deepEqual(r.body, readFileSync(join(root, "target", "tracker", name)), name);
    assert.deepEqual(pick(r.headers, [...Object.keys(shared), "cache-control"]), {
      ...shared,
      "cache-control": "public, max-age=31536000, immutable",
    }, name);
    assert.match(r.headers["content-type"], name.endsWith(".wasm") ? /^application\/wasm$/ : /^text\/javascript/, name);
  }
  // Only the loader and content-hashed files: not the manifest, not an unknown hash.
  for (const path of ["manifest.json", "p.0000000000.wasm", "pathlight.js"]) {
    assert.equal((await get(`${PREFIX}/${path}`)).status, 404, path);
  }
  const preflight = await new Promise((resolve, reject) => {
    const port = new URL(origin).port;
    request({ host: "127.0.0.1", port, method: "OPTIONS", path: `${PREFIX}/v1/batch`, headers: { host: `${HOST}:${port}`, origin } }, resolve)
      .on("error", reject)
      .end();
  });
  assert.equal(preflight.statusCode, 204);
  assert.equal(preflight.headers["access-control-allow-origin"], origin);
});

test("wrangler.toml's example route, uncommented, sends the prefix's paths to the worker", (t) => {
  const text = readFileSync(join(root, "edge-worker", "wrangler.toml"), "utf8");
  const dir = mkdtempSync(join(tmpdir(), "pathlight-first-party-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "wrangler.toml"), text.replace(/^# (routes = .*)$/m, "$1"));
  const config = unstable_readConfig({ config: join(dir, "wrangler.toml") });
  assert.deepEqual(config.routes, [{ pattern: `${HOST}${PREFIX}/*`, zone_name: "example.com" }]);
  assert.equal(config.vars.PATHLIGHT_PREFIX, PREFIX);
  assert.equal(config.assets.binding, "ASSETS");
});

/** Chapters of the book in reading order whose pages, and the next one's, fetch nothing from
 * elsewhere: mdBook asks play.rust-lang.org about pages with runnable examples. */
function twoChapters() {
  const page = (f) => readFileSync(join(BOOK, f), "utf8");
  const next = (f) => page(f).match(/<a rel="next[^"]*" href="([^"]+\.html)"/)?.[1];
  const local = (f) => f && !page(f).includes('class="playground"');
  const first = readdirSync(BOOK)
    .filter((f) => /^ch\d\d-\d\d-.+\.html$/.test(f))
    .sort()
    .find((f) => local(f) && local(next(f)));
  assert.ok(first, `two chapters without playground examples in ${BOOK}`);
  return [first, next(first)];
}

/** Clicks the `nth` element of `selector` in the chapter's text; returns what the tracker
 * should record of it (its tag and text: whitespace collapsed, at most 32 characters). */
async function clickText(page, selector, nth) {
  assert.ok(nth >= 0, `a plain ${selector} on ${page.url()}`);
  const el = page.locator("main").locator(selector).nth(nth);
  const seen = await el.evaluate((e) => ({
    tag: e.tagName.toLowerCase(),
    text: [...e.textContent.slice(0, 256).replace(/\s+/g, " ").trim()].slice(0, 32).join("").trimEnd(),
  }));
  await el.click();
  return seen;
}

/** The index among `selector`'s matches in `main` of the first with text only (no child
 * elements, not in a link): a click on it is its own, never a link's. */
const plain = (page, selector) =>
  page.locator("main").evaluate(
    (main, s) => [...main.querySelectorAll(s)].findIndex((e) => !e.children.length && !e.closest("a") && e.textContent.trim().length > 3),
    selector,
  );

test("a visit to pages of a real site is stored, every request going to the site's own host", async () => {
  const [first, second] = twoChapters();
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  // Every request the page makes, through CDP. The Network domain does not see what a page
  // sends as it unloads (beacons and keepalive fetches at pagehide leave from the browser
  // process), which is when the tracker sends most; requests paused by the Fetch domain include
  // those, with their type ("Ping" for a beacon).
  const cdp = await context.newCDPSession(page);
  const requests = [];
  const answers = [];
  cdp.on("Network.requestWillBeSent", (e) => requests.push({ url: e.request.url, method: e.request.method, type: e.type }));
  cdp.on("Network.responseReceived", (e) => answers.push({ url: e.response.url, status: e.response.status }));
  cdp.on("Fetch.requestPaused", (e) => {
    requests.push({ url: e.request.url, method: e.request.method, type: e.resourceType });
    cdp.send("Fetch.continueRequest", { requestId: e.requestId }).catch(() => {});
  });
  await cdp.send("Network.enable");
  await cdp.send("Fetch.enable", { patterns: [{ urlPattern: "*" }] });
  const ready = () => page.waitForFunction(() => window.pathlight && typeof window.pathlight.errors === "function");

  const clicks = [];
  await page.goto(`${origin}/${first}`);
  await ready();
  clicks.push({ path: `/${first}`, ...(await clickText(page, "p", await plain(page, "p"))) });
  clicks.push({ path: `/${first}`, ...(await clickText(page, ":is(p em, p strong, p code)", await plain(page, ":is(p em, p strong, p code)"))) });
  await page.click("#mdbook-theme-toggle");
  clicks.push({ path: `/${first}`, tag: "button", text: "", element_id: "mdbook-theme-toggle" });
  // The next chapter, by its link: a click, then a page hide with the click still buffered.
  await page.locator('a[rel~="next"]:visible').click();
  clicks.push({ path: `/${first}`, tag: "a", text: "", href: `${origin}/${second}` });
  await page.waitForURL(`${origin}/${second}`);
  await ready();
  clicks.push({ path: `/${second}`, ...(await clickText(page, "p", await plain(page, "p"))) });
  clicks.push({ path: `/${second}`, ...(await clickText(page, "li", await plain(page, "li"))) });
  await page.waitForTimeout(100);
  const errors = await page.evaluate(() => window.pathlight.errors());
  // Leaving the site: the page hides and the tracker sends what it holds.
  await page.goto("about:blank");
  assert.equal(errors, 0, "the tracker swallowed errors");

  const views = await eventually(async () => {
    const rows = await ch.rows(`SELECT path, referrer, browser, is_bot FROM ${DB}.events FINAL WHERE event_type = 'pageview' ORDER BY timestamp, timestamp_ms`);
    return rows.length >= 2 && rows;
  }, 20_000, "2 page views");
  assert.deepEqual(views, [
    { path: `/${first}`, referrer: "", browser: "Chrome", is_bot: 0 },
    { path: `/${second}`, referrer: `${origin}/${first}`, browser: "Chrome", is_bot: 0 },
  ]);
  const stored = await eventually(async () => {
    const rows = await ch.rows(`SELECT path, tag, text, element_id, href FROM ${DB}.events FINAL WHERE event_type = 'click' ORDER BY timestamp, timestamp_ms`);
    return rows.length >= clicks.length && rows;
  }, 20_000, `${clicks.length} clicks`);
  assert.deepEqual(stored, clicks.map((c) => ({ element_id: "", href: "", ...c })));
  // The time for a late copy to arrive, then each event once.
  await new Promise((r) => setTimeout(r, 2000));
  const [{ n, ids }] = await ch.rows(`SELECT count() AS n, uniqExact(event_id) AS ids FROM ${DB}.events`);
  assert.equal(Number(n), Number(ids), "nothing stored twice");
  await context.close();

  const offsite = requests.filter((r) => !r.url.startsWith("data:") && new URL(r.url).hostname !== HOST);
  assert.deepEqual(offsite, [], "every request goes to the site's own host");
  const tracker = requests.filter((r) => new URL(r.url).pathname.startsWith(`${PREFIX}/`));
  const paths = new Set(tracker.map((r) => `${r.method} ${new URL(r.url).pathname}`));
  for (const want of [`GET ${PREFIX}/p.js`, `GET ${PREFIX}/${manifest.wasm}`, `POST ${PREFIX}/v1/batch`]) {
    assert.ok(paths.has(want), `${want} among ${[...paths].join(", ")}`);
  }
  const refused = answers.filter((a) => a.url.includes(`${PREFIX}/`) && a.status >= 400);
  assert.deepEqual(refused, [], "every answer from the worker is a success");
  const beacons = requests.filter((r) => r.type === "Ping");
  assert.deepEqual(beacons, [], "no request is a beacon (type ping), which blockers can drop by type alone");
});
