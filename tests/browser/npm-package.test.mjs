// The npm package (@pathlight/tracker, target/tracker/npm) bundled by esbuild into a minimal
// SPA, in Chromium against the real collector and ClickHouse: it records what the embed does,
// identify included.
// As a site ships it: the page on shop.example.com, its bundle and the wasm beside it on a CDN
// (cdn.example.org, CORS open as CDNs send it), the collector on a third host, pl.example.net.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { eventually, freePort, hostRules, launchBrowser, root, startClickHouse, startCollector } from "../lib/stack.mjs";
import { USER_AGENT, startSite } from "../lib/site.mjs";

let browser;
before(async () => {
  browser = await launchBrowser([hostRules(["shop.example.com", "cdn.example.org", "pl.example.net"])]);
});
after(async () => browser?.close());

const APP = `
import { init, track, page, flush, identify } from ${JSON.stringify(join(root, "target/tracker/npm/index.js"))};
// Queued before init resolves, replayed after.
track("app_boot", { version: "1.2.3" });
const view = document.getElementById("view");
function render() {
  const route = new URLSearchParams(location.search).get("route") || "home";
  document.title = "SPA " + route;
  view.innerHTML = '<h1>' + route + '</h1><button id="signup">Sign up</button>';
}
document.addEventListener("click", (e) => {
  const link = e.target.closest("[data-route]");
  if (link) { e.preventDefault(); history.pushState({}, "", "?route=" + link.dataset.route); render(); }
  if (e.target.id === "signup") {
    identify("u-7", { plan: "pro" });
    track("signup", { plan: "pro", seats: 3, trial: false });
  }
});
render();
// The wasm is found beside the bundle (import.meta.url), on the CDN.
window.app = { flush, page, ready: init({ site: "demo", endpoint: ENDPOINT, flushMs: 1000 }) };
`;

test("the npm package bundled into an SPA records page views, clicks, custom events and identify", async () => {
  const dir = mkdtempSync(join(tmpdir(), "pathlight-npm-spa-"));
  const [sitePort, cdnPort, plPort] = [await freePort(), await freePort(), await freePort()];
  const origin = `http://shop.example.com:${sitePort}`;
  const cdn = `http://cdn.example.org:${cdnPort}`;
  writeFileSync(join(dir, "main.js"), APP.replace("ENDPOINT", JSON.stringify(`http://pl.example.net:${plPort}/v1/batch`)));
  writeFileSync(
    join(dir, "index.html"),
    '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>SPA</title>' +
      '<nav><a href="?route=pricing" data-route="pricing" id="to-pricing">Pricing</a></nav><main id="view"></main>' +
      `<script type="module" src="${cdn}/bundle.js"></script>`,
  );
  await build({ entryPoints: [join(dir, "main.js")], bundle: true, format: "esm", outfile: join(dir, "bundle.js"), logLevel: "warning", logOverride: { "empty-import-meta": "silent" } });
  copyFileSync(join(root, "target/tracker/npm/pathlight_bg.wasm"), join(dir, "pathlight_bg.wasm"));

  const ch = await startClickHouse("npm");
  const db = "e2e_npm";
  const collector = await startCollector({
    clickhouseUrl: ch.url, db, port: plPort,
    env: { PATHLIGHT_SITES: `[{id = "demo", origins = ["${origin}"]}]` },
  });
  const site = await startSite({ port: sitePort, dir });
  const cdnServer = await startSite({ port: cdnPort, dir, headers: () => ({ "access-control-allow-origin": "*" }) });
  try {
    const ctx = await browser.newContext({ viewport: { width: 768, height: 700 }, userAgent: USER_AGENT });
    const page = await ctx.newPage();
    const wasmFrom = page.waitForRequest((r) => r.url().endsWith(".wasm"));
    await page.goto(origin + "/");
    assert.equal((await wasmFrom).url(), `${cdn}/pathlight_bg.wasm`, "the wasm comes from the CDN");
    assert.equal(await page.evaluate(() => window.app.ready), true, "init resolved to started");
    await page.click("#to-pricing");
    await page.waitForTimeout(50);
    await page.click("#signup");
    await page.evaluate(() => window.app.flush());
    await page.goto("about:blank");
    await ctx.close();

    const rows = await eventually(async () => {
      const r = await ch.rows(`SELECT event_type, url, title, name, props, selector, user_id FROM ${db}.events FINAL WHERE event_type IN ('pageview', 'custom', 'click') ORDER BY timestamp, timestamp_ms, event_type`);
      return r.filter((x) => x.event_type !== "click").length >= 4 && r;
    }, 15_000, "SPA events");
    const path = (u) => u.replace(origin, "");
    const views = rows.filter((r) => r.event_type === "pageview");
    assert.deepEqual(views.map((v) => [path(v.url), v.title]), [["/", "SPA home"], ["/?route=pricing", "SPA pricing"]]);
    const custom = rows.filter((r) => r.event_type === "custom");
    assert.deepEqual(custom.map((c) => [c.name, JSON.parse(c.props)]), [
      ["app_boot", { version: "1.2.3" }],
      ["signup", { plan: "pro", seats: 3, trial: false }],
    ]);
    const clicks = rows.filter((r) => r.event_type === "click").map((r) => r.selector);
    assert.deepEqual(clicks, ["#to-pricing", "#signup"]);
    // identify, posted to the collector's host beside the batches: the traits stored, and the
    // user id on the events after it.
    assert.deepEqual(custom.map((c) => c.user_id), ["", "u-7"]);
    const users = await eventually(() => ch.rows(`SELECT user_id, traits FROM ${db}.users`).then((u) => u.length && u), 5_000, "the user's traits");
    assert.deepEqual(users.map((u) => [u.user_id, JSON.parse(u.traits)]), [["u-7", { plan: "pro" }]]);
  } finally {
    await collector.stop();
    await site.stop();
    await cdnServer.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
