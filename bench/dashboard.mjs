// The dashboard page in Chromium over 10 M events (issue 27: "the first figures appear within
// 1 s"). The page (www/index.html) is served by a collector this script starts against an
// already-loaded ClickHouse; each load opens `/?site=bench#token=bench` in a fresh browser
// context (empty cache and storage), and the page asks the query API for stats, funnel,
// anomalies and realtime at once, as it does for a user. Timed from navigation start, in the
// page (performance.now()), until each part is shown:
//   first figures   the totals cards show numbers (dashboard.js builds #cards only from a
//                   stats answer; before it the section is empty, there is no placeholder)
//   chart           the visitors chart is drawn (uPlot's canvas in #series)
//   stats part      body[data-ready]: cards, both charts and the nine top lists
//   funnel, anomalies, live   a row in #funnel, a row in #anomalies, #live-visitors not "–"
//   everything      all of the above
// "Shown" is the end of the frame after the DOM change (a task queued from the next
// requestAnimationFrame). Beside them, each API call's time as the page saw it (Resource
// Timing: request start to response end).
//   PL_BENCH_CLICKHOUSE=http://127.0.0.1:PORT node bench/dashboard.mjs [LOADS]
// ClickHouse must hold the events already, in database `bench`, site `bench`:
// `PL_BENCH_CLICKHOUSE=URL bench/queries.sh 10000000` loads them (and skips loading when they
// are there). Nothing is written to it but what any collector writes (its migrations and
// session rollup, which find nothing to do on rolled data). Rows: "cold", the answer cache off
// (`query_cache.ttl_secs = 0`), every call runs its queries; "warm", the cache on and the page
// loaded once before, every call served from it; "cold, no anomalies call", cold with that one
// call failed in the browser, to show what it costs the others (it runs beside them on the
// same cores). LOADS (default 7) loads per row.
// PL_BENCH_BIN: the collector binary (default target/debug/pathlight; nothing is built).
// PL_BENCH_TIMEOUT_MS: the limit per load (default 120000). A load that reaches it leaves a
// screenshot and prints the page's console errors and the calls still pending.
// PL_BENCH_MAX_LOAD (default 2.5): waits, up to 10 minutes, for the 1-minute load average to
// fall below it before starting (another build or bench would be measured too).
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, relative } from "node:path";
import { freePort, launchBrowser, root } from "../tests/lib/stack.mjs";
import { USER_AGENT } from "../tests/lib/site.mjs";

const LOADS = Number(process.argv[2] || 7);
const ch = process.env.PL_BENCH_CLICKHOUSE;
const bin = process.env.PL_BENCH_BIN || join(root, "target", "debug", "pathlight");
const TIMEOUT = Number(process.env.PL_BENCH_TIMEOUT_MS || 120_000);
const MAX_LOAD = Number(process.env.PL_BENCH_MAX_LOAD || 2.5);
if (!ch || !["127.0.0.1", "localhost", "[::1]"].includes(new URL(ch).hostname)) {
  console.error("usage: PL_BENCH_CLICKHOUSE=http://127.0.0.1:PORT node bench/dashboard.mjs [LOADS] (loopback only)");
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), "pathlight-bench-dashboard-"));
const log = (...a) => console.error(...a);

async function query(sql) {
  const r = await fetch(`${ch}/?database=bench`, { method: "POST", body: sql, signal: AbortSignal.timeout(30_000) });
  const text = await r.text();
  if (!r.ok) throw new Error(`${sql}: ${text}`);
  return text.trim();
}
const events = Number(await query("SELECT count() FROM events WHERE site_id = 'bench'"));
if (!events) {
  console.error(`no events of site bench in ${ch}, database bench: load them with PL_BENCH_CLICKHOUSE=${ch} bench/queries.sh 10000000`);
  process.exit(2);
}
const parts = await query("SELECT count() FROM system.parts WHERE database = 'bench' AND table = 'events' AND active");
const chVersion = await query("SELECT version()");
// Queries ClickHouse is running for anyone but this check: a load starts once the last load's
// are done (a closed page does not stop them), and counts those of others it had to share with.
const running = async () => Number(await query("SELECT count() FROM system.processes WHERE query NOT LIKE '%system.processes%'"));

