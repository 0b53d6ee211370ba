// Measures where the demo site's elements are, in Chromium, at the four widths `pathlight gen`
// simulates (phone, tablet, laptop, wide desktop), so generated clicks land on real element
// boxes and carry the selectors the tracker would record. Writes demo-site/layout.json
// (or the path given); tests/browser/layout.test.mjs re-measures and compares, so the file
// cannot drift from the pages.
//   node scripts/demo-layout.mjs [OUT]
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const PAGES = ["index.html", "catalog.html", "product.html", "checkout.html", "app.html"];
export const SCREENS = [[390, 844], [768, 1024], [1440, 900], [1920, 1080]];
const CLICKABLE = "a[href], button, input, select, [data-track], h1, h2, img, p";

/** The tracker's own selector and text functions, taken from its source so they cannot differ. */
function trackerFunctions() {
  const src = readFileSync(join(root, "tracker-wasm", "js", "host.js"), "utf8");
  const line = (start) => src.split("\n").find((l) => l.startsWith(start));
  const block = (start) => {
    const from = src.slice(src.indexOf(start));
    return from.slice(0, from.indexOf("\n}") + 2) + (start.startsWith("const") ? ";" : "");
  };
  return [line("const TRACK_ATTRS"), line("const MAX_SELECTOR"), line("const cssString"),
    line("const shortText"), line("const STABLE_CLASS"), block("const safe = "),
    block("function step(e) {"), block("function selector(el) {")].join("\n");
}

export async function measure() {
  const require = createRequire(join(root, "tests", "package.json"));
  const { chromium } = require("playwright-core");
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const helpers = trackerFunctions();
  const out = { pages: {} };
  try {
    for (const page of PAGES) {
      out.pages[page] = [];
      for (const [w, h] of SCREENS) {
        const context = await browser.newContext({ viewport: { width: w, height: h } });
        const tab = await context.newPage();
        // No network: the tracker's script tag fails quietly, the layout is the page's own.
        await tab.route(/^https?:/, (r) => r.abort());
        await tab.goto(pathToFileURL(join(root, "demo-site", page)).href);
        out.pages[page].push(await tab.evaluate(([helpers, clickable, w, h]) => {
          const { selector, shortText } = new Function(helpers + "\nreturn { selector, shortText };")();
          const seen = new Set();
          const elements = [];
          for (const el of document.querySelectorAll(clickable)) {
            const r = el.getBoundingClientRect();
            const s = selector(el);
            if (r.width < 1 || r.height < 1 || seen.has(s)) continue;
            seen.add(s);
            const tag = el.tagName.toLowerCase();
            elements.push({
              selector: s, id: el.id || null, tag,
              text: ["input", "select"].includes(tag) ? null : shortText(el.textContent || "") || null,
              href: el.getAttribute("href"),
              interactive: ["a", "button", "input", "select"].includes(tag),
              box: [r.left + scrollX, r.top + scrollY, r.width, r.height].map(Math.round),
            });
          }
          const d = document.documentElement;
          return { viewport: [w, h], document: [d.scrollWidth, d.scrollHeight], title: document.title, elements };
        }, [helpers, CLICKABLE, w, h]));
        await context.close();
      }
    }
  } finally {
    await browser.close();
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2] || join(root, "demo-site", "layout.json");
  writeFileSync(file, JSON.stringify(await measure(), null, 1) + "\n");
  console.log(`wrote ${file}`);
}
