// Every shell command the README shows runs as shown. The commands are read from README.md
// itself: each line of its ```sh blocks, and the inline commands of its prose (`make demo …`,
// `pathlight … --…`). Each is run, or listed below as run elsewhere with the reason; a command
// the README gains that is neither fails the first test, so it cannot go untried. The quick
// start's sign-in is followed in Chromium: the first `make demo` makes the account on the
// first-start form its dashboard link opens, the later ones sign in with it.
//
// Servers bind free ports on 127.0.0.1: the README's addresses (8080, 8123, 4222, …) are
// replaced by free ones, the one change made to a command. `make demo` keeps its data in a
// temporary directory (PL_DEMO_DATA) and, unless the command sets PL_DEMO_EVENTS, loads 3,000
// generated events instead of 200,000 (bounded time); it is stopped with SIGINT to its process
// group, as Ctrl-C does. Commands that run until stopped (`serve`, `load`, live `gen`) run in
// the background and are stopped at the end; each must not have failed by then.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { HASH_SECRET, bin, eventually, freePort, launchBrowser, root, startClickHouse } from "../lib/stack.mjs";

const readme = readFileSync(join(root, "README.md"), "utf8");
const uncomment = (line) => line.replace(/(^|\s+)#.*$/, "").trim();
/** The lines of each ```sh block, comments dropped. */
const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1].replace(/\\\n\s*/g, " ").split("\n").map(uncomment).filter(Boolean));
/** Commands in the prose's inline code: `make demo …` with or without variables, `pathlight … --…`. */
const inline = [...readme.replace(/```[\s\S]*?```/g, "").matchAll(/`([^`\n]+)`/g)]
  .map((m) => m[1].trim())
  .filter((c) => /^(?:[A-Z_]+=\S+ )*make demo\b/.test(c) || /^pathlight (?:\S+ )*--\S/.test(c));
const commands = [...new Set([...blocks.flat(), ...inline])];

/** The ingest key the README's `$KEY` stands for, whose SHA-256 the test's config lists. */
const INGEST_KEY = "readme-ingest-key";

const CLOUDFLARE = "needs a Cloudflare account; tests/edge runs the built worker in workerd and `wrangler deploy --dry-run`";
/** README commands this test does not run, and why. */
const ELSEWHERE = new Map([
  ["make test", "runs this suite and every other check: it is what CI runs"],
  ["cargo build --release --bin pathlight", "a release build takes minutes here; the debug build of the same code runs every pathlight command"],
  ["cargo build --release --bin pathlight-bench", "likewise: the debug pathlight-bench, built by cargo test beside pathlight, runs its commands"],
  ["cd edge-worker", CLOUDFLARE],
  ["export PATH=$PWD/../tests/node_modules/.bin:$PATH CLOUDFLARE_ACCOUNT_ID=…", CLOUDFLARE],
  ["wrangler queues create pathlight-events && wrangler queues create pathlight-events-dlq", CLOUDFLARE],
  ["wrangler secret put CLICKHOUSE_PASSWORD", CLOUDFLARE],
  ["wrangler secret put RELAY_TOKEN", CLOUDFLARE],
  ["$EDITOR wrangler.toml", CLOUDFLARE],
  ["wrangler deploy", CLOUDFLARE],
  ["pathlight gen --to nats://…", "the address elided: run in full as `pathlight --config pathlight.toml gen --to nats://127.0.0.1:4222 --rate 200`"],
]);

const isDemo = (c) => /^(?:[A-Z_]+=\S+ )*make demo\b/.test(c);
const demoBlock = blocks.find((b) => b.some((c) => c.startsWith("curl ")));
/** `pathlight …` and the bench tools' `pathlight-bench …`, both run from the debug build's directory. */
const isPathlight = (c) => /(^|\| )pathlight(-bench)? /.test(c);
/** A server's send with an ingest key: run against the collector that `pathlight serve` started. */
const isKeyed = (c) => c.startsWith("curl ") && c.includes("X-API-Key");

