//! The collector's own per-event work after enrichment: flattening to storage rows and their
//! RowBinary encoding (what the spool writes and ClickHouse receives), and the whole of
//! `Stages::prepare` on a 20-event tracker batch.
//!   cargo bench -p pathlight-collector --bench rows

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pathlight_collector::config::Config;
use pathlight_collector::dates::now_ms;
use pathlight_collector::pipeline::{IngestRequest, Stages};
use pathlight_wire::enrich::VisitorHasher;
use std::sync::Arc;

fn rows(c: &mut Criterion) {
    let mut config = Config::for_tests("http://127.0.0.1:1", "bench");
    config.sites[0].id = "bench".into();
    let stages = Stages::new(
        &config,
        VisitorHasher::new(&[], [7; 16]),
        Arc::new(pathlight_collector::metrics::Metrics::new()),
    )
    .unwrap();
    let mut batch = pathlight_wire::sample::typical_batch();
    batch.site_id = "bench".into();
    let kinds = batch.events.clone();
    batch.events = (0..20).map(|i| kinds[i % kinds.len()].clone()).collect();
    let now = now_ms();
    batch.sent_at = now;
    batch
        .events
        .iter_mut()
        .for_each(|e| e.timestamp = now - 1_000);
    let body = pathlight_wire::cbor::encode(&batch);
    let req = || IngestRequest {
        body: &body,
        ip: Some([203, 0, 113, 9].into()),
        user_agent: Some(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        ),
        received_at: now,
        delivery: Default::default(),
        ..IngestRequest::default()
    };
    let mut counted = 0;
    let prepared = stages.prepare(&req(), &mut counted).unwrap();
    let mut g = c.benchmark_group("batch20");
    g.throughput(Throughput::Elements(20));
    g.bench_function("row_binary", |b| {
        let mut out = Vec::with_capacity(16 * 1024);
        b.iter(|| {
            out.clear();
            for row in &prepared.rows {
                row.write_row_binary(&mut out);
            }
            out.len()
        })
    });
    g.bench_function("prepare", |b| {
        b.iter(|| {
            let mut counted = 0;
            stages.prepare(&req(), &mut counted).unwrap().rows.len()
        })
    });
    g.bench_function("prepare_and_encode", |b| {
        let mut out = Vec::with_capacity(16 * 1024);
        b.iter(|| {
            let mut counted = 0;
            out.clear();
            for row in &stages.prepare(&req(), &mut counted).unwrap().rows {
                row.write_row_binary(&mut out);
            }
            out.len()
        })
    });
    g.finish();
}

criterion_group!(benches, rows);
criterion_main!(benches);
