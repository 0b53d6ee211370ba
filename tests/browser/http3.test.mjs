// HTTP/3 in a real browser: Chromium with QUIC forced for the collector's origins and its
// self-signed certificate trusted by SPKI hash loads the demo site over HTTPS; the page and
// the tracker's beacons must travel over h3 (as Chromium's network stack reports them) and
// the events must land in ClickHouse. 127.0.0.1, not localhost: QUIC is bound to the address.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { eventually, launchBrowser, startClickHouse, startCollector } from "../lib/stack.mjs";

let ch, collector, browser;

before(async () => {
  ch = await startClickHouse("h3");
  collector = await startCollector({
    clickhouseUrl: ch.url,
    db: "e2e_h3",
    env: { PATHLIGHT_TLS__SELF_SIGNED: "true", PATHLIGHT_TLS__HTTP3: "true" },
  });
  const [{ port }, demo] = [new URL(collector.base), new URL(collector.demo)];
  browser = await launchBrowser([
    "--enable-quic",
    `--origin-to-force-quic-on=127.0.0.1:${port},127.0.0.1:${demo.port}`,
    `--ignore-certificate-errors-spki-list=${collector.spki}`,
  ]);
});
after(async () => {
  await browser?.close();
  await collector?.stop();
});

test("the demo site over HTTPS sends its beacons over HTTP/3", async () => {
  assert.ok(collector.base.startsWith("https://127.0.0.1:"), collector.base);
  assert.ok(collector.spki, "the collector printed its certificate's SPKI hash");
  const context = await browser.newContext({ viewport: { width: 1440, height: 800 } });
  const page = await context.newPage();
  // The protocol of every answer, as the browser's network stack reports it: Resource Timing
  // hides it for the tracker's files and batches, which come from the collector's origin.
  const protocols = [];
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  cdp.on("Network.responseReceived", (e) => protocols.push({ name: new URL(e.response.url).pathname, protocol: e.response.protocol }));
  await page.goto(collector.demo + "/demo/catalog.html");
  await page.waitForFunction(() => window.pathlight && typeof window.pathlight.errors === "function");
  await page.click("#add-1");
  await page.evaluate(() => window.pathlight.flush());
  await eventually(() => protocols.some((e) => e.name === "/v1/batch"), 10_000, "a batch answer");
  const batches = protocols.filter((e) => e.name === "/v1/batch");
  assert.ok(batches.every((e) => e.protocol === "h3"), JSON.stringify(protocols));
  assert.equal(protocols.find((e) => e.name === "/demo/catalog.html")?.protocol, "h3", JSON.stringify(protocols));
  assert.equal(protocols.find((e) => /^\/p\.[0-9a-f]{8}\.wasm$/.test(e.name))?.protocol, "h3", JSON.stringify(protocols));
  assert.equal(await page.evaluate(() => window.pathlight.errors()), 0);

  const [click] = await eventually(async () => {
    const rows = await ch.rows("SELECT element_id, url FROM e2e_h3.events WHERE event_type = 'click'");
    return rows.length > 0 && rows;
  }, 15_000, "the click over h3");
  assert.equal(click.element_id, "add-1");
  assert.ok(click.url.startsWith(collector.demo), click.url);
  await context.close();
});
