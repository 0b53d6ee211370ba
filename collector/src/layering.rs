//! The layering rule of `DESIGN.md`, checked over the source: every `crate::…` and `super::…`
//! path of every file under `src/` (tests excluded) names a module, and
//! - no file imports one of a higher layer (`cli` > `http` > `source` > `query` > `accounts` >
//!   `pipeline` > `sites` > `storage`; the shared `config`, `dates` and `metrics` import no layer, but `config`,
//!   which composes each layer's settings, may import their config structs);
//! - no files import each other, directly or through others (no cycle).
//!
//! A path is resolved to the longest module prefix that exists as a file, so
//! `crate::storage::clickhouse::retry::backoff` counts as `storage/clickhouse/retry.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers, lowest first; a file may import its own layer, lower ones and the shared modules.
const LAYERS: [&str; 8] = [
    "storage", "sites", "pipeline", "accounts", "query", "source", "http", "cli",
];
/// Imported by every layer; importing none (but `config`, see the module doc).
const SHARED: [&str; 5] = ["config", "dates", "metrics", "error", "hex"];

/// Module path (`["storage", "spool"]`) → source, of every `.rs` file under `dir`.
fn sources(dir: &Path, prefix: &[String], out: &mut BTreeMap<Vec<String>, String>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if path.is_dir() {
            let mut p = prefix.to_vec();
            p.push(name);
            sources(&path, &p, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let mut p = prefix.to_vec();
            if !matches!(name.as_str(), "mod" | "lib" | "main") {
                p.push(name);
            }
            out.insert(p, std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// `src` without comments and without its `#[cfg(test)] mod tests` (tests may reach anywhere).
fn code(src: &str) -> String {
    let src = match src.find("#[cfg(test)]\nmod tests") {
        Some(i) => &src[..i],
        None => src,
    };
    src.lines()
        .map(|l| match l.trim_start().starts_with("//") {
            true => "",
            false => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module paths `code` names: `crate::a::b…`, `super::a…` and the items of
/// `use crate::{a::b, c}` groups, `super` taken from `module` (a `mod.rs` is its folder's
/// module, whose `super` is the folder's parent, as for a file).
fn referenced(module: &[String], code: &str) -> Vec<Vec<String>> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let path_at = |rest: &str| -> Vec<String> {
        let mut parts = Vec::new();
        let mut s = rest;
        loop {
            let end = s.find(|c: char| !ident(c)).unwrap_or(s.len());
            if end == 0 {
                break;
            }
            parts.push(s[..end].to_owned());
            match s[end..].strip_prefix("::") {
                Some(next) => s = next,
                None => break,
            }
        }
        parts
    };
    for (i, _) in code.match_indices("crate::") {
        if i > 0 && code[..i].ends_with(|c: char| ident(c)) {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                out.push(path_at(item.trim()));
            }
        } else {
            out.push(path_at(rest));
        }
    }
    let parent = &module[..module.len().saturating_sub(1)];
    for (i, _) in code.match_indices("super::") {
        if i > 0 && code[..i].ends_with(|c: char| ident(c) || c == ':') {
            continue;
        }
        let mut p = parent.to_vec();
        p.extend(path_at(&code[i + "super::".len()..]));
        out.push(p);
    }
    out
}

/// The layer of a module: its index in [`LAYERS`], none for shared modules and the crate root.
fn layer(module: &[String]) -> Option<usize> {
    let top = module.first()?;
    LAYERS.iter().position(|l| l == top)
}

#[test]
fn no_file_imports_a_higher_layer_or_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    sources(&src, &[], &mut files);
    let resolve = |path: &[String]| -> Option<Vec<String>> {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|p| files.contains_key(p))
    };
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut upward = Vec::new();
    for (module, text) in &files {
        if module.is_empty() || module == &["main".to_owned()] {
            continue; // the crate root and the binary assemble every layer
        }
        for path in referenced(module, &code(text)) {
            let Some(target) = resolve(&path) else {
                continue;
            };
            // A folder's parts use what its `mod.rs` defines (`super::App`) and it re-exports
            // theirs: one module in several files, not a cycle.
            if target.is_empty() || module.starts_with(&target) {
                continue;
            }
            let shared_importer = SHARED.contains(&module[0].as_str());
            let too_high = match (layer(module), layer(&target)) {
                (Some(from), Some(to)) => to > from,
                (None, Some(_)) => shared_importer && module[0] != "config",
                _ => false,
            };
            if too_high {
                upward.push(format!("{} -> {}", module.join("::"), target.join("::")));
            }
            edges.entry(module.clone()).or_default().insert(target);
        }
    }
    assert!(upward.is_empty(), "imports up the layers: {upward:#?}");
    let cycles = cycles(&edges);
    assert!(
        cycles.is_empty(),
        "files that import each other: {cycles:#?}"
    );
    // The check sees the layers at all: the HTTP layer imports the pipeline and the query API.
    let http = &edges[&vec!["http".to_owned()]];
    assert!(http.iter().any(|t| t[0] == "pipeline") && http.iter().any(|t| t[0] == "query"));
}

/// The strongly connected components of more than one file (Tarjan).
fn cycles(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a [String], (usize, usize)>,
        stack: Vec<&'a [String]>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a [String]) {
        s.index.insert(v, (s.next, s.next));
        s.next += 1;
        s.stack.push(v);
        for w in s.edges.get(v).into_iter().flatten() {
            let w: &'a [String] = w;
            match s.index.get(w) {
                None => {
                    visit(s, w);
                    let low = s.index[w].1.min(s.index[v].1);
                    s.index.get_mut(v).unwrap().1 = low;
                }
                Some(&(wi, _)) if s.stack.contains(&w) => {
                    let low = wi.min(s.index[v].1);
                    s.index.get_mut(v).unwrap().1 = low;
                }
                Some(_) => {}
            }
        }
        let (vi, low) = s.index[v];
        if vi == low {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                comp.push(w.join("::"));
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_slice()) {
            visit(&mut s, v);
        }
    }
    s.out
}
