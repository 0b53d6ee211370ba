// The dashboard's charts with five-digit figures behind them, at a desktop's and a phone's
// width: every y-axis label is drawn whole inside its axis, never clipped ("0,000" for 20,000
// was). uPlot draws labels on a canvas, not in the DOM, so each label it drew is measured in
// the axis' own font and placed as uPlot places it. And the funnel card, and the Retention page's
// triangle over known rows. Screenshots go to tests/artifacts/.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { freePort, importGenerated, launchBrowser, root, startClickHouse, startCollector } from "../lib/stack.mjs";

const artifacts = join(root, "tests", "artifacts");
const UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
const TOKEN = "charts-token";
const db = "e2e_charts";
let browser, ch, collector, stats;

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  browser = await launchBrowser();
  ch = await startClickHouse("charts");
  const demoPort = await freePort();
  const sites = `[{id = "demo", origins = ["http://127.0.0.1:${demoPort}"], api_token = "${TOKEN}"}]`;
  collector = await startCollector({ clickhouseUrl: ch.url, db, demoPort, env: { PATHLIGHT_SITES: sites } });
  // All of yesterday's traffic in one day (UTC), so that day has over 10,000 page views.
  const end = new Date(Math.floor(Date.now() / 86_400_000) * 86_400_000 - 1000).toISOString();
  importGenerated({ clickhouseUrl: ch.url, db, sites, demoOrigin: collector.demo, events: 60_000, days: 1, end });
  stats = await (await fetch(`${collector.base}/api/v1/stats?site=demo`, { headers: { authorization: `Bearer ${TOKEN}` } })).json();
});
after(async () => {
  await browser?.close();
  await collector?.stop();
});

for (const width of [1440, 375]) {
  test(`the charts' y-axis labels are drawn whole at ${width} px`, async () => {
    assert.ok(Math.max(...stats.series.map((d) => d.pageviews)) >= 10_000, JSON.stringify(stats.series.slice(-3)));
    const ctx = await browser.newContext({ viewport: { width, height: 900 }, userAgent: UA, isMobile: width < 600 });
    const page = await ctx.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`${collector.base}/?site=demo#token=${TOKEN}`);
    await page.waitForSelector("body[data-ready]");
    // What uPlot (1.6.32, www/vendor) drew on the left axis: its labels (`_values`) at their
    // values (`_splits`), the axis' right edge (`_pos`) and width (`_size`), CSS px. A label
    // ends `gap` px left of the ticks.
    const drawn = await page.evaluate(() => {
      const measure = document.createElement("canvas").getContext("2d");
      return ["chart", "activeChart"].map((name) => {
        const a = window.pl[name].axes[1];
        measure.font = a.font[0];
        const right = a._pos - (a.ticks.show ? a.ticks.size : 0) - a.gap;
        return {
          name,
          box: [a._pos - a._size, a._pos],
          labels: a._values.map((text, k) => ({
            text,
            split: a._splits[k],
            left: right - measure.measureText(text).width / uPlot.pxRatio,
          })),
        };
      });
    });
    await page.locator("#series").screenshot({ path: join(artifacts, `dashboard-series-${width}.png`) });
    await page.locator("#active").screenshot({ path: join(artifacts, `dashboard-active-${width}.png`) });
    await ctx.close();
    assert.deepEqual(errors, []);
    for (const { name, box, labels } of drawn) {
      assert.ok(labels.length >= 2 && box[0] >= 0, `${name}: ${JSON.stringify({ box, labels })}`);
      // Half a pixel for the canvas' rounding.
      const clipped = labels.filter((l) => l.left < box[0] - 0.5);
      assert.deepEqual(clipped, [], `${name}: labels past the axis' left edge ${box[0]} px`);
    }
    // Short labels say their value exactly: "12.5k" is at 12,500.
    for (const { name, labels } of drawn) {
      for (const { text, split } of labels) {
        const [, digits, unit] = text.match(/^([\d.,]+)([kMB]?)$/) ?? [];
        const value = Number(digits?.replaceAll(",", "")) * ({ k: 1e3, M: 1e6, B: 1e9 }[unit] ?? 1);
        assert.ok(Math.abs(value - split) < 1e-6 * Math.max(1, split), `${name}: "${text}" at ${split}`);
      }
    }
    assert.ok(drawn[0].labels.some((l) => l.split >= 10_000), JSON.stringify(drawn[0].labels));
  });
}

// The funnel card asks nothing until it has steps, since no default fits every site; with
// `?steps=` (the demo's link) it runs them and remembers them for the site.
test("the funnel runs the site's own steps only, and remembers them per site", async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, userAgent: UA });
  const page = await ctx.newPage();
  const asked = [];
  page.on("request", (r) => { if (r.url().includes("/api/v1/funnel")) asked.push(r.url()); });
  await page.goto(`${collector.base}/?site=demo#token=${TOKEN}`);
  await page.waitForSelector("body[data-ready]");
  await page.waitForFunction(() => document.getElementById("funnel").textContent.includes("Enter the steps"));
  assert.deepEqual(asked, [], "no funnel call without steps");

  const steps = "/demo/index.html,/demo/catalog.html";
  await page.goto(`${collector.base}/?site=demo&steps=${encodeURIComponent(steps)}`);
  await page.waitForFunction(() => document.querySelectorAll("#funnel tr").length === 2);
  const rows = await page.$$eval("#funnel tr", (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  assert.deepEqual(rows.map((r) => r[0]), steps.split(","));
  assert.ok(Number(rows[0][1]) > 0, JSON.stringify(rows));
  assert.equal(asked.length, 1);

  // Back without the parameter: the site's steps are remembered.
  await page.goto(`${collector.base}/?site=demo`);
  await page.waitForFunction(() => document.querySelectorAll("#funnel tr").length === 2);
  assert.equal(await page.inputValue("#funnel-steps"), steps);
  await ctx.close();
});

