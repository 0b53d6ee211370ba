//! Good batches in every form land in ClickHouse, enriched, exactly once.

use crate::{TestServer, batch_now, post};
use pathlight_wire::{Id, Limits, cbor, json, v2};
use serde::Deserialize;

const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

#[derive(Debug, Deserialize, clickhouse::Row)]
struct Stored {
    event_id: String,
    event_type: String,
    ts_ms: u64,
    received_ms: u64,
    session_id: String,
    visitor_id: u64,
    user_id: String,
    host: String,
    path: String,
    query: String,
    utm_source: String,
    utm_campaign: String,
    referrer_host: String,
    title: String,
    viewport_w: u16,
    document_h: u32,
    x: i32,
    y: i32,
    element_id: String,
    selector: String,
    tag: String,
    text: String,
    rel_x: f32,
    rel_y: f32,
    box_w: i32,
    scroll_depth: u8,
    visible_ms: u32,
    name: String,
    props: String,
    browser: String,
    os: String,
    device: String,
    is_bot: u8,
    country: String,
    event_title: String,
}

const SELECT: &str = "SELECT toString(event_id), toString(event_type),
    toUInt64(timestamp) * 1000 + timestamp_ms, toUInt64(received_at) * 1000,
    session_id, visitor_id, user_id, host, path, query, utm_source, utm_campaign, referrer_host,
    title, viewport_w, document_h, x, y, element_id, selector, tag, text, rel_x, rel_y, box_w,
    scroll_depth, visible_ms, name, props, browser, os, toString(device), is_bot, country,
    event_title
    FROM events FINAL";

#[tokio::test]
async fn cbor_batch_is_stored_with_enrichment_field_by_field() {
    let server = TestServer::start_with("cbor_enriched", |c| {
        c.country_header = "cf-ipcountry".into()
    })
    .await;
    let batch = batch_now();
    let resp = reqwest::Client::new()
        .post(server.url("/v1/batch"))
        .header("user-agent", CHROME_WINDOWS)
        .header("cf-ipcountry", "de")
        .header("origin", "https://shop.example")
        .body(cbor::encode(&batch))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://shop.example"
    );

    let rows: Vec<Stored> = server.rows(&format!("{SELECT} ORDER BY event_type")).await;
    assert_eq!(rows.len(), 5);
    let kinds: Vec<&str> = rows.iter().map(|r| r.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        ["pageview", "click", "scroll", "engagement", "custom"]
    );
    for (row, sent) in rows.iter().zip(&batch.events) {
        assert_eq!(row.event_id, sent.id.to_string());
        // The client clock is trusted only relative to its own `sent_at`: the stored time is
        // the client time shifted by (received - sent), a few ms here.
        let shift = row.ts_ms as i64 - sent.timestamp;
        assert!((0..5_000).contains(&shift), "time shifted by {shift} ms");
        assert!(row.received_ms.abs_diff(row.ts_ms) < 10_000);
        assert_eq!(row.session_id, "k3v9q2m8x1");
        assert_eq!(row.visitor_id, rows[0].visitor_id);
        assert_ne!(row.visitor_id, 0);
        assert_eq!(row.user_id, "");
        assert_eq!(
            (row.host.as_str(), row.path.as_str()),
            ("shop.example", "/catalog")
        );
        assert_eq!(row.query, "utm_source=newsletter&utm_campaign=winter");
        assert_eq!(
            (row.utm_source.as_str(), row.utm_campaign.as_str()),
            ("newsletter", "winter")
        );
        assert_eq!(row.referrer_host, "www.google.com");
        assert_eq!(row.title, "Catalog · Example Shop");
        assert_eq!((row.viewport_w, row.document_h), (1440, 3200));
        assert_eq!(
            (row.browser.as_str(), row.os.as_str(), row.device.as_str()),
            ("Chrome", "Windows 10", "desktop")
        );
        assert_eq!(row.is_bot, 0);
        assert_eq!(row.country, "DE");
    }
    let click = &rows[1];
    assert_eq!((click.x, click.y), (642, 1187));
    assert_eq!(
        (click.element_id.as_str(), click.selector.as_str()),
        ("add-to-cart", "#add-to-cart")
    );
    assert_eq!(
        (click.tag.as_str(), click.text.as_str()),
        ("button", "Add to cart")
    );
    assert_eq!((click.rel_x, click.rel_y, click.box_w), (0.25, 0.5, 328));
    assert_eq!(rows[2].scroll_depth, 62);
    assert_eq!(rows[3].visible_ms, 48_250);
    assert_eq!(rows[4].name, "signup");
    let props: serde_json::Value = serde_json::from_str(&rows[4].props).unwrap();
    assert_eq!(
        props,
        serde_json::json!({"coupon": null, "plan": "pro", "seats": 3.0, "trial": false})
    );
    // Non-click rows carry no click data.
    assert_eq!((rows[0].x, rows[0].selector.as_str()), (0, ""));

    // The raw address is used for the visitor hash and dropped: no column could hold it.
    let ip_columns = server.scalar("SELECT count() FROM system.columns WHERE database = currentDatabase() AND match(name, '(^|_)ip($|_)|addr')").await;
    assert_eq!(ip_columns, 0);
    server.stop().await;
}

