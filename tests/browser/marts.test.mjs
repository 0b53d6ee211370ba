// The marts against the events they summarise (issue 37), on known sessions of the real
// tracker in Chromium: visitors of the Rust book on `shop.example.com` (tests/lib/site.mjs)
// with the tracker's one-line tag, the collector on `pl.example.net`. Each page sends several batches —
// the tracker's timer, `pathlight.flush()`, and the batch at hide as the page is left or the
// tab closes — and a returning visitor's page sends the last tab's final batch again (`?r=1`)
// to a collector restarted meanwhile. Then:
// - `events FINAL` holds exactly what the visitors did (clicks and page views as made);
// - every figure of every session in `GET /api/v1/sessions` (the `sessions` mart) equals the
//   same figure computed from `events FINAL`;
// - the page marts (views and visitors per page, clicks and clickers per element, heatmap
//   bins) and the stats equal `events FINAL`, through the API (mart against `exact=true`)
//   and read directly, on ClickHouse 18.16;
// - the same events, inserted batch by batch into current ClickHouse (chdb) under the modern
//   dialect's migrations, give the same equalities through the query API's SQL.
//
// The browser's own User-Agent is an ordinary Chrome's (`--user-agent`): headless Chromium's
// is a bot's, and requests sent as a page goes away carry the browser's User-Agent, not a
// context's override. With the override alone, every batch at hide is stored as a bot's, and
// the summaries (which leave bots out, as every figure does) lack exactly those batches.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Session } from "chdb";
import { anomalies, bin, eventually, freePort, hostRules, launchBrowser, startClickHouse, startCollector } from "../lib/stack.mjs";
import { CHAPTER, NEXT, USER_AGENT, clickAt, startSite } from "../lib/site.mjs";

const HOSTS = ["shop.example.com", "pl.example.net"];
const DB = "marts_equal";
const TOKEN = "t-docs";
let ch, browser, site, collector, origin, env, port;
/** What each visit did, by its viewport width (unique per visit): clicks and page loads. */
const made = {};
const contexts = [];

/** Opens `path` and waits for the tracker. */
async function open(page, path) {
  await page.goto(`${origin}${path}`);
  await page.waitForFunction(() => window.pathlight && typeof window.pathlight.errors === "function");
}

/**
 * A visitor's browser tab of `width` px (in `context`: a visitor coming back; else a new
 * one); `made[width]` counts the clicks made, the pages loaded and the pages left.
 */
async function visitor(width, context = null) {
  if (!context) {
    context = await browser.newContext({ viewport: { width, height: 800 }, userAgent: USER_AGENT });
    contexts.push(context);
  }
  const page = await context.newPage();
  await page.setViewportSize({ width, height: 800 });
  const m = (made[width] = { clicks: 0, loads: 0, left: 0 });
  let clicked = 0;
  return {
    context,
    page,
    async open(path) {
      await open(page, path);
      m.loads += 1;
    },
    /** After a click on a link: the page it leads to, once its tracker runs. */
    async arrived(path) {
      await page.waitForURL(`**${path}`);
      await page.waitForFunction(() => window.pathlight && typeof window.pathlight.errors === "function");
      m.loads += 1;
    },
    /**
     * A click at a person's pace: at least 250 ms after this visitor's click before. Faster,
     * a click on another element 10–99 ms after one is the `rapid` rule's automation, which
     * an idle machine's quick succession of clicks once was.
     */
    async click(locator, fx = 0.5, fy = 0.5) {
      const wait = 250 - (Date.now() - clicked);
      if (wait > 0) await page.waitForTimeout(wait);
      await clickAt(page, locator, fx, fy);
      clicked = Date.now();
      m.clicks += 1;
    },
    /** The page is left (a link, another address, the tab closing): its batch at hide goes. */
    left() {
      m.left += 1;
    },
    flush: () => page.evaluate(() => window.pathlight.flush()),
  };
}

