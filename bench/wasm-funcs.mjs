// Code bytes of a wasm module by function and by crate, from its name section, for the
// tracker-size breakdown:  node bench/wasm-funcs.mjs target/tracker/gen/pathlight_bg.wasm [N]
// (run it on the wasm-bindgen output, before wasm-opt strips the names).
import { readFileSync } from "node:fs";

const bytes = readFileSync(process.argv[2]);
const top = Number(process.argv[3] || 25);
let pos = 8;
const leb = () => {
  let v = 0, shift = 0, b;
  do {
    b = bytes[pos++];
    v += (b & 0x7f) * 2 ** shift;
    shift += 7;
  } while (b & 0x80);
  return v;
};
const str = () => {
  const n = leb();
  const s = bytes.subarray(pos, pos + n).toString("utf8");
  pos += n;
  return s;
};
let imported = 0;
const sizes = [];
const names = new Map();
while (pos < bytes.length) {
  const id = bytes[pos++];
  const len = leb();
  const end = pos + len;
  if (id === 2) {
    for (let n = leb(); n > 0; n--) {
      str();
      str();
      const kind = bytes[pos++];
      if (kind === 0) { leb(); imported++; }
      else if (kind === 1) { pos++; const f = bytes[pos++]; leb(); if (f & 1) leb(); }
      else if (kind === 2) { const f = bytes[pos++]; leb(); if (f & 1) leb(); }
      else if (kind === 3) { pos += 2; }
    }
  } else if (id === 10) {
    for (let n = leb(); n > 0; n--) {
      const size = leb();
      sizes.push(size);
      pos += size;
    }
  } else if (id === 0 && str() === "name") {
    while (pos < end) {
      const sub = bytes[pos++];
      const subLen = leb();
      const subEnd = pos + subLen;
      if (sub === 1) for (let n = leb(); n > 0; n--) names.set(leb(), str());
      pos = subEnd;
    }
  }
  pos = end;
}
// Mangled (legacy `_ZN…E`) names hold the crate as their first path segment.
const crateOf = (name) => {
  const m = /_ZN\d*?(?:_\$LT\$)?(\d+)([A-Za-z_][A-Za-z0-9_]*)/.exec(name);
  if (m) return m[2].slice(0, Number(m[1]));
  if (/^__wbg|^__wbindgen|^__externref/.test(name)) return "wasm-bindgen";
  return name.split("::")[0] || "?";
};
const rows = sizes.map((size, i) => ({ size, name: names.get(imported + i) || `func${imported + i}` }));
const byCrate = new Map();
for (const r of rows) byCrate.set(crateOf(r.name), (byCrate.get(crateOf(r.name)) || 0) + r.size);
const total = rows.reduce((a, r) => a + r.size, 0);
console.log(`code: ${total} B in ${rows.length} functions (${imported} imports)\n`);
console.log("| crate | code bytes |\n|---|---:|");
for (const [c, s] of [...byCrate].sort((a, b) => b[1] - a[1])) console.log(`| ${c} | ${s} |`);
console.log(`\n| largest functions | bytes |\n|---|---:|`);
for (const r of rows.sort((a, b) => b.size - a.size).slice(0, top)) {
  console.log(`| ${r.name.slice(0, 110).replace(/\|/g, "\\|")} | ${r.size} |`);
}
