// Session summaries against their events (issue 37): ten visits of two pages of the Rust book
// in headless Chromium (three clicks and a scroll on the chapter, the link to the next one,
// two clicks and a scroll there, then the tab closes or, every third visit, another address
// is opened), each in a fresh browser context, against `pathlight serve` and Debian's
// ClickHouse 18.16. Prints, per session, the events and clicks in `events FINAL` (all, and
// those not taken for a bot's) and in `GET /api/v1/sessions`, and how many visitor ids
// (hashed with the User-Agent) the session's rows have.
//   node bench/session-summaries.mjs               (an ordinary Chrome User-Agent for the browser)
//   node bench/session-summaries.mjs context-ua    (the User-Agent set per context only, as
//                                                   Playwright's `userAgent` option does)
import { freePort, hostRules, launchBrowser, startClickHouse, startCollector } from "../tests/lib/stack.mjs";
import { CHAPTER, NEXT, USER_AGENT, clickAt, startSite } from "../tests/lib/site.mjs";

const perContext = process.argv[2] === "context-ua";
const ch = await startClickHouse("bench-summaries");
const browser = await launchBrowser([hostRules(["shop.example.com", "pl.example.net"]), ...(perContext ? [] : [`--user-agent=${USER_AGENT}`])]);
const db = "bench_summaries";
const sitePort = await freePort();
const origin = `http://shop.example.com:${sitePort}`;
const port = await freePort();
const collector = await startCollector({ clickhouseUrl: ch.url, db, port, env: { PATHLIGHT_SITES: `[{id = "docs", origins = ["${origin}"], api_token = "t"}]` } });
const site = await startSite({ port: sitePort, tag: `<script async src="http://pl.example.net:${port}/p.js" data-site="docs"></script>` });
const ready = (page) => page.waitForFunction(() => window.pathlight && typeof window.pathlight.errors === "function");
const contexts = [];
for (let i = 0; i < 10; i++) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, userAgent: USER_AGENT });
  contexts.push(context);
  const page = await context.newPage();
  await page.goto(`${origin}${CHAPTER}`);
  await ready(page);
  await clickAt(page, page.locator("main p").nth(1), 0.6, 0.3);
  await clickAt(page, page.locator("main pre").first(), 0.5, 0.5);
  await page.mouse.wheel(0, 800);
  await page.waitForTimeout(1200);
  await clickAt(page, page.locator("main p code").first(), 0.5, 0.5);
  await clickAt(page, page.locator('a[rel~="next"]:visible').first(), 0.5, 0.5);
  await page.waitForURL(`**${NEXT}`);
  await ready(page);
  await page.waitForTimeout(1200);
  await clickAt(page, page.locator("main p").nth(2), 0.5, 0.5);
  await page.mouse.wheel(0, 600);
  await clickAt(page, page.locator("main pre").first(), 0.3, 0.5);
  if (i % 3 == 2) await page.goto("about:blank");
  else await page.close({ runBeforeUnload: true });
}
await new Promise((r) => setTimeout(r, 4000));
const rows = await ch.rows(`SELECT session_id, count() AS n, countIf(event_type = 'click') AS c,
  countIf(is_bot = 0) AS hn, countIf(is_bot = 0 AND event_type = 'click') AS hc,
  uniqExact(visitor_id) AS visitors
  FROM ${db}.events FINAL GROUP BY session_id ORDER BY min(timestamp), session_id`);
const list = await (await fetch(`${collector.base}/api/v1/sessions?site=docs`, { headers: { authorization: "Bearer t" } })).json();
const api = Object.fromEntries(list.map((s) => [s.session_id, s]));
console.log(`User-Agent ${perContext ? "per context only" : "for the whole browser"}\n`);
console.log("| session | events FINAL: events, clicks | of them not bots' | sessions list | visitor ids |");
console.log("|---|---:|---:|---:|---:|");
for (const r of rows) {
  const s = api[r.session_id];
  console.log(`| ${r.session_id} | ${r.n}, ${r.c} | ${r.hn}, ${r.hc} | ${s ? `${s.events}, ${s.clicks}` : "–"} | ${r.visitors} |`);
}
const equal = rows.filter((r) => api[r.session_id]?.events === Number(r.hn) && api[r.session_id]?.clicks === Number(r.hc)).length;
const whole = rows.filter((r) => api[r.session_id]?.events === Number(r.n) && api[r.session_id]?.clicks === Number(r.c)).length;
console.log(`\nList equal to events FINAL not bots': ${equal} of ${rows.length}; equal to all events FINAL: ${whole} of ${rows.length}`);
for (const c of contexts) await c.close();
await collector.stop();
await site.stop();
await browser.close();
process.exit(0);
