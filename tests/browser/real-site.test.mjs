// The one-tag embed on a real website (issues 26 and 34): pages nobody here wrote (the Rust
// book, mdBook; the standard library's docs, rustdoc: sticky bars, sidebars, custom elements)
// on the site's own origin `shop.example.com`, the collector on another site
// `pl.example.net` or on a subdomain of the site's own, `pl.shop.example.com` (Chromium maps
// the names to 127.0.0.1, so same-site and cross-site differ as they do for visitors). The tag
// is the README's, as written. Chromium enforces CORS and the pages' CSP.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HASH_SECRET, anomalies, eventually, freePort, hostRules, launchBrowser, root, startClickHouse, startCollector } from "../lib/stack.mjs";
import { CHAPTER, NEXT, USER_AGENT, clickAt, drawBack, forward, inOrderMade, recordRequests, resolveSelector, startRecorder, startSite, stored, visit } from "../lib/site.mjs";

const HOSTS = ["shop.example.com", "pl.example.net", "pl.shop.example.com"];
let ch, browser;

before(async () => {
  ch = await startClickHouse("realsite");
  // The User-Agent for the whole browser: requests sent as a page is left ignore a context's.
  browser = await launchBrowser([hostRules(HOSTS), `--user-agent=${USER_AGENT}`]);
});
after(async () => {
  await browser?.close();
});

/** The README's tag for a collector at `base`: the one line a site owner copies. */
function readmeTag(base, site) {
  const tag = `<script async src="${base}/p.js" data-site="${site}"></script>`;
  const readme = readFileSync(join(root, "README.md"), "utf8");
  assert.ok(readme.includes(`<script async src="https://pl.example.net/p.js" data-site="shop"></script>`), "README shows the tag");
  return tag;
}

/** A collector for site `docs` on `origin`, reached by the page at `http://HOST:PORT`. */
async function collectorFor(db, host, origin, env = {}, port = 0) {
  port ||= await freePort();
  const collector = await startCollector({
    clickhouseUrl: ch.url, db, port,
    env: { PATHLIGHT_SITES: `[{id = "docs", origins = ["${origin}"]}]`, ...env },
  });
  return { ...collector, port, url: `http://${host}:${port}` };
}

