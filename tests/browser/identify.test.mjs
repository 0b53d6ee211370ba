// `pathlight.identify(user_id, traits)` of the <script> embed in Chromium against the real
// collector and ClickHouse: the traits reach `users`, the page's later events (on this page and
// the next) carry the user id until `identify(null)`, the session explorer shows the user and
// their traits, and a visitor who opted out, or whose browser sends Global Privacy Control,
// sends nothing about the user at all.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { eventually, launchBrowser, startClickHouse, startCollector } from "../lib/stack.mjs";
import { USER_AGENT } from "../lib/site.mjs";

let ch, browser;
before(async () => {
  ch = await startClickHouse("identify");
  browser = await launchBrowser();
});
after(async () => browser?.close());

/** Opens `path` of the demo site and waits until the tracker runs (or decided to stay off). */
async function open(context, collector, path) {
  const page = await context.newPage();
  await page.goto(collector.demo + path);
  await page.waitForFunction(() => window.pathlight && window.pathlight.loaded && typeof window.pathlight.errors === "function");
  return page;
}

/** Each user's latest traits in `db`, as the read side takes them. */
const users = async (db) =>
  (await ch.rows(`SELECT user_id, argMax(traits, updated_ms) AS traits FROM ${db}.users GROUP BY user_id ORDER BY user_id`))
    .map((r) => [r.user_id, JSON.parse(r.traits)]);

test("identify from a page stores the traits, names the user on later events, and the session explorer shows them", async () => {
  const db = "e2e_identify";
  const token = "identify-api-token";
  const collector = await startCollector({
    clickhouseUrl: ch.url, db,
    env: { PATHLIGHT_SITES: `[{id = "demo", origins = ["*"], api_token = "${token}"}]` },
  });
  try {
    const ctx = await browser.newContext({ userAgent: USER_AGENT });
    const page = await open(ctx, collector, "/demo/catalog.html");
    const posted = page.waitForResponse((r) => r.url().endsWith("/v1/identify"));
    await page.evaluate(() => window.pathlight.identify("u-42", { plan: "pro", seats: 3, trial: false }));
    const answer = await posted;
    assert.equal(answer.status(), 204);
    assert.equal(answer.request().headers()["content-type"], "text/plain;charset=UTF-8", "a simple request: no preflight");
    // A refused identify is not silent: the console says so and errors() counts it.
    const errorsBefore = await page.evaluate(() => window.pathlight.errors());
    const warned = page.waitForEvent("console", (m) => m.text() === "Pathlight: identify failed");
    await page.evaluate(() => window.pathlight.identify("u-42", { nested: [1] }));
    await warned;
    assert.equal(await page.evaluate(() => window.pathlight.errors()), errorsBefore + 1);
    await page.click("#add-1");
    await page.evaluate(() => window.pathlight.flush());
    // The next page of the site still knows the user; after sign-out, nobody.
    const next = await open(ctx, collector, "/demo/index.html");
    await next.evaluate(() => window.pathlight.track("browsed"));
    await next.evaluate(() => window.pathlight.identify(null));
    await next.evaluate(() => window.pathlight.track("signed_out"));
    await next.evaluate(() => window.pathlight.flush());
    await page.close();
    await next.goto("about:blank");
    await ctx.close();

    assert.deepEqual(await users(db), [["u-42", { plan: "pro", seats: 3, trial: false }]]);
    const rows = await eventually(async () => {
      const r = await ch.rows(`SELECT event_type, path, element_id, name, user_id FROM ${db}.events FINAL WHERE event_type IN ('pageview', 'click', 'custom') ORDER BY timestamp, timestamp_ms`);
      return r.some((e) => e.name === "signed_out") && r;
    }, 10_000, "the events of both pages");
    assert.deepEqual(rows.map((e) => [e.event_type, e.path, e.element_id || e.name, e.user_id]), [
      ["pageview", "/demo/catalog.html", "", ""],
      ["click", "/demo/catalog.html", "add-1", "u-42"],
      ["pageview", "/demo/index.html", "", "u-42"],
      ["custom", "/demo/index.html", "browsed", "u-42"],
      ["custom", "/demo/index.html", "signed_out", ""],
    ]);

    // The session explorer: the session's user and their traits, in the list and above the
    // timeline (the API's `traits`, keys in order).
    const [{ session_id }] = await ch.rows(`SELECT session_id FROM ${db}.events WHERE user_id = 'u-42' LIMIT 1`);
    const viewer = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const explorer = await viewer.newPage();
    await explorer.goto(`${collector.base}/sessions.html?` + new URLSearchParams({ site: "demo", session: session_id }) + `#token=${token}`);
    await explorer.waitForSelector("body[data-ready]");
    const shown = "user u-42 · plan: pro · seats: 3 · trial: false";
    assert.equal(await explorer.textContent("#timeline tr.user"), shown);
    const listedRows = await explorer.$$eval("#recent tr.session", (trs) => trs.map((tr) => [tr.children[0].textContent, tr.lastElementChild.textContent]));
    // Two sessions: the second page was opened in a tab of its own. Both are u-42's.
    assert.equal(listedRows.length, 2, JSON.stringify(listedRows));
    assert.ok(listedRows.some(([id]) => id === session_id), JSON.stringify(listedRows));
    for (const [, user] of listedRows) assert.equal(user, shown);
    await viewer.close();
  } finally {
    await collector.stop();
  }
});

