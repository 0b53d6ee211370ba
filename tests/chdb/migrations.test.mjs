// The modern SQL dialect, run for real: every migration `pathlight migrate --print modern`
// emits is executed by an embedded current ClickHouse (chdb), and the resulting table is
// checked to behave as the collector relies on (dedup by event id, TTL, LowCardinality).
// ClickHouse 18.16 runs the legacy dialect in collector/tests/it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Session } from "chdb";
import { bin } from "../lib/stack.mjs";


function migrationSql(env = {}) {
  const out = execFileSync(bin, ["migrate", "--print", "modern"], {
    env: { PATH: process.env.PATH, ...env },
    encoding: "utf8",
  });
  return out
    .split(/;\n/)
    .map((s) => s.replace(/^--.*$/gm, "").trim())
    .filter(Boolean);
}

function withSession(fn) {
  const dir = mkdtempSync(join(tmpdir(), "pathlight-chdb-"));
  const session = new Session(dir);
  const q = (sql, fmt = "JSONEachRow") => session.query(sql, fmt);
  const rows = (sql) => q(sql).split("\n").filter(Boolean).map((l) => JSON.parse(l));
  try {
    q("CREATE DATABASE IF NOT EXISTS pathlight");
    q("USE pathlight");
    return fn({ q, rows });
  } finally {
    session.cleanup?.();
    rmSync(dir, { recursive: true, force: true });
  }
}

test("the server version parses as a modern dialect", () => {
  withSession(({ rows }) => {
    const [{ v }] = rows("SELECT version() AS v");
    const [major] = v.split(".").map(Number);
    assert.ok(major >= 24, `embedded ClickHouse ${v}`);
  });
});