for (const width of [375, 768, 1440]) {
  test(`a real site with the collector on another site stores every click at ${width} px, and they draw back in place`, async () => {
    const db = `realsite_cross_${width}`;
    const sitePort = await freePort();
    const origin = `http://shop.example.com:${sitePort}`;
    const collector = await collectorFor(db, "pl.example.net", origin);
    // What the collector receives, page-leaving requests included (see startRecorder).
    const recorder = await startRecorder(collector.base);
    const pl = `http://pl.example.net:${recorder.port}`;
    const site = await startSite({ port: sitePort, tag: readmeTag(pl, "docs") });
    // Chromium sends Sec-Fetch-Mode only to secure origins; these two count as such here.
    const own = await launchBrowser([hostRules(HOSTS), `--unsafely-treat-insecure-origin-as-secure=${origin},${pl}`]);
    const context = await own.newContext({ viewport: { width, height: 800 }, userAgent: USER_AGENT });
    try {
      const page = await context.newPage();
      const requests = recordRequests(context);
      const { clicks, total } = await visit(page, `http://shop.example.com:${site.port}`);
      const rows = inOrderMade((await stored(ch, db, total)).clicks, clicks);
      assert.equal(rows.length, total, "every click stored once");
      assert.deepEqual(requests.filter((r) => r.type === "Ping"), [], "no sendBeacon (blockers drop them)");
      const sends = recorder.seen.filter((r) => r.url.startsWith("/v1/batch"));
      assert.ok(sends.length >= 3, `a batch per page at least, and one as each page is left: ${JSON.stringify(sends)}`);
      assert.deepEqual(sends.filter((r) => r.method !== "POST" || r.mode !== "cors"), [], "every batch by fetch, none by sendBeacon (no-cors)");
      assert.deepEqual([...new Set(requests.map((r) => new URL(r.url).host))].sort(), [`pl.example.net:${recorder.port}`, `shop.example.com:${site.port}`].sort(), "the page and the collector only");
      assert.ok(rows.every((r) => r.selector && !/^(html|body)$/.test(r.selector)), "every click names its element");
      // The book's menu bar is sticky at some widths, its wide-screen chapter arrows fixed:
      // such clicks are where they were on screen (viewport coordinates), every other click
      // where it was on the page.
      const contexts = rows.filter((r) => r.path === CHAPTER).map((r, i) => {
        const c = clicks[i];
        const onScreen = Number(r.fixed) > 0;
        return { selector: r.selector, fixed: Number(r.fixed), expected: c.context, dy: r.y - (onScreen ? c.y : c.y + c.sy) };
      });
      console.log(`contexts at ${width} px: ${JSON.stringify(contexts.filter((c) => c.expected))}`);
      assert.ok(contexts.every((c) => c.fixed === c.expected && Math.abs(c.dy) <= 1), `each click in its context, where it was made: ${JSON.stringify(contexts)}`);
      const misses = await drawBack(context, `http://shop.example.com:${site.port}`, width, clicks, rows);
      assert.deepEqual([...misses], [], "each click draws back within 2 px of where it was made");
      // Selectors stop at the first unique step, so content inserted above does not move them.
      const { total: n, atBanner, atNotice } = misses.stable;
      console.log(`selectors at ${width} px: ${atBanner}/${n} resolve after a banner, ${atNotice}/${n} after a notice too: ${misses.selectors.join(" | ")}`);
      assert.equal(atBanner, n, "a banner inserted at the top of the page moves no selector");
      // A person reading and clicking at a person's pace: no session anomaly, no rage.
      const found = await anomalies(ch, db, "docs");
      console.log(`anomalies at ${width} px: ${JSON.stringify(found)}`);
      assert.deepEqual([found.sessions, found.rage], [[], []]);
    } finally {
      await own.close();
      await site.stop();
      await recorder.stop();
      await collector.stop();
    }
  });
}

