// The real stack for cross-component tests: a private ClickHouse (scripts/clickhouse.sh,
// stopped by its watchdog when this process exits) and the `pathlight` collector binary on
// 127.0.0.1 serving the dashboards and the tracker build, and the demo site on an origin of its
// own (a second port), as `make demo` does.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Debian's Chromium, headless, a fresh temporary profile, no background networking. */
export async function launchBrowser(extraArgs = []) {
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync", ...extraArgs],
  });
}

/**
 * Chromium's --host-resolver-rules giving `hosts` the address 127.0.0.1, as a visitor's DNS
 * would give them theirs, and no other name any: the pages under test (real sites) call
 * services elsewhere, which a test must never reach.
 */
export const hostRules = (hosts) =>
  `--host-resolver-rules=${[...hosts.map((h) => `MAP ${h} 127.0.0.1`), "MAP * ~NOTFOUND"].join(", ")}`;

/** Whether `base`/healthz answers 200; over HTTPS the (self-signed) certificate is not checked. */
async function healthy(base) {
  if (base.startsWith("http:")) return (await fetch(`${base}/healthz`)).ok;
  const { get } = await import("node:https");
  return new Promise((resolve, reject) => {
    get(`${base}/healthz`, { rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    }).on("error", reject);
  });
}

export const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
/** The collectors' `hash_secret` here (`serve` refuses short or published ones). */
export const HASH_SECRET = "e2e-secret-of-the-browser-tests";
export const bin = process.env.PATHLIGHT_BIN || join(root, "target", "debug", "pathlight");