// The Retention page (issue 32), from the dashboard's navigation, over known rows of October
// 2026 (the generated traffic is of yesterday, its users first seen then): the triangle of the
// known users' weekly cohorts, cell by cell, shaded by share, and the anonymous visitors'
// same-day returns with what cannot be counted, as the API answers them.
test("the Retention page shows the cohorts' triangle and the anonymous same-day returns", async () => {
  // (time UTC, session, visitor id, user id): ada (first seen Monday 10-05, back in weeks 1 and
  // 3), bob (Sunday 10-11, back in week 2), cy (10-12, back in week 2), dee (10-19), eve (10-27);
  // anonymous visitor 100 back on 10-06 in a new session, 101 once.
  const story = [
    ["2026-10-05 09:00:00", "r1", 1, "ada"], ["2026-10-13 09:00:00", "r2", 2, "ada"], ["2026-10-27 09:00:00", "r3", 3, "ada"],
    ["2026-10-11 23:59:59", "r4", 4, "bob"], ["2026-10-20 08:00:00", "r5", 5, "bob"],
    ["2026-10-12 00:00:00", "r6", 6, "cy"], ["2026-10-21 12:00:00", "r7", 7, "cy"],
    ["2026-10-19 10:00:00", "r8", 8, "dee"], ["2026-10-27 10:00:00", "r9", 9, "eve"],
    ["2026-10-06 10:00:00", "a1", 100, ""], ["2026-10-06 14:00:00", "a2", 100, ""], ["2026-10-06 11:00:00", "b1", 101, ""],
  ];
  await ch.exec(`INSERT INTO ${db}.events (site_id, event_id, event_type, timestamp, session_id, visitor_id, user_id, path) VALUES ${story
    .map(([at, session, visitor, user], i) => `('demo', toUUID('00000000-0000-0000-0000-0000000007${String(i).padStart(2, "0")}'), 'pageview', toDateTime('${at}', 'UTC'), '${session}', ${visitor}, '${user}', '/r${i}')`)
    .join(", ")}`);
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, userAgent: UA });
  const page = await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${collector.base}/?site=demo#token=${TOKEN}`);
  await page.waitForSelector("body[data-ready]");
  await Promise.all([page.waitForURL(/\/retention\.html/), page.click("header a[href='retention.html']")]);
  await page.waitForSelector("body[data-ready]");
  await page.fill("input[name=from]", "2026-10-07");
  await page.fill("input[name=to]", "2026-10-28");
  await page.click("#controls button");
  await page.waitForFunction(() => document.querySelector("#cohorts tbody tr th")?.textContent === "2026-10-05");
  const cells = (sel) => page.$$eval(`${sel} tr`, (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  assert.deepEqual(await cells("#cohorts thead"), [["First seen (week of)", "Users", "Week 0", "+1", "+2", "+3"]]);
  assert.deepEqual(await cells("#cohorts tbody"), [
    ["2026-10-05", "2", "100.0%", "50.0%", "50.0%", "50.0%"],
    ["2026-10-12", "1", "100.0%", "100.0%", "0.0%", ""],
    ["2026-10-19", "1", "100.0%", "0.0%", "", ""],
    ["2026-10-26", "1", "100.0%", "", "", ""],
  ]);
  // Shaded by share: 100 % darkest, with white text; 0 % palest, with dark text.
  const look = (row, col) => page.$eval(`#cohorts tbody tr:nth-child(${row}) td:nth-of-type(${col})`, (td) => [getComputedStyle(td).backgroundColor, getComputedStyle(td).color, td.title]);
  const [full, half, none] = [await look(1, 2), await look(1, 3), await look(2, 4)];
  assert.deepEqual([full[1], half[1], none[1]], ["rgb(255, 255, 255)", "rgb(255, 255, 255)", "rgb(29, 35, 48)"]);
  assert.equal(new Set([full[0], half[0], none[0]]).size, 3, JSON.stringify([full, half, none]));
  assert.equal(half[2], "1 of 2 active in week 1");
  // The API's own figures, and what it cannot count.
  const api = await (await fetch(`${collector.base}/api/v1/retention?site=demo&from=2026-10-07&to=2026-10-28`, { headers: { authorization: `Bearer ${TOKEN}` } })).json();
  assert.deepEqual(api.cohorts.map((c) => c.active), [[2, 1, 1, 1], [1, 1, 0], [1, 0], [1]]);
  assert.deepEqual((await cells("#anonymous tbody"))[0], ["2026-10-05", "2", "1", "50.0%", "1.50"]);
  const cards = await page.$$eval("#cards .card", (cs) => cs.map((c) => [c.dataset.metric, c.querySelector("b").textContent, !!c.dataset.definition]));
  assert.deepEqual(cards, [["Known users first seen", "5", true], ["Anonymous visitor-days", "2", true], ["Back the same day", "50.0%", true], ["Sessions per visitor-day", "1.50", true]]);
  assert.equal(await page.textContent("#not-counted"), `Not counted: ${api.anonymous.not_counted}`);
  assert.match(await page.textContent("#status"), /^Weeks 2026-10-05 to 2026-11-01, Monday to Sunday in UTC\.$/);
  await page.locator("main").screenshot({ path: join(artifacts, "retention-1280.png") });
  await ctx.close();
  assert.deepEqual(errors, []);
});
