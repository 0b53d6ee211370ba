//! The anomaly rules against known truth: traffic from `pathlight gen`, which labels what it
//! injected (bots, stuck loops, rage, dead and repeated clicks, rapid automation), goes
//! through import into ClickHouse 18.16, and each rule must find its kind with at least 95 %
//! precision and 90 % recall. The table is printed (`-- --nocapture`); bench/anomalies.sh
//! measures a larger run for bench/results/anomalies.md.

use crate::{TestServer, clickhouse_url};
use pathlight_collector::cli::generate::{self, FileFormat, GenOptions, Generator, Injected};
use pathlight_collector::cli::import::{Format, run};
use pathlight_collector::cli::score;
use pathlight_collector::config::Config;
use pathlight_collector::metrics::Metrics;
use pathlight_collector::pipeline::Pipeline;
use pathlight_collector::query::rollup;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;

#[tokio::test]
async fn each_rule_finds_the_anomalies_injected_for_it() {
    let server = TestServer::start_with("anomaly_score", |c| c.sites[0].id = "demo".into()).await;
    let visits: Vec<generate::Visit> = Generator::new(GenOptions {
        events: 50_000,
        days: 14,
        seed: 11,
        base_url: "http://127.0.0.1:8080/demo/".into(),
        end_ms: 1_793_491_200_000,
    })
    .collect();
    let labels: BTreeSet<(String, Injected)> = visits.iter().flat_map(generate::labels).collect();
    let file = std::env::temp_dir().join(format!(
        "pathlight-it-anomalies-{}.ndjson",
        std::process::id()
    ));
    generate::write(
        visits.into_iter(),
        "demo",
        FileFormat::Ndjson,
        std::fs::File::create(&file).unwrap(),
    )
    .unwrap();

    let mut config = Config::for_tests(clickhouse_url(), "it_anomaly_score");
    config.sites[0].id = "demo".into();
    let (pipeline, sink) = Pipeline::start(&config, Arc::new(Metrics::new()))
        .await
        .unwrap();
    pipeline.drain();
    let report = run(&pipeline, "demo", &file, Format::Ndjson, |_| {})
        .await
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    assert_eq!((report.stored, report.rejected), (50_000, 0), "{report:?}");
    drop(pipeline);
    sink.await.unwrap();

    let client = clickhouse::Client::default()
        .with_url(clickhouse_url())
        .with_database("it_anomaly_score")
        .with_validation(false);
    let (flags, scores) = score::run(&client, "demo", &labels).await.unwrap();
    println!(
        "{} sessions, {} labels\n{}",
        flags.sessions,
        labels.len(),
        score::table(&scores)
    );
    for s in &scores {
        assert!(
            s.labelled >= 10,
            "too few {:?} sessions to measure: {s:?}",
            s.kind
        );
        assert!(
            s.precision() >= 0.95 && s.recall() >= 0.90,
            "{:?}: precision {:.3}, recall {:.3}\n{}",
            s.kind,
            s.precision(),
            s.recall(),
            score::table(&scores)
        );
    }

    // The same answers from the behaviour rollup (issue 27): once every day is rolled, the
    // API reads anomalies, rage and dead clicks and loops from it, and they must be those it
    // finds in the events (`exact=true`).
    let range = "site=demo&from=2026-10-10&to=2026-11-05";
    let cfg = config.clickhouse.clone();
    let today = pathlight_collector::dates::unix_day(1_793_491_200_000) + 2;
    let rolled = rollup::roll(&client, &cfg, &Default::default(), 0, today)
        .await
        .unwrap();
    assert!(rolled.behaviour.len() >= 14, "{rolled:?}");
    let (live, from_rollup) = (
        server.api(&format!("anomalies?{range}&exact=true")).await,
        server.api(&format!("anomalies?{range}")).await,
    );
    assert!(!live["sessions"].as_array().unwrap().is_empty());
    assert_eq!(from_rollup["sessions"], live["sessions"]);
    let live_sessions = live["sessions"].clone();
    let figures = |v: &Value, kind: &str| -> Vec<(String, u64, u64, i64, i64)> {
        v[kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let at = |k: &str| (e[k].as_f64().unwrap() * 1000.0).round() as i64;
                let n = |k: &str| e[k].as_u64().unwrap();
                let selector = e["selector"].as_str().unwrap().to_owned();
                (selector, n("count"), n("sessions"), at("x"), at("y"))
            })
            .collect()
    };
    for kind in ["rage", "dead"] {
        assert!(!figures(&live, kind).is_empty(), "{kind}");
        assert_eq!(figures(&from_rollup, kind), figures(&live, kind), "{kind}");
    }
    // Per page and layout too: the heatmap's frustration layer of the pages clicked most.
    #[derive(serde::Deserialize, clickhouse::Row)]
    struct Page {
        path: String,
    }
    let pages: Vec<Page> = client
        .query(
            "SELECT path FROM events WHERE event_type = 'click' GROUP BY path \
             ORDER BY count() DESC, path LIMIT 3",
        )
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(pages.len(), 3);
    let mut compared = 0;
    for page in &pages {
        for width in ["", "&width=375", "&width=1440"] {
            let q = format!(
                "heatmap?{range}&path={}{width}&layers=frustration",
                page.path
            );
            let (live, rolled) = (
                server.api(&format!("{q}&exact=true")).await,
                server.api(&q).await,
            );
            for kind in ["rage", "dead"] {
                assert_eq!(figures(&rolled, kind), figures(&live, kind), "{q}: {kind}");
                compared += usize::from(!figures(&live, kind).is_empty());
            }
        }
    }
    assert!(compared >= 6, "{compared} comparisons with rows");
    let (live, from_rollup) = (
        server.api(&format!("patterns?{range}&exact=true")).await,
        server.api(&format!("patterns?{range}")).await,
    );
    assert_eq!(from_rollup["loops"], live["loops"]);
    assert_eq!(from_rollup["approximate"], true);
    assert_eq!(from_rollup["frequent"], live["frequent"]);
    // Proof that the rollup is what answered: with the events gone, it still does over the
    // rolled days (every day with events, and one either side).
    let (first, last) = (rolled.behaviour[0], *rolled.behaviour.last().unwrap());
    let rolled_range = format!(
        "site=demo&from={}&to={}",
        pathlight_collector::dates::civil(first),
        pathlight_collector::dates::civil(last)
    );
    server
        .db
        .query("RENAME TABLE events TO events_gone")
        .execute()
        .await
        .unwrap();
    assert_eq!(
        server.api(&format!("anomalies?{rolled_range}")).await["sessions"],
        live_sessions
    );
    server.stop().await;
}
