//! Retention on ClickHouse 18.16 (no TTL): expired monthly partitions are dropped, recent
//! events stay. Erasure: one person's events are deleted on request.

use crate::TestServer;
use pathlight_collector::dates::now_ms;
use pathlight_collector::storage::clickhouse::{ClickHouseConfig, retention};

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
    // The marts' months went too: one page-day row left, today's.
    assert_eq!(server.scalar("SELECT count() FROM page_daily").await, 1);
    assert!(
        retention::enforce(&server.db, &cfg, today)
            .await
            .unwrap()
            .is_empty(),
        "idempotent"
    );
    server.stop().await;
}

/// Right to erasure: one user's events and traits go (and the mutation has finished when
/// `erase` returns); everyone else's stay.
#[tokio::test]
async fn erasing_a_user_deletes_their_events_only() {
    use pathlight_collector::storage::clickhouse::erasure::{Subject, erase};
    use pathlight_collector::storage::clickhouse::users;
    let server = crate::TestServer::start("erasure").await;
    let client = reqwest::Client::new();
    for (n, user) in [(1u8, "alice"), (2, "bob")] {
        let mut batch = crate::batch_now();
        for e in &mut batch.events {
            e.id.0[0] = n;
            e.user_id = Some(user.into());
            e.session_id = format!("session-of-{user}");
        }
        // A browser's user agent: a request without one counts as a bot's, and bots have no
        // session summaries.
        let resp = client
            .post(server.url("/v1/batch"))
            .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36")
            .body(pathlight_wire::cbor::encode(&batch))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }
    let count = |user: &'static str| {
        let db = server.db.clone();
        async move {
            db.query("SELECT count() FROM events WHERE user_id = ?")
                .bind(user)
                .fetch_one::<u64>()
                .await
                .unwrap()
        }
    };
    assert_eq!((count("alice").await, count("bob").await), (5, 5));
    // Their traits (identify), and those of carol, who has none of the events.
    let traits = |user: &str| users::UserRow {
        site_id: "test".into(),
        user_id: user.into(),
        traits: r#"{"plan":"pro"}"#.into(),
        updated_ms: 1,
    };
    users::insert(
        &server.db,
        &[traits("alice"), traits("bob"), traits("carol")],
        std::time::Duration::from_secs(10),
    )
    .await
    .unwrap();
    let identified = || {
        let db = server.db.clone();
        async move {
            db.query("SELECT user_id FROM users ORDER BY user_id")
                .fetch_all::<String>()
                .await
                .unwrap()
        }
    };
    assert_eq!(identified().await, ["alice", "bob", "carol"]);
    let wait = std::time::Duration::from_secs(60);
    let cfg = server.clickhouse.clone();
    let erased = erase(&cfg, "test", &Subject::UserId("alice".into()), wait)
        .await
        .unwrap();
    assert_eq!(erased, 5);
    assert_eq!((count("alice").await, count("bob").await), (0, 5));
    // Her session's summary went with them; his stays.
    let summaries: Vec<String> = server
        .db
        .query("SELECT session_id FROM sessions ORDER BY session_id")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(summaries, ["session-of-bob"]);
    // Her traits too; a user known by traits alone is erased as well.
    assert_eq!(identified().await, ["bob", "carol"]);
    let erased = erase(&cfg, "test", &Subject::UserId("carol".into()), wait)
        .await
        .unwrap();
    assert_eq!((erased, identified().await), (0, vec!["bob".to_owned()]));
    // Nothing left to erase; an empty id is refused rather than matching anonymous events.
    assert_eq!(
        erase(&cfg, "test", &Subject::UserId("alice".into()), wait)
            .await
            .unwrap(),
        0
    );
    assert!(
        erase(&cfg, "test", &Subject::SessionId(String::new()), wait)
            .await
            .is_err()
    );
    server.stop().await;
}