test("every shell command of the README is run here or listed with the reason it is not", () => {
  assert.ok(commands.length > 25, commands.join("\n"));
  const untried = commands.filter((c) => !ELSEWHERE.has(c) && !isDemo(c) && !demoBlock.includes(c) && !isPathlight(c) && !isKeyed(c));
  assert.equal(commands.filter(isKeyed).length, 2, "the README's sends with an ingest key: a batch and an identify");
  assert.deepEqual(untried, [], "README commands no test runs");
  const gone = [...ELSEWHERE.keys()].filter((c) => !commands.includes(c));
  assert.deepEqual(gone, [], "listed as run elsewhere, but no longer in the README");
  assert.deepEqual(commands.filter(isDemo).length, 3, commands.filter(isDemo).join("\n"));
});

/** Process groups still running, killed if this process exits first. */
const groups = new Set();
process.on("exit", () => {
  for (const pid of groups) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {}
  }
});

/** A command run by bash in `cwd`: resolves with its output once it exits; `stop()` ends its process group. */
function run(command, { cwd, env }) {
  const child = spawn("bash", ["-c", `set -euo pipefail\n${command}`], { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  groups.add(child.pid);
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  exited.then(() => groups.delete(child.pid));
  const kill = (signal) => {
    try {
      process.kill(-child.pid, signal);
    } catch {}
  };
  return {
    output: () => out,
    exited,
    running: () => child.exitCode === null && child.signalCode === null,
    /** Sends `signal` to the process group; resolves once it exited, killing it after `ms`. */
    async stop(signal = "SIGINT", ms = 30_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      kill(signal);
      const timer = setTimeout(() => kill("SIGKILL"), ms);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
}

/** Runs `command` to its end within `ms`; fails unless it exits 0. Its output. */
async function runToEnd(command, opts, ms = 120_000) {
  const p = run(command, opts);
  const timer = setTimeout(() => p.stop("SIGKILL"), ms);
  const { code, signal } = await p.exited;
  clearTimeout(timer);
  assert.equal(code, 0, `${command}\nexited ${code ?? signal}:\n${p.output().slice(-3000)}`);
  return p.output();
}

/** The account the quick start makes on the first-start form, and signs in with later. */
const ACCOUNT = { email: "ada@example.com", password: "readme demo password" };

/**
 * The quick start's "Sign in", in Chromium: the dashboard link `make demo` printed (its
 * `output`) opens the first-start form the first time, which makes the account, else the
 * sign-in form; either comes back to the dashboard, signed in. Its page views.
 */
async function signInToTheDemo(output, firstStart) {
  const link = output.match(/^ +dashboard +(http:\/\/\S+)$/m)?.[1];
  assert.ok(link, `the dashboard's link in:\n${output}`);
  assert.doesNotMatch(link, /token/, "no token in the link: the reader signs in");
  assert.match(output, firstStart ? /First start: the dashboard opens the form that makes your admin account/ : /The dashboard asks you to sign in/);
  const browser = await launchBrowser();
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(link);
    await page.waitForURL(firstStart ? /\/setup\.html\?next=/ : /\/signin\.html\?next=/);
    await page.fill("[name=email]", ACCOUNT.email);
    await page.fill("[name=password]", ACCOUNT.password);
    if (firstStart) await page.fill("[name=again]", ACCOUNT.password);
    await Promise.all([page.waitForURL((u) => u.href === link), page.click("main form button")]);
    await page.waitForSelector("body[data-ready]", { timeout: 30_000 });
    assert.equal(await page.textContent("#account-link"), ACCOUNT.email, "signed in");
    return Number((await page.textContent('[data-metric="Page views"] b')).replace(/\D/g, ""));
  } finally {
    await browser.close();
  }
}

const up = async (url) => {
  try {
    return (await fetch(url)).ok;
  } catch {
    return false;
  }
};

test("each make demo of the README starts the demo, answers the README's curl commands, and stops on Ctrl-C", { timeout: 600_000 }, async () => {
  const data = mkdtempSync(join(tmpdir(), "pathlight-readme-demo-"));
  // Without a PATHLIGHT_* variable of the test's own environment: pathlight would take it.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PATHLIGHT_")));
  const env = { ...base, PL_DEMO_DATA: data, PL_CLICKHOUSE_OWNER: String(process.pid), PL_DEMO_EVENTS: "3000" };
  // PL_DEMO_EVENTS=0 first, on an empty data directory: it must load nothing.
  const demos = commands.filter(isDemo).sort((a, b) => Number(b.includes("_EVENTS=0")) - Number(a.includes("_EVENTS=0")));
  let firstStart = true;
  for (const shown of demos) {
    const [ch, collector, demo] = [await freePort(), await freePort(), await freePort()];
    const command = shown.includes("CLICKHOUSE_PORT=")
      ? shown.replace("CLICKHOUSE_PORT=18123", `CLICKHOUSE_PORT=${ch}`).replace("127.0.0.1:9090", `127.0.0.1:${collector}`).replace("127.0.0.1:9091", `127.0.0.1:${demo}`)
      : `${shown} CLICKHOUSE_PORT=${ch} COLLECTOR_ADDR=127.0.0.1:${collector} DEMO_ADDR=127.0.0.1:${demo}`;
    assert.notEqual(command, shown.includes("CLICKHOUSE_PORT=") ? shown : "", "the README's ports were replaced");
    const p = run(command, { cwd: root, env });
    try {
      await eventually(() => {
        if (!p.running()) throw new Error(`exited before it was up:\n${p.output().slice(-3000)}`);
        return p.output().includes("Pathlight demo is running");
      }, 300_000, `${shown} up`);
      assert.ok(await up(`http://127.0.0.1:${collector}/healthz`), "the collector answers");
      assert.ok(await up(`http://127.0.0.1:${demo}/demo/`), "the demo site answers");
      const events = Number(await (await fetch(`http://127.0.0.1:${ch}/?query=SELECT+count()+FROM+pathlight_demo.events`)).text());
      if (shown.includes("PL_DEMO_EVENTS=0")) assert.equal(events, 0, "PL_DEMO_EVENTS=0 loads nothing");
      else assert.ok(events >= 3000, `${events} events loaded`);
      // Each run keeps the data directory: the first makes the account, the later ones sign in.
      const views = await signInToTheDemo(p.output(), firstStart);
      firstStart = false;
      if (!shown.includes("PL_DEMO_EVENTS=0")) assert.ok(views > 0, `the dashboard shows the loaded page views: ${views}`);
      if (!shown.includes("=")) {
        // The README's curl commands against this demo: its address, its data directory.
        const block = demoBlock.map((c) => c.replaceAll("127.0.0.1:8080", `127.0.0.1:${collector}`).replaceAll(".data/", `${data}/`)).join("\n");
        const out = await runToEnd(block, { cwd: root, env: base });
        assert.match(out, /"pageviews":[1-9]/, "stats of the loaded events");
        assert.match(out, /"session_id":/, "sessions");
        assert.match(out, /^pathlight_/m, "metrics");
      }
    } finally {
      const { code, signal } = await p.stop("SIGINT");
      assert.ok(!(await up(`http://127.0.0.1:${collector}/healthz`)), `${shown}: the collector stopped with Ctrl-C (${code ?? signal})`);
      assert.match(p.output(), /demo stopped/, p.output().slice(-2000));
    }
  }
});

test("every pathlight command of the README runs against a ClickHouse and a NATS of its own", { timeout: 600_000 }, async () => {
  const ch = await startClickHouse("readme");
  const cwd = mkdtempSync(join(tmpdir(), "pathlight-readme-"));
  const [port, natsPort] = [await freePort(), await freePort()];
  // Stopped by itself once this process exits (PL_NATS_OWNER), as the ClickHouse is.
  await runToEnd(`${join(root, "scripts", "nats.sh")} start ${join(cwd, "nats")} ${natsPort}`, {
    cwd,
    env: { ...process.env, PL_NATS_OWNER: String(process.pid), PL_NATS_CLEANUP: "1" },
  });
  // The config the README's commands name: this test's ClickHouse, NATS and one site.
  writeFileSync(join(cwd, "pathlight.toml"), `listen = "127.0.0.1:${port}"
hash_secret = "${HASH_SECRET}"
www_dir = "${join(root, "www")}"
tracker_dir = "${join(root, "target", "tracker")}"

[clickhouse]
url = "${ch.url}"
database = "readme"
flush_interval_ms = 100

[broker]
url = "nats://127.0.0.1:${natsPort}"

[[sites]]
id = "shop"
api_token = "readme-token"
ingest_keys_sha256 = ["${createHash("sha256").update(INGEST_KEY).digest("hex")}"]
require_key = true
`);
  mkdirSync(join(cwd, "demo-site"));
  const env = { PATH: `${dirname(bin)}:${process.env.PATH}`, HOME: process.env.HOME, PATHLIGHT_LOG: "warn", TOKEN: "readme-token", KEY: INGEST_KEY, PASSWORD: "readme password" };
  // What `pathlight import history.ndjson` reads: a history file of the site.
  await runToEnd("pathlight gen --site shop --events 500 --out history.ndjson", { cwd, env });
  // What `pathlight import --users users.csv` reads.
  writeFileSync(join(cwd, "users.csv"), "user_id,name,plan\nu-1,Ada,pro\nu-2,Grace,free\n");

  const shown = commands.filter((c) => (isPathlight(c) || isKeyed(c)) && !ELSEWHERE.has(c));
  const background = [];
  try {
    for (const c of shown) {
      const command = c.replaceAll("127.0.0.1:8080", `127.0.0.1:${port}`).replaceAll("127.0.0.1:4222", `127.0.0.1:${natsPort}`);
      if (/ (serve|load)$/.test(command)) {
        const p = run(command, { cwd, env });
        background.push([c, p]);
        if (command.endsWith(" serve")) await eventually(() => up(`http://127.0.0.1:${port}/healthz`), 30_000, c);
        continue;
      }
      if (isKeyed(c)) {
        // The collector's address, and the event dated now rather than on the README's day.
        const keyed = command
          .replace("https://collect.example", `http://127.0.0.1:${port}`)
          .replace(/"created_at": "[^"]*"/, `"created_at": "${new Date().toISOString()}"`);
        await runToEnd(keyed, { cwd, env });
        // Without the key the site refuses the same send (require_key): curl -f fails.
        const p = run(keyed.replace(/-H "X-API-Key: \$KEY" /, ""), { cwd, env });
        const { code } = await p.exited;
        assert.notEqual(code, 0, `sent without the key:\n${p.output()}`);
        assert.match(p.output(), /401/, p.output());
        continue;
      }
      const seconds = Number(command.match(/--seconds (\d+)/)?.[1] ?? 60);
      if (/ gen --to /.test(command) && seconds > 10) {
        // Live sending for a minute: a few seconds show it works.
        const p = run(command, { cwd, env });
        await new Promise((r) => setTimeout(r, 3000));
        assert.ok(p.running(), `${c}\nstopped early:\n${p.output()}`);
        background.push([c, p]);
        continue;
      }
      await runToEnd(command, { cwd, env });
    }
    // The loader moved what the collector, the importer and the generators published into
    // ClickHouse: the history at least.
    const stored = await eventually(async () => {
      const [{ n }] = await ch.rows("SELECT count() AS n FROM readme.events");
      return Number(n) >= 500 && Number(n);
    }, 60_000, "events loaded from the stream");
    assert.ok(stored >= 500);
    // The identify sent with the key and the imported users, with their traits.
    const users = await ch.rows("SELECT user_id, argMax(traits, updated_ms) AS traits FROM readme.users GROUP BY user_id ORDER BY user_id");
    assert.deepEqual(users.map((u) => [u.user_id, JSON.parse(u.traits).name]), [["u-1", "Ada"], ["u-2", "Grace"], ["u-42", "Ada"]]);
    for (const [c, p] of background) assert.ok(p.running(), `${c} exited:\n${p.output()}`);
  } finally {
    for (const [c, p] of background.reverse()) {
      const { code, signal } = await p.stop(c.endsWith(" serve") || c.endsWith(" load") ? "SIGTERM" : "SIGINT");
      if (c.endsWith(" serve") || c.endsWith(" load")) assert.equal(code, 0, `${c} on SIGTERM (${signal}):\n${p.output()}`);
    }
  }
});
