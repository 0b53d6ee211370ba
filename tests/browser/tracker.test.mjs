// The tracker in a real browser (Debian's Chromium via playwright-core) against the real
// collector and ClickHouse: what the test does on the demo site must be exactly what is stored.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { anomalies, eventually, freePort, launchBrowser, startClickHouse, startCollector } from "../lib/stack.mjs";

let ch, browser;

before(async () => {
  ch = await startClickHouse("browser");
  // launch() gives every run a fresh, temporary user-data-dir.
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** Opens `path` at `width` and waits until the tracker runs. */
async function open(context, base, path) {
  const page = await context.newPage();
  await page.goto(base + path);
  await page.waitForFunction(() => window.pathlight && typeof window.pathlight.errors === "function");
  return page;
}

/**
 * Clicks `selector` near fractions (fx, fy) of its box. Mouse events carry whole CSS pixels,
 * so the click goes to the nearest whole pixel and the expected fractions are those of that
 * pixel. Returns the page coordinates and the fractions expected.
 */
async function clickAt(page, selector, fx, fy) {
  const el = page.locator(selector);
  await el.scrollIntoViewIfNeeded();
  const box = await el.boundingBox();
  const [sx, sy] = await page.evaluate(() => [scrollX, scrollY]);
  const x = Math.round(box.x + box.width * fx);
  const y = Math.round(box.y + box.height * fy);
  await page.mouse.click(x, y);
  return { pageX: x + sx, pageY: y + sy, fx: (x - box.x) / box.width, fy: (y - box.y) / box.height };
}

const q = (s) => s.replaceAll("'", "\\'");

for (const width of [375, 768, 1440]) {
  test(`clicks, page views, SPA routes and scroll depth are exact at ${width} px`, async () => {
    const db = `e2e_w${width}`;
    const collector = await startCollector({ clickhouseUrl: ch.url, db });
    const context = await browser.newContext({ viewport: { width, height: 800 } });
    try {
      const page = await open(context, collector.demo, "/demo/catalog.html");
      const clicks = [];
      clicks.push({ id: "add-1", selector: "#add-1", ...(await clickAt(page, "#add-1", 0.25, 0.5)) });
      const chair = '[data-track="add-chair"]';
      clicks.push({ id: "", selector: chair, ...(await clickAt(page, chair, 0.8, 0.3)) });
      // A click on an icon inside a button is the button's click (position checked on the
      // page only: the fractions are relative to the button, not the icon).
      clicks.push({ id: "", selector: null, ...(await clickAt(page, ".icon", 0.5, 0.5)) });
      await page.evaluate(() => scrollTo(0, document.documentElement.scrollHeight));
      await page.waitForTimeout(200);
      await page.evaluate(() => scrollTo(0, document.documentElement.scrollHeight));
      // SPA: two pushState routes and a hash route, then a real navigation (pagehide beacon).
      await page.goto(collector.demo + "/demo/app.html");
      await page.waitForFunction(() => window.pathlight && typeof window.pathlight.errors === "function");
      await page.click("#tab-orders");
      await page.click("#tab-profile");
      await page.click("#tab-settings");
      await page.waitForTimeout(100);
      const errors = await page.evaluate(() => window.pathlight.errors());
      await page.goto("about:blank");
      await context.close();
      assert.equal(errors, 0, "the tracker swallowed errors");

      const views = await eventually(async () => {
        const rows = await ch.rows(`SELECT url, title, viewport_w, referrer FROM ${db}.events FINAL WHERE event_type = 'pageview' ORDER BY timestamp, timestamp_ms`);
        return rows.length >= 5 && rows;
      }, 15_000, "5 page views");
      assert.deepEqual(
        views.map((v) => v.url.replace(collector.demo, "")),
        ["/demo/catalog.html", "/demo/app.html", "/demo/app.html?view=orders", "/demo/app.html?view=profile", "/demo/app.html?view=profile#settings"],
      );
      assert.ok(views.every((v) => v.viewport_w === width), "viewport width");
      assert.equal(views[2].title, "Account: orders · Demo shop", "SPA title read after the route rendered");
      assert.equal(views[3].referrer, views[2].url, "SPA referrer is the previous route");

      const stored = await eventually(async () => {
        const rows = await ch.rows(`SELECT element_id, selector, tag, text, x, y, rel_x, rel_y, viewport_w, document_w FROM ${db}.events FINAL WHERE event_type = 'click' AND path = '/demo/catalog.html' ORDER BY timestamp, timestamp_ms`);
        return rows.length >= 3 && rows;
      }, 15_000, "3 catalog clicks");
      assert.equal(stored.length, 3);
      for (const [i, want] of clicks.entries()) {
        const got = stored[i];
        assert.ok(Math.abs(got.x - want.pageX) <= 1, `click ${i} x ${got.x} vs ${want.pageX}`);
        assert.ok(Math.abs(got.y - want.pageY) <= 1, `click ${i} y ${got.y} vs ${want.pageY}`);
        assert.equal(got.viewport_w, width);
        if (want.selector) {
          assert.equal(got.element_id, want.id);
          assert.equal(got.selector, want.selector);
          assert.ok(Math.abs(got.rel_x - want.fx) <= 0.01, `click ${i} rel_x ${got.rel_x} vs ${want.fx}`);
          assert.ok(Math.abs(got.rel_y - want.fy) <= 0.01, `click ${i} rel_y ${got.rel_y} vs ${want.fy}`);
        }
      }
      assert.equal(stored[0].text, "Add to cart");
      assert.equal(stored[2].tag, "button");
      assert.equal(stored[2].selector, "div.card:nth-of-type(4) > button", "short: unique from the stable class up");

      const [depth] = await ch.rows(`SELECT max(scroll_depth) AS d FROM ${db}.events FINAL WHERE event_type = 'scroll' AND path = '/demo/catalog.html'`);
      assert.equal(depth.d, 100);
      const [{ n, ids, sessions }] = await ch.rows(`SELECT count() AS n, uniqExact(event_id) AS ids, uniqExact(session_id) AS sessions FROM ${db}.events FINAL`);
      assert.equal(Number(n), Number(ids), "nothing duplicated");
      assert.equal(Number(sessions), 1, "one session across pages of the tab");
      // Clicks on buttons and tabs, each route's page view at once: no anomaly.
      const found = await anomalies(ch, db, "demo");
      console.log(`anomalies at ${width} px: ${JSON.stringify(found)}`);
      assert.deepEqual(found, { sessions: [], rage: [], dead: [] });
    } finally {
      await collector.stop();
    }
  });
}

test("nothing is sent with Global Privacy Control on or after opting out, and inputs are never read", async () => {
  const db = "e2e_privacy";
  const collector = await startCollector({ clickhouseUrl: ch.url, db });
  try {
    const gpc = await browser.newContext();
    await gpc.addInitScript(() => Object.defineProperty(Navigator.prototype, "globalPrivacyControl", { get: () => true }));
    const p1 = await gpc.newPage();
    await p1.goto(collector.demo + "/demo/catalog.html");
    await p1.waitForFunction(() => window.pathlight && window.pathlight.loaded);
    await p1.waitForTimeout(300);
    await p1.click("#add-1");
    await p1.goto("about:blank");
    await gpc.close();

    const ctx = await browser.newContext();
    const page = await open(ctx, collector.demo, "/demo/checkout.html");
    await page.click("#email");
    await page.fill("#email", "jane@example.com");
    await page.click("#card");
    await page.fill("#card", "4111 1111 1111 1111");
    await page.click("#address-box");
    await page.evaluate(() => window.pathlight.flush());
    const rows = await eventually(async () => {
      const r = await ch.rows(`SELECT event_type, element_id, text FROM ${db}.events FINAL WHERE event_type = 'click' ORDER BY timestamp, timestamp_ms`);
      return r.length >= 3 && r;
    }, 10_000, "checkout clicks");
    assert.deepEqual(rows.map((r) => [r.element_id, r.text]), [["email", ""], ["card", ""], ["address-box", ""]]);
    const all = await ch.rows(`SELECT * FROM ${db}.events`);
    const dump = JSON.stringify(all);
    // Whole values: a bare "4111" turns up by chance in the rows' random ids and hashes.
    for (const secret of ["jane@example.com", "4111 1111", "41111111", "Secret Street"]) assert.ok(!dump.includes(secret), secret);

    await page.evaluate(() => window.pathlight.optOut());
    await page.click("#place-order");
    await page.goto(collector.demo + "/demo/index.html");
    await page.waitForFunction(() => window.pathlight && window.pathlight.loaded);
    await page.waitForTimeout(300);
    await page.click("#hero-cta");
    await page.goto("about:blank");
    await ctx.close();
    await new Promise((r) => setTimeout(r, 1_500));
    const [{ n }] = await ch.rows(`SELECT count() AS n FROM ${db}.events WHERE path != '/demo/checkout.html' OR element_id = 'place-order'`);
    assert.equal(Number(n), 0, "events after opt-out or under GPC");
  } finally {
    await collector.stop();
  }
});

test("batches queued while the collector is down arrive once when it is back", async () => {
  const db = "e2e_outage";
  const [port, demoPort] = [await freePort(), await freePort()];
  let collector = await startCollector({ clickhouseUrl: ch.url, db, port, demoPort });
  const ctx = await browser.newContext();
  try {
    const page = await open(ctx, collector.demo, "/demo/catalog.html");
    await page.evaluate(() => window.pathlight.flush());
    await eventually(async () => (await ch.rows(`SELECT count() AS n FROM ${db}.events`))[0].n >= 1, 10_000, "page view");
    await collector.stop();
    for (const sel of ["#add-1", '[data-track="add-chair"]', "#load-more"]) await clickAt(page, sel, 0.5, 0.5);
    await page.evaluate(() => window.pathlight.flush());
    await eventually(() => page.evaluate(() => (localStorage.getItem("pathlight:queue") || "").length > 0), 10_000, "a queued batch");
    collector = await startCollector({ clickhouseUrl: ch.url, db, port, demoPort });
    const rows = await eventually(async () => {
      const r = await ch.rows(`SELECT element_id, selector FROM ${db}.events FINAL WHERE event_type = 'click'`);
      return r.length >= 3 && r;
    }, 20_000, "queued clicks");
    assert.equal(rows.length, 3);
    await page.waitForTimeout(1_500);
    const [{ n, ids }] = await ch.rows(`SELECT count() AS n, uniqExact(event_id) AS ids FROM ${db}.events`);
    assert.equal(Number(n), Number(ids), "delivered once");
    assert.equal(await page.evaluate(() => localStorage.getItem("pathlight:queue")), null, "queue drained");
  } finally {
    await ctx.close();
    await collector.stop();
  }
});
