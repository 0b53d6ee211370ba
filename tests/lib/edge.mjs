// The edge worker in the real Workers runtime: the worker-build output (edge-worker/build,
// made by scripts/build-worker.sh) run by workerd through miniflare's API, configured from
// edge-worker/wrangler.toml itself (bindings, queues, consumer settings), with its queue and
// dead-letter queue local and a second worker that records what reaches the dead-letter queue.
import assert from "node:assert/strict";
import { Miniflare } from "miniflare";
import { join } from "node:path";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { root } from "./stack.mjs";

const WRANGLER_TOML = join(root, "edge-worker", "wrangler.toml");

export const QUEUE = "pathlight-events";
export const DEAD_LETTERS = "pathlight-events-dlq";

/** The sites both receivers serve in these tests (the wire fixtures' sites among them). */
export const SITES = [
  { id: "demo", origins: ["https://shop.example"] },
  { id: "démo-站点", origins: ["*"] },
];

// Records every dead-lettered message; GET / lists them (bytes as arrays).
const deadLetterReader = `
const seen = [];
export default {
  async queue(batch) {
    for (const m of batch.messages) {
      seen.push({ id: m.id, body: Array.from(new Uint8Array(m.body)) });
      m.ack();
    }
  },
  async fetch() { return Response.json(seen); },
};`;

/**
 * Starts the worker. `vars` become its `[vars]` and secrets (PATHLIGHT_MODE, CLICKHOUSE_URL,
 * COLLECTOR_URL, RELAY_TOKEN, ...).
 */
export async function startWorker(vars) {
  const { workerOptions } = unstable_getMiniflareWorkerOptions(WRANGLER_TOML);
  const consumer = workerOptions.queueConsumers[QUEUE];
  assert.ok(consumer, `wrangler.toml consumes ${QUEUE}`);
  assert.equal(consumer.deadLetterQueue, DEAD_LETTERS);
  assert.deepEqual(Object.values(workerOptions.queueProducers).map((p) => p.queueName).sort(), [QUEUE, DEAD_LETTERS]);
  const mf = new Miniflare({
    host: "127.0.0.1",
    port: 0,
    // No network lookup of a real `cf` object: each request brings its own.
    cf: false,
    workers: [
      {
        ...workerOptions,
        name: "pathlight-edge",
        modules: true,
        modulesRoot: join(root, "edge-worker", "build"),
        scriptPath: join(root, "edge-worker", "build", "index.js"),
        bindings: {
          ...workerOptions.bindings,
          PATHLIGHT_SITES: JSON.stringify(SITES),
          // The test server's only user.
          CLICKHOUSE_USER: "default",
          RETRY_DELAY_SECONDS: "1",
          ...vars,
        },
        // Faster than production: batches leave after 1 s, and retries keep going for the
        // length of the outage test.
        queueConsumers: { [QUEUE]: { ...consumer, maxBatchTimeout: 1, maxRetries: 20 } },
      },
      {
        name: "dead-letters",
        modules: true,
        script: deadLetterReader,
        compatibilityDate: workerOptions.compatibilityDate,
        queueConsumers: { [DEAD_LETTERS]: { maxBatchSize: 10, maxBatchTimeout: 1 } },
      },
    ],
  });
  const base = (await mf.ready).toString().replace(/\/$/, "");
  return {
    mf,
    base,
    /** A request to the worker, with `cf` (Cloudflare's request data) supplied. */
    fetch(path, init = {}) {
      return mf.dispatchFetch(`${base}${path}`, init);
    },
    /** Messages the dead-letter queue received so far. */
    async deadLetters() {
      const reader = await mf.getWorker("dead-letters");
      return (await reader.fetch("http://dlq/")).json();
    },
    /** Sends raw bytes to the events queue, as a producer would. */
    async enqueue(bytes) {
      const q = await mf.getQueueProducer("EVENTS", "pathlight-edge");
      await q.send(bytes, { contentType: "v8" });
    },
    stop: () => mf.dispose(),
  };
}
