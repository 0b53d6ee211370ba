// `wrangler deploy` as a user runs it, short of uploading: the wrangler.toml parses, its build
// command works offline, and the bundle it would upload has the worker, its wasm, the tracker's
// files as assets and the bindings the code expects.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { root } from "../lib/stack.mjs";

test("wrangler deploy --dry-run builds and bundles the worker offline", (t) => {
  const out = mkdtempSync(join(tmpdir(), "pathlight-wrangler-"));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const log = execFileSync(join(root, "tests", "node_modules", ".bin", "wrangler"), ["deploy", "--dry-run", "--outdir", out], {
    cwd: join(root, "edge-worker"),
    env: {
      PATH: `${join(root, "tests", "node_modules", ".bin")}:${process.env.PATH}`,
      HOME: process.env.HOME,
      WRANGLER_SEND_METRICS: "false",
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
      WRANGLER_HIDE_BANNER: "true",
      WRANGLER_SEND_ERROR_REPORTS: "false",
    },
    encoding: "utf8",
  });
  assert.match(log, /--dry-run: exiting now/);
  for (const binding of ["EVENTS", "DEAD_LETTERS", "ASSETS"]) assert.match(log, new RegExp(`env\\.${binding}`));
  // The tracker's files it serves first-party: at least the loader and its wasm.
  const assets = log.match(/Read (\d+) files? from the assets directory \S*build\/tracker/);
  assert.ok(assets && Number(assets[1]) >= 2, log);
  const files = readdirSync(out);
  assert.ok(files.includes("index.js"), files.join(", "));
  assert.ok(files.some((f) => f.endsWith(".wasm")), files.join(", "));
});
