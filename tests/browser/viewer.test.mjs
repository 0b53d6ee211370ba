// The heatmap viewer and the dashboard in Chromium, over clicks the tracker recorded at two
// widths on the demo site, which has an origin of its own: the viewer frames it and learns its
// layout from the tracker in it (postMessage); hot spots are drawn where the clicks were in each
// layout (canvas pixels read at the element's position), badges show the clicks of that layout,
// the dashboard shows the totals. A site page on the dashboards' own origin is framed without
// scripts. Screenshots go to tests/artifacts/.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventually, freePort, launchBrowser, root, startClickHouse, startCollector } from "../lib/stack.mjs";

const artifacts = join(root, "tests", "artifacts");
// Headless Chromium says "HeadlessChrome", which the collector rightly flags as a bot and the
// analytics leave out; these visitors present themselves as the desktop browser they are.
const UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
let browser, ch, collector;
const db = "e2e_viewer";

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  browser = await launchBrowser();
  ch = await startClickHouse("viewer");
  const [port, demoPort] = [await freePort(), await freePort()];
  // Site `own` has its pages on the dashboards' origin: a copy of the catalog among them.
  const www = mkdtempSync(join(tmpdir(), "pathlight-viewer-www-"));
  cpSync(join(root, "www"), www, { recursive: true });
  for (const f of ["catalog.html", "style.css"]) cpSync(join(root, "demo-site", f), join(www, "demo", f));
  collector = await startCollector({
    clickhouseUrl: ch.url,
    db,
    port,
    demoPort,
    env: {
      PATHLIGHT_WWW_DIR: www,
      PATHLIGHT_SITES: `[{id = "demo", origins = ["http://127.0.0.1:${demoPort}"], api_token = "viewer-token"},
        {id = "own", origins = ["http://127.0.0.1:${port}"], api_token = "viewer-token"}]`,
    },
  });
  // Visitors: three clicks on #add-1 at 1440 px, two at 375 px, at a quarter of its width.
  for (const [width, clicks] of [[1440, 3], [375, 2]]) {
    const ctx = await browser.newContext({ viewport: { width, height: 800 }, userAgent: UA });
    const page = await ctx.newPage();
    await page.goto(collector.demo + "/demo/catalog.html");
    await page.waitForFunction(() => window.pathlight && typeof window.pathlight.errors === "function");
    for (let i = 0; i < clicks; i++) {
      const box = await page.locator("#add-1").boundingBox();
      await page.mouse.click(Math.round(box.x + box.width / 4), Math.round(box.y + box.height / 2));
    }
    // Sent by fetch, which carries the context's User-Agent (the page-hide beacon may not).
    await page.evaluate(() => window.pathlight.flush());
    await page.waitForTimeout(300);
    await page.goto("about:blank");
    await ctx.close();
  }
  await eventually(async () => Number((await ch.rows(`SELECT count() AS n FROM ${db}.events WHERE event_type = 'click'`))[0].n) === 5, 15_000, "5 clicks stored");
});
after(async () => {
  await browser?.close();
  await collector?.stop();
});