const api = async (q) => {
  const r = await fetch(`${collector.base}/api/v1/${q}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const body = await r.json();
  assert.equal(r.status, 200, `${q}: ${JSON.stringify(body)}`);
  return body;
};

/** Per session, the list's figures computed from `events FINAL` (ClickHouse 18.16 and current). */
const FROM_EVENTS = (events) => `SELECT session_id, toString(any(visitor_id)) AS v_visitor,
  toString(any(device)) AS v_device, toString(any(browser)) AS v_browser, toString(any(os)) AS v_os,
  toString(any(country)) AS v_country, max(user_id) AS v_user, min(ts) AS v_start, max(ts) AS v_end,
  maxIf(ts, event_type = 'engagement') AS v_left, count() AS v_events,
  countIf(event_type = 'pageview') AS v_pageviews, countIf(event_type = 'click') AS v_clicks,
  countIf(event_type = 'scroll') AS v_scrolls, countIf(event_type = 'custom') AS v_customs,
  uniqExactIf(path, event_type = 'pageview') AS v_pages, argMinIf(path, ts, event_type = 'pageview') AS v_entry,
  argMaxIf(path, ts, event_type = 'pageview') AS v_exit, uniqExact(visitor_id) AS visitors
  FROM (SELECT *, toUInt64(timestamp) * 1000 + timestamp_ms AS ts FROM ${events} FINAL
        WHERE site_id = 'docs' AND is_bot = 0 AND session_id != '')
  GROUP BY session_id ORDER BY session_id`;

/** Per session, how often each action (`click <selector>`, `custom <name>`) occurs. */
const ACTIONS = (events) => `SELECT session_id, concat(toString(event_type), ' ', if(event_type = 'custom', toString(name), selector)) AS action,
  count() AS n FROM ${events} FINAL WHERE site_id = 'docs' AND is_bot = 0 AND event_type IN ('click', 'custom')
  GROUP BY session_id, action`;

/**
 * Checks a session's `actions` (topK(3) of the mart) against the counts from the events: as
 * many as there are up to 3, each a real action, none outnumbered by one left out, most first.
 */
function checkActions(id, listed, counts) {
  const of = counts.filter((c) => c.session_id === id);
  const n = (a) => Number(of.find((c) => c.action === a)?.n ?? -1);
  assert.equal(listed.length, Math.min(3, of.length), `${id}: ${JSON.stringify(listed)}`);
  for (const a of listed) assert.ok(n(a) > 0, `${id}: ${a} is not one of its actions`);
  const least = Math.min(...listed.map(n));
  for (const c of of) if (!listed.includes(c.action)) assert.ok(Number(c.n) <= least, `${id}: ${c.action} left out`);
  assert.deepEqual(listed.map(n), [...listed.map(n)].sort((a, b) => b - a), `${id}: most used first`);
}

/** Deep equality, numbers within a relative 1e-9 (averages summed in another order). */
function near(a, b, where) {
  if (typeof a === "number" && typeof b === "number") {
    assert.ok(Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b)), `${where}: ${a} != ${b}`);
  } else if (a && b && typeof a === "object") {
    assert.equal(Array.isArray(a), Array.isArray(b), where);
    assert.deepEqual(Object.keys(a), Object.keys(b), where);
    for (const k of Object.keys(a)) near(a[k], b[k], `${where}.${k}`);
  } else {
    assert.equal(a, b, where);
  }
}

before(async () => {
  ch = await startClickHouse("marts");
  browser = await launchBrowser([hostRules(HOSTS), `--user-agent=${USER_AGENT}`]);
  const sitePort = await freePort();
  origin = `http://shop.example.com:${sitePort}`;
  port = await freePort();
  env = { PATHLIGHT_SITES: `[{id = "docs", origins = ["${origin}"], api_token = "${TOKEN}"}]` };
  collector = await startCollector({ clickhouseUrl: ch.url, db: DB, port, env });
  site = await startSite({ port: sitePort, tag: `<script async src="http://pl.example.net:${port}/p.js" data-site="docs"></script>` });

  // A (1440 px): the chapter in three batches (a flush, the tracker's own timer, and the one
  // as the link leaves it), the next chapter in two (a flush, and the one as the tab closes).
  // The same code block clicked twice: an action repeated.
  const a = await visitor(1440);
  await a.open(CHAPTER);
  await a.click(a.page.locator("main p").nth(1), 0.6, 0.3);
  await a.click(a.page.locator("main pre").first());
  await a.flush();
  await a.click(a.page.locator("main p code").first());
  await a.page.mouse.wheel(0, 1500);
  // The timer sends every second.
  await a.page.waitForTimeout(1300);
  await a.click(a.page.locator("main p").nth(4), 0.3, 0.5);
  await a.click(a.page.locator('a[rel~="next"]:visible').first());
  a.left();
  await a.arrived(NEXT);
  await a.click(a.page.locator("main p").nth(2), 0.3, 0.5);
  await a.flush();
  await a.page.mouse.wheel(0, 800);
  await a.click(a.page.locator("main pre").first(), 0.4, 0.5);
  await a.click(a.page.locator("main pre").first(), 0.6, 0.5);
  await a.page.close({ runBeforeUnload: true });
  a.left();

  // B (375 px): one page, two batches, then another address: a bounce.
  const b = await visitor(375);
  await b.open(CHAPTER);
  await b.click(b.page.locator("main p").nth(1));
  await b.flush();
  await b.click(b.page.locator("main pre").first());
  await b.page.goto("about:blank");
  b.left();

  // C (768 px): the chapter, the next one, and back to the chapter by its address.
  const c = await visitor(768);
  await c.open(CHAPTER);
  await c.click(c.page.locator("main p").nth(1));
  await c.flush();
  await c.click(c.page.locator('a[rel~="next"]:visible').first());
  c.left();
  await c.arrived(NEXT);
  await c.click(c.page.locator("main p").nth(2));
  c.left();
  await c.open(CHAPTER);
  await c.click(c.page.locator("main pre").first());
  await c.page.close({ runBeforeUnload: true });
  c.left();

  const storedAsMade = async () => {
    const rows = await ch.rows(`SELECT viewport_w AS w, countIf(event_type = 'click') AS clicks,
      countIf(event_type = 'pageview') AS loads, countIf(event_type = 'engagement') AS left
      FROM ${DB}.events FINAL GROUP BY w`);
    const by = Object.fromEntries(rows.map((r) => [r.w, r]));
    return Object.entries(made).every(([w, m]) => by[w] && Number(by[w].clicks) >= m.clicks && Number(by[w].loads) >= m.loads && Number(by[w].left) >= m.left);
  };
  await eventually(storedAsMade, 20_000, "every visit's clicks, page views and batches at hide");

  // A comes back (1280 px), to a collector restarted meanwhile: A's new tab sends the closed
  // tab's last batch again (its answer was never heard), which this collector has not seen.
  await collector.stop();
  collector = await startCollector({ clickhouseUrl: ch.url, db: DB, port, env });
  const back = await visitor(1280, a.context);
  await back.open(NEXT);
  await eventually(() => back.page.evaluate(() => !localStorage.getItem("pathlight:queue")), 15_000, "the kept batch answered");
  await back.click(back.page.locator("main p").nth(1));
  await back.page.close({ runBeforeUnload: true });
  back.left();
  await eventually(storedAsMade, 20_000, "the returning visit");
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  await collector?.stop();
  await site?.stop();
});

