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
// rollups, which find little to do on data a collector has rolled up before). Rows:
//   cold          the answer cache off (`query_cache.ttl_secs = 0`): every call runs its queries
//   warm          the cache on and the page loaded once before: every call served from it
//   cold, anomalies call failed   in the browser: what that call costs the others, which it
//                 runs beside on the same cores
//   cold, other calls held until stats answers   as if the page asked for the first figures
//                 first (an experiment in the browser, not what the page does)
// and "alone": each call of a cold load made again from node by itself, one after another,
// what the page's calls, all running at once, cost each other; last, the stats call from node
// while Chromium loads the page without a token: what the browser's own work costs the
// server here, where both share the machine. LOADS (default 7) loads per row.
// PL_BENCH_BIN: the collector binary (default target/debug/pathlight; nothing is built).
// PL_BENCH_TIMEOUT_MS: the limit per load (default 120000). A load that reaches it leaves a
// screenshot and prints the page's console errors and the calls still pending.
// PL_BENCH_MAX_LOAD (default 2.5): waits, up to 10 minutes, for the 1-minute load average to
// fall below it before starting (another build or bench would be measured too).
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
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
      anomalies: !!document.querySelector("#anomalies tr:not(.loading)"),
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

// One load. `block` names an API call failed before it leaves the browser (then the page's
// other parts are waited for), to see what it costs the others; `hold` keeps every API call
// but stats (and the OpenAPI document its cards wait for) in the browser until stats has
// answered, as if the page asked for the first figures first.
async function load(browser, base, label, { block, hold } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, userAgent: USER_AGENT });
  const page = await context.newPage();
  await page.addInitScript(probe);
  if (block) await page.route((u) => u.pathname === `/api/v1/${block}`, (r) => r.abort("blockedbyclient"));
  if (hold) {
    let answered;
    const stats = new Promise((r) => { answered = r; });
    const isStats = (r) => new URL(r.url()).pathname === "/api/v1/stats";
    page.on("requestfinished", (r) => { if (isStats(r)) answered(); });
    page.on("requestfailed", (r) => { if (isStats(r)) answered(); });
    const held = (u) => u.pathname.startsWith("/api/v1/") && !["/api/v1/stats", "/api/v1/openapi.json"].includes(u.pathname);
    await page.route(held, async (r) => { await stats; await r.continue(); });
  }
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
  const load1 = loadavg()[0];
  try {
    const res = await page.goto(`${base}/?site=bench#token=bench`, { timeout: TIMEOUT });
    // The removed first version waited on a 404: its collector served no www/.
    if (res.status() !== 200) throw new Error(`the dashboard page answered ${res.status()}: ${(await res.text()).slice(0, 200)}`);
    let timedOut = false;
    await page.waitForFunction((ks) => ks.every((k) => window.__dash[k]), need, { timeout: TIMEOUT, polling: 100 }).catch(() => { timedOut = true; });
    // The live feed's token is asked for after the live figure is shown: its time too.
    const api = () => [...pending].some((u) => new URL(u).pathname.startsWith("/api/"));
    for (let i = 0; !timedOut && i < 50 && api(); i++) await page.waitForTimeout(100);
    const got = await page.evaluate(() => {
      const nav = performance.getEntriesByType("navigation")[0];
      const api = performance.getEntriesByType("resource").filter((e) => new URL(e.name).pathname.startsWith("/api/"))
        .map((e) => ({ call: new URL(e.name).pathname.replace("/api/v1/", ""), url: e.name, start: e.startTime, end: e.responseEnd, status: e.responseStatus }));
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
        anomalies: document.querySelectorAll("#anomalies tr:not(.loading)").length,
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
    return { ...got, waiting, others, timedOut, load1 };
  } finally {
    await context.close();
    // The calls the page left running go on in ClickHouse: wait for them (bounded).
    for (let i = 0; i < 300 && (await running()) > 0; i++) await new Promise((r) => setTimeout(r, 500));
  }
}

// Each API call of a cold load alone (its URL as the page sent it), one after another from
// node: what the page's own concurrency (its calls share ClickHouse's two cores) costs each.
async function callsAlone(base, urls) {
  const times = {};
  for (const url of urls) {
    const path = new URL(url).pathname;
    const call = path.replace("/api/v1/", "");
    times[call] = [];
    for (let i = 0; i < LOADS; i++) {
      const t = performance.now();
      const r = await fetch(`${base}${path}${new URL(url).search}`, { headers: { authorization: "Bearer bench" }, signal: AbortSignal.timeout(TIMEOUT) });
      await r.arrayBuffer();
      if (!r.ok) throw new Error(`${call} answered ${r.status}`);
      times[call].push(performance.now() - t);
    }
  }
  return times;
}

// The stats call from node while Chromium loads the page without a token (so the page asks
// nothing), sent when the page would send it: what the browser's own work costs ClickHouse and
// the collector here, where all three share two cores (a user's browser has a machine of its own).
async function statsBesidePage(browser, base, at) {
  const times = [];
  for (let i = 0; i < LOADS; i++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, userAgent: USER_AGENT });
    const page = await context.newPage();
    const nav = page.goto(`${base}/?site=bench`, { timeout: TIMEOUT });
    await new Promise((r) => setTimeout(r, at));
    const t = performance.now();
    const r = await fetch(`${base}/api/v1/stats?site=bench&interval=day`, { headers: { authorization: "Bearer bench" }, signal: AbortSignal.timeout(TIMEOUT) });
    await r.arrayBuffer();
    times.push(performance.now() - t);
    await nav;
    await context.close();
  }
  return times;
}