for (const [width, expected] of [[1440, 3], [375, 2]]) {
  test(`the viewer draws the hot spot on the element and badges its clicks at ${width} px`, async () => {
    const ctx = await browser.newContext({ viewport: { width: Math.max(width + 100, 800), height: 900 } });
    const page = await ctx.newPage();
    const q = new URLSearchParams({ site: "demo", path: "/demo/catalog.html", width: String(width) });
    await page.goto(`${collector.base}/heatmap.html?${q}#token=viewer-token`);
    await page.waitForSelector("body[data-ready]");
    // The element's box as the framed page lays it out, read through the browser's debugging
    // protocol: the viewer itself cannot read another origin's document.
    const framed = page.frames().find((f) => f.url().startsWith(collector.demo + "/demo/catalog.html"));
    assert.ok(framed, page.frames().map((f) => f.url()).join(" "));
    const box = await framed.evaluate(() => {
      const b = document.querySelector("#add-1").getBoundingClientRect();
      return { left: b.left, top: b.top, width: b.width, height: b.height };
    });
    const probe = await page.evaluate((r) => {
      const frame = document.getElementById("page");
      const ctx = document.getElementById("heat").getContext("2d");
      const at = (x, y) => Array.from(ctx.getImageData(Math.round(x), Math.round(y), 1, 1).data);
      return {
        hot: at(r.left + r.width / 4, r.top + r.height / 2),
        far: at(r.left + r.width / 4, r.top + r.height / 2 + 300),
        frameWidth: frame.clientWidth,
        badge: document.querySelector('.badge[data-selector="#add-1"] .clicks')?.textContent,
        rage: document.querySelector('.frustration.rage[data-selector="#add-1"]')?.textContent ?? null,
        status: document.getElementById("status").textContent,
        sandbox: frame.getAttribute("sandbox"),
        readable: frame.contentDocument !== null,
      };
    }, box);
    await page.screenshot({ path: join(artifacts, `heatmap-${width}.png`), fullPage: true });
    await ctx.close();
    assert.equal(probe.frameWidth, width);
    assert.deepEqual([probe.sandbox, probe.readable], ["allow-scripts allow-same-origin", false]);
    assert.ok(probe.hot[3] > 100 && probe.hot[0] > 200 && probe.hot[2] < 100, `hot spot pixel ${probe.hot}`);
    assert.equal(probe.far[3], 0, `no heat 300 px below: ${probe.far}`);
    assert.equal(probe.badge, `${expected} clicks`);
    // Three clicks on the same spot within a second are a rage burst; two are not.
    assert.equal(probe.rage, expected === 3 ? "1 rage" : null);
    assert.match(probe.status, new RegExp(`^${expected} clicks`));
  });
}

test("a site page on the dashboards' own origin is framed without scripts and read directly", async () => {
  const ctx = await browser.newContext({ viewport: { width: 1540, height: 900 } });
  const page = await ctx.newPage();
  const q = new URLSearchParams({ site: "own", path: "/demo/catalog.html", width: "1440" });
  await page.goto(`${collector.base}/heatmap.html?${q}#token=viewer-token`);
  await page.waitForSelector("body[data-ready]");
  const probe = await page.evaluate(() => {
    const frame = document.getElementById("page");
    return {
      sandbox: frame.getAttribute("sandbox"),
      element: Boolean(frame.contentDocument.querySelector("#add-1")),
      tracker: frame.contentWindow.pathlight === undefined ? "none" : "ran",
    };
  });
  await ctx.close();
  assert.deepEqual(probe, { sandbox: "allow-same-origin", element: true, tracker: "none" });
});

