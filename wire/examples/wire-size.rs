//! Sizes of the batch formats, for `bench/results/wire-size.md` and `FORMAT.md`: the golden
//! fixtures in v1 and v2, plain and gzipped, and a realistic visit (`sample::docs_visit`: a
//! documentation page with deep selectors and long URLs) as one batch of 20 clicks and as
//! batches of 5 clicks, as the tracker sends when the clicks are minutes apart.
//!
//!     cargo run -p pathlight-wire --example wire-size
//!
//! Gzip is deflate at level 6 (zlib's default, which `CompressionStream("gzip")` uses) plus
//! gzip's 18 bytes of header and trailer.

use pathlight_wire::{EventKind, RawBatch, cbor, sample, v2};
use std::path::PathBuf;

fn gz(bytes: &[u8]) -> usize {
    miniz_oxide::deflate::compress_to_vec(bytes, 6).len() + 18
}

fn row(name: &str, one: &[u8], two: &[u8]) {
    println!(
        "| {name} | {} B | {} B | {} B | {} B | {:.2} | {:.2} |",
        one.len(),
        gz(one),
        two.len(),
        gz(two),
        two.len() as f64 / one.len() as f64,
        gz(two) as f64 / gz(one) as f64,
    );
}

fn clicks(b: &RawBatch) -> usize {
    b.events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Click(_)))
        .count()
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let read = |name: &str| std::fs::read(dir.join(name)).expect("fixture");
    println!("| batch | v1 | v1 gzip | v2 | v2 gzip | v2/v1 | v2/v1 gzip |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for name in ["click", "typical", "unicode"] {
        let (one, two) = (
            read(&format!("{name}.cbor")),
            read(&format!("{name}.v2.cbor")),
        );
        row(&format!("`{name}` fixture"), &one, &two);
    }
    let visit = sample::docs_visit(20);
    let (one, two) = (cbor::encode(&visit), v2::encode(&visit));
    row(
        "docs page: view, 20 clicks, scroll, engagement (one batch)",
        &one,
        &two,
    );
    // The same visit sent as the tracker does when clicks are spread out: a batch per 5 clicks
    // (the page view with the first, scroll and engagement with the last).
    let mut parts: Vec<RawBatch> = Vec::new();
    let mut rest = visit.events.clone();
    while !rest.is_empty() {
        let mut take = 0;
        let mut seen = 0;
        while take < rest.len() && (seen < 5 || !matches!(rest[take].kind, EventKind::Click(_))) {
            seen += usize::from(matches!(rest[take].kind, EventKind::Click(_)));
            take += 1;
        }
        let events: Vec<_> = rest.drain(..take).collect();
        let sent_at = events.last().map_or(0, |e| e.timestamp + 20);
        parts.push(RawBatch {
            sent_at,
            events,
            ..visit.clone()
        });
    }
    let sum = |f: &dyn Fn(&RawBatch) -> Vec<u8>, zip: bool| -> usize {
        parts
            .iter()
            .map(|b| if zip { gz(&f(b)) } else { f(b).len() })
            .sum()
    };
    let (v1, v1z) = (sum(&cbor::encode, false), sum(&cbor::encode, true));
    let (v2b, v2z) = (sum(&v2::encode, false), sum(&v2::encode, true));
    println!(
        "| docs page, the same visit as {} batches of 5 clicks (sum) | {v1} B | {v1z} B | {v2b} B | {v2z} B | {:.2} | {:.2} |",
        parts.len(),
        v2b as f64 / v1 as f64,
        v2z as f64 / v1z as f64,
    );
    let n = clicks(&visit) as f64;
    println!();
    println!("Per click, every byte of the visit's bodies over its {n} clicks:");
    println!();
    println!("| docs visit | v1 | v1 gzip | v2 | v2 gzip |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| one batch | {:.0} B | {:.0} B | {:.0} B | {:.0} B |",
        one.len() as f64 / n,
        gz(&one) as f64 / n,
        two.len() as f64 / n,
        gz(&two) as f64 / n
    );
    println!(
        "| {} batches | {:.0} B | {:.0} B | {:.0} B | {:.0} B |",
        parts.len(),
        v1 as f64 / n,
        v1z as f64 / n,
        v2b as f64 / n,
        v2z as f64 / n
    );
}
