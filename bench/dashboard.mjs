// The dashboard in Chromium over a collector's data (issue 27): time from navigation to the
// first figures (the cards filled) and to every panel drawn, p50 and p90 of N loads.
//   node bench/dashboard.mjs URL SITE TOKEN [LOADS]
// URL is the collector's base (it serves www/); bench/queries.sh runs this over its data. Each
// load is a fresh context (no cache); Chromium's User-Agent is an ordinary one (headless is a
// bot to us, not that the dashboard's reads care).
import { createRequire } from "node:module";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "..", "tests", "package.json"));
const { chromium } = require("playwright-core");

const [url, site, token, loads = "7"] = process.argv.slice(2);
if (!url || !site || !token) {
  console.error("usage: node bench/dashboard.mjs URL SITE TOKEN [LOADS]");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
const first = [];
const all = [];
try {
  for (let i = 0; i < Number(loads); i++) {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const page = await context.newPage();
    const t0 = Date.now();
    await page.goto(`${url}/index.html?site=${encodeURIComponent(site)}#token=${encodeURIComponent(token)}`);
    await page.waitForFunction(() => document.querySelectorAll("#cards .card").length > 0, null, { timeout: 120_000 });
    first.push(Date.now() - t0);
    await page.waitForFunction(() => document.getElementById("status").textContent === "" && document.querySelector("#series canvas"), null, { timeout: 120_000 });
    all.push(Date.now() - t0);
    await context.close();
  }
} finally {
  await browser.close();
}
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
console.log(`| **dashboard in Chromium: first figures** | ${pct(first, 0.5)} | ${pct(first, 0.9)} |`);
console.log(`| **dashboard in Chromium: charts drawn** | ${pct(all, 0.5)} | ${pct(all, 0.9)} |`);
