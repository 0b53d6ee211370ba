// Issue 35's findings in Chromium, against the collector as `make demo` runs it: the
// dashboards on one origin, the demo site on another. A crafted link runs no script, the viewer
// loads nothing from another origin and its frame cannot steer the tab, the token leaves the
// address bar and stays in the tab's session, and no page we ship breaks its own CSP.
// (The collector's side: collector/tests/it/security.rs.)
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { eventually, freePort, launchBrowser, root, startClickHouse, startCollector } from "../lib/stack.mjs";

const TOKEN = randomBytes(16).toString("hex");
let browser, ch, collector;

before(async () => {
  browser = await launchBrowser();
  ch = await startClickHouse("security");
  const demoPort = await freePort();
  collector = await startCollector({
    clickhouseUrl: ch.url,
    db: "e2e_security",
    demoPort,
    env: { PATHLIGHT_SITES: `[{id = "demo", origins = ["http://127.0.0.1:${demoPort}"], api_token = "${TOKEN}"}]` },
  });
});
after(async () => {
  await browser?.close();
  await collector?.stop();
});

/** A new page that records dialogs, requests, console errors and CSP violations (every frame). */
async function watched(viewport = { width: 1280, height: 900 }) {
  const ctx = await browser.newContext({ viewport });
  await ctx.addInitScript(() => {
    window.__violations = [];
    addEventListener("securitypolicyviolation", (e) =>
      window.__violations.push(`${e.violatedDirective} ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`));
  });
  const page = await ctx.newPage();
  const seen = { dialogs: [], requests: [], errors: [] };
  page.on("dialog", (d) => {
    seen.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  page.on("request", (r) => seen.requests.push(r.url()));
  page.on("console", (m) => m.type() === "error" && seen.errors.push(m.text()));
  page.on("pageerror", (e) => seen.errors.push(String(e)));
  /** CSP violations reported in any frame of the page. */
  seen.violations = async () => (await Promise.all(page.frames().map((f) => f.evaluate(() => window.__violations ?? []).catch(() => [])))).flat();
  return { ctx, page, seen };
}

const PAYLOAD = "<img src=x onerror=alert(document.domain)>";

test("the crafted demo link runs no script, opened directly or in the viewer", async () => {
  const { ctx, page, seen } = await watched();
  await page.goto(`${collector.demo}/demo/app.html?view=${encodeURIComponent(PAYLOAD)}`);
  await page.waitForFunction(() => window.pathlight?.loaded);
  const view = await page.evaluate(() => ({ text: document.querySelector("#view h2").textContent, images: document.querySelectorAll("#view img").length }));
  assert.deepEqual(view, { text: PAYLOAD, images: 0 }, "the route is text");

  const q = new URLSearchParams({ site: "demo", path: `/demo/app.html?view=${PAYLOAD.replaceAll(" ", "/")}` });
  await page.goto(`${collector.base}/heatmap.html?${q}#token=${TOKEN}`);
  await page.waitForSelector("body[data-ready]");
  const framed = page.frames().find((f) => f.url().startsWith(`${collector.demo}/demo/app.html`));
  assert.ok(framed, page.frames().map((f) => f.url()).join(" "));
  await framed.waitForFunction(() => document.querySelector("#view h2"));
  // The framed page is on the demo's origin: the dashboards' session is not its to read, and
  // it cannot send the tab elsewhere.
  const inside = await framed.evaluate(() => {
    let top;
    try {
      window.top.location.href = "https://evil.example/";
      top = "navigated";
    } catch (e) {
      top = e.name;
    }
    return { token: sessionStorage.getItem("pl-token"), images: document.querySelectorAll("#view img").length, top };
  });
  await page.waitForTimeout(300);
  assert.deepEqual(inside, { token: null, images: 0, top: "SecurityError" });
  assert.ok(page.url().startsWith(`${collector.base}/heatmap.html`), page.url());
  assert.deepEqual(seen.dialogs, [], "no script of the payload ran");
  assert.ok(!seen.requests.some((u) => u.includes("evil.example")), seen.requests.join("\n"));
  await ctx.close();
});

test("the viewer opens only the site's own pages", async () => {
  const { ctx, page, seen } = await watched();
  for (const path of ["//evil.example/x", "/\\evil.example/y", "https://evil.example/x", "javascript:alert(1)", "/\t/evil.example/z", `${collector.base}/index.html`]) {
    const q = new URLSearchParams({ site: "demo", path });
    await page.goto(`${collector.base}/heatmap.html?${q}#token=${TOKEN}`);
    await page.waitForFunction(() => /^error/.test(document.getElementById("status").textContent));
    const status = await page.textContent("#status");
    assert.match(status, /not a page of this site/, `${path}: ${status}`);
    assert.equal(await page.getAttribute("#page", "src"), null, `${path}: nothing framed`);
  }
  // The path is remembered for the next visit, and refused again then.
  await page.goto(`${collector.base}/heatmap.html?site=demo`);
  await page.waitForFunction(() => /^error/.test(document.getElementById("status").textContent));
  await page.waitForTimeout(300);
  assert.deepEqual(seen.requests.filter((u) => !u.startsWith(collector.base)), [], "nothing from another origin");
  assert.deepEqual(seen.dialogs, []);
  await ctx.close();
});

test("the token is taken from the fragment once, kept for the tab's session, and signed out", async () => {
  const { ctx, page } = await watched();
  await page.goto(`${collector.base}/?site=demo#token=${TOKEN}`);
  await page.waitForSelector("body[data-ready]");
  assert.equal(page.url(), `${collector.base}/?site=demo`, "gone from the address bar");
  const stored = await page.evaluate(() => ({
    session: sessionStorage.getItem("pl-token"),
    local: Object.keys(localStorage).map((k) => localStorage.getItem(k)),
  }));
  assert.equal(stored.session, TOKEN);
  assert.ok(!stored.local.includes(TOKEN), "not in localStorage");
  // Another page of the dashboards, in the same tab, has it without a token in its link.
  await page.click("#to-heatmap");
  await page.waitForURL(/heatmap\.html/);
  assert.equal(await page.inputValue("[name=token]"), TOKEN);
  // Signing out forgets it and leaves for the sign-in page, whose token field is empty.
  await Promise.all([page.waitForURL(/\/signin\.html$/), page.click("#sign-out")]);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("pl-token")), null);
  assert.equal(await page.inputValue("#token-form [name=token]"), "");
  // A token in the query string (links of earlier versions) is dropped, not used: with neither
  // token nor session the page sends the browser on to sign in (here, with no account yet, to
  // the first-start form), to come back to its address without the token.
  await page.goto(`${collector.base}/?site=demo&token=${TOKEN}`);
  await page.waitForURL(/\/setup\.html\?next=/);
  assert.equal(new URL(page.url()).searchParams.get("next"), "/?site=demo");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("pl-token")), null);
  await ctx.close();
});

