//! The promise, with the spool on: once the collector answers 2xx, the event is in ClickHouse
//! exactly once, whatever fails afterwards. Real processes throughout: a ClickHouse killed for
//! a minute under load, a collector process killed with SIGKILL ten times under load, a spool
//! filled to its cap. Each test prints sent / acknowledged / stored / duplicates
//! (`cargo test -p pathlight-collector --test it durability -- --nocapture`).

use crate::{ClickHouseProcess, TestServer, batch_now};
use pathlight_wire::cbor;
use serde_json::json;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Event ids are `sender << 96 | counter`: unique, and printable in a failure.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    acked: Mutex<HashSet<u128>>,
    refused: AtomicU64,
}

/// Posts 10-event batches to `url` until `stop`, one request at a time, each with fresh ids;
/// remembers the ids of every batch answered 204.
async fn sender(
    id: u128,
    url: String,
    tally: Arc<Tally>,
    mut stop: watch::Receiver<bool>,
    pause: Duration,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut counter = 0u128;
    while !*stop.borrow() {
        let mut batch = batch_now();
        let ids: Vec<u128> = batch
            .events
            .iter_mut()
            .map(|e| {
                counter += 1;
                let v = id << 96 | counter;
                e.id.0 = v.to_be_bytes();
                v
            })
            .collect();
        tally.sent.fetch_add(ids.len() as u64, Ordering::Relaxed);
        match client.post(&url).body(cbor::encode(&batch)).send().await {
            Ok(r) if r.status() == 204 => tally.acked.lock().unwrap().extend(ids),
            Ok(_) => {
                tally.refused.fetch_add(1, Ordering::Relaxed);
            }
            // The collector is down (killed): not acknowledged, so not promised.
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Starts `n` senders; returns the tally and the switch that stops them.
fn senders(
    n: u128,
    url: &str,
    pause: Duration,
) -> (
    Arc<Tally>,
    watch::Sender<bool>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let tally = Arc::new(Tally::default());
    let (stop, stopped) = watch::channel(false);
    let tasks = (1..=n)
        .map(|i| {
            tokio::spawn(sender(
                i,
                url.to_owned(),
                tally.clone(),
                stopped.clone(),
                pause,
            ))
        })
        .collect();
    (tally, stop, tasks)
}

/// Waits until every acknowledged id is stored, then checks that nothing is stored twice (in
/// effect: `FINAL`, which is what every query reads) and prints the figures.
async fn verify(db: &clickhouse::Client, name: &str, tally: &Tally, within: Duration) {
    let acked = tally.acked.lock().unwrap().clone();
    assert!(!acked.is_empty(), "{name}: nothing was acknowledged");
    let deadline = Instant::now() + within;
    let stored: HashSet<u128> = loop {
        let ids = db
            .query("SELECT toString(event_id) FROM events")
            .fetch_all::<String>()
            .await
            .unwrap_or_default();
        let stored: HashSet<u128> = ids
            .iter()
            .map(|s| uuid::Uuid::parse_str(s).unwrap().as_u128())
            .collect();
        let missing = acked.difference(&stored).count();
        if missing == 0 {
            break stored;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: {missing} acknowledged events never reached ClickHouse"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let scalar = |sql: &'static str| async move { db.query(sql).fetch_one::<u64>().await.unwrap() };
    let raw = scalar("SELECT count() FROM events").await;
    let in_effect = scalar("SELECT count() FROM events FINAL").await;
    let unique = scalar("SELECT uniqExact(event_id) FROM events").await;
    println!(
        "{name}: sent {} / acknowledged {} / stored {} / duplicates {} (rows before merge {raw}; refused requests {})",
        tally.sent.load(Ordering::Relaxed),
        acked.len(),
        stored.len(),
        in_effect - unique,
        tally.refused.load(Ordering::Relaxed),
    );
    assert_eq!(in_effect, unique, "{name}: an event is stored twice");
}

fn spool_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("pathlight-it-spool-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// ClickHouse killed for `PATHLIGHT_TEST_OUTAGE_SECS` (60 by default) while senders keep
/// going: with the spool, the collector keeps acknowledging, and everything acknowledged is
/// stored once ClickHouse is back.
#[tokio::test]
async fn acknowledged_events_survive_a_clickhouse_outage_under_load() {
    let outage = Duration::from_secs(
        std::env::var("PATHLIGHT_TEST_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let ch = ClickHouseProcess::start("spool-outage");
    let dir = spool_dir("outage");
    let server = TestServer::start_at(&ch.url, "spool_outage", |c| {
        c.spool.dir = Some(dir.clone());
        c.spool.seal_ms = 200;
    })
    .await;
    let (tally, stop, tasks) = senders(2, &server.url("/v1/batch"), Duration::from_millis(20));
    tokio::time::sleep(Duration::from_secs(1)).await;
    ch.kill();
    let before = tally.acked.lock().unwrap().len();
    tokio::time::sleep(outage).await;
    let during = tally.acked.lock().unwrap().len() - before;
    ch.restart();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.send_replace(true);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        during > 0,
        "nothing was acknowledged while ClickHouse was away"
    );
    verify(
        &server.db,
        "clickhouse outage",
        &tally,
        Duration::from_secs(60),
    )
    .await;
    println!("  acknowledged while ClickHouse was down for {outage:?}: {during}");
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A segment left on disk whose rows ClickHouse partly has already (as after a crash between
/// an insert and the segment's deletion, or a client re-sending a stored batch during an
/// outage) is checked before it is shipped: only the missing rows are inserted, so the marts,
/// which count inserts, count each event once.
#[tokio::test]
async fn a_left_over_segment_inserts_only_the_rows_clickhouse_lacks() {
    use pathlight_wire::EventKind;
    let ch = ClickHouseProcess::start("spool-replay");
    let dir = spool_dir("replay");
    let spool = |c: &mut pathlight_collector::config::Config| {
        c.spool.dir = Some(dir.clone());
        c.spool.seal_ms = 100;
    };
    let server = TestServer::start_at(&ch.url, "spool_replay", spool).await;
    let client = reqwest::Client::new();
    let send = |batch: &pathlight_wire::RawBatch| {
        client
            .post(server.url("/v1/batch"))
            // A browser's: bots' events reach no mart.
            .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36")
            .body(cbor::encode(batch))
            .send()
    };
    let first = batch_now();
    let mut second = batch_now();
    for e in &mut second.events {
        e.id.0[0] ^= 0x55;
    }
    second.batch_id.0[0] ^= 0x55;
    let clicks = |b: &pathlight_wire::RawBatch| {
        b.events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Click(_)))
            .count() as u64
    };
    assert!(clicks(&first) > 0);
    assert_eq!(send(&first).await.unwrap().status(), 204);
    // 0 while ClickHouse is away.
    let count = |db: clickhouse::Client, sql: &'static str| async move {
        db.query(sql).fetch_one::<u64>().await.unwrap_or(0)
    };
    let stored = |db| count(db, "SELECT count() FROM events FINAL");
    // (clicks, events, events of the traffic mart) in the marts, and whether they fall short
    // of `expected`.
    const CLICKS: &str = "SELECT toUInt64(sum(clicks)) FROM heatmap_clicks";
    const EVENTS: &str = "SELECT toUInt64(countMerge(events)) FROM sessions";
    const TRAFFIC: &str = "SELECT toUInt64(countIfMerge(events)) FROM traffic_daily WHERE dim = 0";
    let marts = |db: clickhouse::Client| async move {
        (
            count(db.clone(), CLICKS).await,
            count(db.clone(), EVENTS).await,
            count(db, TRAFFIC).await,
        )
    };
    let short = |found: (u64, u64, u64), expected: (u64, u64, u64)| {
        found.0 < expected.0 || found.1 < expected.1 || found.2 < expected.2
    };
    // ClickHouse makes the table's rows visible before it has written the views' rows, one view
    // after another (`sessions` after `heatmap_clicks`: a kill between them once left the
    // sessions mart without the first batch): wait for both, so the kill below does not land
    // inside that insert.
    let expected = (
        clicks(&first),
        first.events.len() as u64,
        first.events.len() as u64,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored(server.db.clone()).await < expected.1
        || short(marts(server.db.clone()).await, expected)
    {
        assert!(Instant::now() < deadline, "the first batch never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    ch.kill();
    for batch in [&first, &second] {
        assert_eq!(send(batch).await.unwrap().status(), 204);
    }
    // ClickHouse is away: the segment stays on disk for the next start.
    server.stop().await;
    ch.restart();
    let server = TestServer::resume_at(&ch.url, "spool_replay", spool).await;
    let total = (first.events.len() + second.events.len()) as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored(server.db.clone()).await < total {
        assert!(
            Instant::now() < deadline,
            "the left-over segment was never shipped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The views' rows land just after the table's: wait for them, then check nothing more came.
    let expected = (clicks(&first) + clicks(&second), total, total);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut found = marts(server.db.clone()).await;
    while short(found, expected) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        found = marts(server.db.clone()).await;
    }
    // Read again where an error panics with its SQL, not as a zero.
    let found = (
        server.scalar(CLICKS).await,
        server.scalar(EVENTS).await,
        server.scalar(TRAFFIC).await,
    );
    assert_eq!(
        found, expected,
        "(clicks, events, traffic events) in the marts"
    );
    // The dashboard's figures from the marts equal those of the deduplicated events: the
    // replayed segment counted nothing twice.
    let figures = |v: serde_json::Value| {
        serde_json::json!([
            v["visitors"],
            v["sessions"],
            v["pageviews"],
            v["events"],
            v["pages"]
        ])
    };
    assert_eq!(
        figures(server.api("stats?site=test").await),
        figures(server.api("stats?site=test&exact=true").await)
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A left segment whose rows ClickHouse refuses (default rows over three insert blocks, the last
/// one cut short: `Cannot read all data`, a final error) is moved to `dead/` and counted, and
/// the segments after it still ship. (Garbage string lengths would be a worse test: ClickHouse
/// 18.16 crashes on a length near 2^63 and runs out of memory on 2^31.)
#[tokio::test]
async fn a_segment_clickhouse_refuses_is_moved_aside_and_shipping_goes_on() {
    use pathlight_collector::storage::clickhouse::{EventRow, INSERT_BLOCK_BYTES};
    use pathlight_collector::storage::spool;
    let ch = ClickHouseProcess::start("spool-refused");
    let dir = spool_dir("refused");
    std::fs::create_dir_all(&dir).unwrap();
    // A default row is all zero bytes; the segment's rows end half a row short.
    let mut row = Vec::new();
    EventRow::default().write_row_binary(&mut row);
    assert!(row.iter().all(|b| *b == 0));
    let whole = 3 * INSERT_BLOCK_BYTES / row.len();
    let payload = vec![0u8; whole * row.len() + row.len() / 2];
    let segment: Vec<u8> = payload
        .chunks(INSERT_BLOCK_BYTES)
        .flat_map(|part| spool::record(part, (part.len() / row.len()) as u32))
        .collect();
    let name = format!("{:020}.seg", 1);
    std::fs::write(dir.join(&name), segment).unwrap();
    let spool = |c: &mut pathlight_collector::config::Config| {
        c.spool.dir = Some(dir.clone());
        c.spool.seal_ms = 100;
    };
    let server = TestServer::start_at(&ch.url, "spool_refused", spool).await;
    let batch = batch_now();
    let status = reqwest::Client::new()
        .post(server.url("/v1/batch"))
        .body(cbor::encode(&batch))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.scalar("SELECT count() FROM events").await < batch.events.len() as u64 {
        assert!(
            Instant::now() < deadline,
            "the segment after the refused one never shipped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dir.join("dead").join(&name).exists(), "not moved to dead/");
    assert!(!dir.join(&name).exists());
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("pathlight_spool_dead_segments_total 1"),
        "{metrics}"
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The `pathlight` binary, killed with SIGKILL at ten random moments under load and started
/// again on the same spool: whatever it acknowledged before each kill is stored, once.
#[tokio::test]
async fn acknowledged_events_survive_sigkill_of_the_collector() {
    let ch = crate::clickhouse_url();
    let dir = spool_dir("sigkill");
    std::fs::create_dir_all(&dir).unwrap();
    let port = crate::free_port();
    let database = "it_spool_sigkill";
    let admin = crate::drop_database(ch, database).await;
    let config = dir.join("pathlight.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:{port}"
hash_secret = "test-secret-of-the-integration-tests"
ip_events_per_sec = 0
[clickhouse]
url = "{ch}"
database = "{database}"
flush_interval_ms = 100
[spool]
dir = "{spool}"
seal_ms = 200
[[sites]]
id = "test"
origins = ["*"]
"#,
            spool = dir.join("spool").display()
        ),
    )
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let log = dir.join("collector.log");
    let start = || collector_process(&config, &log, &base);
    let mut child = start().await;
    let (tally, stop, tasks) = senders(3, &format!("{base}/v1/batch"), Duration::from_millis(5));
    // Seeded, printed, so a failing sequence of kill moments can be replayed.
    let mut seed: u64 = std::env::var("PATHLIGHT_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("sigkill: seed {seed}");
    for _ in 0..10 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(200 + seed % 1300)).await;
        child.kill().unwrap();
        child.wait().unwrap();
        child = start().await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.send_replace(true);
    for t in tasks {
        t.await.unwrap();
    }
    verify(
        &admin.clone().with_database(database),
        "sigkill x10",
        &tally,
        Duration::from_secs(60),
    )
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// Starts `pathlight serve` and waits until it answers.
async fn collector_process(config: &Path, log: &Path, base: &str) -> std::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pathlight"));
    // The test's own knobs (PATHLIGHT_TEST_*) would read as config overrides.
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("PATHLIGHT_")) {
        cmd.env_remove(key);
    }
    let mut child = cmd
        .arg("--config")
        .arg(config)
        .arg("serve")
        .arg("--owner-pid")
        .arg(std::process::id().to_string())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    if crate::wait_healthy(base, 400).await {
        return child;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the collector did not start; see its log");
}

/// `/readyz`'s status and body.
async fn readyz(server: &TestServer) -> (u16, serde_json::Value) {
    let resp = reqwest::get(server.url("/readyz")).await.unwrap();
    (resp.status().as_u16(), crate::json_body(resp).await)
}

/// A spool at its cap answers 503 `spool_full` (nothing acknowledged, nothing crashes), says
/// so on `/readyz`, and takes events again once ClickHouse is back and the spool drained.
#[tokio::test]
async fn a_full_spool_refuses_with_503_and_recovers_after_draining() {
    let ch = ClickHouseProcess::start("spool-full");
    let dir = spool_dir("full");
    let server = TestServer::start_at(&ch.url, "spool_full", |c| {
        c.spool.dir = Some(dir.clone());
        c.spool.max_bytes = 64 * 1024;
        c.spool.segment_bytes = 16 * 1024;
        c.spool.seal_ms = 100;
    })
    .await;
    ch.kill();
    let client = reqwest::Client::new();
    let url = server.url("/v1/batch");
    let tally = Tally::default();
    let mut full = None;
    for n in 0..1_000u128 {
        let mut batch = batch_now();
        let ids: Vec<u128> = batch
            .events
            .iter_mut()
            .enumerate()
            .map(|(i, e)| {
                let v = n << 8 | i as u128;
                e.id.0 = v.to_be_bytes();
                v
            })
            .collect();
        tally.sent.fetch_add(ids.len() as u64, Ordering::Relaxed);
        let resp = client
            .post(&url)
            .body(cbor::encode(&batch))
            .send()
            .await
            .unwrap();
        match resp.status().as_u16() {
            204 => tally.acked.lock().unwrap().extend(ids),
            503 => {
                assert_eq!(resp.headers()["retry-after"], "5");
                let json = crate::json_body(resp).await;
                assert_eq!(json["reason"], "spool_full", "{json}");
                full = Some(n);
                break;
            }
            s => panic!("unexpected status {s}"),
        }
    }
    let full = full.expect("the spool never filled");
    assert!(full > 10, "refused too early: after {full} batches");
    assert!(
        client
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"pathlight_events_rejected_total{reason="spool_full"}"#),
        "{metrics}"
    );
    // Not ready while it refuses: a load balancer sends the batches elsewhere.
    let (status, ready) = readyz(&server).await;
    assert_eq!(
        (
            status,
            &ready["components"]["spool"]["state"],
            &ready["unavailable"]
        ),
        (503, &json!("full"), &json!(["spool"])),
        "{ready}"
    );

    ch.restart();
    verify(&server.db, "spool full", &tally, Duration::from_secs(60)).await;
    // Drained: taken again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if crate::post(&client, &url, None, cbor::encode(&batch_now()))
            .await
            .0
            == 204
        {
            break;
        }
        let _ = readyz(&server).await;
        assert!(
            Instant::now() < deadline,
            "the spool never took events again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, ready) = readyz(&server).await;
    assert_eq!(
        (status, &ready["components"]["spool"]["state"]),
        (200, &json!("up")),
        "{ready}"
    );
    println!("spool full: refused after {full} batches of 10 at a 64 KiB cap");
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Below `spool.min_free_bytes` of free disk, batches are refused with 503 (here the bound
/// is set above any disk's size), and nothing is acknowledged.
#[tokio::test]
async fn a_nearly_full_disk_refuses_with_503() {
    let dir = spool_dir("disk");
    let server = TestServer::start_with("spool_disk", |c| {
        c.spool.dir = Some(dir.clone());
        c.spool.min_free_bytes = u64::MAX;
    })
    .await;
    let client = reqwest::Client::new();
    let resp = client
        .post(server.url("/v1/batch"))
        .body(cbor::encode(&batch_now()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");
    let json = crate::json_body(resp).await;
    assert_eq!(json["reason"], "spool_full");
    assert_eq!(server.scalar("SELECT count() FROM events").await, 0);
    let (status, ready) = readyz(&server).await;
    assert_eq!(
        (status, &ready["components"]["spool"]["state"]),
        (503, &json!("full")),
        "{ready}"
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
