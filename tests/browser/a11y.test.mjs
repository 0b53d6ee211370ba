// The dashboards at a phone's width and for assistive technology: each page we ship under www/
// (dashboard, sessions, heatmap viewer, search, retention; the first-start, sign-in, account, settings,
// invitation and shared-link pages), loaded in Chromium at 375 px with two weeks of
// generated traffic (`pathlight gen`, `pathlight import`) behind it, must fit the screen (no
// sideways scrolling: the document is at most 375 px wide) and pass axe-core's WCAG 2.x A and
// AA rules with no violation (a few searches are sent beside the generated traffic, which has
// none). Screenshots go to tests/artifacts/.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { eventually, freePort, importGenerated, launchBrowser, root, startClickHouse, startCollector } from "../lib/stack.mjs";

const artifacts = join(root, "tests", "artifacts");
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
// Headless Chromium says "HeadlessChrome", which the collector flags as a bot (and the demo
// traffic is generated anyway); the pages are looked at as by a phone's browser.
const UA = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36";
const TOKEN = "a11y-token";
const WIDTH = 375;
const db = "e2e_a11y";
let browser, ch, collector, session;

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  browser = await launchBrowser();
  ch = await startClickHouse("a11y");
  const demoPort = await freePort();
  const sites = `[{id = "demo", origins = ["http://127.0.0.1:${demoPort}"], api_token = "${TOKEN}"}]`;
  collector = await startCollector({ clickhouseUrl: ch.url, db, demoPort, env: { PATHLIGHT_SITES: sites } });
  // Two weeks of traffic ending now, through the same stages as live traffic.
  importGenerated({ clickhouseUrl: ch.url, db, sites, demoOrigin: collector.demo });
  // And searches, which the generator does not make, so that the Search page has rows too.
  const now = Date.now() - 60_000;
  const searches = ["lamp", "desk lamp", "unicorn", "lamp"].flatMap((query, i) => [
    { type: "search", session_id: `q${i}`, url: "/demo/catalog.html", created_at: now + i, user_agent: UA, payload: { query, results: query === "unicorn" ? 0 : 4 } },
    { type: "search_result_click", session_id: `q${i}`, url: "/demo/catalog.html", created_at: now + i + 500, user_agent: UA, payload: { query, position: i + 1, item_id: `item-with-a-long-id-${i}` } },
  ]);
  const sent = await fetch(`${collector.base}/v1/batch?site=demo`, { method: "POST", headers: { "content-type": "application/json", "user-agent": UA }, body: JSON.stringify(searches) });
  assert.ok(sent.ok, await sent.text());
  [{ session }] = await eventually(
    () => ch.rows(`SELECT session_id AS session FROM ${db}.events WHERE is_bot = 0 GROUP BY session_id ORDER BY count() DESC, session_id LIMIT 1`),
    15_000,
    "imported events",
  );
});
after(async () => {
  await browser?.close();
  await collector?.stop();
});

/** The page's violations of axe-core's WCAG 2.x A/AA rules, as readable lines. */
async function violations(page) {
  // Through the debugging protocol, which the pages' CSP (scripts from the collector only)
  // does not govern.
  await page.evaluate(axeSource);
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"] } });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
  });
  return found.map((v) => `${v.impact} ${v.id} (${v.help}): ${v.nodes.join(", ")}`);
}

const pages = {
  dashboard: () => `/?site=demo`,
  sessions: () => `/sessions.html?` + new URLSearchParams({ site: "demo", session }),
  heatmap: () => `/heatmap.html?` + new URLSearchParams({ site: "demo", path: "/demo/catalog.html" }),
  search: () => `/search.html?site=demo`,
  retention: () => `/retention.html?site=demo`,
};

/**
 * Loads `path` in `ctx`, waits for it to be ready and every table it fills from the API to be
 * filled, and fails on script errors, axe-core violations and a document wider than the screen.
 */