test("an opted-out visitor's identify, or one under Global Privacy Control, sends and stores nothing", async () => {
  const db = "e2e_identify_optout";
  const collector = await startCollector({ clickhouseUrl: ch.url, db });
  try {
    const identifies = [];
    const watch = (ctx) => ctx.on("request", (r) => r.url().includes("/v1/identify") && identifies.push(r.url()));

    // Opted out on an earlier page: identify on the next one, even called before the tracker
    // has loaded (queued by the tag's stub), does nothing.
    const out = await browser.newContext({ userAgent: USER_AGENT });
    watch(out);
    const first = await open(out, collector, "/demo/catalog.html");
    await first.evaluate(() => window.pathlight.optOut());
    await first.close();
    const early = await out.newPage();
    await early.addInitScript(() => {
      window.pathlight = { q: [["identify", ["u-early", { plan: "secret" }]]] };
    });
    await early.goto(collector.demo + "/demo/index.html");
    await early.waitForFunction(() => window.pathlight.loaded && typeof window.pathlight.errors === "function");
    await early.evaluate(() => window.pathlight.identify("u-out", { email: "jane@example.com" }));
    await early.click("#hero-cta");
    await early.goto("about:blank");
    await out.close();

    // Global Privacy Control: the tracker never starts, identify included.
    const gpc = await browser.newContext({ userAgent: USER_AGENT });
    watch(gpc);
    await gpc.addInitScript(() => Object.defineProperty(Navigator.prototype, "globalPrivacyControl", { get: () => true }));
    const page = await open(gpc, collector, "/demo/catalog.html");
    await page.evaluate(() => window.pathlight.identify("u-gpc", { plan: "pro" }));
    await page.goto("about:blank");
    await gpc.close();

    // A visitor who did not opt out, on the same collector: their identify is stored, so the
    // silence above is the opt-out's, not a broken path.
    const ok = await browser.newContext({ userAgent: USER_AGENT });
    const control = await open(ok, collector, "/demo/catalog.html");
    const stored = control.waitForResponse((r) => r.url().endsWith("/v1/identify"));
    await control.evaluate(() => window.pathlight.identify("u-control", { plan: "free" }));
    assert.equal((await stored).status(), 204);
    await ok.close();

    assert.deepEqual(identifies, [], "identify requests from opted-out or GPC visitors");
    assert.deepEqual(await users(db), [["u-control", { plan: "free" }]]);
    const [{ n }] = await ch.rows(`SELECT count() AS n FROM ${db}.events WHERE user_id != ''`);
    assert.equal(Number(n), 0, "no event carries an opted-out visitor's user id");
    const dump = JSON.stringify(await ch.rows(`SELECT * FROM ${db}.events`));
    for (const secret of ["u-early", "u-out", "u-gpc", "jane@example.com"]) assert.ok(!dump.includes(secret), secret);
  } finally {
    await collector.stop();
  }
});
