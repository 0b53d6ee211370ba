// The anomaly rules (rapid, repeated, loops; rage and dead clicks) in the modern SQL dialect:
// `pathlight sql` prints them as the query API sends them, and an embedded current ClickHouse
// (chdb) answers them over sessions with known anomalies. ClickHouse 18.16 answers the same
// sessions in collector/tests/it/api.rs; bench/results/anomalies.md measures the rules on
// labelled generated traffic.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Session } from "chdb";
import { bin } from "../lib/stack.mjs";

const run = (args) => execFileSync(bin, args, { env: { PATH: process.env.PATH }, encoding: "utf8" });
const statements = (text) => text.split(/;\n/).map((s) => s.trim()).filter((s) => s.replace(/^--.*$/gm, "").trim())
  .map((s) => ({ name: (s.match(/^-- (.*)$/m) || [])[1], sql: s.replace(/^--.*$/gm, "").trim() }));

test("the anomaly rules give the known answers on current ClickHouse", () => {
  const dir = mkdtempSync(join(tmpdir(), "pathlight-chdb-anomalies-"));
  const session = new Session(join(dir, "data"));
  const rows = (sql) => session.query(sql, "JSONEachRow").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  try {
    session.query("CREATE DATABASE IF NOT EXISTS pathlight");
    session.query("USE pathlight");
    for (const { sql } of statements(run(["migrate", "--print", "modern"]))) session.query(sql);

    const day = "2026-11-10";
    const start = Date.parse(`${day}T10:00:00Z`);
    let n = 0;
    const values = [];
    // (session, ms after 10:00, kind, path with query, element or event name, tag, x, y)
    const ev = (s, ms, type, path, what = "", tag = "", x = 0, y = 0) => {
      n += 1;
      const t = start + ms;
      const [p] = path.split("?");
      const selector = type === "click" ? what : "";
      const name = type === "custom" ? what : "";
      values.push(`('demo', '00000000-0000-0000-0000-${String(n).padStart(12, "0")}', '${type}', ` +
        `toDateTime(${Math.floor(t / 1000)}, 'UTC'), ${t % 1000}, '${s}', 1, 'https://shop.example${path}', '${p}', ` +
        `'${selector}', '${tag}', '${name}', ${x}, ${y}, 1000, 1440)`);
    };
    // r: four quick close clicks on #buy (a rage burst, not repeated actions), the page's
    // help event 50 ms after one (its answer, not rapid), a click on a div, then next/back
    // three times (a loop).
    ev("r", 0, "pageview", "/pricing");
    for (const [ms, x, y] of [[1_000, 100, 200], [1_300, 105, 203], [1_600, 110, 198], [1_700, 102, 200]]) {
      ev("r", ms, "click", "/pricing", "#buy", "button", x, y);
    }
    ev("r", 1_750, "custom", "/pricing", "help");
    ev("r", 5_000, "click", "/pricing", "#hero", "div", 500, 50);
    ev("r", 6_000, "click", "/pricing", "#link", "a", 50, 50);
    ["next", "back", "next", "back", "next", "back"].forEach((name, i) => ev("r", 8_000 + 200 * i, "custom", "/pricing", name));
    // q: a click on a div followed by a page view at once: it did something, not dead.
    ev("q", 0, "pageview", "/pricing");
    ev("q", 1_000, "click", "/pricing", "#hero", "div", 10, 10);
    ev("q", 1_400, "pageview", "/checkout");
    // ...and three quick clicks near one spot, but over two pages: not a rage burst.
    ev("q", 1_500, "click", "/checkout", "#menu", "a", 12, 12);
    ev("q", 1_650, "click", "/checkout", "#menu", "a", 11, 13);
    // s: two elements clicked 40 ms apart (rapid), a label's click passed on to its checkbox
    // (not rapid), Save three times seconds apart each answered at once (repeated), three
    // products seen from the list, then back and forth to the last one (a loop of pages).
    ev("s", 0, "pageview", "/list");
    ev("s", 1_000, "click", "/list", "#a", "button", 10, 10);
    ev("s", 1_040, "click", "/list", "#b", "button", 200, 10);
    ev("s", 3_000, "click", "/list", "label.agree", "label", 10, 100);
    ev("s", 3_000, "click", "/list", "#agree", "input", 10, 100);
    for (const ms of [5_000, 7_000, 9_000]) {
      ev("s", ms, "click", "/list", "#save", "button", 300, 300);
      ev("s", ms + 5, "custom", "/list", "saved");
    }
    ["/item?id=1", "/list", "/item?id=2", "/list", "/item?id=3", "/list", "/item?id=3", "/list", "/item?id=3"]
      .forEach((path, i) => ev("s", 11_000 + 1_000 * i, "pageview", path));
    session.query(`INSERT INTO events (site_id, event_id, event_type, timestamp, timestamp_ms, session_id, visitor_id, url, path, ` +
      `selector, tag, name, x, y, document_w, viewport_w) VALUES ${values.join(", ")}`);

    const sql = Object.fromEntries(statements(run(["sql", "--params", `site=demo&from=${day}&to=${day}`])).map((q) => [q.name, q.sql]));
    const num = (r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v]));
    assert.deepEqual(rows(sql["anomalies"]).map(num), [
      { session_id: "s", events: 20, rapid: 1, repeated: 1, loops: 1 },
      { session_id: "r", events: 14, rapid: 0, repeated: 0, loops: 1 },
    ]);
    assert.deepEqual(rows(sql["rage clicks"]).map(num), [{ selector: "#buy", bursts: 1, sessions: 1, x: 110, y: 198 }]);
    assert.deepEqual(rows(sql["dead clicks"]).map(num), [{ selector: "#hero", clicks: 1, sessions: 1, x: 500, y: 50 }]);
  } finally {
    session.cleanup?.();
    rmSync(dir, { recursive: true, force: true });
  }
});
