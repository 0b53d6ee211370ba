// Main-thread cost of one click for the tracker, in Chromium: the time `dispatchEvent` of a
// click takes on the demo catalog with the tracker running, minus the same on the same page
// with the tracker never loaded (same DOM, same listeners otherwise). Prints a Markdown table.
//   node bench/tracker-click.mjs [clicks]        (after `make test` built everything)
import { cpus } from "node:os";
import { launchBrowser, startClickHouse, startCollector } from "../tests/lib/stack.mjs";

const N = Number(process.argv[2] || 2000);

const ch = await startClickHouse("bench-click");
const collector = await startCollector({ clickhouseUrl: ch.url, db: "bench_click" });
const browser = await launchBrowser();

async function measure(withTracker) {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await ctx.newPage();
  if (!withTracker) await page.route("**/p.js", (r) => r.fulfill({ status: 200, contentType: "text/javascript", body: "" }));
  await page.goto(collector.demo + "/demo/catalog.html");
  if (withTracker) await page.waitForFunction(() => window.pathlight && typeof window.pathlight.errors === "function");
  const result = await page.evaluate((n) => {
    const el = document.querySelector("#products .card:nth-child(4) .icon");
    const r = el.getBoundingClientRect();
    const ev = () => new MouseEvent("click", { bubbles: true, cancelable: true, clientX: r.left + 3, clientY: r.top + 3 });
    for (let i = 0; i < 200; i++) el.dispatchEvent(ev()); // warm up
    // performance.now() is coarsened to 100 µs here, so time groups of 20 clicks (one tracker
    // batch: the group includes the encode + send of its flush) and divide.
    const group = 20;
    const samples = [];
    for (let i = 0; i < n / group; i++) {
      const events = Array.from({ length: group }, ev);
      const t = performance.now();
      for (const e of events) el.dispatchEvent(e);
      samples.push((performance.now() - t) / group);
    }
    samples.sort((a, b) => a - b);
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    return { mean, p50: samples[Math.floor(samples.length / 2)], p99: samples[Math.floor(samples.length * 0.99)] };
  }, N);
  await ctx.close();
  return result;
}

const base = await measure(false);
const tracked = await measure(true);
await browser.close();
await collector.stop();
const f = (ms) => `${(ms * 1000).toFixed(1)} µs`;
console.log(`Clicks per run: ${N} (after 200 warm-up), Chromium ${browser.version()}, ${cpus().length} cores, ${new Date().toISOString().slice(0, 10)}`);
console.log("");
console.log("| page | mean per click | p50 of 20-click groups | p99 of 20-click groups |");
console.log("|---|---:|---:|---:|");
console.log(`| without tracker | ${f(base.mean)} | ${f(base.p50)} | ${f(base.p99)} |`);
console.log(`| with tracker | ${f(tracked.mean)} | ${f(tracked.p50)} | ${f(tracked.p99)} |`);
console.log(`| **tracker's cost per click** | **${f(tracked.mean - base.mean)}** | ${f(tracked.p50 - base.p50)} | ${f(tracked.p99 - base.p99)} |`);
process.exit(0);
