// The Search page in Chromium, reached from the dashboard's navigation, on a site whose
// senders use a search seed's event names (`search_performed`, `item_viewed`, ...) and whose
// `[sites.search]` maps them: the events go in as such a sender sends them (the simple array
// form, from a server), and the page shows the figures the story implies. The same story's
// figures are checked on ClickHouse 18.16 (collector/tests/it/api.rs) and through chdb
// (tests/chdb/search.test.mjs).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { eventually, launchBrowser, startClickHouse, startCollector } from "../lib/stack.mjs";

const UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
const TOKEN = "search-token";
const db = "e2e_search";
const MAPPING = [
  'search_event = "search_performed"', 'click_event = "item_viewed"', 'query_property = "q"',
  'results_property = "results_count"', 'position_property = "rank"', 'item_property = "product_id"',
  'view_event = "item_viewed"', 'cart_event = "cart_add"', 'purchase_event = "order_completed"', "refinement_secs = 120",
].join(", ");
const SITES = `[{id = "shop", origins = ["*"], api_token = "${TOKEN}", search = {${MAPPING}}}]`;

// Session s searches "lamp" and opens the 2nd result, again and opens the 1st, then "unicorn"
// (no results) and at once "unicorn lamp" (a refinement). Session t searches "lamp", views an
// item from elsewhere than the results, buys it, and 90 s later searches "desk" (a refinement
// within the site's 120 s) and opens the 3rd result. (ms, type, payload)
const STORY = {
  s: [
    [0, "search_performed", { q: "lamp", results_count: 3 }],
    [100, "item_viewed", { q: "lamp", rank: 2, product_id: "L1" }],
    [300, "cart_add", { product_id: "L1" }],
    [400, "search_performed", { q: "lamp", results_count: 3 }],
    [500, "item_viewed", { q: "lamp", rank: 1, product_id: "L2" }],
    [700, "search_performed", { q: "unicorn", results_count: 0 }],
    [800, "search_performed", { q: "unicorn lamp", results_count: 2 }],
  ],
  t: [
    [0, "search_performed", { q: "lamp", results_count: 3 }],
    [100, "item_viewed", { product_id: "L1" }],
    [200, "order_completed", { product_id: "L1" }],
    [90_000, "search_performed", { q: "desk", results_count: 1 }],
    [90_100, "item_viewed", { rank: 3, product_id: "D1" }],
  ],
};

let browser, ch, collector;

before(async () => {
  browser = await launchBrowser();
  ch = await startClickHouse("search");
  collector = await startCollector({ clickhouseUrl: ch.url, db, env: { PATHLIGHT_SITES: SITES } });
  const start = Date.now() - 200_000;
  const events = Object.entries(STORY).flatMap(([session_id, evs]) =>
    evs.map(([ms, type, payload]) => ({ type, session_id, url: `https://shop.example/search`, created_at: start + ms, user_agent: UA, payload })));
  const r = await fetch(`${collector.base}/v1/batch?site=shop`, {
    method: "POST",
    headers: { "content-type": "application/json", "user-agent": UA },
    body: JSON.stringify(events),
  });
  assert.ok(r.ok, `${r.status} ${await r.text()}`);
  await eventually(async () => Number((await ch.rows(`SELECT count() AS n FROM ${db}.events`))[0].n) === events.length, 10_000, "the story stored");
});
after(async () => {
  await browser?.close();
  await collector?.stop();
});

test("the Search page, from the dashboard's navigation, shows the known figures of a mapped site", async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, userAgent: UA });
  const page = await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${collector.base}/?site=shop#token=${TOKEN}`);
  await page.waitForSelector("body[data-ready]");
  await Promise.all([page.waitForURL(/\/search\.html/), page.click("header a[href='search.html']")]);
  await page.waitForSelector("body[data-ready]");
  const cards = await page.$$eval(".card[data-metric]", (els) => els.map((e) => [e.dataset.metric, e.querySelector("b").textContent, e.querySelector("small")?.textContent ?? "", e.dataset.definition ?? ""]));
  const table = (id) => page.$$eval(`#${id} tbody tr`, (trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
  const shown = { cards: cards.map((c) => c.slice(0, 3)), queries: await table("queries"), refinements: await table("refinements"), items: await table("items") };
  const definitions = Object.fromEntries(cards.map((c) => [c[0], c[3]]));
  await ctx.close();

  assert.deepEqual(shown.cards, [
    ["Searches", "6", "in 2 sessions"],
    ["Click-through rate", "50.0%", "3 result clicks"],
    ["Zero-result rate", "16.7%", ""],
    ["Avg. clicked position", "2.0", ""],
    ["Refinement rate", "33.3%", "2 refinements"],
  ]);
  assert.deepEqual(shown.queries, [
    ["lamp", "3", "66.7%", "0.0%", "1.5", "33.3%"],
    ["desk", "1", "100.0%", "0.0%", "3.0", "0.0%"],
    ["unicorn", "1", "0.0%", "100.0%", "–", "100.0%"],
    ["unicorn lamp", "1", "0.0%", "0.0%", "–", "0.0%"],
  ]);
  assert.deepEqual(shown.refinements, [["lamp", "desk", "1"], ["unicorn", "unicorn lamp", "1"]]);
  assert.deepEqual(shown.items, [["L1", "1", "2", "1", "1"], ["D1", "1", "1", "0", "0"], ["L2", "1", "1", "0", "0"]]);
  // Each figure says what it counts: its definition from the API's OpenAPI document.
  const doc = await (await fetch(`${collector.base}/api/v1/openapi.json`)).json();
  const totals = doc.paths["/search"].get.responses["200"].content["application/json"].schema.properties.totals.properties;
  assert.equal(definitions["Click-through rate"], totals.ctr.description);
  assert.match(definitions["Refinement rate"], /^Share of searches refined/);
  assert.deepEqual(errors, []);
});

test("the Search page says so when a range has no searches", async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, userAgent: UA });
  const page = await ctx.newPage();
  await page.goto(`${collector.base}/search.html?site=shop&from=2020-01-01&to=2020-01-02#token=${TOKEN}`);
  await page.waitForSelector("body[data-ready]");
  const searches = await page.textContent(".card[data-metric='Searches'] b");
  const rows = await page.$$eval("#queries tbody tr", (trs) => trs.map((tr) => tr.textContent));
  await ctx.close();
  assert.equal(searches, "0");
  assert.deepEqual(rows, ["No searches in this range."]);
});
