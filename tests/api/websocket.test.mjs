// The live feed over WebSocket (`/api/v1/realtime/ws`), against the real collector and
// ClickHouse: the handshake's checks and answer (RFC 6455's accept key), Node's own WebSocket
// client receiving stored events as JSON messages, the close handshake, and the server closing
// with 1001 when it stops. Chromium's WebSocket is exercised by the dashboard's browser test.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { root, startClickHouse, startCollector } from "../lib/stack.mjs";

const CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
let ch, collector;

before(async () => {
  ch = await startClickHouse("ws");
  collector = await startCollector({
    clickhouseUrl: ch.url,
    db: "ws",
    env: { PATHLIGHT_SITES: '[{id = "demo", origins = ["*"], api_token = "ws-token"}]' },
  });
});
after(async () => {
  await collector?.stop();
});

/** A raw GET with `headers`: resolves with the 101 (`upgrade`) or any other answer. */
function raw(path, headers) {
  return new Promise((resolve, reject) => {
    const req = request(`${collector.base}${path}`, { headers });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode, headers: res.headers });
    });
    req.on("response", (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: JSON.parse(body) }));
    });
    req.on("error", reject);
    req.end();
  });
}

const handshake = (key) => ({ connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": key });

test("the handshake is checked, authorized and answered with the accept key", async () => {
  const plain = await raw("/api/v1/realtime/ws?site=demo", { authorization: "Bearer ws-token" });
  assert.equal(plain.status, 400);
  assert.equal(plain.body.field, "upgrade");
  const key = randomBytes(16).toString("base64");
  const stranger = await raw("/api/v1/realtime/ws?site=demo", handshake(key));
  assert.deepEqual([stranger.status, stranger.body.reason], [401, "unauthorized"]);
  const wrong = await raw("/api/v1/realtime/ws?site=demo&token=1.00", handshake(key));
  assert.equal(wrong.status, 401);
  const ok = await raw("/api/v1/realtime/ws?site=demo", { ...handshake(key), authorization: "Bearer ws-token" });
  assert.equal(ok.status, 101);
  const expected = createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
  assert.equal(ok.headers["sec-websocket-accept"], expected);
});

async function liveSocket() {
  const r = await fetch(`${collector.base}/api/v1/live-token?site=demo`, { headers: { authorization: "Bearer ws-token" } });
  const { token } = await r.json();
  const ws = new WebSocket(`${collector.base.replace("http", "ws")}/api/v1/realtime/ws?` + new URLSearchParams({ site: "demo", token }));
  const messages = [];
  ws.addEventListener("message", (m) => messages.push(JSON.parse(m.data)));
  const closed = new Promise((resolve) => ws.addEventListener("close", (e) => resolve(e.code)));
  await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve);
    ws.addEventListener("error", reject);
  });
  return { ws, messages, closed };
}

test("stored events arrive as JSON messages, and a close is answered", async () => {
  const { ws, messages, closed } = await liveSocket();
  const batch = readFileSync(join(root, "wire", "tests", "fixtures", "typical.cbor"));
  const sent = JSON.parse(readFileSync(join(root, "wire", "tests", "fixtures", "typical.json"), "utf8"));
  const r = await fetch(`${collector.base}/v1/batch`, { method: "POST", body: batch, headers: { "user-agent": CHROME } });
  assert.equal(r.status, 204);
  // Protocol v1: the site's snapshot first, then one `event` message per stored event.
  const events = () => messages.filter((m) => m.type === "event");
  const until = Date.now() + 10_000;
  while (events().length < sent.events.length && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  assert.equal(messages[0]?.type, "snapshot", JSON.stringify(messages));
  assert.equal(events().length, sent.events.length, JSON.stringify(messages));
  for (const m of events()) assert.ok(m.site === "demo" && m.path.startsWith("/") && m.kind && m.visitor, JSON.stringify(m));
  ws.close(1000);
  assert.equal(await closed, 1000);
});

test("a stopping server closes its WebSockets with 1001", async () => {
  const { closed } = await liveSocket();
  await collector.stop();
  assert.equal(await closed, 1001);
});