#[tokio::test]
async fn another_browser_is_another_visitor_and_bots_are_flagged() {
    let server = TestServer::start("visitors").await;
    let client = reqwest::Client::new();
    for (i, ua) in [
        CHROME_WINDOWS,
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    ]
    .iter()
    .enumerate()
    {
        let mut batch = batch_now();
        batch.events.truncate(1);
        batch.events[0].id.0[0] = i as u8;
        let resp = client
            .post(server.url("/v1/batch"))
            .header("user-agent", *ua)
            .body(cbor::encode(&batch))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }
    let rows: Vec<(u64, u8, String)> = server
        .rows("SELECT visitor_id, is_bot, toString(device) FROM events FINAL ORDER BY is_bot")
        .await;
    assert_eq!(rows.len(), 2);
    assert_ne!(rows[0].0, rows[1].0);
    assert_eq!((rows[0].1, rows[1].1), (0, 1));
    assert_eq!(rows[1].2, "bot");
    server.stop().await;
}

// Current servers refuse an insert spanning more than 100 monthly partitions unless told
// otherwise (pathlight_ingest::insert_settings; tests/chdb shows the refusal); 18.16 has no such
// limit and no such setting, so here the test is that none is sent and every month lands.
#[tokio::test]
async fn a_batch_spanning_101_months_is_stored_whole() {
    let server = TestServer::start_with("many_months", |c| {
        c.clickhouse.retention_days = 0;
        // 101 parts in each of six tables (events and the marts), a file per column each on
        // 18.16: seconds of work, more than the tests' usual 5 s wait for the write.
        c.clickhouse.ack_timeout_ms = 60_000;
    })
    .await;
    let events: Vec<String> = (0..101)
        .map(|i| {
            let (y, m) = (2016 + i / 12, 1 + i % 12);
            format!(
                r#"{{"type":"view","session_id":"months","url":"/m{i}","created_at":"{y}-{m:02}-15T12:00:00Z"}}"#
            )
        })
        .collect();
    let (status, body) = post(
        &reqwest::Client::new(),
        &server.url("/v1/batch?site=test"),
        Some("application/json"),
        format!("[{}]", events.join(",")).into(),
    )
    .await;
    assert_eq!((status, body), (204, serde_json::Value::Null));
    let months = server
        .scalar(
            "SELECT uniqExact(toYYYYMM(timestamp)) FROM events FINAL WHERE session_id = 'months'",
        )
        .await;
    assert_eq!(months, 101);
    server.stop().await;
}

