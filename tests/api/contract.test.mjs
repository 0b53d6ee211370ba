// The query API against its own OpenAPI document (`/api/v1/openapi.json`): Schemathesis, with
// every check, sends what the document allows and what it forbids to the real collector on a
// real ClickHouse 18.16 holding generated demo traffic, and fails on any finding: a
// schema-valid request refused, an invalid one accepted, a status, header, content type or body
// the document does not declare, a server error, an undeclared method not answered 405 with
// `Allow`. Unknown parameters are Schemathesis's blind spot (it does not count an ignored one as
// a finding), so they are asked here directly.
//
// Schemathesis comes from PyPI at the versions of schemathesis-requirements.txt, installed by
// scripts/setup.sh; schemathesis.toml holds its settings. `realtime/ws` is left out: it answers
// a WebSocket handshake only, which Schemathesis does not make (tests/api/websocket.test.mjs
// covers it); the endless `realtime/stream` is read for half a second a case.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { importGenerated, root, startClickHouse, startCollector } from "../lib/stack.mjs";

const TOKEN = "contract-token";
const SITES = `[{id = "demo", origins = ["*"], api_token = "${TOKEN}"}]`;
// Per operation, per phase; the run takes about 45 s on 2 cores.
const EXAMPLES = process.env.PL_SCHEMATHESIS_EXAMPLES || "30";
// Fixed, so a finding reproduces; set it to explore other inputs.
const SEED = process.env.PL_SCHEMATHESIS_SEED || "1";

const version = readFileSync(join(root, "tests", "api", "schemathesis-requirements.txt"), "utf8")
  .match(/^schemathesis==(\S+)$/m)[1];
const st = join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "pathlight", `schemathesis-${version}`, "bin", "st");

let ch, collector;

before(async () => {
  ch = await startClickHouse("contract");
  ch.migrate("contract");
  collector = await startCollector({
    clickhouseUrl: ch.url,
    db: "contract",
    env: {
      PATHLIGHT_SITES: SITES,
      // Schemathesis checks that requests without a token are refused; counted against its
      // address, they would soon have every request answered 429 instead.
      PATHLIGHT_API_AUTH_FAILURES_PER_MINUTE: "0",
      // Each refused token is logged as a warning: thousands here.
      PATHLIGHT_LOG: "error",
    },
  });
  importGenerated({ clickhouseUrl: ch.url, db: "contract", sites: SITES, demoOrigin: collector.demo, events: 3000 });
});
after(async () => {
  await collector?.stop();
});

const api = (q) => fetch(`${collector.base}/api/v1/${q}`, { headers: { authorization: `Bearer ${TOKEN}` } });

/** Runs `st` with `args`; resolves with its exit code and output. */
function run(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(st, args, {
      // Hypothesis keeps its example database in the working directory: a fresh one each run,
      // so a run never replays another's inputs.
      cwd: mkdtempSync(join(tmpdir(), "pathlight-schemathesis-")),
      env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: "1", SCHEMATHESIS_TELEMETRY: "false" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, out }));
  });
}

test("the demo data answers, so Schemathesis checks real bodies", async () => {
  const stats = await (await api("stats?site=demo")).json();
  assert.ok(stats.pageviews > 0, JSON.stringify(stats));
  const sessions = await (await api("sessions?site=demo&limit=5")).json();
  assert.equal(sessions.length, 5);
});

test("parameters an endpoint does not take are refused by name", async () => {
  // The seeds' names, where the endpoint does not declare them (stats takes `period`, export
  // `event_type` since issue 31's endpoints).
  for (const q of ["stats?site=demo&start_date=2026-01-01", "anomalies?site=demo&period=week", "heatmap?site=demo&path=/demo/&hours=24",
    "sessions?site=demo&event_type=click", "elements?site=demo&page_url=/demo/"]) {
    const r = await api(q);
    const body = await r.json();
    assert.equal(r.status, 400, q);
    assert.equal(body.reason, "unknown_param", q);
    assert.ok(q.includes(`&${body.field}=`), `${q}: ${body.field}`);
  }
});

