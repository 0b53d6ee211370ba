// The operations files (ops/): the Grafana dashboard and the Prometheus alert rules parse, are
// complete, pass Prometheus's own checks and unit tests (promtool, Debian's `prometheus`,
// installed by scripts/setup.sh), and name only metrics a running collector actually exports.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { root, startClickHouse, startCollector } from "../lib/stack.mjs";

const dashboard = JSON.parse(readFileSync(join(root, "ops/grafana/pathlight-collector.json"), "utf8"));
const alerts = parse(readFileSync(join(root, "ops/prometheus/alerts.yml"), "utf8"));
const exprs = [
  ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)),
  ...alerts.groups.flatMap((g) => g.rules.map((r) => r.expr)),
];

test("dashboard and alert rules are complete", () => {
  const ids = dashboard.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
  for (const p of dashboard.panels) {
    assert.ok(p.title && p.gridPos && p.targets.length > 0, `panel ${p.id}`);
  }
  const rules = alerts.groups.flatMap((g) => g.rules);
  const names = rules.map((r) => r.alert);
  for (const wanted of [
    "PathlightIngestStopped",
    "PathlightSinkBehind",
    "PathlightRejectRatio",
    "PathlightIngestErrors",
    "PathlightClickHouseDown",
    "PathlightNatsDown",
    "PathlightSpoolBacklogGrowing",
    "PathlightQueryP95Slow",
  ]) {
    assert.ok(names.includes(wanted), wanted);
  }
  for (const r of rules) {
    assert.ok(r.expr && r.for && r.labels?.severity && r.annotations?.summary, r.alert);
  }
});

test("promtool accepts the rules and their unit tests pass", () => {
  const rules = join(root, "ops/prometheus");
  const run = (...args) => execFileSync("promtool", args, { cwd: rules, encoding: "utf8", stdio: "pipe" });
  assert.match(run("check", "rules", "alerts.yml"), /SUCCESS/);
  assert.match(run("test", "rules", "alerts.test.yml"), /SUCCESS/);
});

test("the dashboard has panels for components, spool backlog, business and process figures", () => {
  const named = (metric) => dashboard.panels.some((p) => p.targets.some((t) => t.expr.includes(metric)));
  for (const metric of [
    "pathlight_clickhouse_up",
    "pathlight_nats_up",
    "pathlight_spool_bytes",
    "pathlight_spool_rows",
    "pathlight_spool_segments",
    "pathlight_current_visitors",
    "pathlight_page_views_total",
    "pathlight_page_views_by_path_total",
    "pathlight_websocket_connections",
    "pathlight_query_request_seconds_bucket",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_threads",
    "process_start_time_seconds",
  ]) {
    assert.ok(named(metric), `no panel shows ${metric}`);
  }
});

test("every metric the dashboard and the alerts name is exported by the collector", async () => {
  const ch = await startClickHouse("ops");
  const collector = await startCollector({ clickhouseUrl: ch.url, db: "e2e_ops" });
  try {
    // Some traffic, so labelled families have series: a refused batch, a refused query.
    await fetch(`${collector.base}/v1/batch`, { method: "POST", body: new Uint8Array([0xfc]) });
    await fetch(`${collector.base}/api/v1/stats?site=demo`);
    const text = await (await fetch(`${collector.base}/metrics`)).text();
    const series = new Set();
    for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      const suffixes = { counter: ["_total"], histogram: ["_bucket", "_sum", "_count"], gauge: [""] }[type] ?? [""];
      for (const s of suffixes) series.add(name + s);
    }
    const referenced = new Set(exprs.flatMap((e) => e.match(/\b(?:pathlight|process)_[a-z_]+/g) ?? []));
    assert.ok(referenced.size >= 6, [...referenced].join(", "));
    for (const name of referenced) assert.ok(series.has(name), `${name} is not exported; exported: ${[...series].join(", ")}`);
  } finally {
    await collector.stop();
  }
});
