// The edge worker (issue 5) in workerd through miniflare, against a real ClickHouse 18.16 and
// the real collector binary: queue delivery with Cloudflare's request data, retries while
// ClickHouse is away, poison to the dead-letter queue, the collector's answers to bad input,
// identical rows from the wire fixtures, a gzipped v2 batch as the tracker sends it, the
// configured session timeout, direct mode's refusal on 18.x, relay mode, and identify in each
// mode.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, request } from "node:http";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { after, before, test } from "node:test";
import { SITES, startWorker } from "../lib/edge.mjs";
import { eventually, root, startClickHouse, startCollector } from "../lib/stack.mjs";

const UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const CF = { country: "de", regionCode: "BE", city: "Berlin", asn: 3320, colo: "TXL" };
const IP = "203.0.113.9";
const fixture = (name) => readFileSync(join(root, "wire", "tests", "fixtures", name));
const cbor = (body, extra = {}) => ({
  method: "POST",
  body,
  headers: { "content-type": "application/cbor", "user-agent": UA, "cf-connecting-ip": IP, ...extra },
  cf: CF,
});

let ch;
const open = [];
before(async () => {
  ch = await startClickHouse("edge");
});
after(async () => {
  for (const s of open.reverse()) await s.stop();
});

const migrate = (db) => ch.migrate(db);

async function worker(vars) {
  const w = await startWorker(vars);
  open.push(w);
  return w;
}

async function collector(db, env = {}) {
  const sites = SITES.map((s) => `{id = ${JSON.stringify(s.id)}, origins = ${JSON.stringify(s.origins)}}`).join(", ");
  const c = await startCollector({
    clickhouseUrl: ch.url,
    db,
    env: {
      PATHLIGHT_SITES: `[${sites}]`,
      PATHLIGHT_CLIENT_IP_HEADER: "cf-connecting-ip",
      PATHLIGHT_COUNTRY_HEADER: "cf-ipcountry",
      ...env,
    },
  });
  open.push(c);
  return c;
}

const count = async (db) => Number((await ch.rows(`SELECT count() AS n FROM ${db}.events`))[0].n);

test("a CBOR batch goes through the queue into ClickHouse with Cloudflare's request data", async () => {
  migrate("edge_queue");
  const w = await worker({ CLICKHOUSE_URL: ch.url, CLICKHOUSE_DATABASE: "edge_queue" });
  const r = await w.fetch("/v1/batch", cbor(fixture("typical.cbor"), { origin: "https://shop.example" }));
  assert.equal(r.status, 204, await r.text());
  assert.equal(r.headers.get("access-control-allow-origin"), "https://shop.example");
  await eventually(async () => (await count("edge_queue")) === 5, 15_000, "5 rows");
  const rows = await ch.rows(
    "SELECT DISTINCT country, region, city, asn, colo, browser, toString(device) AS device, is_bot FROM edge_queue.events",
  );
  assert.deepEqual(rows, [
    { country: "DE", region: "BE", city: "Berlin", asn: 3320, colo: "TXL", browser: "Chrome", device: "desktop", is_bot: 0 },
  ]);
  // The address went into the visitor hash only.
  const text = JSON.stringify(await ch.rows("SELECT * FROM edge_queue.events"));
  assert.ok(!text.includes(IP));
});

