// The storage limit on current ClickHouse, for bench/modern-storage.sh: an embedded ClickHouse
// (chdb, the build tests/chdb runs the modern dialect on) with every migration of DIALECT
// (`modern`, or `legacy`: 18.16's schema, to tell the server's version from the schema's cost),
// marts included, takes the given RowBinary files (`pathlight-bench insert-limit --write`) in order,
// one `INSERT ... SELECT FROM file()` each, for SECONDS or until the files run out, on a fresh
// database (in $CLICKHOUSE_DIR, else the temp dir). Each file once: a block inserted twice
// would be dropped by the modern schema's deduplication window and flatter the rate. Prints
// rows/s, the server's version and how many files were used. The rows' Enum8 columns are read
// as Int8 (the same bytes), as for 18.16, whose file() cannot parse an Enum8 in its structure.
//   node bench/chdb-insert.mjs PATHLIGHT_BIN CONFIG DIALECT SECONDS ROWS_PER_FILE COLUMNS FILE...
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

// chdb is installed with the tests' packages (tests/package.json), not beside this script.
const { Session } = createRequire(new URL("../tests/package.json", import.meta.url))("chdb");
const [bin, config, dialect, seconds, perFile, columns, ...files] = process.argv.slice(2);
const statements = execFileSync(bin, ["--config", config, "migrate", "--print", dialect], {
  encoding: "utf8",
})
  .split(/;\n/)
  .map((s) => s.replace(/^--.*$/gm, "").trim())
  .filter(Boolean);
const dir = mkdtempSync(join(process.env.CLICKHOUSE_DIR || tmpdir(), "pathlight-bench-chdb-"));
const session = new Session(dir);
try {
  session.query("CREATE DATABASE pathlight");
  session.query("USE pathlight");
  for (const sql of statements) session.query(sql);
  const types = Object.fromEntries(
    session
      .query("DESCRIBE TABLE events", "TabSeparatedRaw")
      .split("\n")
      .filter(Boolean)
      .map((l) => l.split("\t"))
      .map(([name, type]) => [name, type.startsWith("Enum8") ? "Int8" : type]),
  );
  const structure = columns
    .split(", ")
    .map((c) => `${c} ${types[c]}`)
    .join(", ")
    .replaceAll("'", "\\'");
  const start = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - start) / 1e9;
  let used = 0;
  while (used < files.length && elapsed() < Number(seconds)) {
    session.query(
      `INSERT INTO events (${columns}) SELECT * FROM file('${files[used]}', 'RowBinary', '${structure}')`,
    );
    used += 1;
  }
  const rate = (used * Number(perFile)) / elapsed();
  const [version] = session.query("SELECT version()", "TabSeparatedRaw").split("\n");
  console.log(`${Math.round(rate)} ${version} ${used}`);
} finally {
  session.cleanup?.();
  rmSync(dir, { recursive: true, force: true });
}
