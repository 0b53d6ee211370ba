//! Per-stage cost of the pure ingest path, in events per second: CBOR decode, validation,
//! enrichment (User-Agent parsing included, measured apart as well) and JSON decode for
//! comparison. `cargo bench -p pathlight-wire`; results in `bench/results/wire-pipeline.md`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pathlight_wire::enrich::{Enricher, VisitorHasher, parse_user_agent};
use pathlight_wire::validate::{validate_envelope, validate_event};
use pathlight_wire::{Limits, RawBatch, RequestContext, cbor, json, sample};
use std::hint::black_box;

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";

/// A 20-event batch, the tracker's typical flush: the sample's five kinds four times over.
fn batch20() -> RawBatch {
    let mut b = sample::typical_batch();
    let events = b.events.clone();
    b.events = (0..4u8)
        .flat_map(|round| {
            events.iter().cloned().map(move |mut e| {
                e.id.0[0] = round;
                e
            })
        })
        .collect();
    b
}

fn stages(c: &mut Criterion) {
    let batch = batch20();
    let n = batch.events.len() as u64;
    let bytes = cbor::encode(&batch);
    let json_bytes = json::encode(&batch);
    let limits = Limits::default();
    let hasher = VisitorHasher::new(&[], [7; 16]);
    let ctx = RequestContext {
        received_at: batch.sent_at + 40,
        ip: Some("203.0.113.7".parse().unwrap()),
        user_agent: Some(CHROME.into()),
        geo: Default::default(),
    };

    let mut g = c.benchmark_group("batch20");
    g.throughput(Throughput::Elements(n));
    g.bench_function("cbor_encode", |b| {
        b.iter(|| cbor::encode(black_box(&batch)))
    });
    g.bench_function("cbor_decode", |b| {
        b.iter(|| cbor::decode(black_box(&bytes), &limits).unwrap())
    });
    g.bench_function("json_decode", |b| {
        b.iter(|| json::decode(black_box(&json_bytes), None, &limits).unwrap())
    });
    g.bench_function("validate", |b| {
        b.iter(|| {
            validate_envelope(&batch, &limits).unwrap();
            for (i, e) in batch.events.iter().enumerate() {
                validate_event(black_box(e), i, batch.sent_at, ctx.received_at, &limits).unwrap();
            }
        })
    });
    // One request's enrichment: the header User-Agent is parsed once per batch.
    g.bench_function("enrich", |b| {
        b.iter(|| {
            let mut en = Enricher::new(&hasher, &ctx);
            for e in &batch.events {
                black_box(en.enrich(&batch.site_id, batch.batch_id, batch.sent_at, e.clone()));
            }
        })
    });
    g.bench_function("decode_validate_enrich", |b| {
        b.iter(|| {
            let decoded = cbor::decode(black_box(&bytes), &limits).unwrap();
            validate_envelope(&decoded, &limits).unwrap();
            let mut en = Enricher::new(&hasher, &ctx);
            for (i, e) in decoded.events.into_iter().enumerate() {
                validate_event(&e, i, decoded.sent_at, ctx.received_at, &limits).unwrap();
                black_box(en.enrich(&decoded.site_id, decoded.batch_id, decoded.sent_at, e));
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("user_agent");
    g.throughput(Throughput::Elements(1));
    for (name, ua) in [("chrome_windows", CHROME), ("safari_iphone", IPHONE)] {
        g.bench_with_input(BenchmarkId::new("parse", name), ua, |b, ua| {
            b.iter(|| parse_user_agent(black_box(ua)))
        });
    }
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
