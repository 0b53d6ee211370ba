// Search analytics' SQL (`pathlight sql`: "search totals", "search queries", "search
// refinements", "search items"), run on current ClickHouse (chdb) over the modern schema, for
// a site with the default event names and for one whose `[sites.search]` names them as a
// search seed does: the known figures of the same story told in both namings. ClickHouse 18.16
// answers the same story through the API in collector/tests/it/api.rs
// (search_analytics_have_the_known_answers_with_default_and_mapped_names).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Session } from "chdb";
import { bin } from "../lib/stack.mjs";

const DAY = "2026-11-10";
// One line: TOML's inline tables cannot span lines.
const SITES = `[{id = "demo"}, {id = "shop", search = {${[
  'search_event = "search_performed"', 'click_event = "item_viewed"', 'query_property = "q"', 'results_property = "results_count"',
  'position_property = "rank"', 'item_property = "product_id"', 'view_event = "item_viewed"', 'cart_event = "cart_add"',
  'purchase_event = "order_completed"', "refinement_secs = 120",
].join(", ")}}}]`;

/** The analytics queries of `site` for DAY, by name, as `pathlight sql` prints them. */
function queries(site) {
  const text = execFileSync(bin, ["sql", "--params", `site=${site}&from=${DAY}&to=${DAY}`], {
    env: { PATH: process.env.PATH, PATHLIGHT_LOG: "warn", PATHLIGHT_SITES: SITES },
    encoding: "utf8",
  });
  return Object.fromEntries(text.split(/;\n/).map((s) => s.trim()).filter(Boolean)
    .map((s) => [(s.match(/^-- (.*)$/m) || [])[1], s.replace(/^--.*$/gm, "").trim()]));
}