#[tokio::test]
async fn json_batches_and_the_simple_array_form_are_stored() {
    let server = TestServer::start("json_forms").await;
    let client = reqwest::Client::new();
    let batch = batch_now();
    let (status, body) = post(
        &client,
        &server.url("/v1/batch"),
        Some("application/json"),
        json::encode(&batch),
    )
    .await;
    assert_eq!((status, body), (204, serde_json::Value::Null));

    let simple = r##"[
      {"type":"click","session_id":"user-session-1001","user_id":1001,"url":"/catalog?foo=bar",
       "created_at":"2025-01-01T10:00:00Z","user_agent":"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
       "payload":{"event_title":"checkout","element_id":"#submit-button","x":445,"y":315,
                  "campaign":"winter","position":2}},
      {"type":"view","user_id":1001,"url":"/catalog","title":"Catalog - Shop","created_at":"2025-01-01T09:59:00Z",
       "payload":{"event_title":"landing","plan":"pro","trial":false,"ab":{"arm":"b"}}}
    ]"##;
    let (status, _) = post(
        &client,
        &server.url("/v1/batch?site=test"),
        Some("application/json"),
        simple.into(),
    )
    .await;
    assert_eq!(status, 204);

    let full = server
        .scalar("SELECT count() FROM events FINAL WHERE session_id = 'k3v9q2m8x1'")
        .await;
    assert_eq!(full, 5);
    let rows: Vec<Stored> = server
        .rows(&format!(
            "{SELECT} WHERE user_id = '1001' ORDER BY timestamp"
        ))
        .await;
    assert_eq!(rows.len(), 2);
    let (view, click) = (&rows[0], &rows[1]);
    assert_eq!(view.event_type, "pageview");
    assert_eq!(
        view.ts_ms, 1_735_725_540_000,
        "created_at kept: no sent_at to correct against"
    );
    // The view came without a session: the collector assigned one.
    assert!(
        view.session_id.starts_with('s') && view.session_id.len() > 16,
        "{}",
        view.session_id
    );
    assert_eq!(click.event_type, "click");
    assert_eq!(click.session_id, "user-session-1001");
    assert_eq!(
        (click.path.as_str(), click.query.as_str()),
        ("/catalog", "foo=bar")
    );
    assert_eq!(
        (click.x, click.y, click.selector.as_str()),
        (445, 315, "#submit-button")
    );
    // The event's own title apart from the page's, and every other payload field in `props`,
    // on a view as on a click.
    assert_eq!(
        (click.event_title.as_str(), click.title.as_str()),
        ("checkout", "")
    );
    assert_eq!(click.props, r#"{"campaign":"winter","position":2.0}"#);
    assert_eq!(
        (view.event_title.as_str(), view.title.as_str()),
        ("landing", "Catalog - Shop")
    );
    assert_eq!(
        view.props,
        r#"{"ab":"{\"arm\":\"b\"}","plan":"pro","trial":false}"#
    );
    let plan: Vec<String> = server
        .rows("SELECT visitParamExtractString(props, 'plan') FROM events FINAL WHERE event_title = 'landing'")
        .await;
    assert_eq!(plan, ["pro"], "queries read the properties of any kind");
    assert_eq!(
        (click.os.as_str(), click.device.as_str()),
        ("iPhone", "mobile")
    );
    server.stop().await;
}

