// The edge worker's figures (issue 5), printed as Markdown: cold start in workerd, wall time
// per 20-event batch against a trivial request, and events/s in queue mode on loopback.
// Run by bench/edge-worker.sh (which builds the worker and the release `pathlight` and
// `pathlight-bench`, starts ClickHouse, and passes: CLICKHOUSE_URL PATHLIGHT_BIN BENCH_BIN
// SECONDS CONCURRENCY).
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { createServer } from "node:http";
import { startWorker } from "../tests/lib/edge.mjs";

const [chUrl, bin, benchBin, seconds, concurrency] = process.argv.slice(2);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
const ms = (x) => x.toFixed(3);

// A 20-event batch exactly as `pathlight-bench loadgen` sends it: captured from one request.
async function captureBatch() {
  let body;
  const s = createServer((req, res) => {
    const parts = [];
    req.on("data", (d) => parts.push(d));
    req.on("end", () => { body = Buffer.concat(parts); res.writeHead(204).end(); });
  });
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  // Asynchronously: this process's server must answer it.
  await promisify(execFile)(benchBin, ["loadgen", "--url", `http://127.0.0.1:${s.address().port}/v1/batch`, "--site", "demo",
    "--batch", "20", "--concurrency", "1", "--max-requests", "1", "--seconds", "5"]);
  s.close();
  return body;
}

const batch = await captureBatch();
const UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const post = { method: "POST", body: batch, headers: { "content-type": "application/cbor", "user-agent": UA, "cf-connecting-ip": "203.0.113.9" }, cf: { country: "DE", colo: "TXL", asn: 3320 } };
execFileSync(bin, ["migrate"], { env: { PATH: process.env.PATH, PATHLIGHT_LOG: "warn", PATHLIGHT_CLICKHOUSE__URL: chUrl, PATHLIGHT_CLICKHOUSE__DATABASE: "bench_edge" }, stdio: "ignore" });
const vars = { CLICKHOUSE_URL: chUrl, CLICKHOUSE_DATABASE: "bench_edge" };

// Cold start: workerd started and the module compiled (miniflare's `ready`), then the first
// request; five fresh runtimes.
const starts = [], firsts = [];
for (let i = 0; i < 5; i++) {
  const t0 = performance.now();
  const w = await startWorker(vars);
  const t1 = performance.now();
  await (await w.fetch("/healthz")).text();
  firsts.push(performance.now() - t1);
  starts.push(t1 - t0);
  await w.stop();
}

// Per batch: relay mode to a loopback server that answers 204 at once, so the request does
// decode, validate, enrich, RowBinary and one loopback fetch; against GET /healthz, which
// crosses the same runtime boundary and does nothing. Sequential, after 200 warm-up requests.
const sink = createServer((req, res) => { req.resume(); req.on("end", () => res.writeHead(req.method === "GET" ? 200 : 204).end()); });
await new Promise((r) => sink.listen(0, "127.0.0.1", r));
const relay = await startWorker({ PATHLIGHT_MODE: "relay", COLLECTOR_URL: `http://127.0.0.1:${sink.address().port}`, RELAY_TOKEN: "x" });
async function timed(n, init, path) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const r = await relay.fetch(path, init);
    await r.arrayBuffer();
    if (r.status >= 300) throw new Error(`${path}: ${r.status}`);
    out.push(performance.now() - t);
  }
  return out;
}
await timed(200, post, "/v1/batch");
await timed(200, {}, "/healthz");
const batchMs = await timed(2000, post, "/v1/batch");
const idleMs = await timed(2000, {}, "/healthz");
await relay.stop();
sink.close();

// Throughput: queue mode, `pathlight-bench loadgen` from outside, the consumer inserting into ClickHouse.
const queue = await startWorker(vars);
const { stdout: table } = await promisify(execFile)(benchBin, ["loadgen", "--url", `${queue.base}/v1/batch`, "--site", "demo",
  "--batch", "20", "--concurrency", concurrency, "--seconds", seconds]);
const count = async () => Number(await (await fetch(`${chUrl}/?query=${encodeURIComponent("SELECT count() FROM bench_edge.events")}`)).text());
// Until the consumer has drained the queue: the count stops moving.
let stored = -1;
for (let i = 0, last; i < 120 && stored !== last; i++) {
  last = stored;
  await new Promise((r) => setTimeout(r, 1000));
  stored = await count();
}
await queue.stop();

console.log(`| cold start (5 fresh workerd runtimes) | median | max |
|---|---:|---:|
| workerd started, module compiled (miniflare ready) | ${ms(median(starts))} ms | ${ms(Math.max(...starts))} ms |
| first request after that | ${ms(median(firsts))} ms | ${ms(Math.max(...firsts))} ms |

| sequential requests (2000 each, after 200 warm-up) | p50 | p90 | p99 |
|---|---:|---:|---:|
| POST 20-event CBOR batch, relay mode to a 204 server | ${ms(pct(batchMs, 0.5))} ms | ${ms(pct(batchMs, 0.9))} ms | ${ms(pct(batchMs, 0.99))} ms |
| GET /healthz (runtime round trip only) | ${ms(pct(idleMs, 0.5))} ms | ${ms(pct(idleMs, 0.9))} ms | ${ms(pct(idleMs, 0.99))} ms |
| difference: the batch's work + one loopback fetch (upper bound of its CPU time) | ${ms(pct(batchMs, 0.5) - pct(idleMs, 0.5))} ms | | |

Queue mode, \`pathlight-bench loadgen\` (${concurrency} in flight, ${seconds} s, 20-event batches) → workerd → local queue → consumer → ClickHouse 18.16:

${table.trim()}

Rows in ClickHouse once the queue drained: ${stored} (requests/s × ${seconds} s × 20 events, within the load generator's rounding).`);
process.exit(0);