test("a visit whose sends fail is delivered from the next page view once the endpoint is back, and what failed is counted", async () => {
  const db = "realsite_outage";
  const sitePort = await freePort();
  const origin = `http://shop.example.com:${sitePort}`;
  const port = await freePort();
  const endpoint = `http://pl.example.net:${port}/v1/batch`;
  // The tracker files self-hosted on the site (data-endpoint names the collector), so the
  // page has its tracker while the collector refuses connections.
  const files = join(root, "target", "tracker");
  const { wasm } = JSON.parse(readFileSync(join(files, "manifest.json"), "utf8"));
  const site = await startSite({
    port: sitePort,
    tag: `<script async src="/pl-files/p.js" data-site="docs" data-endpoint="${endpoint}" data-wasm="/pl-files/${wasm}"></script>`,
    proxy: (req, res) => {
      const m = req.url.match(/^\/pl-files\/(p(\.[0-9a-f]{8})?\.(js|wasm))$/);
      if (!m) return false;
      res.setHeader("content-type", m[3] === "wasm" ? "application/wasm" : "text/javascript");
      res.end(readFileSync(join(files, m[1])));
      return true;
    },
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, userAgent: USER_AGENT });
  const warnings = [];
  let collector;
  try {
    const page = await context.newPage();
    page.on("console", (m) => m.type() === "warning" && warnings.push(m.text()));
    await page.goto(`${origin}${CHAPTER}`);
    await page.waitForFunction(() => window.pathlight && typeof window.pathlight.errors === "function");
    await clickAt(page, page.locator("main h2").first(), 0.5, 0.5);
    await clickAt(page, page.locator("main p").nth(1), 0.5, 0.5);
    await page.waitForTimeout(1_500);
    await clickAt(page, page.locator('a[rel~="next"]:visible').first(), 0.5, 0.5);
    await page.waitForURL(`**${NEXT}`);
    await page.waitForFunction(() => window.pathlight && typeof window.pathlight.errors === "function");
    await clickAt(page, page.locator("main p").nth(2), 0.5, 0.5);
    await page.waitForTimeout(1_500);
    // Left while the collector is still away: every batch of the visit was sent and lost.
    await page.goto("about:blank");
    collector = await collectorFor(db, "pl.example.net", origin, {}, port);
    await page.goto(`${origin}/book/ch04-03-slices.html`);
    const clicks = await eventually(async () => {
      const rows = await ch.rows(`SELECT count() AS n FROM ${db}.events FINAL WHERE event_type = 'click'`);
      return Number(rows[0].n) >= 4 && Number(rows[0].n);
    }, 20_000, "the clicks made during the outage");
    assert.equal(clicks, 4, "every click of the outage stored once");
    // The page leaves batches without clicks (scroll, visible time) to be sent after them:
    // counted once the queue is empty, every batch of the outage is in.
    await eventually(() => page.evaluate(() => localStorage.getItem("pathlight:queue") === null), 20_000, "the queue drained");
    const [{ n, ids }] = await ch.rows(`SELECT count() AS n, uniqExact(event_id) AS ids FROM ${db}.events`);
    assert.equal(Number(n), Number(ids), "nothing stored twice");
    const [{ batches }] = await ch.rows(`SELECT uniqExact(batch_id) AS batches FROM ${db}.events WHERE path IN ('${CHAPTER}', '${NEXT}')`);
    const reported = await eventually(async () => {
      const [r] = await ch.rows(`SELECT sum(visitParamExtractFloat(props, 'failed')) AS failed, count() AS reports FROM ${db}.events WHERE event_type = 'custom' AND name = '$undelivered'`);
      if (Number(r.failed) >= Number(batches)) return r;
      throw new Error(JSON.stringify({ r, batches }));
    }, 20_000, `${batches} failed batches reported`);
    assert.equal(Number(reported.failed), Number(batches), "each batch sent during the outage counted once as failed");
    // Counted once the collector has its insert confirmed, which may follow the rows showing.
    const counted = new RegExp(`pathlight_tracker_undelivered_batches_total\\{site="docs",outcome="failed"\\} ${batches}\\b`);
    await eventually(async () => counted.test(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()), 10_000, `${counted} in /metrics`);
    assert.ok(warnings.filter((w) => w.includes("Pathlight could not send")).length <= 2, "one console warning per page at most");
  } finally {
    await context.close();
    await site.stop();
    await collector?.stop();
  }
});

test("with the collector on a subdomain of the site (same-site), every click is stored and requests stay on the site's domain", async () => {
  const db = "realsite_subdomain";
  const sitePort = await freePort();
  const origin = `http://shop.example.com:${sitePort}`;
  const collector = await collectorFor(db, "pl.shop.example.com", origin);
  const site = await startSite({ port: sitePort, tag: `<script async src="${collector.url}/p.js" data-site="docs"></script>` });
  const context = await browser.newContext({ viewport: { width: 768, height: 800 }, userAgent: USER_AGENT });
  try {
    const page = await context.newPage();
    const requests = recordRequests(context);
    const { total } = await visit(page, origin);
    const { clicks } = await stored(ch, db, total);
    assert.equal(clicks.length, total);
    assert.deepEqual([...new Set(requests.map((r) => new URL(r.url).hostname))].sort(), ["pl.shop.example.com", "shop.example.com"]);
  } finally {
    await context.close();
    await site.stop();
    await collector.stop();
  }
});

/** Loads the chapter with `tag` and the page's own `csp`; returns the page, its console warnings and errors. */
async function openWithCsp(context, sitePort, tag, csp) {
  const site = await startSite({ port: sitePort, tag, headers: (path) => (path.endsWith(".html") ? { "content-security-policy": csp } : {}) });
  const page = await context.newPage();
  const seen = { warnings: [], errors: [] };
  page.on("console", (m) => m.type() === "warning" && seen.warnings.push(m.text()));
  // The book's own inline scripts fail under such a CSP; only errors from the tracker count.
  page.on("pageerror", (e) => /\/p(\.[0-9a-f]{8})?\.js/.test(e.stack || "") && seen.errors.push(String(e.stack)));
  await page.goto(`http://shop.example.com:${sitePort}${CHAPTER}`);
  return { site, page, seen };
}