test("while ClickHouse is away, queued batches are retried and delivered once", async () => {
  migrate("edge_retry");
  // A TCP proxy in front of ClickHouse that refuses every connection while `down`.
  let down = false;
  const target = new URL(ch.url);
  const proxy = createServer((req, res) => {
    const up = request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  proxy.on("connection", (s) => down && s.destroy());
  await new Promise((r) => proxy.listen(0, "127.0.0.1", r));
  open.push({ stop: () => new Promise((r) => proxy.close(r)) });
  const w = await worker({ CLICKHOUSE_URL: `http://127.0.0.1:${proxy.address().port}`, CLICKHOUSE_DATABASE: "edge_retry" });
  down = true;
  for (const name of ["typical.cbor", "unicode.cbor"]) {
    const r = await w.fetch("/v1/batch", cbor(fixture(name)));
    assert.equal(r.status, 204, "accepted at the edge while storage is away");
  }
  // Retries fail for a while (the first retry waits RETRY_DELAY_SECONDS = 1).
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal(await count("edge_retry"), 0);
  down = false;
  await eventually(async () => (await count("edge_retry")) === 10, 30_000, "10 rows after ClickHouse is back");
  await new Promise((r) => setTimeout(r, 2000));
  const [{ n, ids }] = await ch.rows("SELECT count() AS n, uniqExact(site_id, event_id) AS ids FROM edge_retry.events");
  assert.deepEqual([Number(n), Number(ids)], [10, 10], "each event once");
  assert.deepEqual(await w.deadLetters(), []);
});

test("poison ends in the dead-letter queue; good messages beside it are stored", async () => {
  migrate("edge_poison");
  const w = await worker({ CLICKHOUSE_URL: ch.url, CLICKHOUSE_DATABASE: "edge_poison" });
  // Not a Pathlight message, and a header promising a row that is not there.
  const lies = new Uint8Array([..."PL1"].map((c) => c.charCodeAt(0)).concat([1, 0, 0, 0]));
  await w.enqueue(new TextEncoder().encode("garbage"));
  await w.enqueue(lies);
  const r = await w.fetch("/v1/batch", cbor(fixture("typical.cbor")));
  assert.equal(r.status, 204);
  const dead = await eventually(async () => {
    const d = await w.deadLetters();
    return d.length === 2 && d;
  }, 20_000, "2 dead letters");
  assert.deepEqual(dead.map((d) => d.body.length).sort(), [7, 7]);
  await eventually(async () => (await count("edge_poison")) === 5, 15_000, "the good batch's 5 rows");

  // Rows ClickHouse refuses for good (here: no events table in that database) are
  // dead-lettered as they came, so they can be replayed once the cause is fixed.
  await ch.exec("CREATE DATABASE IF NOT EXISTS edge_poison_no_table");
  const broken = await worker({ CLICKHOUSE_URL: ch.url, CLICKHOUSE_DATABASE: "edge_poison_no_table" });
  assert.equal((await broken.fetch("/v1/batch", cbor(fixture("unicode.cbor")))).status, 204);
  const [refused] = await eventually(async () => {
    const d = await broken.deadLetters();
    return d.length === 1 && d;
  }, 20_000, "the refused message in the dead-letter queue");
  await w.enqueue(new Uint8Array(refused.body));
  await eventually(async () => (await count("edge_poison")) === 10, 15_000, "the replayed message's 5 rows");
});

test("bad input gets the collector's statuses and JSON reasons", async () => {
  migrate("edge_bad");
  const c = await collector("edge_bad_collector");
  const w = await worker({ CLICKHOUSE_URL: ch.url, CLICKHOUSE_DATABASE: "edge_bad" });
  const json = (body, extra = {}) => ({ method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json", ...extra } });
  const typical = JSON.parse(fixture("typical.json"));
  const oneBad = structuredClone(typical);
  oneBad.events[2].url = "";
  const allBad = structuredClone(typical);
  allBad.events = allBad.events.map((e) => ({ ...e, url: "" }));
  // Event 1 of the typical batch (the click, id 1×16) as a kind neither side knows.
  const newer = new Uint8Array(fixture("typical.cbor"));
  const start = [0x00, 0x02, 0x01, 0x50, ...new Array(16).fill(1)];
  const at = newer.findIndex((_, i) => start.every((b, j) => newer[i + j] === b));
  assert.ok(at > 0, "the click's kind in the fixture");
  newer[at + 1] = 0x06;
  const badCrc = gzipSync(fixture("typical.v2.cbor"));
  badCrc[badCrc.length - 8] ^= 1;
  // An hour ago: within both's retention window (PATHLIGHT_RETENTION_DAYS, retention_days).
  const hourAgo = Date.now() - 3_600_000;
  const simple = [
    { type: "view", url: "/a", created_at: hourAgo },
    { type: "click", url: "/a", created_at: hourAgo + 1000, payload: { x: "445", y: 1 } },
  ];
  // Older than the default window of 400 days, and more than a day ahead.
  const outOfWindow = [
    { type: "view", url: "/a", created_at: Date.now() - 500 * 86_400_000 },
    { type: "view", url: "/a", created_at: Date.now() + 2 * 86_400_000 },
  ];
  const cases = {
    "an event of an unknown kind": cbor(newer),
    "a field of the wrong type in the simple form": { ...json(simple), path: "/v1/batch?site=demo" },
    "events out of the retention window": { ...json(outOfWindow), path: "/v1/batch?site=demo" },
    "unsupported content type": { method: "POST", body: "x", headers: { "content-type": "text/html" } },
    "said gzip but is not": cbor(fixture("typical.cbor"), { "content-encoding": "gzip" }),
    "a compression neither inflates": cbor(fixture("typical.cbor"), { "content-encoding": "br" }),
    // 16 MiB of zeros in 16 KB: refused once past the 512 KiB of a batch.
    "zip bomb": cbor(gzipSync(new Uint8Array(16 << 20))),
    "gzip with a wrong CRC-32": cbor(badCrc),
    "declared too large": { method: "POST", body: new Uint8Array(600 * 1024), headers: { "content-type": "application/cbor" } },
    "truncated CBOR": cbor(fixture("typical.cbor").subarray(0, 100)),
    "not CBOR": cbor(new Uint8Array([0xff, 0x00, 0x13])),
    "empty body": cbor(new Uint8Array()),
    "malformed JSON": { method: "POST", body: "{\"version\":1,", headers: { "content-type": "application/json" } },
    "unknown site": json({ ...typical, site_id: "nope" }),
    "origin not allowed": json(typical, { origin: "https://evil.example" }),
    "every event bad": json(allBad),
    "one event bad": json(oneBad),
    "site parameter disagrees": { ...cbor(fixture("typical.cbor")), path: "/v1/batch?site=other" },
    "simple array without site": json([{ type: "pageview", url: "https://shop.example/" }]),
  };
  for (const [name, init] of Object.entries(cases)) {
    const path = init.path || "/v1/batch";
    const { path: _, cf, ...rest } = init;
    const [a, b] = await Promise.all([
      fetch(`${c.base}${path}`, rest),
      w.fetch(path, { ...rest, cf: cf || CF }),
    ]);
    const [ta, tb] = [await a.text(), await b.text()];
    assert.equal(b.status, a.status, `${name}: status (collector said ${ta}, worker ${tb})`);
    assert.ok(a.status >= 200 && a.status < 500 && a.status !== 204, `${name}: a refusal (${a.status})`);
    const [ja, jb] = [JSON.parse(ta), JSON.parse(tb)];
    if (name === "declared too large") {
      // The collector refuses from Content-Length; the worker's runtime may stream the body,
      // so only the reason is compared, not the size in the message.
      assert.equal(jb.reason, ja.reason, name);
    } else {
      assert.deepEqual(jb, ja, `${name}: body`);
    }
    if (name === "events out of the retention window") assert.equal(jb.reason, "too_old", tb);
    const gzipReasons = {
      "said gzip but is not": [400, "corrupt_gzip"],
      "a compression neither inflates": [415, "unsupported_encoding"],
      "zip bomb": [413, "inflated_too_large"],
      "gzip with a wrong CRC-32": [400, "corrupt_gzip"],
    };
    if (gzipReasons[name]) assert.deepEqual([b.status, jb.reason], gzipReasons[name], tb);
  }
  // A body streamed without a Content-Length passes the length precheck: the worker reads it
  // chunk by chunk and refuses it once past the limit, without reading the rest. (The
  // collector does the same, then closes the connection, which a client still writing a
  // half-duplex fetch sees as EPIPE rather than the answer, so it is not asked here.)
  const streamed = await w.fetch("/v1/batch", {
    method: "POST",
    duplex: "half",
    headers: { "content-type": "application/cbor" },
    cf: CF,
    body: new ReadableStream({
      start(ctl) {
        for (let i = 0; i < 10; i++) ctl.enqueue(new Uint8Array(100 * 1024));
        ctl.close();
      },
    }),
  });
  assert.equal(streamed.status, 413);
  assert.equal((await streamed.json()).reason, "too_large");
});

test("the wire fixtures give identical rows through the worker and the collector", async () => {
  // Fields only one side can know: Cloudflare's request data (region, city, ASN, colo; the
  // collector has them only with a MaxMind City file) and the receipt time, from which the
  // corrected event times and server-assigned sessions follow: those are compared as
  // offsets within the batch instead.
  const ONLY_ONE_SIDE = ["region", "city", "asn", "colo", "received_at", "timestamp", "timestamp_ms"];
  const c = await collector("edge_parity_collector");
  migrate("edge_parity");
  // One deployment, one salt: the collector created today's; the worker's database gets it too.
  const salts = await ch.rows("SELECT toString(day) AS day, salt FROM edge_parity_collector.salts");
  assert.equal(salts.length, 1);
  await ch.exec(`INSERT INTO edge_parity.salts VALUES ('${salts[0].day}', '${salts[0].salt}')`);
  const w = await worker({ CLICKHOUSE_URL: ch.url, CLICKHOUSE_DATABASE: "edge_parity" });
  // Each event once per side (click.* repeats typical's click: rows with equal keys may
  // collapse at merge), both encodings.
  for (const [name, type] of [["typical.cbor", "application/cbor"], ["unicode.json", "application/json"]]) {
    const init = cbor(fixture(name), { "content-type": type, "cf-ipcountry": "DE" });
    const { cf, ...plain } = init;
    const [a, b] = await Promise.all([fetch(`${c.base}/v1/batch`, plain), w.fetch("/v1/batch", init)]);
    assert.equal(a.status, 204, `${name} at the collector: ${await a.text()}`);
    assert.equal(b.status, 204, `${name} at the worker: ${await b.text()}`);
  }
  const total = await count("edge_parity_collector");
  assert.equal(total, 10);
  await eventually(async () => (await count("edge_parity")) === total, 15_000, `${total} rows at the edge`);
  const read = (db) =>
    ch.rows(
      `SELECT *, toUnixTimestamp(timestamp) * 1000 + timestamp_ms AS ts_ms FROM ${db}.events ` +
        "ORDER BY site_id, toString(event_id), ts_ms",
    );
  const [collected, edge] = [await read("edge_parity_collector"), await read("edge_parity")];
  assert.equal(edge.length, collected.length);
  const shifts = new Map();
  for (let i = 0; i < edge.length; i++) {
    const [e, k] = [edge[i], collected[i]];
    for (const field of Object.keys(k)) {
      if (ONLY_ONE_SIDE.includes(field) || field === "ts_ms" || field === "session_id") continue;
      assert.deepEqual(e[field], k[field], `${field} of event ${k.event_id}`);
    }
    // The tracker's sessions are equal; server-assigned ones (the unicode fixture) are keyed by
    // the corrected start time, so they differ exactly as the times do.
    if (k.session_id === "k3v9q2m8x1") assert.equal(e.session_id, k.session_id);
    shifts.set(`${k.batch_id}/${k.site_id}`, (shifts.get(`${k.batch_id}/${k.site_id}`) || new Set()).add(Number(e.ts_ms) - Number(k.ts_ms)));
    assert.deepEqual([e.region, e.city, e.asn, e.colo], ["BE", "Berlin", 3320, "TXL"]);
    assert.deepEqual([k.region, k.city, k.asn, k.colo], ["", "", 0, ""]);
  }
  assert.equal(new Set(collected.map((r) => `${r.site_id}/${r.visitor_id}`)).size, 2, "one visitor per site");
  // Nothing but the receipt time moved the event times.
  for (const s of shifts.values()) assert.equal(s.size, 1, `one shift per batch, got ${[...s]}`);
});

test("a gzipped v2 batch, sent as the tracker sends it, is stored", async () => {
  migrate("edge_gzip");
  const w = await worker({ CLICKHOUSE_URL: ch.url, CLICKHOUSE_DATABASE: "edge_gzip" });
  // Raw bytes without a content type or an encoding header, as a beacon carries them.
  const body = gzipSync(fixture("typical.v2.cbor"));
  const { headers, ...init } = cbor(body);
  const { "content-type": _, ...rest } = headers;
  const r = await w.fetch("/v1/batch", { ...init, headers: rest });
  assert.equal(r.status, 204, await r.text());
  await eventually(async () => (await count("edge_gzip")) === 5, 15_000, "5 rows");
  const rows = await ch.rows(
    "SELECT toString(event_id) AS id, toString(event_type) AS type, x, y, selector FROM edge_gzip.events ORDER BY type",
  );
  // Ids derived from the batch id (ab × 16): its last two bytes XORed with index + 1.
  assert.deepEqual(
    rows.map((r) => r.id.slice(-4)).sort(),
    ["abaa", "aba9", "aba8", "abaf", "abae"].sort(),
  );
  const click = rows.find((r) => r.type === "click");
  assert.deepEqual([click.x, click.y, click.selector], [642, 1187, "#add-to-cart"]);
});

test("server-assigned sessions end after PATHLIGHT_SESSION_TIMEOUT_SECS", async () => {
  // One visitor's events without a session id, 9 and then 11 minutes apart: one session under
  // the default 30 minutes, two under 10. All within one UTC day, since the visitor id's salt
  // is daily: under 41 minutes past midnight they end a minute before it instead.
  const now = Date.now();
  const midnight = now - (now % 86_400_000);
  const last = now - midnight >= 41 * 60_000 ? now - 20 * 60_000 : midnight - 60_000;
  const batch = JSON.parse(fixture("unicode.json"));
  batch.sent_at = now;
  batch.events = [20, 11, 0].map((before, i) => ({
    ...batch.events[0],
    id: `${String(i + 1).repeat(8)}-0000-4000-8000-000000000000`,
    timestamp: last - before * 60_000,
  }));
  const body = JSON.stringify(batch);
  const sessions = async (db, vars) => {
    migrate(db);
    const w = await worker({ CLICKHOUSE_URL: ch.url, CLICKHOUSE_DATABASE: db, ...vars });
    const r = await w.fetch("/v1/batch", cbor(body, { "content-type": "application/json" }));
    assert.equal(r.status, 204, await r.text());
    await eventually(async () => (await count(db)) === 3, 15_000, `3 rows in ${db}`);
    const rows = await ch.rows(`SELECT session_id FROM ${db}.events ORDER BY timestamp, timestamp_ms`);
    return rows.map((r) => r.session_id);
  };
  const ten = await sessions("edge_sessions_600", { PATHLIGHT_SESSION_TIMEOUT_SECS: "600" });
  assert.equal(ten[0], ten[1], "9 minutes apart: one session");
  assert.notEqual(ten[1], ten[2], "11 minutes apart: a new one");
  const byDefault = await sessions("edge_sessions_default", {});
  assert.deepEqual(new Set(byDefault).size, 1, `one session at 30 minutes: ${byDefault}`);
  // A value the collector would refuse is refused here too, naming the variable.
  const wrong = await worker({ CLICKHOUSE_URL: ch.url, PATHLIGHT_SESSION_TIMEOUT_SECS: "10m" });
  const r = await wrong.fetch("/v1/batch", cbor(body, { "content-type": "application/json" }));
  assert.equal(r.status, 500);
  const answer = await r.json();
  assert.equal(answer.reason, "misconfigured");
  assert.match(answer.error, /^PATHLIGHT_SESSION_TIMEOUT_SECS is "10m"/);
});

// Refused from its Content-Length, a body a little over the limit is still read before the
// answer: answered while the client was still sending, the runtime reset the connection and the
// client saw ECONNRESET instead of the 413 (one CI run in several). Here the body comes slowly,
// 64 KiB every 20 ms, as from a slow uplink, so the answer always comes mid-body unless the
// worker reads it first.
test("a batch a little too large is answered 413 with its reason, never reset", async () => {
  migrate("edge_linger");
  const w = await worker({ CLICKHOUSE_URL: ch.url, CLICKHOUSE_DATABASE: "edge_linger" });
  const size = 600 * 1024;
  const slowly = () => {
    let sent = 0;
    return new ReadableStream({
      async pull(c) {
        if (sent >= size) return c.close();
        await new Promise((r) => setTimeout(r, 20));
        const n = Math.min(64 * 1024, size - sent);
        sent += n;
        c.enqueue(new Uint8Array(n).fill(0xa0));
      },
    });
  };
  const c = await collector("edge_linger_collector");
  const init = () => ({
    method: "POST",
    body: slowly(),
    duplex: "half",
    headers: { "content-type": "application/cbor", "content-length": String(size) },
  });
  for (let i = 0; i < 3; i++) {
    // The collector too (hyper reads an unread body to its end before the next request).
    for (const [who, r] of [["worker", await w.fetch("/v1/batch", { ...init(), cf: CF })], ["collector", await fetch(`${c.base}/v1/batch`, init())]]) {
      assert.equal(r.status, 413, `${who}, round ${i}`);
      assert.equal((await r.json()).reason, "too_large", `${who}, round ${i}`);
    }
  }
});

test("direct mode refuses clearly on a ClickHouse without async inserts", async () => {
  migrate("edge_direct");
  const w = await worker({ PATHLIGHT_MODE: "direct", CLICKHOUSE_URL: ch.url, CLICKHOUSE_DATABASE: "edge_direct" });
  const r = await w.fetch("/v1/batch", cbor(fixture("typical.cbor")));
  assert.equal(r.status, 500);
  const body = await r.json();
  assert.equal(body.reason, "storage_rejected");
  assert.match(body.error, /async inserts \(ClickHouse 21\.11 or later\).*use queue or relay mode/);
  assert.equal(await count("edge_direct"), 0);
});

test("relay mode forwards enriched rows to the collector, hashed with its salts", async () => {
  const token = "relay-secret-for-tests";
  const c = await collector("edge_relay", { PATHLIGHT_RELAY_TOKEN_SHA256: createHash("sha256").update(token).digest("hex") });
  const wrong = await worker({ PATHLIGHT_MODE: "relay", COLLECTOR_URL: c.base, RELAY_TOKEN: "wrong" });
  const refused = await wrong.fetch("/v1/batch", cbor(fixture("typical.cbor")));
  assert.equal(refused.status, 500, "the collector refused the relay token");
  const w = await worker({ PATHLIGHT_MODE: "relay", COLLECTOR_URL: c.base, RELAY_TOKEN: token });
  const r = await w.fetch("/v1/batch", cbor(fixture("typical.cbor")));
  assert.equal(r.status, 204, await r.text());
  // Stored before the answer: the collector acknowledged the rows.
  assert.equal(await count("edge_relay"), 5);
  const direct = await fetch(`${c.base}/v1/batch`, { method: "POST", body: fixture("click.cbor"), headers: { "content-type": "application/cbor", "user-agent": UA, "cf-connecting-ip": IP } });
  assert.equal(direct.status, 204);
  const rows = await ch.rows("SELECT DISTINCT visitor_id, colo FROM edge_relay.events ORDER BY colo");
  assert.equal(rows.length, 2);
  assert.equal(rows[0].visitor_id, rows[1].visitor_id, "same visitor through the edge and the collector");
  assert.equal(rows[1].colo, "TXL");
  // Without the token: nothing.
  const salts = await fetch(`${c.base}/v1/relay/salts`);
  assert.equal(salts.status, 401);
});

test("identify is stored by each mode, and refused from outside the site without its key", async () => {
  const key = "edge-ingest-key-for-tests";
  const digest = createHash("sha256").update(key).digest("hex");
  const sites = JSON.stringify([...SITES, { id: "keyed", origins: ["https://keyed.example"], ingest_keys_sha256: [digest] }]);
  const identify = (w, body, headers = {}) =>
    w.fetch("/_pl/v1/identify", { method: "POST", body: JSON.stringify(body), headers: { "content-type": "text/plain", ...headers } });
  const users = (db) =>
    ch.rows(`SELECT site_id, user_id, argMax(traits, updated_ms) AS traits FROM ${db}.users GROUP BY site_id, user_id ORDER BY user_id`);

  migrate("edge_identify");
  const q = await worker({ CLICKHOUSE_URL: ch.url, CLICKHOUSE_DATABASE: "edge_identify", PATHLIGHT_SITES: sites });
  // A page of the site's origin needs no key; the site's server brings one.
  let r = await identify(q, { site: "demo", user_id: "u-1", traits: { plan: "pro" } }, { origin: "https://shop.example" });
  assert.equal(r.status, 204, await r.text());
  assert.equal(r.headers.get("access-control-allow-origin"), "https://shop.example");
  r = await identify(q, { site: "keyed", user_id: "u-2", traits: { seats: 3 } }, { "x-api-key": key });
  assert.equal(r.status, 204, await r.text());
  // From elsewhere: a key is needed, the right one, and the body is checked field by field.
  const refusals = [
    [{ site: "keyed", user_id: "u-3", traits: { a: 1 } }, {}, 401, "key_required"],
    [{ site: "keyed", user_id: "u-3", traits: { a: 1 } }, { authorization: "Bearer wrong" }, 401, "invalid_key"],
    [{ site: "keyed", user_id: "u-3", traits: { a: [1] } }, { "x-api-key": key }, 400, null],
    [{ site: "nowhere", user_id: "u-3" }, { "x-api-key": key }, null, "unknown_site"],
  ];
  for (const [body, headers, status, reason] of refusals) {
    const res = await identify(q, body, headers);
    const answer = await res.json();
    if (status) assert.equal(res.status, status, JSON.stringify(answer));
    if (reason) assert.equal(answer.reason, reason);
    if (!reason) assert.match(answer.error, /traits\.a/);
  }
  const expected = [
    { site_id: "demo", user_id: "u-1", traits: '{"plan":"pro"}' },
    { site_id: "keyed", user_id: "u-2", traits: '{"seats":3.0}' },
  ];
  await eventually(async () => (await users("edge_identify")).length === 2, 15_000, "2 users through the queue");
  assert.deepEqual(await users("edge_identify"), expected);

  // Direct mode: stored before the answer, on any server version (no async insert needed).
  migrate("edge_identify_direct");
  const d = await worker({ PATHLIGHT_MODE: "direct", CLICKHOUSE_URL: ch.url, CLICKHOUSE_DATABASE: "edge_identify_direct", PATHLIGHT_SITES: sites });
  r = await identify(d, { site: "keyed", user_id: "u-2", traits: { seats: 3 } }, { "x-api-key": key });
  assert.equal(r.status, 204, await r.text());
  assert.deepEqual(await users("edge_identify_direct"), expected.slice(1));

  // Relay mode: the collector stores the row before it answers.
  const token = "relay-secret-for-identify";
  const c = await collector("edge_identify_relay", { PATHLIGHT_RELAY_TOKEN_SHA256: createHash("sha256").update(token).digest("hex") });
  const relay = await worker({ PATHLIGHT_MODE: "relay", COLLECTOR_URL: c.base, RELAY_TOKEN: token, PATHLIGHT_SITES: sites });
  r = await identify(relay, { site: "demo", user_id: "u-1", traits: { plan: "pro" } }, { origin: "https://shop.example" });
  assert.equal(r.status, 204, await r.text());
  assert.deepEqual(await users("edge_identify_relay"), expected.slice(0, 1));
  // Relayed users' rows need the relay token too.
  const forged = await fetch(`${c.base}/v1/relay/users`, { method: "POST", body: new Uint8Array([1, 2, 3]) });
  assert.equal(forged.status, 401);
});