async function quiet() {
  const until = Date.now() + 10 * 60_000;
  let first = true;
  while (loadavg()[0] > MAX_LOAD && Date.now() < until) {
    if (first) log(`load average ${loadavg()[0].toFixed(2)} > ${MAX_LOAD}: waiting (up to 10 min)`);
    first = false;
    await new Promise((r) => setTimeout(r, 15_000));
  }
  return loadavg()[0];
}

// The collectors this script started, stopped however it ends.
const children = new Set();
process.on("exit", () => { for (const c of children) c.kill("SIGKILL"); });
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

async function startCollector(name, cacheTtl) {
  const config = join(dir, `${name}.toml`);
  writeFileSync(config, `hash_secret = "bench-secret-not-for-production"
www_dir = ${JSON.stringify(join(root, "www"))}
[[sites]]
id = "bench"
api_token = "bench"
[query_cache]
ttl_secs = ${cacheTtl}
`);
  const port = await freePort();
  const child = spawn(bin, ["--config", config, "serve", "--listen", `127.0.0.1:${port}`], {
    cwd: dir,
    env: { PATH: process.env.PATH, PATHLIGHT_LOG: "warn", PATHLIGHT_CLICKHOUSE__URL: ch, PATHLIGHT_CLICKHOUSE__DATABASE: "bench" },
    stdio: ["ignore", "ignore", "inherit"],
  });
  children.add(child);
  const exited = new Promise((r) => child.once("exit", r));
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`${bin} serve exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {}
    if (i > 600) throw new Error(`${bin} serve did not answer in 60 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(t);
      }
      children.delete(child);
    },
  };
}

// Runs in the page before its own scripts: records when each part is first shown.
function probe() {
  const marks = (window.__dash = {});
  const at = (k) => {
    if (k in marks) return;
    marks[k] = null;
    const dom = performance.now();
    requestAnimationFrame(() => setTimeout(() => { marks[k] = { dom, shown: performance.now() }; }));
  };
  const check = () => {
    const visitors = document.querySelector('#cards .card[data-metric="Visitors"] b');
    const done = {
      figures: !!visitors && /\d/.test(visitors.textContent),
      chart: !!document.querySelector("#series .uplot canvas"),
      stats: document.body?.dataset.ready === "1",
      funnel: !!document.querySelector("#funnel tr"),
      anomalies: !!document.querySelector("#anomalies tr"),
      live: (document.getElementById("live-visitors")?.textContent ?? "–") !== "–",
    };
    for (const [k, v] of Object.entries(done)) if (v) at(k);
    if (Object.values(done).every(Boolean)) at("all");
  };
  new MutationObserver(check).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
}

const MILESTONES = [
  ["figures", "first figures (totals cards show numbers)"],
  ["chart", "visitors chart drawn"],
  ["stats", "stats part done (cards, 2 charts, 9 lists)"],
  ["funnel", "funnel filled"],
  ["live", "live visitors shown"],
  ["anomalies", "anomalies filled"],
  ["all", "**every card and list filled**"],
];