// Session s searches "lamp" and clicks the 2nd result, again and clicks the 1st, then
// "unicorn" (no results) and at once "unicorn lamp" (a refinement). Session t searches "lamp",
// views an item without clicking a result, buys it, 90 s later searches "desk" (a refinement
// within 120 s only) and clicks the 3rd result (a position, no query). (ms, path, name, props)
const DEFAULT = {
  s: [
    [0, "search", { query: "lamp", results: 3 }],
    [100, "search_result_click", { query: "lamp", position: 2, item_id: "L1" }],
    [200, "view_item", { item_id: "L1" }],
    [300, "add_to_cart", { item_id: "L1" }],
    [400, "search", { query: "lamp", results: 3 }],
    [500, "search_result_click", { query: "lamp", position: 1, item_id: "L2" }],
    [600, "view_item", { item_id: "L2" }],
    [700, "search", { query: "unicorn", results: 0 }],
    [800, "search", { query: "unicorn lamp", results: 2 }],
  ],
  t: [
    [0, "search", { query: "lamp", results: 3 }],
    [100, "view_item", { item_id: "L1" }],
    [200, "purchase", { item_id: "L1" }],
    [90_000, "search", { query: "desk", results: 1 }],
    [90_100, "search_result_click", { position: 3, item_id: "D1" }],
    // Neither query nor position: not taken for a result click.
    [90_200, "search_result_click", { item_id: "D2" }],
  ],
};
const SEED = {
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

const query = (q, searches, clicks, ctr, avg_position, zero, refined) =>
  ({ query: q, searches, clicks, ctr, avg_position, zero_result_rate: zero, refinement_rate: refined });
const QUERIES = (lampRefined) => [
  query("lamp", 3, 2, 2 / 3, 1.5, 0, lampRefined),
  query("desk", 1, 1, 1, 3, 0, 0),
  query("unicorn", 1, 0, 0, null, 1, 1),
  query("unicorn lamp", 1, 0, 0, null, 0, 0),
];
const item = (id, from_search, views, carts, purchases) =>
  [id, from_search, views, carts, purchases, views ? carts / views : 0, views ? purchases / views : 0];

test("search analytics give the known figures on current ClickHouse, with default and mapped names", () => {
  const dir = mkdtempSync(join(tmpdir(), "pathlight-chdb-search-"));
  const session = new Session(join(dir, "data"));
  const rows = (sql) => session.query(sql, "JSONEachRow").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  try {
    session.query("CREATE DATABASE IF NOT EXISTS pathlight");
    session.query("USE pathlight");
    const migrations = execFileSync(bin, ["migrate", "--print", "modern"], { env: { PATH: process.env.PATH }, encoding: "utf8" });
    for (const sql of migrations.split(/;\n/).map((s) => s.replace(/^--.*$/gm, "").trim()).filter(Boolean)) session.query(sql);
    let n = 0;
    const values = [];
    for (const [site, story] of [["demo", DEFAULT], ["shop", SEED]]) {
      for (const [sid, events] of Object.entries(story)) {
        for (const [ms, name, props] of events) {
          n += 1;
          const id = `00000000-0000-0000-0000-${String(n).padStart(12, "0")}`;
          const json = JSON.stringify(props).replaceAll("'", "\\'");
          values.push(`('${site}', '${id}', 'custom', toDateTime('${DAY} 10:00:00', 'UTC') + ${Math.floor(ms / 1000)}, ${ms % 1000}, '${sid}', 1, '/search', '${name}', '${json}')`);
        }
      }
    }
    session.query(`INSERT INTO events (site_id, event_id, event_type, timestamp, timestamp_ms, session_id, visitor_id, path, name, props) VALUES ${values.join(", ")}`);

    const answers = (site) => {
      const sql = queries(site);
      const num = (r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === "string" && k !== "query" && /^\d+$/.test(v) ? Number(v) : v]));
      return {
        totals: rows(sql["search totals"]).map(num),
        queries: rows(sql["search queries"]).map(num),
        refinements: rows(sql["search refinements"]).map((r) => Object.values(r).map((v, i) => (i === 2 ? Number(v) : v))),
        items: rows(sql["search items"]).map((r) => Object.values(r).map((v, i) => (i === 0 ? v : Number(v)))),
      };
    };
    // avg_position without any position: NaN from ClickHouse (0 / 0), null in the API's JSON.
    const nulled = (qs) => qs.map((q) => ({ ...q, avg_position: Number.isNaN(q.avg_position) || q.avg_position === "nan" ? null : q.avg_position }));

    const demo = answers("demo");
    assert.deepEqual(demo.totals, [{ searches: 6, sessions: 2, clicks: 3, ctr: 0.5, avg_position: 2, zero_result_rate: 1 / 6, refinements: 1, refinement_rate: 1 / 6 }]);
    assert.deepEqual(nulled(demo.queries), QUERIES(0));
    assert.deepEqual(demo.refinements, [["unicorn", "unicorn lamp", 1]]);
    assert.deepEqual(demo.items, [item("L1", 1, 2, 1, 1), item("L2", 1, 1, 0, 0), item("D1", 1, 0, 0, 0), item("D2", 0, 0, 0, 0)]);

    // The seed's names, through the site's mapping; its 120 s window makes "lamp" then "desk" a
    // refinement.
    const shop = answers("shop");
    assert.deepEqual(shop.totals, [{ searches: 6, sessions: 2, clicks: 3, ctr: 0.5, avg_position: 2, zero_result_rate: 1 / 6, refinements: 2, refinement_rate: 1 / 3 }]);
    assert.deepEqual(nulled(shop.queries), QUERIES(1 / 3));
    assert.deepEqual(shop.refinements, [["lamp", "desk", 1], ["unicorn", "unicorn lamp", 1]]);
    assert.deepEqual(shop.items, [item("L1", 1, 2, 1, 1), item("D1", 1, 1, 0, 0), item("L2", 1, 1, 0, 0)]);
  } finally {
    session.cleanup?.();
    rmSync(dir, { recursive: true, force: true });
  }
});
