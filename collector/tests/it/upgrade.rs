//! An install from before clicks carried their fixed or sticky context (row layout 1, schema
//! migration 6): its `events` table lacks the column and its spool holds rows without it. A new
//! collector migrates the table on ClickHouse 18.16 (which has no `ADD COLUMN IF NOT EXISTS`),
//! ships the old rows with their own columns, and stores and answers new fixed clicks in
//! viewport coordinates.

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
        "DROP TABLE schema_migrations",
        "CREATE TABLE schema_migrations (version UInt32, name String, applied_at DateTime) \
         ENGINE = MergeTree ORDER BY version",
        "INSERT INTO schema_migrations SELECT number + 1, 'old', now() FROM system.numbers LIMIT 5",
    ] {
        db.query(sql).execute().await.unwrap();
    }
    // Its spool: rows in the first layout, one byte (`fixed`) shorter than today's.
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
    let mut payload = Vec::new();
    for i in 0..3u128 {
        let mut row = Vec::new();
        EventRow {
            event_id: uuid::Uuid::from_u128(0x0123_4567 + i),
            ..old.clone()
        }
        .write_row_binary(&mut row);
        row.pop();
        payload.extend(row);
    }
    let segment = spool::record_of(&payload, 3, Layout::FIRST);
    std::fs::write(dir.join(format!("{:020}.seg", 1)), segment).unwrap();

    let spool_dir = dir.clone();
    let server = TestServer::resume_at(clickhouse_url(), name, move |c| {
        c.spool.dir = Some(spool_dir);
        c.spool.seal_ms = 100;
    })
    .await;
    assert_eq!(
        server
            .scalar("SELECT count() FROM system.columns WHERE database = currentDatabase() AND table = 'events' AND name = 'fixed'")
            .await,
        1,
        "migration 6 added the column"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while server
        .scalar("SELECT count() FROM events WHERE path = '/old'")
        .await
        < 3
    {
        assert!(Instant::now() < deadline, "the old segment never shipped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let old_rows: Vec<(String, String, u8)> = server
        .rows("SELECT colo, selector, fixed FROM events WHERE path = '/old'")
        .await;
    assert!(
        old_rows
            .iter()
            .all(|r| *r == ("FRA".into(), "#legacy".into(), 0)),
        "{old_rows:?}"
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
        .scalar("SELECT count() FROM events WHERE fixed = 1")
        .await
        == 0
    {
        assert!(Instant::now() < deadline, "the fixed click never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored: Vec<(i32, String)> = server
        .rows("SELECT y, element_id FROM events WHERE fixed = 1")
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
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