// One load; `block` names an API call failed before it leaves the browser (then the page's
// other parts are waited for), to see what it costs the others.
async function load(browser, base, label, block) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, userAgent: USER_AGENT });
  const page = await context.newPage();
  await page.addInitScript(probe);
  if (block) await page.route((u) => u.pathname === `/api/v1/${block}`, (r) => r.abort("blockedbyclient"));
  const need = block ? MILESTONES.map(([k]) => k).filter((k) => k !== block && k !== "all") : ["all"];
  const problems = [];
  // The blocked call's failure is expected (the page does not catch it).
  const mine = (text) => block && [`/api/v1/${block}`, "Failed to fetch", "ERR_BLOCKED_BY_CLIENT"].some((t) => text.includes(t));
  page.on("console", (m) => { if ((m.type() === "error" || m.type() === "warning") && !mine(m.text())) problems.push(`console ${m.type()}: ${m.text()}`); });
  page.on("pageerror", (e) => { if (!mine(e.message)) problems.push(`page error: ${e.message}`); });
  const pending = new Set();
  page.on("request", (r) => pending.add(r.url()));
  page.on("requestfinished", (r) => pending.delete(r.url()));
  page.on("requestfailed", (r) => { pending.delete(r.url()); if (!mine(r.url())) problems.push(`failed: ${r.url()} ${r.failure()?.errorText}`); });
  const others = await running();
  try {
    const res = await page.goto(`${base}/?site=bench#token=bench`, { timeout: TIMEOUT });
    // The removed first version waited on a 404: its collector served no www/.
    if (res.status() !== 200) throw new Error(`the dashboard page answered ${res.status()}: ${(await res.text()).slice(0, 200)}`);
    let timedOut = false;
    await page.waitForFunction((ks) => ks.every((k) => window.__dash[k]), need, { timeout: TIMEOUT, polling: 100 }).catch(() => { timedOut = true; });
    const got = await page.evaluate(() => {
      const nav = performance.getEntriesByType("navigation")[0];
      const api = performance.getEntriesByType("resource").filter((e) => new URL(e.name).pathname.startsWith("/api/"))
        .map((e) => ({ call: new URL(e.name).pathname.replace("/api/v1/", ""), start: e.startTime, end: e.responseEnd, status: e.responseStatus }));
      const canvas = document.querySelector("#series canvas");
      let painted = 0;
      if (canvas) {
        const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 3; i < px.length; i += 4) if (px[i]) painted++;
      }
      const card = (m) => document.querySelector(`#cards .card[data-metric="${m}"] b`)?.textContent;
      return {
        marks: window.__dash, dcl: nav.domContentLoadedEventEnd, api, painted,
        cards: { visitors: card("Visitors"), pageviews: card("Page views"), sessions: card("Sessions") },
        status: document.getElementById("status").textContent,
        anomalies: document.querySelectorAll("#anomalies tr").length,
      };
    });
    if (timedOut) {
      const shot = join(dir, `timeout-${label}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      log(`load ${label}: not every part shown within ${TIMEOUT} ms; screenshot ${shot}`);
      log(`  shown: ${Object.keys(got.marks).filter((k) => got.marks[k]).join(", ") || "nothing"}; status "${got.status}"`);
      for (const u of pending) log(`  still pending: ${u}`);
      for (const p of problems) log(`  ${p}`);
    } else if (problems.length) log(`load ${label}: ${problems.join("; ")}`);
    // Calls without a Resource Timing entry yet: still pending when the load ended.
    const waiting = [...pending].map((u) => new URL(u).pathname).filter((p) => p.startsWith("/api/")).map((p) => p.replace("/api/v1/", ""));
    return { ...got, waiting, others, timedOut };
  } finally {
    await context.close();
    // The calls the page left running go on in ClickHouse: wait for them (bounded).
    for (let i = 0; i < 300 && (await running()) > 0; i++) await new Promise((r) => setTimeout(r, 500));
  }
}

async function row(browser, name, cacheTtl, { prime = false, block } = {}) {
  const collector = await startCollector(name, cacheTtl);
  try {
    if (prime) await load(browser, collector.base, `${name}-prime`);
    const loads = [];
    for (let i = 0; i < LOADS; i++) {
      const l = await load(browser, collector.base, `${name}-${i + 1}`, block);
      const t = (k) => (l.marks[k] ? `${Math.round(l.marks[k].shown)} ms` : "not shown");
      log(`${name} ${i + 1}: first figures ${t("figures")}, stats part ${t("stats")}, everything ${t("all")}; ` +
        `visitors ${l.cards.visitors}, page views ${l.cards.pageviews}; chart ${l.painted} px painted; ${l.others} other queries running at start`);
      loads.push(l);
    }
    return loads;
  } finally {
    await collector.stop();
  }
}

// p50 and p90 as bench/queries.sh takes them (the values at ranks n/2 and 9n/10 of n).
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * p)];
const ms = (v) => (v === undefined ? "–" : Number.isFinite(v) ? Math.round(v).toLocaleString("en") : `> ${TIMEOUT.toLocaleString("en")}`);
const cells = (xs) => `${ms(pct(xs, 0.5))} | ${ms(pct(xs, 0.9))}`;

const loadStart = await quiet();
const browser = await launchBrowser([`--user-agent=${USER_AGENT}`]);
let cold, warm, alone;
try {
  cold = await row(browser, "cold", 0);
  // Ten minutes: a cold anomalies call takes tens of seconds, and every warm load must find
  // every answer of the priming load still cached.
  warm = await row(browser, "warm", 600, { prime: true });
  // Cold again, the anomalies call failed in the browser: what the others take without it
  // running beside them on the same two cores.
  alone = await row(browser, "cold-no-anomalies", 0, { block: "anomalies" });
} finally {
  await browser.close();
}
const loadEnd = loadavg()[0];

const rows = { cold, warm, "cold without anomalies": alone };
const binStat = statSync(bin);
const sha = createHash("sha256").update(readFileSync(bin)).digest("hex").slice(0, 12);
const argv = process.argv.slice(2).join(" ");
const env = ["PL_BENCH_BIN", "PL_BENCH_TIMEOUT_MS", "PL_BENCH_MAX_LOAD"].filter((k) => process.env[k]).map((k) => `${k}=${process.env[k]} `).join("");
const out = [];
out.push(`Machine: ${cpus().length} cores (${cpus()[0].model.trim()}); 1-minute load average ${loadStart.toFixed(2)} at the start, ${loadEnd.toFixed(2)} at the end.`);
out.push(`ClickHouse ${chVersion}, database bench: ${events.toLocaleString("en")} events of site bench in ${parts} active parts of \`events\`.`);
out.push(`Collector: ${bin.startsWith(root + "/") ? relative(root, bin) : bin} (sha256 ${sha}…, built ${binStat.mtime.toISOString().slice(0, 16)}Z), answer cache off (cold) or 600 s (warm).`);
out.push(`Chromium ${browser.version()}, headless, 1280×900, a fresh context per load; ${LOADS} loads per row (warm: after one priming load); timeout ${TIMEOUT / 1000} s per load.`);
out.push(`Command: \`PL_BENCH_CLICKHOUSE=${ch} ${env}node bench/dashboard.mjs${argv ? " " + argv : ""}\` (${new Date().toISOString().slice(0, 10)})`);
out.push("");
out.push("| ms from navigation start, until shown | cold p50 | cold p90 | warm p50 | warm p90 | cold, no anomalies call: p50 | p90 |");
out.push("|---|---:|---:|---:|---:|---:|---:|");
out.push(`| page shell (DOMContentLoaded) | ${cells(cold.map((l) => l.dcl))} | ${cells(warm.map((l) => l.dcl))} | ${cells(alone.map((l) => l.dcl))} |`);
for (const [k, label] of MILESTONES) {
  const of = (loads) => loads.map((l) => l.marks[k]?.shown ?? Infinity);
  const without = k === "anomalies" || k === "all" ? "– | –" : cells(of(alone));
  out.push(`| ${label} | ${cells(of(cold))} | ${cells(of(warm))} | ${without} |`);
}
out.push("");
out.push("| API call as the page saw it (ms) | cold sent at p50 | cold p50 | cold p90 | warm p50 | warm p90 | cold, no anomalies call: p50 | p90 | statuses |");
out.push("|---|---:|---:|---:|---:|---:|---:|---:|---|");
const calls = [...new Set([...cold, ...warm].flatMap((l) => [...l.api.map((a) => a.call), ...l.waiting]))];
for (const call of calls) {
  // A call still pending when the load timed out has no entry: counted as the timeout.
  const times = (loads) => loads.map((l) => { const a = l.api.find((x) => x.call === call); return a ? a.end - a.start : Infinity; });
  const sent = cold.map((l) => l.api.find((x) => x.call === call)?.start).filter((v) => v !== undefined);
  const seen = call === "anomalies" ? [...cold, ...warm] : [...cold, ...warm, ...alone];
  const statuses = [...new Set(seen.flatMap((l) => l.api.filter((x) => x.call === call).map((x) => x.status)))].join(", ") || "none answered";
  const without = call === "anomalies" ? "– | –" : cells(times(alone));
  out.push(`| \`${call}\` | ${ms(pct(sent, 0.5))} | ${cells(times(cold))} | ${cells(times(warm))} | ${without} | ${statuses} |`);
}
const timeouts = Object.entries(rows).map(([n, loads]) => `${n} ${loads.filter((l) => l.timedOut).length}`).join(", ");
const shared = Math.max(...[...cold, ...warm, ...alone].map((l) => l.others));
const blank = [...cold, ...warm, ...alone].filter((l) => !l.painted).length;
out.push("");
out.push(`Loads that timed out: ${timeouts}. Loads whose chart canvas had no painted pixel: ${blank}. ` +
  `Most queries of others ClickHouse was running as a load started: ${shared}.`);
console.log(out.join("\n"));