// Schemathesis draws values at random and may miss a bound the server sets apart from the
// document (a `maximum` of 500 where the server takes 1000 went unnoticed at 30 examples), so
// each integer bound and enum of every operation is also asked at its edges here.
test("every integer bound and enum the document declares is the server's", async () => {
  const doc = await (await fetch(`${collector.base}/api/v1/openapi.json`)).json();
  const resolve = (p) => (p.$ref ? doc.components.parameters[p.$ref.split("/").pop()] : p);
  let asked = 0;
  for (const [path, { get }] of Object.entries(doc.paths)) {
    // What is managed in the product takes no query parameters (and some paths no GET).
    if (!get) continue;
    const params = (get.parameters || []).map(resolve);
    // Operations with a path parameter or a required parameter without example are left to
    // Schemathesis (viewer-check's token, the handshake of realtime/ws).
    if (path.startsWith("/realtime/") || params.some((p) => p.in === "path" || (p.required && p.example === undefined))) continue;
    const required = params.filter((p) => p.required).map((p) => [p.name, [].concat(p.example).join(",")]);
    const status = async (name, value) => {
      const q = new URLSearchParams([...required.filter(([n]) => n !== name), [name, String(value)]]);
      const r = await api(`${path.slice(1)}?${q}`);
      const body = await r.text();
      asked++;
      return r.status === 400 ? `400 ${JSON.parse(body).field}` : r.status;
    };
    for (const p of params) {
      const { type, minimum, maximum, enum: values } = p.schema;
      const where = `${path} ${p.name}`;
      if (type === "integer") {
        for (const v of [minimum, maximum].filter((v) => v !== undefined)) assert.equal(await status(p.name, v), 200, `${where}=${v}`);
        if (minimum !== undefined) assert.equal(await status(p.name, minimum - 1), `400 ${p.name}`, `${where}=${minimum - 1}`);
        if (maximum !== undefined) assert.equal(await status(p.name, maximum + 1), `400 ${p.name}`, `${where}=${maximum + 1}`);
      }
      if (values) {
        for (const v of values) assert.equal(await status(p.name, v), 200, `${where}=${v}`);
        assert.equal(await status(p.name, `${values[0]}x`), `400 ${p.name}`, `${where}=${values[0]}x`);
      }
    }
  }
  assert.ok(asked >= 40, `${asked} requests`);
});

test("Schemathesis finds nothing the document and the server disagree on", { timeout: 240_000 }, async () => {
  assert.ok(existsSync(st), `${st} missing: run scripts/setup.sh`);
  const started = Date.now();
  const { code, out } = await run([
    "--config-file", join(root, "tests", "api", "schemathesis.toml"),
    "run", `${collector.base}/api/v1/openapi.json`,
    "--url", `${collector.base}/api/v1`,
    "--checks", "all",
    "--max-examples", EXAMPLES,
    "--seed", SEED,
    // One worker: with two, the Python Schemathesis runs on (3.11.7) at times fails its
    // Coverage phase with "SystemError: AST constructor recursion depth mismatch" as both
    // threads parse a module's source at once (CPython gh-106905), which the operations of the
    // members, invitations and shared links made happen on every run
    // (bench/results/api-contract.md).
    "--workers", "1",
    "--header", `Authorization: Bearer ${TOKEN}`,
    "--exclude-path", "/realtime/ws",
    "--request-timeout", "30",
  ]);
  const secs = ((Date.now() - started) / 1000).toFixed(0);
  assert.equal(code, 0, `schemathesis exited with ${code} after ${secs} s:\n${out}`);
  // Every other operation was tested, by every phase, and cases were run.
  assert.match(out, /Selected: 41\/42\s+Tested: 41/, out);
  for (const phase of ["Examples", "Coverage", "Fuzzing", "Stateful"]) assert.match(out, new RegExp(`✅ ${phase}`), out);
  const generated = Number(out.match(/(\d+) generated, \1 passed/)?.[1]);
  assert.ok(generated > 1000, out);
  console.log(`schemathesis ${version}: ${generated} cases, no finding, ${secs} s`);
});
