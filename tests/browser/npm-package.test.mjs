// The npm package (@pathlight/tracker, target/tracker/npm) bundled by esbuild into a minimal
// SPA, in Chromium against the real collector and ClickHouse: it records what the embed does.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { eventually, launchBrowser, root, startClickHouse, startCollector } from "../lib/stack.mjs";

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => browser?.close());

const APP = `
import { init, track, page, flush } from ${JSON.stringify(join(root, "target/tracker/npm/index.js"))};
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
  if (e.target.id === "signup") track("signup", { plan: "pro", seats: 3, trial: false });
});
render();
window.app = { flush, page, ready: init({ site: "demo", endpoint: "/v1/batch", wasmUrl: "/demo/pathlight_bg.wasm", flushMs: 1000 }) };
`;

test("the npm package bundled into an SPA records page views, clicks and custom events", async () => {
  const dir = mkdtempSync(join(tmpdir(), "pathlight-npm-spa-"));
  writeFileSync(join(dir, "main.js"), APP);
  writeFileSync(
    join(dir, "index.html"),
    '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>SPA</title>' +
      '<nav><a href="?route=pricing" data-route="pricing" id="to-pricing">Pricing</a></nav><main id="view"></main>' +
      '<script type="module" src="bundle.js"></script>',
  );
  await build({ entryPoints: [join(dir, "main.js")], bundle: true, format: "esm", outfile: join(dir, "bundle.js"), logLevel: "warning", logOverride: { "empty-import-meta": "silent" } });
  copyFileSync(join(root, "target/tracker/npm/pathlight_bg.wasm"), join(dir, "pathlight_bg.wasm"));

  const ch = await startClickHouse("npm");
  const db = "e2e_npm";
  const collector = await startCollector({ clickhouseUrl: ch.url, db, env: { PATHLIGHT_DEMO_DIR: dir } });
  try {
    const ctx = await browser.newContext({ viewport: { width: 768, height: 700 } });
    const page = await ctx.newPage();
    await page.goto(collector.base + "/demo/");
    assert.equal(await page.evaluate(() => window.app.ready), true, "init resolved to started");
    await page.click("#to-pricing");
    await page.waitForTimeout(50);
    await page.click("#signup");
    await page.evaluate(() => window.app.flush());
    await page.goto("about:blank");
    await ctx.close();

    const rows = await eventually(async () => {
      const r = await ch.rows(`SELECT event_type, url, title, name, props, selector FROM ${db}.events FINAL WHERE event_type IN ('pageview', 'custom', 'click') ORDER BY timestamp, timestamp_ms, event_type`);
      return r.filter((x) => x.event_type !== "click").length >= 4 && r;
    }, 15_000, "SPA events");
    const path = (u) => u.replace(collector.base, "");
    const views = rows.filter((r) => r.event_type === "pageview");
    assert.deepEqual(views.map((v) => [path(v.url), v.title]), [["/demo/", "SPA home"], ["/demo/?route=pricing", "SPA pricing"]]);
    const custom = rows.filter((r) => r.event_type === "custom");
    assert.deepEqual(custom.map((c) => [c.name, JSON.parse(c.props)]), [
      ["app_boot", { version: "1.2.3" }],
      ["signup", { plan: "pro", seats: 3, trial: false }],
    ]);
    const clicks = rows.filter((r) => r.event_type === "click").map((r) => r.selector);
    assert.deepEqual(clicks, ["#to-pricing", "#signup"]);
  } finally {
    await collector.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