test("a page with a strict CSP works with the README's directives, and without them the page sees no error and one warning", async () => {
  const db = "realsite_csp";
  const sitePort = await freePort();
  const origin = `http://shop.example.com:${sitePort}`;
  const collector = await collectorFor(db, "pl.example.net", origin);
  const tag = readmeTag(collector.url, "docs");
  // The README's line, for a collector on another site; the book's own inline scripts are
  // refused by it (the site's business), its script files are 'self'.
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const line = readme.match(/`(script-src 'self' https:\/\/pl\.example\.net 'wasm-unsafe-eval'; connect-src 'self' https:\/\/pl\.example\.net)`/)[1];
  const strict = `default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; ${line.replaceAll("https://pl.example.net", collector.url)}`;
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, userAgent: USER_AGENT });
  try {
    let { site, page, seen } = await openWithCsp(context, sitePort, tag, strict);
    await page.waitForFunction(() => window.pathlight && typeof window.pathlight.errors === "function");
    await clickAt(page, page.locator("main h2").first(), 0.5, 0.5);
    await clickAt(page, page.locator("main p").nth(1), 0.5, 0.5);
    await page.evaluate(() => window.pathlight.flush());
    await eventually(async () => Number((await ch.rows(`SELECT count() AS n FROM ${db}.events WHERE event_type = 'click'`))[0].n) === 2, 10_000, "2 clicks under the strict CSP");
    assert.deepEqual(seen.errors, []);
    await page.close();
    await site.stop();

    // Without 'wasm-unsafe-eval' the wasm may not compile: nothing is recorded, the page
    // sees no error, the console one warning.
    ({ site, page, seen } = await openWithCsp(context, sitePort, tag, strict.replace(" 'wasm-unsafe-eval'", "")));
    await page.waitForFunction(() => window.pathlight && window.pathlight.loaded);
    await eventually(() => seen.warnings.some((w) => w.startsWith("Pathlight is off")), 5_000, "the warning");
    await clickAt(page, page.locator("main h2").first(), 0.5, 0.5);
    await page.waitForTimeout(300);
    assert.deepEqual(seen.errors, [], "no error reaches the page");
    assert.equal(seen.warnings.filter((w) => w.startsWith("Pathlight")).length, 1, "one warning");
    await page.close();
    await site.stop();
  } finally {
    await context.close();
    await collector.stop();
  }
});

test("the README's SRI-pinned tag is this build's, and Chromium runs it", async () => {
  const manifest = JSON.parse(readFileSync(join(root, "target", "tracker", "manifest.json"), "utf8"));
  const pinned = `<script async src="https://pl.example.net/${manifest.pinned}" integrity="${manifest.integrity}" crossorigin="anonymous" data-site="shop"></script>`;
  const readme = readFileSync(join(root, "README.md"), "utf8");
  assert.ok(readme.includes(pinned), `README.md's pinned tag must be this build's:\n${pinned}`);
  const db = "realsite_sri";
  const sitePort = await freePort();
  const origin = `http://shop.example.com:${sitePort}`;
  const collector = await collectorFor(db, "pl.example.net", origin);
  const site = await startSite({ port: sitePort, tag: pinned.replace("https://pl.example.net", collector.url).replace('"shop"', '"docs"') });
  const context = await browser.newContext({ userAgent: USER_AGENT });
  try {
    const page = await context.newPage();
    await page.goto(`${origin}${CHAPTER}`);
    await page.waitForFunction(() => window.pathlight && typeof window.pathlight.errors === "function");
    await clickAt(page, page.locator("main h2").first(), 0.5, 0.5);
    await page.evaluate(() => window.pathlight.flush());
    await eventually(async () => Number((await ch.rows(`SELECT count() AS n FROM ${db}.events WHERE event_type = 'click'`))[0].n) === 1, 10_000, "the click");
  } finally {
    await context.close();
    await site.stop();
    await collector.stop();
  }
});

