// Freshness: a click in Chromium → its row queryable in ClickHouse. The demo catalog (tracker
// defaults: flush every second) against `pathlight serve` with its spool (segments sealed
// 500 ms after their first record) and Debian's ClickHouse 18.16; each click is timed until
// `SELECT` sees it, polled every 20 ms. Clicks are 1.3 s apart, so they land at every phase
// of the tracker's flush timer. Prints a Markdown table.
//   node bench/freshness.mjs [clicks]        (after `make test` built everything)
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { launchBrowser, startClickHouse, startCollector } from "../tests/lib/stack.mjs";

const N = Number(process.argv[2] || 40);
const ch = await startClickHouse("bench-fresh");
const collector = await startCollector({
  clickhouseUrl: ch.url,
  db: "bench_fresh",
  env: { PATHLIGHT_SPOOL__DIR: mkdtempSync(join(tmpdir(), "pathlight-fresh-spool-")) },
});
const browser = await launchBrowser();
const page = await (await browser.newContext({ viewport: { width: 1440, height: 900 } })).newPage();
await page.goto(collector.demo + "/demo/catalog.html");
await page.waitForFunction(() => window.pathlight && typeof window.pathlight.errors === "function");
const clicks = async () => Number((await ch.rows("SELECT count() AS n FROM bench_fresh.events WHERE event_type = 'click'"))[0].n);

const ms = [];
for (let i = 0; i < N; i++) {
  const t0 = Date.now();
  await page.click("#add-1");
  while ((await clicks()) < i + 1) await new Promise((r) => setTimeout(r, 20));
  ms.push(Date.now() - t0);
  await new Promise((r) => setTimeout(r, 1300 - ((Date.now() - t0) % 1300)));
}
await browser.close();
await collector.stop();
ms.sort((a, b) => a - b);
const q = (p) => ms[Math.min(ms.length - 1, Math.floor(ms.length * p))];
console.log(`Clicks: ${N}, ${new Date().toISOString().slice(0, 10)}; tracker flush every 1 s, spool seal 500 ms.\n`);
console.log("| p50 ms | p95 ms | max ms |\n|---:|---:|---:|");
console.log(`| ${q(0.5)} | ${q(0.95)} | ${ms[ms.length - 1]} |`);
process.exit(0);
