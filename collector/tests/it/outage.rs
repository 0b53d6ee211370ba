//! ClickHouse going away: senders are told to retry (503 + Retry-After), nothing is
//! acknowledged that is not stored, queued rows are written once it is back, and the
//! sender's retry is stored once.

use crate::{ClickHouseProcess, TestServer, batch_now, post};
use pathlight_wire::cbor;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_clickhouse_outage_delays_but_neither_loses_nor_duplicates() {
    let ch = ClickHouseProcess::start("outage");
    let server =
        TestServer::start_at(&ch.url, "outage", |c| c.clickhouse.ack_timeout_ms = 1_000).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/batch");
    let count = || async {
        server
            .db
            .query("SELECT count() FROM events FINAL")
            .fetch_one::<u64>()
            .await
    };

    let mut first = batch_now();
    first.events.iter_mut().for_each(|e| e.id.0[15] = 1);
    assert_eq!(post(&client, &url, None, cbor::encode(&first)).await.0, 204);

    ch.kill();
    let mut second = batch_now();
    second.events.iter_mut().for_each(|e| e.id.0[15] = 2);
    let body = cbor::encode(&second);
    let resp = client.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");
    let json = crate::json_body(resp).await;
    assert_eq!(json["reason"], "storage_timeout");

    // Back up: the batcher's retries write the queued rows without any new request.
    ch.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(10) = count().await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "queued rows were not written after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The sender retries what was not acknowledged: stored once all the same.
    assert_eq!(post(&client, &url, None, body).await.0, 204);
    assert_eq!(count().await.unwrap(), 10);

    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"pathlight_sink_errors_total{reason="retry"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"pathlight_events_rejected_total{reason="storage_timeout"} 5"#),
        "{metrics}"
    );
    server.stop().await;
}
