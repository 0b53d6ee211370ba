// First-party collection through the site's own web server (issue 34, setup c): Debian's
// nginx serves a real site (the Rust book) and forwards `/_pl/` to the collector with the
// README's `location` block as written. The page's tag is the README's first-party one; every
// request stays on the site's host. The collector believes X-Forwarded-For from that proxy
// only, and its body limit holds behind it.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, hostRules, launchBrowser, root, startClickHouse, startCollector } from "../lib/stack.mjs";
import { startNginx } from "../lib/nginx.mjs";
import { USER_AGENT, recordRequests, startSite, stored, visit } from "../lib/site.mjs";

let ch, browser;

before(async () => {
  ch = await startClickHouse("proxy");
  browser = await launchBrowser([hostRules(["shop.example.com"])]);
});
after(async () => {
  await browser?.close();
});

/** The README's nginx `location /_pl/ { … }` block, for a collector on `port`. */
function readmeLocation(port) {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const block = readme.match(/```nginx\n([\s\S]*?)```/)[1];
  assert.match(block, /location \/_pl\/ \{/);
  return block.replace("127.0.0.1:8080", `127.0.0.1:${port}`).replace(/^ {2}/gm, "");
}

/** POSTs `body` to `url` from the local address `from` (loopback has every 127.x address). */
function post(url, body, from, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", localAddress: from, headers: { "content-type": "application/json", ...headers } }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode, text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

test("a path of the site's own proxied by nginx stores every event, believes only the proxy's X-Forwarded-For and keeps the body limit", async () => {
  const db = "proxy_nginx";
  const collectorPort = await freePort();
  const site = await startSite({ tag: `<script async src="/_pl/p.js" data-site="docs"></script>` });
  const nginx = await startNginx(`${readmeLocation(collectorPort)}\n    location / { proxy_pass http://127.0.0.1:${site.port}; }`);
  const origin = `http://shop.example.com:${nginx.port}`;
  const collector = await startCollector({
    clickhouseUrl: ch.url, db, port: collectorPort,
    env: {
      PATHLIGHT_SITES: `[{id = "docs", origins = ["${origin}"]}]`,
      PATHLIGHT_CLIENT_IP_HEADER: "x-forwarded-for",
      PATHLIGHT_TRUSTED_PROXIES: '["127.0.0.1"]',
    },
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, userAgent: USER_AGENT });
  try {
    const page = await context.newPage();
    const requests = recordRequests(context);
    const { total } = await visit(page, origin);
    const { clicks } = await stored(ch, db, total);
    assert.equal(clicks.length, total, "every click stored once");
    const hosts = [...new Set(requests.map((r) => new URL(r.url).host))];
    assert.deepEqual(hosts, [`shop.example.com:${nginx.port}`], "every request goes to the site's own host");
    assert.ok(requests.some((r) => r.url === `${origin}/_pl/v1/batch`), "batches go to the site's path");
    assert.deepEqual(requests.filter((r) => r.type === "Ping"), []);

    // The client address: through the proxy, the one nginx saw; directly, the peer's, whatever
    // the header says. Visitor ids are hashes of the address, so equal ids mean equal addresses.
    const event = (path) => JSON.stringify([{ type: "view", url: `${origin}${path}`, created_at: new Date().toISOString(), user_agent: USER_AGENT }]);
    const via = `http://127.0.0.1:${nginx.port}/_pl/v1/batch?site=docs`;
    const direct = `http://127.0.0.1:${collectorPort}/v1/batch?site=docs`;
    assert.equal((await post(via, event("/a"), "127.0.0.5")).status, 204);
    assert.equal((await post(direct, event("/b"), "127.0.0.5", { "x-forwarded-for": "10.9.9.9" })).status, 204);
    assert.equal((await post(via, event("/c"), "127.0.0.6")).status, 204);
    const ids = await (async () => {
      for (let i = 0; i < 100; i++) {
        const rows = await ch.rows(`SELECT path, toString(visitor_id) AS v FROM ${db}.events FINAL WHERE path IN ('/a', '/b', '/c') ORDER BY path`);
        if (rows.length === 3) return Object.fromEntries(rows.map((r) => [r.path, r.v]));
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error("3 server-side page views");
    })();
    assert.equal(ids["/b"], ids["/a"], "a forged X-Forwarded-For from a peer that is not the proxy is ignored");
    assert.notEqual(ids["/c"], ids["/a"], "through the proxy, each client's own address");

    const big = await post(via, "[" + " ".repeat(700 * 1024) + "]", "127.0.0.5");
    assert.equal(big.status, 413);
    assert.equal(JSON.parse(big.text).reason, "too_large", "the collector's own limit, behind the proxy");
  } finally {
    await context.close();
    await collector.stop();
    await nginx.stop();
    await site.stop();
  }
});
