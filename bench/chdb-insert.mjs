// The storage limit on current ClickHouse, for bench/modern-storage.sh: an embedded ClickHouse
// (chdb, the build tests/chdb runs the modern dialect on) with every migration of DIALECT
// (`modern`, or `legacy`: 18.16's schema, to tell the server's version from the schema's cost),
// marts included, takes the given RowBinary files (`pathlight insert-limit --write`) round-robin,
// one `INSERT ... SELECT FROM file()` each, for SECONDS on a fresh database. Prints rows/s and
// the server's version. The rows' Enum8 columns are read as Int8 (the same bytes), as for 18.16,
// whose file() cannot parse an Enum8 in its structure argument.
//   node bench/chdb-insert.mjs PATHLIGHT_BIN DIALECT SECONDS ROWS_PER_FILE COLUMNS FILE...
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

// chdb is installed with the tests' packages (tests/package.json), not beside this script.
const { Session } = createRequire(new URL("../tests/package.json", import.meta.url))("chdb");
const [bin, dialect, seconds, perFile, columns, ...files] = process.argv.slice(2);
const statements = execFileSync(bin, ["migrate", "--print", dialect], { encoding: "utf8" })
  .split(/;\n/)
  .map((s) => s.replace(/^--.*$/gm, "").trim())
  .filter(Boolean);
const dir = mkdtempSync(join(tmpdir(), "pathlight-bench-chdb-"));
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
  let rows = 0;
  for (let i = 0; elapsed() < Number(seconds); i++) {
    const file = files[i % files.length];
    session.query(
      `INSERT INTO events (${columns}) SELECT * FROM file('${file}', 'RowBinary', '${structure}')`,
    );
    rows += Number(perFile);
  }
  const rate = rows / elapsed();
  const [version] = session.query("SELECT version()", "TabSeparatedRaw").split("\n");
  console.log(`${Math.round(rate)} ${version}`);
} finally {
  session.cleanup?.();
  rmSync(dir, { recursive: true, force: true });
}