test("the anomaly rules flag none of these visits: no session anomaly, no rage burst", async () => {
  // Clicks at a person's pace, A's code block twice (not three times), C back to a page once.
  const found = await anomalies(ch, DB, "docs");
  assert.deepEqual([found.sessions, found.rage], [[], []], JSON.stringify(found));
});

test("events FINAL hold exactly what the visitors did, every page in several batches and one at hide", async () => {
  const rows = await ch.rows(`SELECT viewport_w AS w, uniqExact(session_id) AS sessions, uniqExact(visitor_id) AS visitors,
    countIf(event_type = 'click') AS clicks, countIf(event_type = 'pageview') AS loads, countIf(event_type = 'engagement') AS left,
    countIf(is_bot = 1) AS bots, countIf(event_type = 'custom') AS customs
    FROM ${DB}.events FINAL GROUP BY w ORDER BY w`);
  assert.deepEqual(
    rows.map((r) => [r.w, Number(r.sessions), Number(r.visitors), Number(r.clicks), Number(r.loads), Number(r.bots), Number(r.customs)]),
    Object.entries(made).map(([w, m]) => [Number(w), 1, 1, m.clicks, m.loads, 0, 0]),
    "per visit: one session, one visitor, the clicks and page loads made, no bot, no $undelivered report",
  );
  for (const r of rows) assert.ok(Number(r.left) >= made[r.w].left, `${r.w}: a batch at hide per page left`);
  // A's pages went in three and two batches, the batch at hide among them.
  const batches = await ch.rows(`SELECT path, uniqExact(batch_id) AS n, countIf(event_type = 'engagement') AS hides
    FROM ${DB}.events FINAL WHERE viewport_w = 1440 GROUP BY path ORDER BY path`);
  assert.deepEqual(batches.map((b) => [b.path, Number(b.n) >= (b.path === CHAPTER ? 3 : 2), Number(b.hides) >= 1]),
    [[CHAPTER, true, true], [NEXT, true, true]], JSON.stringify(batches));
  // The resend reached the restarted collector, which found it stored.
  const metrics = await (await fetch(`${collector.base}/metrics`)).text();
  assert.match(metrics, /^pathlight_duplicate_batches_total [1-9]/m, "the closed tab's batch, sent again");
  assert.doesNotMatch(metrics, /pathlight_tracker_undelivered_batches_total\{[^}]*outcome="failed"\} [1-9]/, "nothing was lost");
});

