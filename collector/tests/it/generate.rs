//! `pathlight gen`: the committed sample is what the generator writes, and generated traffic
//! goes through import and live sending into ClickHouse with the shapes it was made with.

use crate::{TestServer, clickhouse_url};
use pathlight_collector::cli::generate::{self, FileFormat, GenOptions, Generator, SendOptions};
use pathlight_collector::cli::import::{Format, run};
use pathlight_collector::config::Config;
use pathlight_collector::metrics::Metrics;
use pathlight_collector::pipeline::Pipeline;
use std::path::Path;
use std::sync::Arc;

/// The options `demo-site/sample-events.csv` was written with (README: `pathlight gen
/// --events 2000 --seed 1 --days 14 --end 2026-11-01T00:00:00Z --out …`).
fn sample_options() -> GenOptions {
    GenOptions {
        events: 2_000,
        days: 14,
        seed: 1,
        base_url: "http://127.0.0.1:8080/demo/".into(),
        end_ms: 1_793_491_200_000,
    }
}

#[tokio::test]
async fn the_sample_file_is_generated_and_imports_whole_and_once() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo-site/sample-events.csv");
    let mut again = Vec::new();
    generate::write(
        Generator::new(sample_options()),
        "demo",
        FileFormat::Csv,
        &mut again,
    )
    .unwrap();
    assert!(
        std::fs::read(&sample).unwrap() == again,
        "demo-site/sample-events.csv differs from what `pathlight gen` writes now: regenerate it"
    );

    let server = TestServer::start("gen_import").await;
    let mut config = Config::for_tests(clickhouse_url(), "it_gen_import");
    config.sites[0].id = "demo".into();
    let (pipeline, sink) = Pipeline::start(&config, Arc::new(Metrics::new()))
        .await
        .unwrap();
    pipeline.drain();
    let report = run(&pipeline, "demo", &sample, Format::Csv, |_| {})
        .await
        .unwrap();
    assert_eq!(
        (report.lines, report.stored, report.rejected),
        (2_000, 2_000, 0),
        "{report:?}"
    );
    let again = run(&pipeline, "demo", &sample, Format::Csv, |_| {})
        .await
        .unwrap();
    assert_eq!(again.rejected, 0);
    drop(pipeline);
    sink.await.unwrap();

    let n = |sql: &'static str| server.scalar(sql);
    assert_eq!(n("SELECT count() FROM events FINAL").await, 2_000);
    // Who and what: bots flagged, four screen widths, a dozen countries, many visitors.
    assert!(n("SELECT countIf(is_bot = 1) FROM events FINAL").await > 0);
    assert_eq!(n("SELECT uniqExact(viewport_w) FROM events").await, 4);
    assert!(n("SELECT uniqExact(country) FROM events").await >= 8);
    let visitors = n("SELECT uniqExact(visitor_id) FROM events WHERE is_bot = 0").await;
    assert!(visitors > 30, "{visitors} visitors");
    assert!(n("SELECT uniqExact(device) FROM events").await >= 3);
    // Clicks carry the element and where inside it; scrolls their depth.
    assert_eq!(
        n("SELECT countIf(rel_x = 0 OR selector = '' OR document_h = 0) FROM events WHERE event_type = 'click'").await,
        0
    );
    assert!(
        n("SELECT countIf(scroll_depth > 0) FROM events WHERE event_type = 'scroll'").await > 100
    );
    assert!(
        n("SELECT count() FROM events WHERE event_type = 'custom' AND name = 'purchase'").await > 0
    );
    // The marts saw them (bots excluded).
    assert!(n("SELECT toUInt64(sum(clicks)) FROM heatmap_clicks").await > 300);
}

#[tokio::test]
async fn live_generated_traffic_arrives_as_many_visitors() {
    let server = TestServer::start_with("gen_live", |c| {
        c.sites[0].id = "demo".into();
        c.client_ip_header = "x-forwarded-for".into();
        c.country_header = "cf-ipcountry".into();
    })
    .await;
    let opts = GenOptions {
        events: 400,
        days: 0,
        end_ms: pathlight_collector::dates::now_ms(),
        ..sample_options()
    };
    let report = generate::send(
        Generator::new(opts),
        "demo",
        &SendOptions {
            to: generate::Destination::Collector(server.url("/v1/batch")),
            rate: 0,
            duration: std::time::Duration::from_secs(60),
        },
    )
    .await
    .unwrap();
    assert_eq!((report.events, report.failed.len()), (400, 0), "{report:?}");
    let mut stored = 0;
    for _ in 0..100 {
        stored = server.scalar("SELECT count() FROM events").await;
        if stored == 400 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(stored, 400);
    assert!(
        server
            .scalar("SELECT uniqExact(visitor_id) FROM events")
            .await
            > 5
    );
    let countries = server.scalar("SELECT uniqExact(country) FROM events").await;
    assert!(countries > 3, "{countries} countries");
}