// Retention at ingest: with a three-day window, events outside it are refused one by one
// (`too_old`, and `in_future` for more than a day ahead), counted by reason, and the rest of
// their batch is stored. Times are judged as stored: corrected to the collector's clock.
#[tokio::test]
async fn events_outside_the_retention_window_are_refused_and_the_rest_stored() {
    let server = TestServer::start_with("retention_at_ingest", |c| {
        c.clickhouse.retention_days = 3;
    })
    .await;
    let client = reqwest::Client::new();
    let now = pathlight_collector::dates::now_ms();
    const DAY: i64 = 86_400_000;
    let view = |ms: i64, path: &str| {
        format!(r#"{{"type":"view","session_id":"window","url":"{path}","created_at":{ms}}}"#)
    };
    let body = format!(
        "[{},{},{}]",
        view(now - 4 * DAY, "/too-old"),
        view(now + 2 * DAY, "/in-future"),
        view(now - DAY, "/good"),
    );
    let (status, ack) = post(
        &client,
        &server.url("/v1/batch?site=test"),
        Some("application/json"),
        body.into(),
    )
    .await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["accepted"], 1, "{ack}");
    let refused = crate::refused(&ack);
    assert_eq!(
        refused,
        [
            (0, "too_old", "events[0].timestamp"),
            (1, "in_future", "events[1].timestamp")
        ]
    );
    assert!(
        ack["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("4 days old, older than retention_days (3)"),
        "{ack}"
    );

    // The tracker's form: its own clock ten days slow, one event of just now and one of five
    // days before the send. Corrected, the first is recent and stored; the second is too old,
    // although the raw times of both are.
    let mut batch = batch_now();
    batch.events.truncate(2);
    let slow = 10 * DAY;
    batch.sent_at -= slow;
    batch.events[0].timestamp = batch.sent_at - 1_000;
    batch.events[1].timestamp = batch.sent_at - 5 * DAY;
    for e in &mut batch.events {
        e.session_id = "slow-clock".into();
    }
    let (status, ack) = post(
        &client,
        &server.url("/v1/batch"),
        None,
        cbor::encode(&batch),
    )
    .await;
    assert_eq!((status, ack["accepted"].as_u64()), (200, Some(1)), "{ack}");
    assert_eq!(
        (
            ack["rejected"][0]["index"].as_u64(),
            ack["rejected"][0]["reason"].as_str()
        ),
        (Some(1), Some("too_old")),
        "{ack}"
    );

    let stored: Vec<(String, u64)> = server
        .rows(
            "SELECT path, toUInt64(timestamp) * 1000 + timestamp_ms FROM events FINAL \
             WHERE session_id IN ('window', 'slow-clock') ORDER BY path",
        )
        .await;
    let paths: Vec<&str> = stored.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["/catalog", "/good"], "only the good events");
    let corrected = stored[0].1 as i64;
    assert!(
        (now - 1_000 - corrected).abs() < 60_000,
        "stored at the corrected time: {corrected} against {now}"
    );
    let metrics = server.metrics().await;
    for line in [
        "pathlight_events_rejected_total{reason=\"too_old\"} 2",
        "pathlight_events_rejected_total{reason=\"in_future\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    server.stop().await;
}

/// A tracker's batch in format v2, gzipped and sent as its beacons are (raw bytes, no
/// content type, no encoding header), is stored as the same batch in v1 is: every column
/// alike but the event ids (v2 derives them from the batch id) and the receipt times.
#[tokio::test]
async fn a_gzipped_v2_batch_is_stored_as_its_v1_twin() {
    let server = TestServer::start("gzip_v2").await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/batch");
    let mut batch = batch_now();
    batch.batch_id = Id([1; 16]);
    let two = v2::encode(&batch);
    // The v1 twin: the batch as v2 holds it (clicks on the quarter-pixel grid), under another
    // batch id and event ids, so that both are stored.
    let mut twin = cbor::decode(&two, &Limits::default()).unwrap();
    twin.batch_id = Id([2; 16]);
    for e in &mut twin.events {
        e.id.0[0] ^= 0xff;
    }
    let gz = crate::gzip(&two);
    assert!(
        gz.len() < two.len(),
        "{} B gzipped from {} B",
        gz.len(),
        two.len()
    );
    for body in [gz, cbor::encode(&twin)] {
        let resp = client
            .post(&url)
            .header("user-agent", CHROME_WINDOWS)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204, "{}", resp.text().await.unwrap());
    }
    let mut rows: Vec<Stored> = server.rows(&format!("{SELECT} ORDER BY event_type")).await;
    assert_eq!(rows.len(), 10);
    let ids: Vec<String> = (0..5)
        .map(|i| v2::event_id(batch.batch_id, i).to_string())
        .collect();
    let (mut from_v2, mut from_v1): (Vec<_>, Vec<_>) =
        rows.drain(..).partition(|r| ids.contains(&r.event_id));
    assert_eq!((from_v2.len(), from_v1.len()), (5, 5));
    for (a, b) in from_v2.iter_mut().zip(&mut from_v1) {
        assert!(a.ts_ms.abs_diff(b.ts_ms) < 5_000, "{} {}", a.ts_ms, b.ts_ms);
        for r in [&mut *a, &mut *b] {
            (r.event_id, r.ts_ms, r.received_ms) = (String::new(), 0, 0);
        }
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
    let click = &from_v2[1];
    assert_eq!(
        (click.event_type.as_str(), click.x, click.y),
        ("click", 642, 1187)
    );
    assert_eq!(
        (click.rel_x, click.rel_y, click.selector.as_str()),
        (0.25, 0.5, "#add-to-cart")
    );
    server.stop().await;
}

#[tokio::test]
async fn a_batch_sent_twice_is_stored_once() {
    let server = TestServer::start("dedup").await;
    let client = reqwest::Client::new();
    let body = cbor::encode(&batch_now());
    for _ in 0..2 {
        let (status, _) = post(&client, &server.url("/v1/batch"), None, body.clone()).await;
        assert_eq!(status, 204);
    }
    // Force the merge that ReplacingMergeTree does eventually, then count without FINAL too.
    server
        .db
        .query("OPTIMIZE TABLE events FINAL")
        .execute()
        .await
        .unwrap();
    let (all, distinct): (u64, u64) = server
        .db
        .query("SELECT count(), uniqExact(event_id) FROM events")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!((all, distinct), (5, 5));
    server.stop().await;
}

/// A tracker's resend (`?r=1`) of a batch the collector stored is answered 208 and stored no
/// second time (the marts would count it twice); one it never got is stored with an
/// `$undelivered` report, as are the drops a send reports (`d=`), and both are counted per site.
#[tokio::test]
async fn a_resent_batch_is_stored_once_and_a_lost_one_is_reported() {
    let server = TestServer::start("resend").await;
    // A browser's User-Agent: the dashboard's figures leave bots out.
    let client = reqwest::Client::builder()
        .user_agent("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36")
        .build()
        .unwrap();
    let delivered = cbor::encode(&batch_now());
    let (status, _) = post(&client, &server.url("/v1/batch"), None, delivered.clone()).await;
    assert_eq!(status, 204);
    let (status, _) = post(&client, &server.url("/v1/batch?r=1"), None, delivered).await;
    assert_eq!(status, 208, "sent again: the collector has it");
    let mut other = batch_now();
    other.batch_id.0[0] ^= 1;
    for e in &mut other.events {
        e.id.0[0] ^= 1;
    }
    let lost = cbor::encode(&other);
    let (status, _) = post(&client, &server.url("/v1/batch?r=1&d=2"), None, lost).await;
    assert_eq!(status, 204, "sent again, never received: stored now");
    let rows: Vec<(String, String)> = server
        .rows("SELECT name, props FROM events WHERE event_type = 'custom' ORDER BY name")
        .await;
    assert_eq!(
        rows.iter()
            .filter(|(n, _)| n == "$undelivered")
            .collect::<Vec<_>>(),
        [&(
            "$undelivered".to_owned(),
            r#"{"failed":1,"dropped":2}"#.to_owned()
        )]
    );
    let (all, distinct): (u64, u64) = server
        .db
        .query("SELECT count(), uniqExact(event_id) FROM events")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        (all, distinct),
        (11, 11),
        "two batches of five and one report"
    );
    let metrics = server.metrics().await;
    for line in [
        r#"pathlight_tracker_undelivered_batches_total{site="test",outcome="failed"} 1"#,
        r#"pathlight_tracker_undelivered_batches_total{site="test",outcome="dropped"} 2"#,
        "pathlight_duplicate_batches_total 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    let stats = server.api("stats?site=test").await;
    assert_eq!(
        stats["undelivered"],
        serde_json::json!({"failed": 1, "dropped": 2})
    );
    server.stop().await;
}

/// A closed tab's last batch is sent again at the visitor's next visit, to a collector that may
/// not remember it (restarted since; another of the fleet; long ago). Found in `events`, it is
/// answered 208 and stored no second time: the sessions mart counts its events once, and no
/// `$undelivered` report says its first send was lost. One that never arrived is stored, and
/// one half stored gets its other half, neither reported lost.
#[tokio::test]
async fn a_resent_batch_stored_before_a_restart_is_stored_once() {
    let server = TestServer::start("resend_restart").await;
    let client = reqwest::Client::builder()
        .user_agent(CHROME_WINDOWS)
        .build()
        .unwrap();
    let delivered = cbor::encode(&batch_now());
    let (status, _) = post(&client, &server.url("/v1/batch"), None, delivered.clone()).await;
    assert_eq!(status, 204);
    let mut half = batch_now();
    half.batch_id.0[0] ^= 2;
    for e in &mut half.events {
        e.id.0[0] ^= 2;
    }
    let whole = cbor::encode(&half);
    half.events.truncate(2);
    let (status, _) = post(&client, &server.url("/v1/batch"), None, cbor::encode(&half)).await;
    assert_eq!(status, 204);
    server.stop().await;

    let server = TestServer::resume_at(crate::clickhouse_url(), "resend_restart", |_| {}).await;
    let (status, _) = post(&client, &server.url("/v1/batch?r=1"), None, delivered).await;
    assert_eq!(status, 208, "stored before the restart");
    let (status, _) = post(&client, &server.url("/v1/batch?r=1"), None, whole).await;
    assert_eq!(status, 204, "the three events not stored yet are");
    let mut other = batch_now();
    other.batch_id.0[0] ^= 1;
    for e in &mut other.events {
        e.id.0[0] ^= 1;
    }
    let (status, _) = post(
        &client,
        &server.url("/v1/batch?r=1"),
        None,
        cbor::encode(&other),
    )
    .await;
    assert_eq!(status, 204, "never received: stored now");

    let (all, distinct): (u64, u64) = server
        .db
        .query("SELECT count(), uniqExact(event_id) FROM events")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        (all, distinct),
        (16, 16),
        "three batches of five, one report"
    );
    let in_mart = server
        .scalar("SELECT toUInt64(countMerge(events)) FROM sessions")
        .await;
    assert_eq!(in_mart, 16, "the sessions mart counts each event once");
    let metrics = server.metrics().await;
    for line in [
        r#"pathlight_tracker_undelivered_batches_total{site="test",outcome="failed"} 1"#,
        "pathlight_duplicate_batches_total 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    server.stop().await;
}

#[tokio::test]
async fn queued_events_are_flushed_at_shutdown() {
    // A flush interval far longer than the test: only the shutdown flush can write the rows.
    let server = TestServer::start_with("shutdown_flush", |c| {
        c.clickhouse.flush_interval_ms = 60_000;
        c.clickhouse.ack_timeout_ms = 60_000;
    })
    .await;
    let url = server.url("/v1/batch");
    let body = cbor::encode(&batch_now());
    let pending =
        tokio::spawn(async move { post(&reqwest::Client::new(), &url, None, body).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let db = server.db.clone();
    server.stop().await;
    assert_eq!(pending.await.unwrap().0, 204);
    let n: u64 = db
        .query("SELECT count() FROM events")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(n, 5);
}

/// Every column written as RowBinary reads back as written: the column list, the field order
/// and each type's encoding agree with the table.
#[tokio::test]
async fn every_column_round_trips() {
    use pathlight_collector::storage::clickhouse::{EventRow, insert_row_binary, row::COLUMNS};
    let server = TestServer::start("columns").await;
    let s = |v: &str| v.to_owned();
    let row = EventRow {
        site_id: s("site"),
        event_id: uuid::Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10),
        event_type: 5,
        timestamp: 1_790_000_001,
        timestamp_ms: 999,
        received_at: 1_790_000_002,
        batch_id: uuid::Uuid::from_u128(0xfedc_ba98_7654_3210_0011_2233_4455_6677),
        session_id: s("session"),
        visitor_id: u64::MAX - 7,
        user_id: s("user"),
        url: s("https://shop.example/p?q=1"),
        host: s("shop.example"),
        path: s("/p"),
        query: s("q=1"),
        referrer: s("https://ref.example/"),
        referrer_host: s("ref.example"),
        utm_source: s("src"),
        utm_medium: s("med"),
        utm_campaign: s("camp"),
        utm_term: s("term"),
        utm_content: s("content"),
        title: s("Tïtle ✓"),
        viewport_w: 65_535,
        viewport_h: 700,
        document_w: 4_000_000_000,
        document_h: 5_000,
        x: -12,
        y: 2_000_000_000,
        element_id: s("buy"),
        selector: s("#buy"),
        tag: s("button"),
        text: s(&"t".repeat(200)),
        href: s("https://shop.example/cart"),
        rel_x: 0.25,
        rel_y: 1.0,
        box_x: -1,
        box_y: 2,
        box_w: 3,
        box_h: 4,
        scroll_depth: 100,
        visible_ms: 4_000_000_000,
        name: s("signup"),
        props: s(r#"{"plan":"pro"}"#),
        browser: s("Chrome"),
        browser_version: s("120"),
        os: s("Windows 10"),
        os_version: s("NT 10.0"),
        device: 3,
        is_bot: 1,
        country: s("FR"),
        region: s("IDF"),
        city: s("Paris"),
        asn: 4_200_000_000,
        colo: s("CDG"),
        fixed: 2,
        event_title: s("checkout ✓"),
    };
    let mut body = Vec::new();
    row.write_row_binary(&mut body);
    let cfg = pathlight_collector::config::Config::for_tests("", "").clickhouse;
    insert_row_binary(&server.db, &cfg, [body.into()])
        .await
        .unwrap();

    // Read back as JSON with enums, dates and UUIDs as the numbers and text the row holds.
    let select: Vec<String> = COLUMNS
        .split(',')
        .map(str::trim)
        .map(|c| match c {
            "event_type" | "device" => format!("toInt8({c}) AS {c}"),
            "timestamp" | "received_at" => format!("toUInt32({c}) AS {c}"),
            "event_id" | "batch_id" => format!("toString({c}) AS {c}"),
            c => c.to_owned(),
        })
        .collect();
    let sql = format!("SELECT {} FROM events", select.join(", "));
    let text = server
        .db
        .query(&sql)
        .with_setting("output_format_json_quote_64bit_integers", "0")
        .fetch_bytes("JSONEachRow")
        .unwrap()
        .collect()
        .await
        .unwrap();
    let stored: serde_json::Value = serde_json::from_slice(&text).unwrap();
    let written = serde_json::to_value(&row).unwrap();
    for (column, value) in written.as_object().unwrap() {
        let got = &stored[column];
        // Integers exactly; floats as numbers (ClickHouse prints 1.0 as 1).
        let same = if value.is_f64() {
            got.as_f64() == value.as_f64()
        } else {
            got == value
        };
        assert!(same, "column {column}: stored {got}, written {value}");
    }
    server.stop().await;
}