test("every figure of every session in the sessions list equals its events (ClickHouse 18.16)", async () => {
  const list = await api("sessions?site=docs");
  const expected = await ch.rows(FROM_EVENTS(`${DB}.events`));
  const counts = await ch.rows(ACTIONS(`${DB}.events`));
  assert.deepEqual(list.map((s) => s.session_id).sort(), expected.map((e) => e.session_id), "the sessions");
  assert.equal(list.length, Object.keys(made).length);
  const now = Date.now();
  for (const e of expected) {
    const s = list.find((x) => x.session_id === e.session_id);
    const [start, end, left] = [Number(e.v_start), Number(e.v_end), Number(e.v_left)];
    assert.equal(Number(e.visitors), 1, "one visitor per session");
    const want = {
      visitor_id: Number(e.v_visitor), user_id: e.v_user, device: e.v_device, browser: e.v_browser, os: e.v_os, country: e.v_country,
      start_ms: start, end_ms: end, duration_secs: (end - start) / 1000,
      ended: left > 0 && left >= end ? "closed" : end + 30 * 60_000 <= now ? "timed_out" : "active",
      events: Number(e.v_events), pageviews: Number(e.v_pageviews), clicks: Number(e.v_clicks), scrolls: Number(e.v_scrolls),
      customs: Number(e.v_customs), pages: Number(e.v_pages), entry: e.v_entry, exit: e.v_exit,
    };
    const got = Object.fromEntries(Object.keys(want).map((k) => [k, s[k]]));
    assert.deepEqual(got, want, e.session_id);
    assert.equal(s.ended, "closed", `${e.session_id}: its last batch was the one at hide`);
    checkActions(e.session_id, s.actions, counts);
  }
  // The one-page visit is a bounce, the others are not.
  assert.deepEqual(list.map((s) => s.pages).sort(), [1, 1, 2, 2]);
});

