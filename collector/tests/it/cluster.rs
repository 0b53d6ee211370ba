//! Cluster mode: two ClickHouse servers as two shards of one cluster (`remote_servers`), the
//! collector migrating both and writing through `Distributed` tables; the query API answers
//! as it does on one server holding the same events, and erasure reaches every shard.

use crate::{ClickHouseProcess, TestServer, free_port};
use pathlight_collector::cli::import::{Format, run};
use pathlight_collector::config::Config;
use pathlight_collector::metrics::Metrics;
use pathlight_collector::pipeline::Pipeline;
use pathlight_collector::storage::clickhouse::erasure::{Subject, erase};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

fn demo(c: &mut Config) {
    c.sites[0].id = "demo".into();
}

/// Imports the sample file (2 000 events over 14 days) through `config`'s pipeline.
async fn import_sample(config: &Config) {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo-site/sample-events.csv");
    let (pipeline, sink) = Pipeline::start(config, Arc::new(Metrics::new()))
        .await
        .unwrap();
    pipeline.drain();
    let report = run(&pipeline, "demo", &sample, Format::Csv, |_| {})
        .await
        .unwrap();
    assert_eq!((report.stored, report.rejected), (2_000, 0), "{report:?}");
    drop(pipeline);
    sink.await.unwrap();
}

/// An answer without what legitimately differs between two deployments: visitor ids are
/// keyed hashes under each deployment's own random daily salt (the same visitors, counted
/// alike, under other ids), and a session's top actions are `topK`, whose ties are broken by
/// the order its partial states merge in — which differs between any two servers, and on one
/// server before and after a background merge.
fn comparable(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("visitor_id");
            if m.contains_key("session_id") {
                m.remove("actions");
            }
            m.values_mut().for_each(comparable);
        }
        Value::Array(a) => a.iter_mut().for_each(comparable),
        _ => {}
    }
}

/// Checks the distinct counts of two `stats` answers (`visitors`, `sessions`, the series'
/// visitors, the active users) are within 8 % of each other, then sets `b`'s to `a`'s. Each
/// side's HyperLogLog estimate has a standard error of 1.6 %, and the visitor ids differ
/// between the deployments (each its own random salt): 5 % failed once in a few runs
/// (MAU 55 against 58).
fn approximately_equal(a: &mut Value, b: &mut Value, q: &str) {
    fn walk(a: &Value, b: &mut Value, key: &str, q: &str) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                for (k, v) in x {
                    if let Some(w) = y.get_mut(k) {
                        walk(v, w, k, q);
                    }
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                for (v, w) in x.iter().zip(y.iter_mut()) {
                    walk(v, w, key, q);
                }
            }
            (Value::Number(x), w @ Value::Number(_)) => {
                let distinct = ["visitors", "sessions", "dau", "wau", "mau"].contains(&key);
                let (x, y) = (x.as_f64().unwrap(), w.as_f64().unwrap());
                if distinct && x != y {
                    assert!(
                        (x - y).abs() <= 0.08 * x.max(y),
                        "{q}: {key} {x} against {y}"
                    );
                    *w = a.clone();
                }
            }
            _ => {}
        }
    }
    walk(a, b, "", q);
}

