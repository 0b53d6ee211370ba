// How many of a visit's events reach storage for visitors with a blocker, by setup (issue 34).
// The scripted visit of the browser tests (tests/lib/site.mjs: a chapter of the Rust book on
// shop.example.com, 7 clicks, the last one a link to the next chapter, 2 clicks there, then the
// tab closes) is made VISITS times per row, in Debian's Chromium, against the real collector
// and ClickHouse 18.16. The blocker acts at the network layer, as an extension does: every
// request of the page, those sent as it is left included, pauses in CDP's Fetch domain and is
// failed (BlockedByClient) when a rule matches. The rules are the generic ones of the most used
// lists that match an analytics request without naming its host: EasyPrivacy's `$ping,third-party`
// (every sendBeacon to another site) and path words (`/analytics`, `/track`, `/collect`,
// `/beacon`, `/pixel`, `/stats`, `/metrics`, `/event`).
//   node bench/first-party.mjs [VISITS]          (from the repository root; default 10)
//   OLD_TRACKER=dir node bench/first-party.mjs   adds rows for a tracker build of before (its
//                                                 pathlight.js and pathlight_bg.wasm)
import { copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, hostRules, launchBrowser, root, startClickHouse, startCollector } from "../tests/lib/stack.mjs";
import { startNginx } from "../tests/lib/nginx.mjs";
import { USER_AGENT, startSite, visit } from "../tests/lib/site.mjs";

const VISITS = Number(process.argv[2] || 10);
const WORDS = /\/(analytics|track|collect|beacon|pixel|stats|metrics|event)/i;
const site = (host) => host.split(".").slice(-2).join(".");

/** Fails requests the blocker's rules match; counts them. */
async function blocker(context, page, blocked) {
  const cdp = await context.newCDPSession(page);
  cdp.on("Fetch.requestPaused", (e) => {
    const url = new URL(e.request.url);
    const from = new URL(page.url() === "about:blank" ? e.request.url : page.url());
    const thirdParty = site(url.hostname) !== site(from.hostname);
    if ((e.resourceType === "Ping" && thirdParty) || WORDS.test(url.pathname)) {
      blocked.push(`${e.resourceType} ${url.pathname}`);
      cdp.send("Fetch.failRequest", { requestId: e.requestId, errorReason: "BlockedByClient" }).catch(() => {});
    } else cdp.send("Fetch.continueRequest", { requestId: e.requestId }).catch(() => {});
  });
  await cdp.send("Fetch.enable", { patterns: [{ urlPattern: "*" }] });
}

const ch = await startClickHouse("bench-first-party");
const browser = await launchBrowser([hostRules(["shop.example.com", "pl.example.net"]), `--user-agent=${USER_AGENT}`]);
const builds = [["now", join(root, "target", "tracker")]];
if (process.env.OLD_TRACKER) {
  // The earlier build under the names the collector maps its earlier names to.
  const dir = mkdtempSync(join(tmpdir(), "pathlight-old-tracker-"));
  copyFileSync(join(process.env.OLD_TRACKER, "pathlight.js"), join(dir, "p.js"));
  copyFileSync(join(process.env.OLD_TRACKER, "pathlight_bg.wasm"), join(dir, "p.00000000.wasm"));
  writeFileSync(join(dir, "manifest.json"), '{"wasm":"p.00000000.wasm"}');
  builds.unshift(["before (sendBeacon at hide)", dir]);
}
const rows = [];
let n = 0;
for (const [build, trackerDir] of builds) {
  for (const setup of ["collector on another site", "first-party path (nginx)"]) {
    for (const blocking of [false, true]) {
      const db = `bench_fp_${n++}`;
      const [sitePort, collectorPort] = [await freePort(), await freePort()];
      const origin = `http://shop.example.com:${sitePort}`;
      const collector = await startCollector({
        clickhouseUrl: ch.url, db, port: collectorPort,
        env: { PATHLIGHT_SITES: `[{id = "docs", origins = ["${origin}"]}]`, PATHLIGHT_TRACKER_DIR: trackerDir },
      });
      const base = setup.startsWith("first") ? "/_pl" : `http://pl.example.net:${collectorPort}`;
      const old = build.startsWith("before");
      const tag = old
        ? `<script async src="${base}/pathlight.js" data-site="docs" data-endpoint="${base}/v1/batch"></script>`
        : `<script async src="${base}/p.js" data-site="docs"></script>`;
      const pages = await startSite({ tag });
      const front = await startNginx(`location /_pl/ { proxy_pass http://127.0.0.1:${collectorPort}/; proxy_set_header X-Forwarded-For $remote_addr; }
    location / { proxy_pass http://127.0.0.1:${pages.port}; }`, sitePort);
      let made = 0;
      const blocked = [];
      for (let v = 0; v < VISITS; v++) {
        const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
        const page = await context.newPage();
        if (blocking) await blocker(context, page, blocked);
        made += (await visit(page, origin, true)).total;
        await new Promise((r) => setTimeout(r, 500));
        await context.close();
      }
      await new Promise((r) => setTimeout(r, 3000));
      const [c] = await ch.rows(`SELECT countIf(event_type = 'click') AS clicks, countIf(event_type = 'pageview') AS views,
        countIf(event_type = 'scroll') AS scrolls, countIf(event_type = 'engagement') AS engaged FROM ${db}.events FINAL`);
      rows.push([build, setup, blocking ? "yes" : "no", `${c.clicks} of ${made}`, c.views, c.scrolls, c.engaged, blocked.length]);
      await collector.stop();
      await front.stop();
      await pages.stop();
    }
  }
}
await browser.close();
console.log(`${VISITS} visits per row, ${new Date().toISOString().slice(0, 10)}, ${(await import("node:os")).cpus().length} cores\n`);
console.log("| tracker | setup | blocker | clicks stored | page views | scroll | engagement | requests blocked |");
console.log("|---|---|---|---:|---:|---:|---:|---:|");
for (const r of rows) console.log(`| ${r.join(" | ")} |`);
process.exit(0);
