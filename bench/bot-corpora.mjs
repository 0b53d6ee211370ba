// Writes the public User-Agent corpora bench/bots.sh measures the bot flag on, one
// `label<TAB>User-Agent` file per corpus (label `bot` for crawlers; `desktop`, `mobile`,
// `tablet` or `-` for browsers), each User-Agent once, read straight out of git snapshots of
// the repositories they come from (nothing is copied into this repository):
//   node bench/bot-corpora.mjs OUT-DIR
// The snapshots' git directories come from the environment, defaulting to where the session
// tools put them (/work/.mirror/OWNER+NAME/repo); any clone works:
//   PL_CRAWLER_USER_AGENTS  monperrus/crawler-user-agents (MIT): the list's own examples, at
//                           the commit wire/data/crawler-user-agents.txt was generated from
//   PL_DEVICE_DETECTOR      matomo-org/device-detector (LGPL-3.0): Tests/fixtures
//   PL_ISBOT                omrilotan/isbot (Unlicense): fixtures/crawlers.yml, browsers.yml
//   PL_UAP_CORE             ua-parser/uap-core (Apache-2.0): tests/test_device.yaml
//   PL_TOP_USER_AGENTS      microlinkhq/top-user-agents (MIT): src/desktop.json, mobile.json
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const YAML = createRequire(new URL("../tests/package.json", import.meta.url))("yaml");
const out = process.argv[2];
if (!out) throw new Error("usage: node bench/bot-corpora.mjs OUT-DIR");
mkdirSync(out, { recursive: true });

const repo = (env, name) => process.env[env] ?? `/work/.mirror/${name.replace("/", "+")}/repo`;
const git = (dir, ...args) => execFileSync("git", ["-C", dir, ...args], { encoding: "utf8", maxBuffer: 1 << 28 });
const show = (dir, rev, path) => git(dir, "show", `${rev}:${path}`);
const yaml = (text) => YAML.parse(text, { maxAliasCount: -1 });

const written = [];
function write(name, rows) {
  const seen = new Set();
  const lines = [];
  for (const [label, ua] of rows) {
    const s = String(ua ?? "").replace(/[\t\r\n]/g, " ");
    if (seen.has(s)) continue;
    seen.add(s);
    lines.push(`${label}\t${s}`);
  }
  writeFileSync(join(out, `${name}.tsv`), lines.join("\n") + "\n");
  written.push(`${name}: ${lines.length}`);
}

// The crawler list's own examples, at the commit the compiled list names.
const cua = repo("PL_CRAWLER_USER_AGENTS", "monperrus/crawler-user-agents");
const header = readFileSync(new URL("../wire/data/crawler-user-agents.txt", import.meta.url), "utf8");
const listCommit = header.match(/at commit ([0-9a-f]{40})/)[1];
const list = JSON.parse(show(cua, listCommit, "crawler-user-agents.json"));
write("crawler-user-agents-instances", list.flatMap((e) => (e.instances ?? []).map((ua) => ["bot", ua])));

// Device Detector's fixtures: its bot fixtures, and every browser fixture with a device kind
// that the collector has (phablets are phones to it).
const dd = repo("PL_DEVICE_DETECTOR", "matomo-org/device-detector");
write("device-detector-bots", yaml(show(dd, "HEAD", "Tests/fixtures/bots.yml")).map((e) => ["bot", e.user_agent]));
const kinds = { desktop: "desktop", smartphone: "mobile", phablet: "mobile", tablet: "tablet" };
const browsers = [];
for (const file of git(dd, "ls-tree", "--name-only", "HEAD", "Tests/fixtures/").split("\n")) {
  if (!file.endsWith(".yml") || file.endsWith("/bots.yml")) continue;
  for (const e of yaml(show(dd, "HEAD", file)) ?? []) {
    const kind = kinds[e?.device?.type];
    if (e?.client?.type === "browser" && kind) browsers.push([kind, e.user_agent]);
  }
}
write("device-detector-browsers", browsers);

// isbot's fixtures: crawlers and browsers, each a map of name to User-Agents.
const isbot = repo("PL_ISBOT", "omrilotan/isbot");
const flat = (text, label) => Object.values(yaml(text)).flat().map((ua) => [label, ua]);
write("isbot-crawlers", flat(show(isbot, "HEAD", "fixtures/crawlers.yml"), "bot"));
write("isbot-browsers", flat(show(isbot, "HEAD", "fixtures/browsers.yml"), "-"));

// uap-core's device tests: the ones it names a Spider.
const uap = repo("PL_UAP_CORE", "ua-parser/uap-core");
write(
  "uap-core-spiders",
  yaml(show(uap, "HEAD", "tests/test_device.yaml"))
    .test_cases.filter((c) => c.family === "Spider")
    .map((c) => ["bot", c.user_agent_string]),
);

// The top 100 User-Agents microlink.io sees, split by its own desktop/mobile label.
const top = repo("PL_TOP_USER_AGENTS", "microlinkhq/top-user-agents");
write("top-user-agents", [
  ...JSON.parse(show(top, "HEAD", "src/desktop.json")).map((ua) => ["desktop", ua]),
  ...JSON.parse(show(top, "HEAD", "src/mobile.json")).map((ua) => ["mobile", ua]),
]);

const commits = [cua, dd, isbot, uap, top].map((d) => `${d}: ${git(d, "rev-parse", "HEAD").trim()}`);
console.error(`wrote ${written.join(", ")} (crawler list at ${listCommit})\n${commits.join("\n")}`);
