//! An install from before clicks carried their fixed or sticky context (row layout 1, schema
//! migration 6) and events their own title (layout 2, migration 13): its `events` table lacks
//! both columns and its spool holds rows without them, of both earlier layouts (an upgrade
//! in between left the second). A new collector migrates the table on ClickHouse 18.16 (which
//! has no `ADD COLUMN IF NOT EXISTS`), ships the old rows with their own columns, stores and
//! answers new fixed clicks in viewport coordinates, and stores event titles.

use crate::{TestServer, batch_now, clickhouse_url, drop_database};
use pathlight_collector::config::Config;
use pathlight_collector::storage::clickhouse::{Dialect, EventRow, migrations};
use pathlight_collector::storage::spool;
use pathlight_ingest::Layout;
use pathlight_wire::{EventKind, FIXED, cbor};
use std::time::{Duration, Instant};

/// A browser's: bots' events reach no mart.
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

#[tokio::test]
async fn an_install_from_before_fixed_contexts_upgrades_with_its_spool() {
    let name = "upgrade_fixed";
    let database = format!("it_{name}");
    let admin = drop_database(clickhouse_url(), &database).await;
    // The old install: today's schema taken back to version 5.
    let cfg = Config::for_tests(clickhouse_url(), &database).clickhouse;
    migrations::run(&admin, &cfg, Dialect::LEGACY)
        .await
        .unwrap();
    let db = admin.clone().with_database(&database);
    for sql in [
        "DROP TABLE heatmap_clicks_mv",
        "ALTER TABLE events DROP COLUMN fixed",
        "ALTER TABLE events DROP COLUMN event_title",
        "DROP TABLE schema_migrations",
        "CREATE TABLE schema_migrations (version UInt32, name String, applied_at DateTime) \
         ENGINE = MergeTree ORDER BY version",
        "INSERT INTO schema_migrations SELECT number + 1, 'old', now() FROM system.numbers LIMIT 5",
    ] {
        db.query(sql).execute().await.unwrap();
    }
    // Its spool: rows in the first layout, two bytes (`fixed` and an empty `event_title`)
    // shorter than today's, and rows in the second, one byte shorter.
    let dir = std::env::temp_dir().join(format!("pathlight-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let old = EventRow {
        site_id: "test".into(),
        event_id: uuid::Uuid::from_u128(0x0123_4567),
        event_type: 2,
        timestamp: (pathlight_collector::dates::now_ms() / 1000) as u32,
        session_id: "old-session".into(),
        path: "/old".into(),
        selector: "#legacy".into(),
        colo: "FRA".into(),
        ..EventRow::default()
    };
    for (n, layout, shorter, fixed) in [(1, Layout::FIRST, 2, 0), (2, Layout::FIXED, 1, 1)] {
        let mut payload = Vec::new();
        for i in 0..3u128 {
            let mut row = Vec::new();
            EventRow {
                event_id: uuid::Uuid::from_u128(0x0123_4567 + 16 * n + i),
                path: format!("/old-{n}"),
                fixed,
                ..old.clone()
            }
            .write_row_binary(&mut row);
            row.truncate(row.len() - shorter);
            payload.extend(row);
        }
        let segment = spool::record_of(&payload, 3, layout);
        std::fs::write(dir.join(format!("{n:020}.seg")), segment).unwrap();
    }

    let spool_dir = dir.clone();
    let server = TestServer::resume_at(clickhouse_url(), name, move |c| {
        c.spool.dir = Some(spool_dir);
        c.spool.seal_ms = 100;
    })
    .await;
    assert_eq!(
        server
            .scalar("SELECT count() FROM system.columns WHERE database = currentDatabase() AND table = 'events' AND name IN ('fixed', 'event_title')")
            .await,
        2,
        "migrations 6 and 13 added the columns"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while server
        .scalar("SELECT count() FROM events WHERE path LIKE '/old-%'")
        .await
        < 6
    {
        assert!(Instant::now() < deadline, "the old segments never shipped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let old_rows: Vec<(String, String, String, u8, String)> = server
        .rows("SELECT path, colo, selector, fixed, event_title FROM events WHERE path LIKE '/old-%' ORDER BY path")
        .await;
    let expected = |path: &str, fixed| {
        (
            path.into(),
            "FRA".into(),
            "#legacy".into(),
            fixed,
            String::new(),
        )
    };
    assert_eq!(
        old_rows,
        [
            expected("/old-1", 0),
            expected("/old-1", 0),
            expected("/old-1", 0),
            expected("/old-2", 1),
            expected("/old-2", 1),
            expected("/old-2", 1),
        ]
    );

    // A click on a sticky menu bar, scrolled 3,000 px down: stored where it was on screen.
    let mut batch = batch_now();
    let path = "/catalog";
    for e in &mut batch.events {
        if let EventKind::Click(c) = &mut e.kind {
            c.fixed = FIXED;
            c.y = 20;
            c.element_box = [0, 0, 1440, 48];
            c.selector = "#menu-bar".into();
            c.element_id = None;
        }
    }
    let status = reqwest::Client::new()
        .post(server.url("/v1/batch"))
        .header("user-agent", BROWSER)
        .body(cbor::encode(&batch))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    let deadline = Instant::now() + Duration::from_secs(30);
    while server
        .scalar("SELECT count() FROM events WHERE fixed = 1 AND path = '/catalog'")
        .await
        == 0
    {
        assert!(Instant::now() < deadline, "the fixed click never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored: Vec<(i32, String)> = server
        .rows("SELECT y, element_id FROM events WHERE fixed = 1 AND path = '/catalog'")
        .await;
    assert!(
        stored.iter().all(|r| *r == (20, "menu-bar".into())),
        "element id from the selector: {stored:?}"
    );
    // The mart's rows land just after the table's.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let heat = server.api(&format!("heatmap?site=test&path={path}")).await;
        let points = heat["points"].as_array().unwrap().clone();
        if points.iter().any(|p| p["fixed"] == 1 && p["y"] == 20) {
            break;
        }
        assert!(Instant::now() < deadline, "{points:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The mart's answer, made again by migration 6 with `fixed` in its key, says the same.
    let mart: Vec<(u8, i32)> = server
        .rows("SELECT fixed, py FROM heatmap_clicks WHERE path = '/catalog'")
        .await;
    assert!(mart.contains(&(1, 20)), "{mart:?}");

    // An event's own title reaches the column migration 13 added.
    let (status, _) = crate::post(
        &reqwest::Client::new(),
        &server.url("/v1/batch?site=test"),
        Some("application/json"),
        format!(
            r#"[{{"type":"view","url":"/titled","created_at":{},"payload":{{"event_title":"landing"}}}}]"#,
            pathlight_collector::dates::now_ms()
        )
        .into(),
    )
    .await;
    assert_eq!(status, 204);
    // Acknowledged at the spool's fsync: stored once the segment ships.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let titles: Vec<String> = server
            .rows("SELECT event_title FROM events WHERE path = '/titled'")
            .await;
        if !titles.is_empty() {
            assert_eq!(titles, ["landing"]);
            break;
        }
        assert!(Instant::now() < deadline, "the titled event never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