#[tokio::test]
async fn two_shards_answer_the_query_api_as_one_server_does() {
    let tcp = [free_port(), free_port()];
    let cluster = format!("pathlight_it={},{}", tcp[0], tcp[1]);
    let shards: Vec<ClickHouseProcess> = (0..2)
        .map(|i| {
            ClickHouseProcess::start_with(
                &format!("shard{i}"),
                vec![
                    ("PL_CLICKHOUSE_TCP_PORT".into(), tcp[i].to_string()),
                    ("PL_CLICKHOUSE_CLUSTER".into(), cluster.clone()),
                ],
            )
        })
        .collect();
    let clustered = |c: &mut Config| {
        demo(c);
        c.clickhouse.cluster = "pathlight_it".into();
        c.clickhouse.shards = shards.iter().map(|s| s.url.clone()).collect();
    };
    let one = TestServer::start_with("cluster_one", demo).await;
    let two = TestServer::start_at(&shards[1].url, "cluster", clustered).await;
    for server in [&one, &two] {
        let mut config = Config::for_tests(&server.clickhouse.url, &server.clickhouse.database);
        config.clickhouse = server.clickhouse.clone();
        demo(&mut config);
        import_sample(&config).await;
    }

    // Both shards hold part of the events, each session whole on one of them.
    let local = |i: usize, sql: &str| {
        let db = clickhouse::Client::default()
            .with_url(&shards[i].url)
            .with_database("it_cluster")
            .with_validation(false);
        let sql = sql.to_owned();
        async move { db.query(&sql).fetch_one::<u64>().await.unwrap() }
    };
    let per_shard = [
        local(0, "SELECT count() FROM events_local FINAL").await,
        local(1, "SELECT count() FROM events_local FINAL").await,
    ];
    assert!(per_shard.iter().all(|&n| n > 300), "{per_shard:?}");
    assert_eq!(per_shard[0] + per_shard[1], 2_000);
    let sessions = [
        local(0, "SELECT uniqExact(session_id) FROM events_local").await,
        local(1, "SELECT uniqExact(session_id) FROM events_local").await,
    ];
    assert_eq!(
        sessions[0] + sessions[1],
        two.scalar("SELECT uniqExact(session_id) FROM events").await,
        "no session is split between shards"
    );

    // Every dashboard query, through the marts and exactly (`exact=true` reads events FINAL).
    let page = one
        .db
        .query("SELECT path FROM events WHERE event_type = 'click' GROUP BY path ORDER BY count() DESC LIMIT 1")
        .fetch_one::<String>()
        .await
        .unwrap();
    let range = "site=demo&from=2026-10-15&to=2026-11-01";
    let queries = [
        format!("stats?{range}"),
        format!("stats?{range}&exact=true"),
        format!("stats?{range}&interval=hour"),
        format!("heatmap?{range}&path={page}"),
        format!("heatmap?{range}&path={page}&exact=true"),
        format!("heatmap?{range}&path={page}&width=390"),
        format!("elements?{range}&path={page}"),
        format!("funnel?{range}&steps=/demo/,/demo/catalog.html"),
        format!("actions?{range}"),
        format!("sessions?{range}"),
        format!("patterns?{range}"),
        format!("search?{range}"),
        format!("anomalies?{range}"),
    ];
    for q in &queries {
        let (mut a, mut b) = (one.api(q).await, two.api(q).await);
        comparable(&mut a);
        comparable(&mut b);
        if a["approximate"] == true {
            // HyperLogLog estimates (the traffic mart) of the same visitors can differ in the
            // last digits with the order their states were merged in: within 8 %, then
            // compared as equal.
            approximately_equal(&mut a, &mut b, q);
        }
        assert_eq!(a, b, "{q}");
    }
    let stats = two.api(&format!("stats?{range}")).await;
    assert!(stats["pageviews"].as_u64().unwrap() > 100, "{stats}");

    // Erasure deletes on every shard.
    let session = two
        .db
        .query("SELECT any(session_id) FROM events WHERE session_id != ''")
        .fetch_one::<String>()
        .await
        .unwrap();
    let wait = std::time::Duration::from_secs(60);
    let erased = erase(
        &two.clickhouse,
        "demo",
        &Subject::SessionId(session.clone()),
        wait,
    )
    .await
    .unwrap();
    assert!(erased > 0);
    let left = two
        .db
        .query("SELECT count() FROM events WHERE session_id = ?")
        .bind(&session)
        .fetch_one::<u64>()
        .await
        .unwrap();
    assert_eq!(left, 0);
    one.stop().await;
    two.stop().await;
}