test("the dashboard shows the site's totals and top pages", async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, userAgent: UA });
  const page = await ctx.newPage();
  await page.goto(`${collector.base}/?site=demo#token=viewer-token`);
  await page.waitForSelector("body[data-ready]");
  const cards = await page.$$eval(".card[data-metric]", (cs) => Object.fromEntries(cs.map((c) => [c.dataset.metric, c.querySelector("b").textContent])));
  const pages = await page.$$eval("#panels section:first-child td:not(.n)", (tds) => tds.map((td) => td.firstChild.textContent));
  // The series chart is uPlot's: one day, page views and visitors, today's (still counting)
  // drawn as the dashed lines.
  const [points, plotted] = await page.evaluate(() => [
    window.pl.chart.data[0].length,
    window.pl.chart.series.slice(1).map((s, i) => [s.label, Boolean(s.dash), window.pl.chart.data[i + 1][0]]),
  ]);
  const [{ v, pv }] = await ch.rows(`SELECT uniqExact(visitor_id) AS v, countIf(event_type = 'pageview') AS pv FROM ${db}.events FINAL WHERE is_bot = 0`);
  await page.waitForFunction(() => document.getElementById("live-visitors").textContent !== "–");
  const liveVisitors = await page.textContent("#live-visitors");
  // The live feed comes over a WebSocket (Chromium's), SSE being the fallback.
  await page.waitForFunction(() => document.body.dataset.live);
  const transport = await page.evaluate(() => document.body.dataset.live);
  // A click posted now shows up in the live feed.
  const before = Number(await page.textContent("#live-count"));
  const probe = await ctx.newPage();
  await probe.goto(collector.demo + "/demo/index.html");
  await probe.waitForFunction(() => window.pathlight && typeof window.pathlight.errors === "function");
  await probe.evaluate(() => window.pathlight.flush());
  await page.waitForFunction((n) => Number(document.getElementById("live-count").textContent) > n, before);
  // Without WebSocket (a proxy or a policy that refuses it) the feed is Server-Sent Events:
  // a stored event counts; a `lagged` frame (events dropped for a slow reader) is said in the
  // feed, never counted as an event, and comments (pings) are skipped.
  const sse = await ctx.newPage();
  await sse.addInitScript(() => { delete window.WebSocket; });
  await sse.goto(`${collector.base}/?site=demo#token=viewer-token`);
  await sse.waitForFunction(() => document.body.dataset.live === "sse");
  await sse.waitForTimeout(300);
  await probe.reload();
  await probe.waitForFunction(() => window.pathlight && typeof window.pathlight.errors === "function");
  await probe.evaluate(() => window.pathlight.flush());
  await sse.waitForFunction(() => Number(document.getElementById("live-count").textContent) > 0);
  const frames = await sse.evaluate(() => [": ping", "event: lagged\ndata: 7", 'data: {"kind":"click"}'].map(window.pl.sseFrame));
  assert.deepEqual(frames, [
    { event: "message", data: null },
    { event: "lagged", data: "7" },
    { event: "message", data: '{"kind":"click"}' },
  ]);
  await sse.close();
  await probe.close();
  await page.screenshot({ path: join(artifacts, "dashboard.png"), fullPage: true });
  await ctx.close();
  assert.equal(cards["Page views"], String(pv));
  // Distinct counts from the traffic mart are marked approximate (exact at this size).
  assert.equal(cards["Visitors"], `≈ ${v}`);
  assert.equal(cards["Active today so far"], `≈ ${v}`);
  assert.equal(cards["DAU (avg.)"], "–", "nobody on the range's complete days: nothing to average");
  assert.deepEqual(pages, ["/demo/catalog.html"]);
  assert.equal(points, 1, "one day");
  assert.deepEqual(plotted, [
    ["Page views", false, null],
    ["Visitors", false, null],
    ["Page views, today so far", true, Number(pv)],
    ["Visitors, today so far", true, Number(v)],
  ], "page views and visitors plotted");
  // The vendored chart library is the pinned npm package's, byte for byte.
  for (const f of ["uPlot.iife.min.js", "uPlot.min.css"]) {
    assert.ok(readFileSync(join(root, "www", "vendor", f)).equals(readFileSync(join(root, "tests", "node_modules", "uplot", "dist", f))), f);
  }
  assert.equal(liveVisitors, String(v), "everyone came within the last 5 minutes");
  assert.equal(transport, "websocket");
});

test("the session explorer shows a session's timeline in order", async () => {
  // The longest session of those that clicked #add-1 (the dashboard's probes make sessions of
  // page views only).
  const [{ session_id, n }] = await ch.rows(
    `SELECT session_id, count() AS n FROM ${db}.events FINAL WHERE is_bot = 0 GROUP BY session_id
     HAVING countIf(event_type = 'click' AND selector = '#add-1') > 0 ORDER BY n DESC LIMIT 1`,
  );
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  await page.goto(`${collector.base}/sessions.html?` + new URLSearchParams({ site: "demo", session: session_id }) + "#token=viewer-token");
  await page.waitForSelector("body[data-ready]");
  const rows = await page.$$eval("#timeline tr.event", (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  const recent = await page.$$eval("#recent tr.session", (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  await page.screenshot({ path: join(artifacts, "sessions.png"), fullPage: true });
  const [{ sessions }] = await ch.rows(
    `SELECT uniqExact(session_id) AS sessions FROM ${db}.events FINAL WHERE is_bot = 0 AND session_id != ''`,
  );
  await ctx.close();
  assert.equal(rows.length, Number(n));
  assert.equal(rows[0][0], "+0.00 s");
  const times = rows.map((r) => parseFloat(r[0].slice(1)));
  assert.deepEqual(times, [...times].sort((a, b) => a - b), "in time order");
  assert.ok(rows.some((r) => r[2].startsWith("click #add-1 at ")), JSON.stringify(rows));
  // The recent-sessions list (the sessions mart) has every session of the demo traffic, each
  // with how it ended; the browser tabs were closed, hidden or are still within 30 minutes.
  assert.equal(recent.length, Math.min(Number(sessions), 50), JSON.stringify(recent));
  assert.ok(recent.some((r) => r[0] === session_id));
  for (const r of recent) assert.ok(["closed", "active"].includes(r[5]), JSON.stringify(r));
});