test("Open on site: the live overlay draws each click on the real page where it was made; expired, wrong-site and foreign-origin tokens are refused", async () => {
  const db = "realsite_overlay";
  const sitePort = await freePort();
  const origin = `http://shop.example.com:${sitePort}`;
  const collector = await collectorFor(db, "pl.example.net", origin, {
    PATHLIGHT_SITES: `[{id = "docs", origins = ["${origin}"], api_token = "t-docs"}, {id = "other", origins = ["http://other.example"], api_token = "t-other"}]`,
  });
  const site = await startSite({ port: sitePort, tag: readmeTag(collector.url, "docs") });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, userAgent: USER_AGENT });
  try {
    const { clicks: made, total } = await visit(await context.newPage(), origin);
    const rows = inOrderMade((await stored(ch, db, total)).clicks, made);
    const mint = async (siteId, token, path = CHAPTER) => {
      const r = await fetch(`${collector.base}/api/v1/overlay-token?site=${siteId}&path=${encodeURIComponent(path)}`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(r.status, 200);
      return r.json();
    };
    const { url, token } = await mint("docs", "t-docs");
    assert.equal(url, `${origin}${CHAPTER}#pathlight-overlay=${token}`, "the site's page, the token in the fragment");

    const views = async () => Number((await ch.rows(`SELECT count() AS n FROM ${db}.events WHERE event_type = 'pageview'`))[0].n);
    const viewsBefore = await views();
    const page = await context.newPage();
    // Scrolls, then waits for the overlay's next drawing (a resize asks for one even when the
    // scroll position does not change).
    const scrollAndDraw = (sx, sy) => page.evaluate(([sx, sy]) => new Promise((resolve) => {
      addEventListener("pathlight-overlay-drawn", () => resolve(), { once: true });
      scrollTo(sx, sy);
      dispatchEvent(new Event("resize"));
    }), [sx, sy]);
    await page.goto(url);
    await page.waitForFunction(() => window.pathlightOverlay && (window.pathlightOverlay.marks.length > 0 || window.pathlightOverlay.error), null, { timeout: 15_000 });
    assert.equal(await page.evaluate(() => window.pathlightOverlay.error), null);
    assert.equal(new URL(page.url()).hash, "", "the token leaves the address bar");

    // Each click of the chapter, at the scroll it was made at: the overlay's heat mark for its
    // element lies where the click was, within 2 px plus half a 1 % bin of the element.
    const misses = [];
    for (const [i, row] of rows.filter((r) => r.path === CHAPTER).entries()) {
      const click = made[i];
      await scrollAndDraw(click.sx, click.sy);
      const near = await page.evaluate(({ sel, x, y }) => {
        const marks = window.pathlightOverlay.marks.filter((m) => m.layer === "heat" && m.selector === sel);
        const best = marks.map((m) => ({ m, d: Math.hypot(m.x - x, m.y - y) })).sort((a, b) => a.d - b.d)[0];
        return best && { d: best.d, m: best.m };
      }, { sel: row.selector, x: click.x, y: click.y });
      const box = await page.evaluate((sel) => {
        let root = document, el = null;
        for (const part of sel.split(" >>> ")) { el = root.querySelector(part); root = el && el.shadowRoot; }
        const r = el.getBoundingClientRect();
        return { w: r.width, h: r.height };
      }, row.selector);
      const tolerance = 2 + 0.005 * Math.hypot(box.w, box.h);
      if (!near || near.d > tolerance) misses.push({ selector: row.selector, click, near, tolerance });
    }
    assert.deepEqual(misses, []);
    const badges = await page.evaluate(() => window.pathlightOverlay.marks.filter((m) => m.layer === "badge").length);
    assert.ok(badges > 0, "per-element badges");
    await page.evaluate(() => window.pathlightOverlay.close());
    assert.equal(await page.evaluate(() => document.querySelectorAll("pathlight-overlay").length + (window.pathlightOverlay ? 1 : 0)), 0, "no trace once closed");
    await page.close();
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await views(), viewsBefore, "the overlay's visit is not recorded");

    // Refusals: a token of another site, an expired one (signed as the collector signs, with
    // the tests' hash_secret), and a valid one from a page on an origin the site does not list.
    const heatmap = (t, headers = {}) => fetch(`${collector.base}/api/v1/heatmap?site=docs&path=${CHAPTER}&token=${encodeURIComponent(t)}`, { headers });
    const other = await mint("other", "t-other");
    assert.equal((await heatmap(other.token)).status, 401, "another site's token");
    const { createHash, createHmac } = await import("node:crypto");
    const key = createHash("sha256").update(`pathlight live token\n${HASH_SECRET}`).digest();
    const past = Math.floor(Date.now() / 1000) - 5;
    const expired = `${past}.${createHmac("sha256", key).update(`overlay\ndocs\n${past}`).digest("hex")}`;
    assert.equal((await heatmap(expired)).status, 401, "expired");
    const fresh = await heatmap(token, { origin });
    assert.equal(fresh.status, 200, "the site's own origin");
    assert.equal(fresh.headers.get("access-control-allow-origin"), origin);
    assert.equal((await heatmap(token, { origin: "http://evil.example" })).status, 403, "a foreign origin");
  } finally {
    await context.close();
    await site.stop();
    await collector.stop();
  }
});