test("every modern migration runs and the events table behaves", () => {
  const statements = migrationSql({ PATHLIGHT_CLICKHOUSE__RETENTION_DAYS: "400" });
  assert.ok(statements.some((s) => s.includes("LowCardinality(String)")), "modern types used");
  assert.ok(statements.some((s) => s.includes("TTL timestamp + INTERVAL 400 DAY")), "TTL used");
  withSession(({ q, rows }) => {
    for (const sql of statements) q(sql);
    // Migrations are idempotent: a second run changes nothing.
    for (const sql of statements) q(sql);

    const cols = rows(
      "SELECT name, type FROM system.columns WHERE database = 'pathlight' AND table = 'events'",
    );
    const type = Object.fromEntries(cols.map((c) => [c.name, c.type]));
    assert.equal(type.site_id, "LowCardinality(String)");
    assert.equal(type.event_id, "UUID");
    assert.match(type.event_type, /^Enum8\('pageview' = 1, 'click' = 2/);
    assert.equal(type.rel_x, "Float32");

    const [{ sorting_key, partition_key, engine }] = rows(
      "SELECT sorting_key, partition_key, engine FROM system.tables WHERE database = 'pathlight' AND name = 'events'",
    );
    assert.equal(engine, "ReplacingMergeTree");
    assert.equal(sorting_key, "site_id, event_type, toDate(timestamp), path, event_id");
    assert.equal(partition_key, "toYYYYMM(timestamp)");

    // The same event twice (a retried beacon) and another one.
    const now = Math.floor(Date.now() / 1000);
    const row = (id, received) =>
      `('demo', '${id}', 'click', ${now}, 250, ${received}, '/pricing', 640, 1187, 0.25, 0.5, '#buy')`;
    const cols10 = "site_id, event_id, event_type, timestamp, timestamp_ms, received_at, path, x, y, rel_x, rel_y, selector";
    q(`INSERT INTO events (${cols10}) VALUES ${row("01010101-0101-0101-0101-010101010101", now)}`);
    q(`INSERT INTO events (${cols10}) VALUES ${row("01010101-0101-0101-0101-010101010101", now + 5)}`);
    q(`INSERT INTO events (${cols10}) VALUES ${row("02020202-0202-0202-0202-020202020202", now)}`);
    const [{ n }] = rows("SELECT count() AS n FROM events FINAL");
    assert.equal(Number(n), 2);
    q("OPTIMIZE TABLE events FINAL");
    const [{ all }] = rows("SELECT count() AS all FROM events");
    assert.equal(Number(all), 2);

    const [m] = rows("SELECT max(version) AS v FROM schema_migrations");
    assert.equal(Number(m.v), 0, "printing SQL records nothing; `migrate` records versions");
  });
});

// `identify` (storage/clickhouse/users.rs): one row per identify, the latest of a site's user
// winning, before a merge (argMax, as readers ask) and after it (ReplacingMergeTree).
test("the users table keeps each user's latest traits", () => {
  withSession(({ q, rows }) => {
    for (const sql of migrationSql()) q(sql);
    const [{ engine, sorting_key }] = rows(
      "SELECT engine, sorting_key FROM system.tables WHERE database = 'pathlight' AND name = 'users'",
    );
    assert.equal(engine, "ReplacingMergeTree");
    assert.equal(sorting_key, "site_id, user_id");
    const add = (site, user, traits, ms) =>
      q(`INSERT INTO users (site_id, user_id, traits, updated_ms) VALUES ('${site}', '${user}', '${JSON.stringify(traits)}', ${ms})`);
    add("shop", "u1", { plan: "pro" }, 2000);
    add("shop", "u1", { plan: "free" }, 1000); // arrived later, said earlier: loses
    add("shop", "u2", { plan: "team" }, 1500);
    add("blog", "u1", { plan: "reader" }, 3000);
    const latest = () =>
      rows("SELECT site_id, user_id, argMax(traits, updated_ms) AS t FROM users GROUP BY site_id, user_id ORDER BY site_id, user_id")
        .map((r) => [r.site_id, r.user_id, JSON.parse(r.t).plan]);
    const expected = [["blog", "u1", "reader"], ["shop", "u1", "pro"], ["shop", "u2", "team"]];
    assert.deepEqual(latest(), expected);
    q("OPTIMIZE TABLE users FINAL");
    const [{ n }] = rows("SELECT count() AS n FROM users");
    assert.equal(Number(n), 3, "one row per site and user once merged");
    assert.deepEqual(latest(), expected);
  });
});

// The collector and the edge worker send `max_partitions_per_insert_block = 0` with every
// insert on servers since 19.5 (pathlight_ingest::insert_settings). Without it a current server
// refuses an insert whose events span more than 100 months with code 252, which the retry
// rules must treat as an overload ("too many parts"), so a spool segment holding one such
// request would be retried for ever.
test("an insert spanning 101 months needs the collector's insert settings, marts included", () => {
  withSession(({ q, rows }) => {
    // Without a retention TTL, which would drop the older months as they are written.
    for (const sql of migrationSql({ PATHLIGHT_CLICKHOUSE__RETENTION_DAYS: "0" })) q(sql);
    const cols = "site_id, event_id, event_type, timestamp, received_at, path, x, y, document_w, viewport_w, selector";
    const values = Array.from({ length: 101 }, (_, i) => {
      const id = `00000000-0000-0000-0000-${String(i).padStart(12, "0")}`;
      const ts = `toDateTime('2016-01-15 12:00:00') + toIntervalMonth(${i})`;
      return `('demo', '${id}', 'click', ${ts}, now(), '/p', 10, 20, 1000, 1280, '#b')`;
    }).join(", ");
    assert.throws(
      () => q(`INSERT INTO events (${cols}) VALUES ${values}`),
      /TOO_MANY_PARTS|252|Too many partitions/,
      "the server's own limit refuses it",
    );
    q(`INSERT INTO events (${cols}) SETTINGS max_partitions_per_insert_block = 0 VALUES ${values}`);
    const [{ n, months }] = rows(
      "SELECT count() AS n, uniqExact(toYYYYMM(timestamp)) AS months FROM events",
    );
    assert.equal(Number(n), 101);
    assert.equal(Number(months), 101);
    const [{ clicks }] = rows("SELECT sum(clicks) AS clicks FROM heatmap_clicks");
    assert.equal(Number(clicks), 101, "the marts' views took the same insert");
  });
});

// Sites and keys managed in the product (storage/clickhouse/sites.rs): the latest version of a
// row wins, except that a key's revocation, whose version carries the top bit, outranks a
// "last used" write made later by a collector that had not heard of it, before a merge (FINAL,
// as every collector reads them) and after.
test("a key's revocation outranks a later last-used write, merged or not", () => {
  withSession(({ q, rows }) => {
    for (const sql of migrationSql()) q(sql);
    for (const table of ["sites", "api_keys"]) {
      const [{ engine, sorting_key }] = rows(
        `SELECT engine, sorting_key FROM system.tables WHERE database = 'pathlight' AND name = '${table}'`,
      );
      assert.deepEqual([engine, sorting_key], ["ReplacingMergeTree", "id"], table);
    }
    const key = (version, revoked, lastUsed) =>
      q(`INSERT INTO api_keys (id, site, kind, scopes, sha256, last_used_at, revoked, version) VALUES ('k1', 'shop', 'read', ['stats'], 'ab', ${lastUsed}, ${revoked}, ${version})`);
    key(1000, 0, 0);
    key(2000n | (1n << 63n), 1, 0); // revoked at 2000
    key(3000, 0, 3000); // last used at 3000, by a collector that had not heard of it
    const read = () =>
      rows("SELECT revoked, last_used_at, scopes FROM api_keys FINAL WHERE id = 'k1'")
        .map((r) => ({ ...r, last_used_at: Number(r.last_used_at) }));
    const revoked = [{ revoked: 1, last_used_at: 0, scopes: ["stats"] }];
    assert.deepEqual(read(), revoked);
    q("OPTIMIZE TABLE api_keys FINAL");
    assert.deepEqual(read(), revoked);
    q("INSERT INTO sites (id, origins, timezone, version) VALUES ('shop', ['https://shop.example'], 'Europe/Berlin', 1)");
    q("INSERT INTO sites (id, origins, timezone, version, removed) VALUES ('shop', ['https://shop.example'], 'Europe/Berlin', 2, 1)");
    assert.deepEqual(rows("SELECT removed FROM sites FINAL"), [{ removed: 1 }]);
  });
});

// Roles, invitations and shared links (storage/clickhouse/access.rs): each change is a new row
// version, and every collector reads the tables `FINAL`, which must give each key's latest.
test("memberships, invitations and shares keep each key's latest version", () => {
  withSession(({ q, rows }) => {
    for (const sql of migrationSql()) q(sql);
    const tables = rows(
      "SELECT name, engine, sorting_key FROM system.tables WHERE database = 'pathlight' AND name IN ('memberships', 'invitations', 'shares') ORDER BY name",
    ).map((t) => [t.name, t.engine, t.sorting_key]);
    assert.deepEqual(tables, [
      ["invitations", "ReplacingMergeTree", "id"],
      ["memberships", "ReplacingMergeTree", "site, account_id"],
      ["shares", "ReplacingMergeTree", "id"],
    ]);
    const member = (site, account, role, version, removed) =>
      q(`INSERT INTO memberships VALUES ('${site}', '${account}', '${role}', ${version}, ${removed})`);
    member("shop", "a1", "viewer", 1, 0);
    member("shop", "a1", "admin", 3, 0);
    member("shop", "a1", "editor", 2, 0); // arrived later, changed earlier: loses
    member("blog", "a1", "viewer", 1, 0);
    member("blog", "a1", "viewer", 4, 1);
    const latest = () =>
      rows("SELECT site, role, removed FROM memberships FINAL ORDER BY site").map((r) => [r.site, r.role, r.removed]);
    const expected = [["blog", "viewer", 1], ["shop", "admin", 0]];
    assert.deepEqual(latest(), expected);
    q("OPTIMIZE TABLE memberships FINAL");
    assert.deepEqual(latest(), expected);
    q("INSERT INTO shares (id, site, kind, revoked, version) VALUES ('s1', 'shop', 'dashboard', 0, 1), ('s1', 'shop', 'dashboard', 1, 2)");
    const [share] = rows("SELECT revoked FROM shares FINAL WHERE expires_at = 0 OR expires_at > 5");
    assert.equal(share.revoked, 1);
  });
});