test("the page marts and the stats equal events FINAL (ClickHouse 18.16)", async () => {
  // Through the API: every answer read from the marts equals the one read from events FINAL.
  const queries = ["stats?site=docs", "stats?site=docs&device=desktop"];
  for (const path of [CHAPTER, NEXT]) {
    for (const width of ["", "&width=375", "&width=768", "&width=1440"]) {
      queries.push(`heatmap?site=docs&path=${path}${width}`, `elements?site=docs&path=${path}${width}`);
    }
  }
  for (const q of queries) {
    let [mart, exact] = [await api(q), await api(`${q}&exact=true`)];
    // A page's rage and dead clicks come from the behaviour rollup, which rolls today every
    // second here (stack.mjs): it may not have rolled the last events yet.
    const counts = (a) => JSON.stringify([a.rage, a.dead].map((l) => l.map((e) => [e.selector, e.count, e.sessions])));
    for (let wait = 0; q.startsWith("heatmap") && counts(mart) !== counts(exact) && wait < 20; wait++) {
      await new Promise((r) => setTimeout(r, 500));
      [mart, exact] = [await api(q), await api(`${q}&exact=true`)];
    }
    // The traffic mart's distinct counts say they are approximate (exact at this size).
    if (q.startsWith("stats")) {
      assert.deepEqual([mart.approximate, exact.approximate], [true, false], q);
      delete mart.approximate;
      delete exact.approximate;
    }
    near(mart, exact, q);
  }

  // Read directly, every row of each mart against the same grouping of the events.
  const ev = `${DB}.events FINAL WHERE site_id = 'docs' AND is_bot = 0`;
  const layout = "toUInt8(multiIf(viewport_w < 600, 0, viewport_w < 1000, 1, 2))";
  const pairs = [
    [`SELECT path, toString(day) AS d, layout, toString(device) AS dev, toUInt64(countMerge(views)) AS views, toUInt64(uniqExactMerge(visitors)) AS visitors
      FROM ${DB}.page_daily WHERE site_id = 'docs' GROUP BY path, d, layout, dev ORDER BY path, d, layout, dev`,
     `SELECT path, toString(toDate(timestamp)) AS d, ${layout} AS layout, toString(device) AS dev, count() AS views, uniqExact(visitor_id) AS visitors
      FROM ${ev} AND event_type = 'pageview' GROUP BY path, d, layout, dev ORDER BY path, d, layout, dev`],
    [`SELECT path, selector, anyMerge(element_id) AS id, anyMerge(tag) AS tag, anyMerge(text) AS text, toUInt64(countMerge(clicks)) AS clicks,
      toUInt64(uniqExactMerge(clickers)) AS clickers, toFloat64(avgMerge(rel_x)) AS rx, toFloat64(avgMerge(rel_y)) AS ry
      FROM ${DB}.element_days WHERE site_id = 'docs' GROUP BY path, selector ORDER BY path, selector`,
     `SELECT path, selector, any(element_id) AS id, any(toString(tag)) AS tag, any(text) AS text, count() AS clicks,
      uniqExact(visitor_id) AS clickers, toFloat64(avg(rel_x)) AS rx, toFloat64(avg(rel_y)) AS ry
      FROM ${ev} AND event_type = 'click' AND selector != '' GROUP BY path, selector ORDER BY path, selector`],
    [`SELECT path, layout, toUInt64(sum(clicks)) AS n FROM ${DB}.heatmap_clicks WHERE site_id = 'docs' GROUP BY path, layout ORDER BY path, layout`,
     `SELECT path, ${layout} AS layout, count() AS n FROM ${ev} AND event_type = 'click' AND document_w > 0 GROUP BY path, layout ORDER BY path, layout`],
    [`SELECT path, selector, toUInt64(sum(clicks)) AS n FROM ${DB}.heatmap_anchors WHERE site_id = 'docs' GROUP BY path, selector ORDER BY path, selector`,
     `SELECT path, selector, count() AS n FROM ${ev} AND event_type = 'click' AND selector != '' GROUP BY path, selector ORDER BY path, selector`],
  ];
  for (const [mart, events] of pairs) {
    const [m, e] = [await ch.rows(mart), await ch.rows(events)];
    assert.ok(e.length > 0, events);
    near(m.map((r) => Object.values(r).map((v) => (typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v))),
      e.map((r) => Object.values(r).map((v) => (typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v))), mart);
  }

  // The stats' totals: the visits as made.
  const stats = await api("stats?site=docs");
  const loads = Object.values(made).reduce((n, m) => n + m.loads, 0);
  const [{ n: events }] = await ch.rows(`SELECT count() AS n FROM ${ev}`);
  assert.deepEqual([stats.visitors, stats.sessions, stats.pageviews, stats.events], [1, 4, loads, Number(events)]);
  assert.equal(stats.bounce_rate, 0.5, "B and the returning visit saw one page each");
  assert.deepEqual(stats.entries, [{ key: CHAPTER, count: 3 }, { key: NEXT, count: 1 }]);
  assert.deepEqual(stats.exits, [{ key: CHAPTER, count: 2 }, { key: NEXT, count: 2 }]);
});

