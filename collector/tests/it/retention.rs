//! Retention on ClickHouse 18.16 (no TTL): expired monthly partitions are dropped, recent
//! events stay.

use crate::TestServer;
use pathlight_collector::pipeline::now_ms;
use pathlight_collector::sinks::clickhouse::{ClickHouseConfig, retention};

#[tokio::test]
async fn expired_months_are_dropped_and_recent_events_stay() {
    let server = TestServer::start("retention").await;
    let insert = |day: &str, id: u8| {
        format!(
            "INSERT INTO events (site_id, event_id, event_type, timestamp, received_at, path) VALUES \
             ('test', '00000000-0000-0000-0000-0000000000{id:02}', 'pageview', toDateTime('{day} 12:00:00'), now(), '/')"
        )
    };
    let today = now_ms().div_euclid(86_400_000);
    for (day, id) in [("2024-01-15", 1), ("2024-02-10", 2)] {
        server.db.query(&insert(day, id)).execute().await.unwrap();
    }
    server
        .db
        .query("INSERT INTO events (site_id, event_id, event_type, timestamp, received_at, path) VALUES ('test', '00000000-0000-0000-0000-000000000003', 'pageview', now(), now(), '/')")
        .execute()
        .await
        .unwrap();
    let cfg = ClickHouseConfig {
        database: "it_retention".into(),
        retention_days: 400,
        ..ClickHouseConfig::default()
    };
    let mut dropped = retention::enforce(&server.db, &cfg, today).await.unwrap();
    dropped.sort();
    assert_eq!(dropped, ["202401", "202402"]);
    assert_eq!(server.scalar("SELECT count() FROM events").await, 1);
    assert!(
        retention::enforce(&server.db, &cfg, today)
            .await
            .unwrap()
            .is_empty(),
        "idempotent"
    );
    server.stop().await;
}