/** Asks the heatmap viewer (`viewer`, its page) for site `docs`'s `path` at 1440 px. */
async function showInViewer(viewer, path) {
  await viewer.fill("[name=site]", "docs");
  await viewer.fill("[name=token]", "t-docs");
  await viewer.fill("[name=path]", path);
  await viewer.selectOption("[name=width]", "1440");
  await viewer.evaluate(() => { delete document.body.dataset.ready; delete document.body.dataset.framing; });
  await viewer.click("#controls button:not([type=button])");
}

/** Each of the viewer's badges (at least 3) sits on its element as the framed page `frame` lays it out. */
async function badgesOnTheirElements(viewer, frame) {
  const badges = await viewer.$$eval("#overlay .badge", (bs) => bs.map((b) => ({ selector: b.dataset.selector, left: parseFloat(b.style.left), top: parseFloat(b.style.top) })));
  assert.ok(badges.length >= 3, `badges: ${badges.length}`);
  for (const b of badges) {
    const box = await frame.evaluate((sel) => {
      const r = document.querySelector(sel).getBoundingClientRect();
      return { left: r.left + scrollX + r.width / 2, top: r.top + scrollY };
    }, b.selector);
    assert.ok(Math.abs(box.left - b.left) <= 1 && Math.abs(box.top - b.top) <= 1, `${b.selector}: ${JSON.stringify({ box, b })}`);
  }
}

test("the viewer frames a page of the site's own origin and draws its clicks there; a page sent with X-Frame-Options: DENY is explained", async () => {
  const db = "realsite_viewer";
  const sitePort = await freePort();
  const origin = `http://shop.example.com:${sitePort}`;
  const collector = await collectorFor(db, "pl.example.net", origin, {
    PATHLIGHT_SITES: `[{id = "docs", origins = ["${origin}"], api_token = "t-docs"}]`,
  });
  const site = await startSite({
    port: sitePort,
    tag: readmeTag(collector.url, "docs"),
    headers: (path) => (path === NEXT ? { "x-frame-options": "DENY" } : {}),
  });
  const context = await browser.newContext({ viewport: { width: 1600, height: 900 }, userAgent: USER_AGENT });
  try {
    const { total } = await visit(await context.newPage(), origin);
    await stored(ch, db, total);
    const viewer = await context.newPage();
    // The viewer on the collector's host, as the tracker in the framed page knows it.
    await viewer.goto(`${collector.url}/heatmap.html#token=t-docs`);
    const show = (path) => showInViewer(viewer, path);
    await show(CHAPTER);
    await viewer.waitForSelector("body[data-ready='1']", { timeout: 20_000 });
    const frame = viewer.frames().find((f) => f.url().startsWith(`${origin}${CHAPTER}`));
    assert.ok(frame, "the site's page is framed from its own origin");
    assert.equal(await viewer.getAttribute("#page", "sandbox"), "allow-scripts allow-same-origin");
    // Each badge sits on its element as the framed page lays it out (read from the frame).
    await badgesOnTheirElements(viewer, frame);
    await show(NEXT);
    await viewer.waitForSelector("body[data-framing='refused']", { timeout: 20_000 });
    assert.match(await viewer.textContent("#status"), /refuses to be framed.*Open on site/);
  } finally {
    await context.close();
    await site.stop();
    await collector.stop();
  }
});

