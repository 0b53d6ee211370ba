// The dashboard's figures say what they are: over two weeks of generated traffic ending now,
// each figure on the dashboard in Chromium equals the API's, carries its definition from
// www/FIGURES.md as a tooltip (shown on keyboard focus, dismissed by Escape), and the
// definitions in FIGURES.md and in the API's OpenAPI document are the same text. In the charts,
// today (still counting) is drawn apart, dashed, from the complete days.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { bin, eventually, freePort, importGenerated, launchBrowser, root, startClickHouse, startCollector } from "../lib/stack.mjs";

const UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
const TOKEN = "figures-token";
const db = "e2e_figures";
let browser, ch, collector;

/** FIGURES.md's table: dashboard label → [stats field, definition]. */
const figures = new Map(
  readFileSync(join(root, "www", "FIGURES.md"), "utf8")
    .split("\n")
    .map((l) => l.match(/^\| ([^|`]+) \| `([a-z_.]+)` \| (.+) \|$/))
    .filter(Boolean)
    .map(([, label, field, text]) => [label, [field, text]]),
);

before(async () => {
  browser = await launchBrowser();
  ch = await startClickHouse("figures");
  const demoPort = await freePort();
  const sites = `[{id = "demo", origins = ["http://127.0.0.1:${demoPort}"], api_token = "${TOKEN}"}]`;
  collector = await startCollector({ clickhouseUrl: ch.url, db, demoPort, env: { PATHLIGHT_SITES: sites } });
  importGenerated({ clickhouseUrl: ch.url, db, sites, demoOrigin: collector.demo });
  // And visitors now, so that today has figures of its own.
  execFileSync(bin, ["gen", "--to", `${collector.base}/v1/batch`, "--rate", "100", "--seconds", "2", "--base-url", `${collector.demo}/demo/`], {
    env: { PATH: process.env.PATH, PATHLIGHT_LOG: "warn" },
    stdio: ["ignore", "ignore", "inherit"],
  });
  await eventually(async () => Number((await ch.rows(`SELECT count() AS n FROM ${db}.events WHERE toDate(timestamp) = today() AND is_bot = 0`))[0].n) > 0, 10_000, "events today");
});
after(async () => {
  await browser?.close();
  await collector?.stop();
});

test("FIGURES.md and the OpenAPI document define every stats figure with the same text", async () => {
  assert.ok(figures.size >= 20, [...figures.keys()].join(", "));
  const doc = await (await fetch(`${collector.base}/api/v1/openapi.json`)).json();
  const props = doc.paths["/stats"].get.responses["200"].content["application/json"].schema.properties;
  for (const [label, [field, text]] of figures) {
    const [a, b] = field.split(".");
    const described = (b ? props[a]?.properties?.[b] : props[a])?.description;
    assert.equal(described, text, `${label} (${field})`);
  }
});

test("the dashboard's figures equal the API's, each with its definition as a tooltip", async () => {
  const stats = await (await fetch(`${collector.base}/api/v1/stats?site=demo`, { headers: { authorization: `Bearer ${TOKEN}` } })).json();
  // Two weeks of traffic in a 30-day range: the days before it are not averaged.
  assert.ok(stats.active.days >= 13 && stats.active.days <= 14 && stats.active.today, JSON.stringify(stats.active));
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, userAgent: UA });
  const page = await ctx.newPage();
  await page.goto(`${collector.base}/?site=demo#token=${TOKEN}`);
  await page.waitForSelector("body[data-ready]");
  const shown = await page.$$eval(".card[data-metric], h3", (els) =>
    els.map((e) => ({
      label: e.dataset.metric ?? e.firstChild.textContent,
      value: e.querySelector("b")?.textContent,
      definition: e.dataset.definition ?? null,
      tip: document.getElementById(e.getAttribute("aria-describedby"))?.textContent ?? null,
    })),
  );
  const plain = (t) => t.replaceAll("`", "");
  const explained = shown.filter((s) => figures.has(s.label));
  assert.deepEqual(explained.map((s) => s.label).sort(), [...figures.keys()].sort(), "every figure of FIGURES.md is on the dashboard");
  for (const s of explained) {
    const text = plain(figures.get(s.label)[1]);
    assert.deepEqual([s.definition, s.tip], [text, text], s.label);
  }
  const unexplained = shown.filter((s) => !figures.has(s.label)).map((s) => s.label);
  assert.deepEqual(unexplained, ["Funnel", "Anomalies", "Live"], "the figures not from stats (their own endpoints)");

  const value = Object.fromEntries(explained.filter((s) => s.value != null).map((s) => [s.label, s.value]));
  // Distinct counts from the traffic mart are marked approximate.
  assert.equal(stats.approximate, true);
  const approx = (v) => "≈ " + v;
  // Grouped digits (Chromium's locale here is en-US); an average of 100 or more is whole.
  const whole = (v) => v.toLocaleString("en-US", { maximumFractionDigits: 0 });
  const avg = (v) => (v >= 100 ? whole(v) : v.toFixed(1));
  assert.deepEqual(value, {
    Visitors: approx(whole(stats.visitors)),
    Sessions: approx(whole(stats.sessions)),
    "Page views": whole(stats.pageviews),
    "Avg. session": `${stats.avg_session_secs.toFixed(1)} s`,
    "Bounce rate": `${(stats.bounce_rate * 100).toFixed(0)}%`,
    "DAU (avg.)": approx(avg(stats.active.dau)),
    "WAU (avg.)": approx(avg(stats.active.wau)),
    "MAU (avg.)": approx(avg(stats.active.mau)),
    "Active today so far": approx(whole(stats.active.today.dau)),
    Undelivered: `${stats.undelivered.failed} late · ${stats.undelivered.dropped} lost`,
  });
  assert.ok(stats.active.dau > 0 && stats.active.dau < stats.active.wau && stats.active.wau <= stats.active.mau, JSON.stringify(stats.active));

  // The tooltip: shown on keyboard focus, hidden by Escape, hidden again when focus moves on.
  const tip = (label) => page.$eval(`.card[data-metric="${label}"] .tip`, (t) => getComputedStyle(t).display);
  assert.equal(await tip("DAU (avg.)"), "none");
  await page.focus('.card[data-metric="DAU (avg.)"]');
  assert.equal(await tip("DAU (avg.)"), "block");
  await page.keyboard.press("Escape");
  assert.equal(await tip("DAU (avg.)"), "none");
  await page.keyboard.press("Tab");
  assert.equal(await tip("WAU (avg.)"), "block");

  // Charts: complete days solid, today dashed from the last complete day on.
  const charts = await page.evaluate(() =>
    Object.fromEntries(["chart", "activeChart"].map((k) => {
      const c = window.pl[k];
      return [k, c.series.slice(1).map((s, i) => ({ label: s.label, dashed: Boolean(s.dash), data: Array.from(c.data[i + 1]) }))];
    })),
  );
  await ctx.close();
  const expect = (rows, lines) => {
    const last = rows.findLastIndex((r) => r.complete);
    return [
      ...lines.map(([key, label]) => ({ label, dashed: false, data: rows.map((r) => (r.complete ? r[key] : null)) })),
      ...lines.map(([key, label]) => ({ label: `${label}, today so far`, dashed: true, data: rows.map((r, i) => (!r.complete || i === last ? r[key] : null)) })),
    ];
  };
  assert.deepEqual(stats.series.map((d) => d.complete), stats.series.map((_, i) => i < stats.series.length - 1), "today last, still counting");
  assert.deepEqual(charts.chart, expect(stats.series, [["pageviews", "Page views"], ["visitors", "Visitors"]]));
  assert.equal(stats.active.series.length, 30);
  assert.deepEqual(charts.activeChart, expect(stats.active.series, [["dau", "DAU"], ["wau", "WAU"], ["mau", "MAU"]]));
});