/** Every HTML page we ship, as its users open it. */
function pages() {
  const list = [];
  for (const f of readdirSync(join(root, "www")).filter((f) => f.endsWith(".html"))) {
    const q = f === "heatmap.html" ? "?site=demo&path=/demo/catalog.html" : "?site=demo";
    list.push({ url: `${collector.base}/${f}${q}#token=${TOKEN}`, ready: f === "sessions.html" ? "networkidle" : "body[data-ready]" });
  }
  for (const f of readdirSync(join(root, "demo-site")).filter((f) => f.endsWith(".html"))) {
    list.push({ url: `${collector.demo}/demo/${f}`, ready: "tracker" });
  }
  return list;
}

test("no page we ship breaks its own Content-Security-Policy", async () => {
  const shipped = pages();
  assert.ok(shipped.length >= 8, shipped.map((p) => p.url).join(" "));
  for (const { url, ready } of shipped) {
    const { ctx, page, seen } = await watched();
    await page.goto(url);
    if (ready === "tracker") {
      await page.waitForFunction(() => window.pathlight?.loaded);
      // The tracker's batch goes out too (connect-src).
      const sent = page.waitForRequest((r) => r.url().endsWith("/v1/batch"));
      await page.click("footer");
      await page.evaluate(() => window.pathlight.flush());
      await sent;
    } else if (ready === "networkidle") {
      await page.waitForLoadState("networkidle");
    } else {
      await page.waitForSelector(ready);
    }
    await page.waitForTimeout(300);
    assert.deepEqual(await seen.violations(), [], `CSP violations on ${url}`);
    assert.deepEqual(seen.errors, [], `console errors on ${url}`);
    await ctx.close();
  }
  // The watch itself works: an inline script on a dashboard is refused and reported.
  const { ctx, page, seen } = await watched();
  await page.goto(`${collector.base}/sessions.html#token=${TOKEN}`);
  await page.evaluate(() => {
    const s = document.createElement("script");
    s.textContent = "window.__ran = true";
    document.head.append(s);
  });
  const violations = await eventually(async () => (await seen.violations()).length > 0 && seen.violations(), 5_000, "a violation");
  assert.match(violations[0], /^script-src-elem inline/);
  assert.equal(await page.evaluate(() => window.__ran ?? false), false);
  await ctx.close();
});