export async function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Starts ClickHouse in a temp dir; returns its URL and a query helper. */
export async function startClickHouse(name) {
  const dir = mkdtempSync(join(tmpdir(), `pathlight-${name}-ch-`));
  const url = execFileSync(join(root, "scripts", "clickhouse.sh"), ["start", dir, String(await freePort())], {
    env: { ...process.env, PL_CLICKHOUSE_OWNER: String(process.pid), PL_CLICKHOUSE_CLEANUP: "1" },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
  return {
    url,
    /** Rows of `sql` (JSONEachRow), in `database` when given. */
    async rows(sql, database = "") {
      const db = database ? `database=${encodeURIComponent(database)}&` : "";
      const r = await fetch(`${url}/?${db}query=${encodeURIComponent(sql + " FORMAT JSONEachRow")}`);
      const text = await r.text();
      if (!r.ok) throw new Error(`${sql}: ${text}`);
      return text.split("\n").filter(Boolean).map((l) => JSON.parse(l));
    },
    /** Runs a statement that returns nothing (INSERT, ALTER). */
    async exec(sql) {
      const r = await fetch(url, { method: "POST", body: sql });
      if (!r.ok) throw new Error(`${sql}: ${await r.text()}`);
    },
    /** Creates database `db` with the collector's tables (`pathlight migrate`). */
    migrate(db) {
      execFileSync(bin, ["migrate"], {
        env: { PATH: process.env.PATH, PATHLIGHT_LOG: "warn", PATHLIGHT_CLICKHOUSE__URL: url, PATHLIGHT_CLICKHOUSE__DATABASE: db },
        stdio: ["ignore", "ignore", "inherit"],
      });
    },
  };
}

/**
 * Starts `pathlight serve` against `clickhouseUrl` for database `db`; resolves with its base
 * URL (`base`) and the demo site's (`demo`; on `demoPort` when given: tests that list the
 * demo's origin in a site's `origins` pick the port first).
 */
export async function startCollector({ clickhouseUrl, db, port = 0, demoPort = 0, env = {} }) {
  const child = spawn(bin, ["serve", "--listen", `127.0.0.1:${port}`], {
    cwd: root,
    env: {
      PATH: process.env.PATH,
      PATHLIGHT_LOG: "warn",
      PATHLIGHT_CLICKHOUSE__URL: clickhouseUrl,
      PATHLIGHT_CLICKHOUSE__DATABASE: db,
      PATHLIGHT_CLICKHOUSE__FLUSH_INTERVAL_MS: "50",
      // Rollups every second: answers read from them (anomalies, patterns, a page's rage and
      // dead clicks, past days' session figures) catch up with the events within a second.
      PATHLIGHT_CLICKHOUSE__ROLLUP_PERIOD_SECS: "1",
      PATHLIGHT_HASH_SECRET: HASH_SECRET,
      PATHLIGHT_DEMO_DIR: join(root, "demo-site"),
      PATHLIGHT_DEMO_LISTEN: `127.0.0.1:${demoPort}`,
      PATHLIGHT_WWW_DIR: join(root, "www"),
      PATHLIGHT_TRACKER_DIR: join(root, "target", "tracker"),
      PATHLIGHT_SITES: '[{id = "demo", origins = ["*"]}]',
      ...env,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  process.on("exit", () => child.kill("SIGKILL"));
  let out = "";
  const base = await new Promise((resolve, reject) => {
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (https?:\/\/[\d.:]+)\n/);
      // The certificate's SPKI hash (over TLS) and the demo site's address follow.
      if (m && /demo site on \S+\n/.test(out)) resolve(m[1]);
    });
    child.on("exit", (code) => reject(new Error(`pathlight serve exited with ${code}`)));
  });
  const spki = out.match(/SPKI SHA-256: (\S+)/)?.[1];
  const demo = out.match(/demo site on (https?:\/\/[\d.:]+)\/demo\//)[1];
  // Migrations run before the listener accepts; wait until it answers.
  for (let i = 0; i < 200; i++) {
    try {
      if (await healthy(base)) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    base,
    /** The demo site's origin: its pages are under /demo/, the tracker and v1/batch beside them. */
    demo,
    /** Over TLS: the certificate's SPKI SHA-256, for Chromium's --ignore-certificate-errors-spki-list. */
    spki,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/**
 * Loads `events` generated events (`pathlight gen`: visitors, sessions and clicks on the demo
 * pages, over the `days` days ending now, or at `end`, RFC 3339) into `db` through
 * `pathlight import`, the stages live traffic takes, for site `demo` of `sites`
 * (PATHLIGHT_SITES) with its pages on `demoOrigin`.
 */
export function importGenerated({ clickhouseUrl, db, sites, demoOrigin, events = 6000, days = 14, end }) {
  const data = join(mkdtempSync(join(tmpdir(), "pathlight-gen-")), "events.ndjson");
  const env = {
    PATH: process.env.PATH,
    PATHLIGHT_LOG: "warn",
    PATHLIGHT_CLICKHOUSE__URL: clickhouseUrl,
    PATHLIGHT_CLICKHOUSE__DATABASE: db,
    PATHLIGHT_HASH_SECRET: HASH_SECRET,
    PATHLIGHT_SITES: sites,
  };
  const opts = { env, stdio: ["ignore", "ignore", "inherit"] };
  const until = end ? ["--end", end] : [];
  execFileSync(bin, ["gen", "--events", String(events), "--days", String(days), ...until, "--base-url", `${demoOrigin}/demo/`, "--out", data], opts);
  execFileSync(bin, ["import", "--site", "demo", data], opts);
}

/** Polls `check` until it returns a truthy value or `ms` pass. */
export async function eventually(check, ms = 10_000, what = "condition") {
  const until = Date.now() + ms;
  let last;
  while (Date.now() < until) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}: ${last}`);
}

/**
 * What the anomaly rules find in `site`'s events of yesterday to tomorrow in database `db`:
 * the query API's own SQL (`pathlight sql`), run on the test's ClickHouse. `sessions` are the
 * sessions flagged (rapid, repeated, loops), `rage` and `dead` the elements with rage bursts
 * and dead clicks.
 */
export async function anomalies(ch, db, site) {
  const day = (d) => new Date(Date.now() + d * 86_400_000).toISOString().slice(0, 10);
  const text = execFileSync(bin, ["sql", "--params", `site=${site}&from=${day(-1)}&to=${day(1)}`], {
    env: { PATH: process.env.PATH, PATHLIGHT_LOG: "warn" },
    encoding: "utf8",
  });
  const sql = Object.fromEntries(text.split(/;\n/).map((s) => s.trim()).filter(Boolean)
    .map((s) => [(s.match(/^-- (.*)$/m) || [])[1], s.replace(/^--.*$/gm, "").trim()]));
  const [sessions, rage, dead] = await Promise.all(
    ["anomalies", "rage clicks", "dead clicks"].map((name) => ch.rows(sql[name], db)));
  return { sessions, rage, dead };
}