async function row(browser, { name, ttl, prime = false, alone = false, ...how }) {
  const collector = await startCollector(name, ttl);
  try {
    if (prime) await load(browser, collector.base, `${name}-prime`, how);
    const loads = [];
    for (let i = 0; i < LOADS; i++) {
      const l = await load(browser, collector.base, `${name}-${i + 1}`, how);
      const t = (k) => (l.marks[k] ? `${Math.round(l.marks[k].shown)} ms` : "not shown");
      log(`${name} ${i + 1}: first figures ${t("figures")}, stats part ${t("stats")}, everything ${t("all")}; ` +
        `visitors ${l.cards.visitors}, page views ${l.cards.pageviews}; chart ${l.painted} px painted; ${l.others} other queries running at start`);
      loads.push(l);
    }
    if (alone) {
      aloneTimes = await callsAlone(collector.base, loads[0].api.map((a) => a.url));
      const sent = pct(loads.map((l) => l.api.find((a) => a.call === "stats")?.start ?? 0), 0.5);
      besidePage = await statsBesidePage(browser, collector.base, sent);
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

// The rows: `ttl` is the answer cache's (0: off); see the top of this file.
const ROWS = [
  { name: "cold", title: "cold", ttl: 0, alone: true },
  // Ten minutes: every warm load must find every answer of the priming load still cached.
  { name: "warm", title: "warm", ttl: 600, prime: true },
  { name: "no-anomalies", title: "cold, anomalies call failed", ttl: 0, block: "anomalies" },
  { name: "stats-first", title: "cold, other calls held until stats answers", ttl: 0, hold: true },
];
const loadStart = await quiet();
const browser = await launchBrowser([`--user-agent=${USER_AGENT}`]);
let aloneTimes = {};
let besidePage = [];
try {
  for (const r of ROWS) r.loads = await row(browser, r);
} finally {
  await browser.close();
}
const loadEnd = loadavg()[0];
const cold = ROWS[0].loads;
const every = ROWS.flatMap((r) => r.loads);

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
// A part a row does not wait for (the failed call's) gets no figure there.
const skipped = (r, k) => r.block && (k === r.block || k === "all");
out.push(`| ms from navigation start, until shown | ${ROWS.map((r) => `${r.title}: p50 | p90`).join(" | ")} |`);
out.push(`|---|${ROWS.map(() => "---:|---:").join("|")}|`);
out.push(`| page shell (DOMContentLoaded) | ${ROWS.map((r) => cells(r.loads.map((l) => l.dcl))).join(" | ")} |`);
for (const [k, label] of MILESTONES) {
  const of = (r) => (skipped(r, k) ? "– | –" : cells(r.loads.map((l) => l.marks[k]?.shown ?? Infinity)));
  out.push(`| ${label} | ${ROWS.map(of).join(" | ")} |`);
}
out.push("");
out.push(`| API call as the page saw it (ms) | cold: sent at p50 | alone: p50 | p90 | ${ROWS.map((r) => `${r.title}: p50 | p90`).join(" | ")} | statuses |`);
out.push(`|---|---:|---:|---:|${ROWS.map(() => "---:|---:").join("|")}|---|`);
const calls = [...new Set(every.flatMap((l) => [...l.api.map((a) => a.call), ...l.waiting]))];
for (const call of calls) {
  // A call still pending when the load timed out has no entry: counted as the timeout.
  const times = (r) => (r.block === call ? "– | –" : cells(r.loads.map((l) => {
    const a = l.api.find((x) => x.call === call);
    return a ? a.end - a.start : Infinity;
  })));
  const sent = cold.map((l) => l.api.find((x) => x.call === call)?.start).filter((v) => v !== undefined);
  const seen = ROWS.filter((r) => r.block !== call).flatMap((r) => r.loads);
  const statuses = [...new Set(seen.flatMap((l) => l.api.filter((x) => x.call === call).map((x) => x.status)))].join(", ") || "none answered";
  const byItself = aloneTimes[call] ? cells(aloneTimes[call]) : "– | –";
  out.push(`| \`${call}\` | ${ms(pct(sent, 0.5))} | ${byItself} | ${ROWS.map(times).join(" | ")} | ${statuses} |`);
}
out.push("");
out.push(`\`stats\` from node while Chromium loads the page without a token (no API call), sent when the page sends it: ${cells(besidePage)} ms (p50 | p90); alone, above: ${cells(aloneTimes.stats ?? [])} ms.`);
const per = (f) => ROWS.map((r) => `${r.title} ${f(r.loads)}`).join(", ");
out.push("");
out.push(`Loads that timed out: ${per((ls) => ls.filter((l) => l.timedOut).length)}. ` +
  `Loads whose chart canvas had no painted pixel: ${every.filter((l) => !l.painted).length}. ` +
  `Most queries of others ClickHouse was running as a load started: ${Math.max(...every.map((l) => l.others))}. ` +
  `1-minute load average as the loads started: ${per((ls) => `${Math.min(...ls.map((l) => l.load1)).toFixed(1)}–${Math.max(...ls.map((l) => l.load1)).toFixed(1)}`)}.`);
console.log(out.join("\n"));
// The configs go; a timed-out load's screenshot stays to be looked at.
if (!every.some((l) => l.timedOut)) rmSync(dir, { recursive: true, force: true });