test("the same events through current ClickHouse (chdb): the marts equal events FINAL there too", async () => {
  // The events as ClickHouse 18.16 stored them (not FINAL: a batch stored twice is inserted
  // twice here too), inserted again one batch at a time, in the order they arrived: each
  // insert runs the views over that batch alone.
  const rows = await ch.rows(`SELECT *, toUInt32(timestamp) AS ts_s, toUInt32(received_at) AS recv_s FROM ${DB}.events ORDER BY received_at, batch_id, event_id`);
  const batches = new Map();
  for (const { ts_s, recv_s, ...r } of rows) {
    r.timestamp = ts_s;
    r.received_at = recv_s;
    if (!batches.has(r.batch_id)) batches.set(r.batch_id, []);
    batches.get(r.batch_id).push(r);
  }
  assert.ok(batches.size >= 10, `${batches.size} batches`);
  const dir = mkdtempSync(join(tmpdir(), "pathlight-chdb-marts-"));
  const session = new Session(join(dir, "data"));
  const q = (sql) => session.query(sql, "JSONEachRow").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const run = (args) => execFileSync(bin, args, { env: { PATH: process.env.PATH }, encoding: "utf8" });
  const split = (text) => text.split(/;\n/).map((s) => s.trim()).filter((s) => s.replace(/^--.*$/gm, "").trim())
    .map((s) => ({ name: (s.match(/^-- (.*)$/m) || [, "migration"])[1], sql: s.replace(/^--.*$/gm, "").trim() }));
  try {
    session.query("CREATE DATABASE IF NOT EXISTS pathlight");
    session.query("USE pathlight");
    for (const { sql } of split(run(["migrate", "--print", "modern"]))) session.query(sql);
    for (const batch of batches.values()) {
      session.query(`INSERT INTO events FORMAT JSONEachRow\n${batch.map((r) => JSON.stringify(r)).join("\n")}`);
    }
    const num = (v) => (typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v);
    const days = q("SELECT toString(min(toDate(timestamp))) AS lo, toString(max(toDate(timestamp))) AS hi FROM events")[0];
    const catalogue = (params) => Object.fromEntries(split(run(["sql", "--params", `site=docs&from=${days.lo}&to=${days.hi}${params}`])).map((x) => [x.name, x.sql]));

    // Per session, the list's figures (the mart) against the events, as on 18.16.
    const expected = q(FROM_EVENTS("events"));
    const counts = q(ACTIONS("events"));
    assert.equal(expected.length, Object.keys(made).length);
    for (const e of expected) {
      const [listed] = q(catalogue(`&session=${e.session_id}`)["sessions list"]).map((r) => Object.values(r).map(num));
      assert.ok(listed, `${e.session_id} is listed`);
      const { visitors, ...figures } = e;
      assert.deepEqual(listed.slice(0, 18), Object.values(figures).map(num), e.session_id);
      checkActions(e.session_id, listed[18], counts);
    }

    // Each query read from a mart against its twin read from events FINAL.
    let compared = 0;
    const twin = (mart, events, name) => {
      const [m, e] = [q(mart), q(events)];
      near(m.map((r) => Object.values(r).map(num)), e.map((r) => Object.values(r).map(num)), name);
      compared += e.length > 0;
    };
    const site = catalogue("");
    twin(site["stats sessions mart"], site["stats sessions"], "stats sessions");
    twin(site["stats top path mart"], site["stats top path"], "top pages");
    for (const path of [CHAPTER, NEXT]) {
      for (const width of ["", "&width=375", "&width=768", "&width=1440"]) {
        const page = catalogue(`&path=${path}${width}`);
        for (const name of ["elements views", "elements", "heatmap points", "heatmap anchored"]) {
          twin(page[`${name} mart`], page[name], `${name} ${path}${width}`);
        }
      }
    }
    // Every stats pair, and on each page the views and (where a layout class clicked) the rest.
    assert.equal(compared, 2 + 8 + 3 * 7, "comparisons with rows");
  } finally {
    session.cleanup?.();
    rmSync(dir, { recursive: true, force: true });
  }
});