async function check(ctx, path, name, act = async () => {}) {
  const page = await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${collector.base}${path}`);
  await page.waitForSelector("body[data-ready]", { timeout: 20_000 });
  // Every table the page fills from the API, filled.
  await page.waitForFunction(() => [...document.querySelectorAll("main table, #stage")].every((t) => t.hidden || t.closest("[hidden]") || t.querySelector("tr, iframe")), null, { timeout: 10_000 });
  await act(page);
  const width = await page.evaluate(() => ({
    doc: document.documentElement.scrollWidth,
    body: document.body.scrollWidth,
    widest: [...document.querySelectorAll("body *")]
      .map((e) => [e.getBoundingClientRect().right, e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className && typeof e.className === "string" ? "." + e.className.split(" ")[0] : "")])
      .sort((a, b) => b[0] - a[0])
      .slice(0, 3),
  }));
  const found = await violations(page);
  await page.screenshot({ path: join(artifacts, `a11y-${name}-${WIDTH}.png`), fullPage: true });
  await page.close();
  const problems = [...errors, ...found];
  if (width.doc > WIDTH || width.body > WIDTH) problems.push(`document ${width.doc} px, body ${width.body} px wide; widest: ${JSON.stringify(width.widest)}`);
  assert.deepEqual(problems, [], `script errors, axe-core violations and width on ${name} at ${WIDTH} px`);
}

const phone = () => browser.newContext({ viewport: { width: WIDTH, height: 800 }, userAgent: UA, isMobile: true, hasTouch: true });

// The account pages first, while no account exists: the first-start form is open.
test(`the first-start form fits ${WIDTH} px and passes axe-core's WCAG 2 A/AA rules`, async () => {
  const ctx = await phone();
  await check(ctx, "/setup.html", "setup");
  await ctx.close();
});

for (const [name, path] of Object.entries(pages)) {
  test(`the ${name} page fits ${WIDTH} px and passes axe-core's WCAG 2 A/AA rules, with data`, async () => {
    const ctx = await phone();
    await check(ctx, `${path()}#token=${TOKEN}`, name);
    await ctx.close();
  });
}

test(`the sign-in, account, settings, invitation and shared-link pages fit ${WIDTH} px and pass axe-core's WCAG 2 A/AA rules`, async () => {
  const ctx = await phone();
  // The first admin, made on the first-start form; then signed out, as the sign-in page is met.
  const first = await ctx.newPage();
  await first.goto(`${collector.base}/setup.html`);
  await first.waitForSelector("body[data-ready]");
  await first.fill("[name=email]", "ada@example.com");
  await first.fill("[name=password]", "a11y password");
  await first.fill("[name=again]", "a11y password");
  await Promise.all([first.waitForURL(/settings\.html/), first.click("#setup button")]);
  await first.waitForSelector("body[data-ready]");
  await Promise.all([first.waitForURL(/signin\.html/), first.click("#sign-out")]);
  await first.close();
  await check(ctx, "/signin.html", "signin", async (page) => {
    // With its two-factor field and an error said, as after a wrong password.
    await page.evaluate(() => { document.getElementById("code-field").hidden = false; });
    await page.fill("[name=email]", "ada@example.com");
    await page.fill("#signin [name=password]", "not the password");
    await page.click("#signin button");
    await page.waitForFunction(() => document.getElementById("status").textContent.includes("Wrong"));
  });
  const signin = await ctx.newPage();
  await signin.goto(`${collector.base}/signin.html?next=/account.html`);
  await signin.waitForSelector("body[data-ready]");
  await signin.fill("[name=email]", "ada@example.com");
  await signin.fill("#signin [name=password]", "a11y password");
  await Promise.all([signin.waitForURL((u) => u.pathname === "/account.html"), signin.click("#signin button")]);
  await signin.close();
  await check(ctx, "/account.html", "account", async (page) => {
    // With the two-factor link shown.
    await page.click("#totp-start");
    await page.waitForFunction(() => document.getElementById("totp-link").textContent.startsWith("otpauth://"));
  });
  await check(ctx, "/settings.html?site=demo", "settings", async (page) => {
    // With a new key, shown once.
    await page.fill("#add-key [name=name]", "reporting");
    await page.click("#add-key button");
    await page.waitForFunction(() => document.getElementById("new-key-text").textContent.startsWith("pl_"));
  });
  await ctx.close();
  // Opened without their links: each says what it needs.
  const anonymous = await phone();
  await check(anonymous, "/invite.html", "invite");
  await check(anonymous, "/share.html", "share");
  await anonymous.close();
});