test("the viewer frames a page whose tag is first-party (/_pl/p.js): the tracker answers the viewer once the collector vouches for its token, and no other origin", async () => {
  const db = "realsite_viewer_fp";
  const sitePort = await freePort();
  const origin = `http://shop.example.com:${sitePort}`;
  const collector = await collectorFor(db, "pl.example.net", origin, {
    PATHLIGHT_SITES: `[{id = "docs", origins = ["${origin}"], api_token = "t-docs"}]`,
  });
  const site = await startSite({
    port: sitePort,
    tag: `<script async src="/_pl/p.js" data-site="docs"></script>`,
    proxy: forward("/_pl/", collector.base),
  });
  // Another site's page framing the same page and asking the same question.
  const evilPort = await freePort();
  const evil = await startSite({
    port: evilPort,
    proxy: (req, res) => {
      if (req.url !== "/frame.html") return false;
      res.writeHead(200, { "content-type": "text/html" }).end(`<iframe id="f" src="${origin}${CHAPTER}?pathlight-viewer=1" width="800" height="600"></iframe>`);
      return true;
    },
  });
  const context = await browser.newContext({ viewport: { width: 1600, height: 900 }, userAgent: USER_AGENT });
  try {
    const { total } = await visit(await context.newPage(), origin);
    await stored(ch, db, total);
    const viewer = await context.newPage();
    await viewer.goto(`${collector.url}/heatmap.html#token=t-docs`);
    await showInViewer(viewer, CHAPTER);
    await viewer.waitForSelector("body[data-ready='1']", { timeout: 20_000 });
    assert.notEqual(await viewer.getAttribute("body", "data-framing"), "refused", await viewer.textContent("#status"));
    const frame = viewer.frames().find((f) => f.url().startsWith(`${origin}${CHAPTER}`));
    assert.ok(frame, "the site's page is framed from its own origin");
    await badgesOnTheirElements(viewer, frame);
    // A valid viewer token, minted for the collector's viewer, asked from another origin, and
    // a made-up one: neither gets an answer.
    const minted = await (await fetch(`${collector.base}/api/v1/viewer-token?site=docs&viewer=${encodeURIComponent(collector.url)}`, { headers: { authorization: "Bearer t-docs" } })).json();
    assert.ok(minted.token, JSON.stringify(minted));
    const page = await context.newPage();
    await page.goto(`http://pl.example.net:${evilPort}/frame.html`);
    await page.waitForFunction(() => document.getElementById("f").contentWindow && document.readyState === "complete");
    await page.waitForTimeout(1_000);
    const ask = (token) => page.evaluate(([token, target]) => new Promise((resolve) => {
      addEventListener("message", (e) => e.data && e.data.pathlight === "layout" && resolve(e.data));
      document.getElementById("f").contentWindow.postMessage({ pathlight: "layout", id: "x", selectors: ["main h2"], token }, target);
      setTimeout(() => resolve(null), 2_000);
    }), [token, origin]);
    for (const token of [minted.token, "9999999999.00", undefined]) {
      assert.equal(await ask(token), null, `no answer to another origin with token ${token}`);
    }
    // The control: a token the site's owner minted for that origin is answered there.
    const theirs = await (await fetch(`${collector.base}/api/v1/viewer-token?site=docs&viewer=${encodeURIComponent(`http://pl.example.net:${evilPort}`)}`, { headers: { authorization: "Bearer t-docs" } })).json();
    const answered = await ask(theirs.token);
    assert.ok(answered && answered.boxes["main h2"], `answered with the token minted for it: ${JSON.stringify(answered)}`);
    // The collector says why: the token is bound to the viewer's origin.
    const check = await fetch(`${collector.base}/api/v1/viewer-check?site=docs&viewer=${encodeURIComponent(`http://pl.example.net:${evilPort}`)}&token=${minted.token}`, { headers: { origin } });
    assert.equal(check.status, 401);
  } finally {
    await context.close();
    await site.stop();
    await evil.stop();
    await collector.stop();
  }
});

test("clicks in custom elements, an open shadow root and an SVG icon get selectors that name the clicked element", async () => {
  const db = "realsite_shadow";
  const sitePort = await freePort();
  const origin = `http://shop.example.com:${sitePort}`;
  const collector = await collectorFor(db, "pl.example.net", origin);
  // A web component of the site's own beside the rustdoc pages (custom elements, light DOM).
  const dir = mkdtempSync(join(tmpdir(), "pathlight-shadow-"));
  writeFileSync(join(dir, "cart.html"), `<!doctype html><html><head><title>Cart</title></head><body>
<h1>Cart</h1><shop-cart></shop-cart><shop-cart></shop-cart>
<script>customElements.define("shop-cart", class extends HTMLElement {
  connectedCallback() {
    this.attachShadow({ mode: "open" }).innerHTML = '<div class="cart"><p>2 items</p><button class="checkout"><svg width="24" height="24"><circle cx="12" cy="12" r="10"/></svg> Checkout</button></div>';
  }
});</script></body></html>`);
  const docs = await startSite({ port: sitePort, tag: readmeTag(collector.url, "docs"), proxy: (req, res) => {
    if (!req.url.startsWith("/own/")) return false;
    res.setHeader("content-type", "text/html");
    res.end(readFileSync(join(dir, "cart.html"), "utf8").replace("</head>", `${readmeTag(collector.url, "docs")}</head>`));
    return true;
  } });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, userAgent: USER_AGENT });
  try {
    const page = await context.newPage();
    await page.goto(`${origin}/own/cart.html`);
    await page.waitForFunction(() => window.pathlight && typeof window.pathlight.errors === "function");
    // The icon inside the second component's button.
    const icon = page.locator("shop-cart").nth(1).locator("svg circle");
    await clickAt(page, icon, 0.5, 0.5);
    await page.evaluate(() => window.pathlight.flush());
    await page.goto(`${origin}/std/option/index.html`);
    await page.waitForFunction(() => window.pathlight && typeof window.pathlight.errors === "function");
    // rustdoc's toolbar is a custom element filled by its own script.
    // (rustdoc's script opens its settings popover instead of following the link.)
    await clickAt(page, page.locator("rustdoc-toolbar .settings-menu a"), 0.5, 0.5);
    await page.evaluate(() => window.pathlight.flush());
    const rows = await eventually(async () => {
      const r = await ch.rows(`SELECT path, selector, tag FROM ${db}.events FINAL WHERE event_type = 'click' ORDER BY timestamp, timestamp_ms`);
      return r.length >= 2 && r;
    }, 15_000, "2 clicks");
    rows.length = 2;
    assert.equal(rows[0].tag, "button", "the icon's click is its button's");
    assert.match(rows[0].selector, / >>> /, "through the shadow root");
    const cart = await context.newPage();
    await cart.goto(`${origin}/own/cart.html?pathlight-viewer=1`);
    const named = await cart.evaluate(({ sel, src }) => {
      const el = (0, eval)(`(${src})`)(sel);
      const want = document.querySelectorAll("shop-cart")[1].shadowRoot.querySelector("button");
      return el === want;
    }, { sel: rows[0].selector, src: resolveSelector.toString() });
    assert.ok(named, `${rows[0].selector} names the second component's button`);
    assert.equal(rows[1].path, "/std/option/index.html");
    assert.doesNotMatch(rows[1].selector, /^(html|body)$/);
    const doc = await context.newPage();
    await doc.goto(`${origin}/std/option/index.html?pathlight-viewer=1`);
    assert.ok(await doc.evaluate(({ sel, src }) => (0, eval)(`(${src})`)(sel) === document.querySelector("rustdoc-toolbar .settings-menu a"),
      { sel: rows[1].selector, src: resolveSelector.toString() }), `${rows[1].selector} names rustdoc's settings link`);
  } finally {
    await context.close();
    await docs.stop();
    await collector.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
