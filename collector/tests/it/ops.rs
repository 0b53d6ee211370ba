//! Operations: liveness and readiness follow ClickHouse and the spool, and `/metrics` names
//! every component and the process.

use crate::{ClickHouseProcess, TestServer, batch_now, post};
use pathlight_wire::cbor;
use serde_json::Value;
use std::time::{Duration, Instant};

/// `/readyz`'s status and body.
async fn readyz(server: &TestServer) -> (u16, Value) {
    let resp = reqwest::get(server.url("/readyz")).await.unwrap();
    (resp.status().as_u16(), crate::json_body(resp).await)
}

/// Polls `/readyz` until `wanted` holds of its answer, at most `within`; that answer.
async fn readyz_until(
    server: &TestServer,
    within: Duration,
    what: &str,
    wanted: impl Fn(u16, &Value) -> bool,
) -> (u16, Value) {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = readyz(server).await;
        if wanted(status, &body) {
            return (status, body);
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}; last answer {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of the unlabelled series `name` in a `/metrics` text.
fn gauge(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} missing from\n{metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn readyz_reports_clickhouse_up_and_metrics_name_each_component() {
    let server = TestServer::start("ops_ready").await;
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let (status, body) = readyz(&server).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["writes_to"], "clickhouse", "{body}");
    assert_eq!(body["unavailable"], serde_json::json!([]), "{body}");
    assert_eq!(body["components"]["clickhouse"]["state"], "up", "{body}");
    // Neither a spool nor a broker is configured: neither is reported.
    assert!(body["components"].get("spool").is_none(), "{body}");
    assert!(body["components"].get("nats").is_none(), "{body}");

    let metrics = server.metrics().await;
    assert_eq!(gauge(&metrics, "pathlight_clickhouse_up"), 1.0);
    for name in [
        "pathlight_spool_bytes",
        "pathlight_spool_rows",
        "pathlight_spool_segments",
    ] {
        assert_eq!(gauge(&metrics, name), 0.0, "{name}");
    }
    assert!(
        metrics.contains("# TYPE pathlight_nats_up gauge"),
        "{metrics}"
    );
    assert!(gauge(&metrics, "process_cpu_seconds_total") > 0.0);
    assert!(gauge(&metrics, "process_resident_memory_bytes") > 1e6);
    assert!(gauge(&metrics, "process_open_fds") > 3.0);
    assert!(gauge(&metrics, "process_threads") > 1.0);
    assert!(gauge(&metrics, "process_start_time_seconds") > 1.7e9);
    server.stop().await;
}

/// The business gauges: a batch makes its visitor current and counts its page views by
/// site; an open WebSocket session counts until it closes.
#[tokio::test]
async fn metrics_count_current_visitors_page_views_and_websockets() {
    // Page views by path, for the paths the site lists: the sample batch's `/catalog`.
    let server = TestServer::start_with("ops_business", |c| {
        c.sites[0].metric_paths = vec!["/catalog".into(), "/pricing".into()];
    })
    .await;
    let metrics = server.metrics().await;
    // Every configured site has its series from the start.
    assert_eq!(
        gauge(&metrics, r#"pathlight_current_visitors{site="test"}"#),
        0.0
    );
    assert!(
        !metrics.contains("pathlight_page_views_total{"),
        "{metrics}"
    );

    let batch = batch_now();
    let views = batch
        .events
        .iter()
        .filter(|e| matches!(e.kind, pathlight_wire::EventKind::Pageview))
        .count();
    assert!(views > 0);
    // A browser's: a request without User-Agent is a bot's, and bots are left out.
    let client = reqwest::Client::builder()
        .user_agent(BROWSER)
        .build()
        .unwrap();
    let (status, ack) = post(
        &client,
        &server.url("/v1/batch"),
        None,
        cbor::encode(&batch),
    )
    .await;
    assert_eq!(status, 204, "{ack}");
    let metrics = server.metrics().await;
    assert_eq!(
        gauge(&metrics, r#"pathlight_current_visitors{site="test"}"#),
        1.0
    );
    assert_eq!(
        gauge(&metrics, r#"pathlight_page_views_total{site="test"}"#),
        views as f64
    );
    assert_eq!(
        gauge(
            &metrics,
            r#"pathlight_page_views_by_path_total{site="test",path="/catalog"}"#
        ),
        views as f64
    );
    // The same visitor again, on a path the site does not list: still one visitor, and its
    // page views count as `other` (the path itself never becomes a label).
    let again = batch_now();
    let mut again = again;
    again.events.iter_mut().for_each(|e| {
        e.id.0[15] ^= 0x55;
        e.url = "https://shop.example/account/anna-berg".into();
    });
    assert_eq!(
        post(
            &client,
            &server.url("/v1/batch"),
            None,
            cbor::encode(&again)
        )
        .await
        .0,
        204
    );
    let metrics = server.metrics().await;
    assert_eq!(
        gauge(&metrics, r#"pathlight_current_visitors{site="test"}"#),
        1.0
    );
    assert_eq!(
        gauge(&metrics, r#"pathlight_page_views_total{site="test"}"#),
        2.0 * views as f64
    );
    assert_eq!(
        gauge(
            &metrics,
            r#"pathlight_page_views_by_path_total{site="test",path="other"}"#
        ),
        views as f64
    );
    assert!(!metrics.contains("anna"), "{metrics}");

    assert_eq!(gauge(&metrics, "pathlight_websocket_connections"), 0.0);
    let ws = open_websocket(&server).await;
    assert_eq!(
        gauge(&server.metrics().await, "pathlight_websocket_connections"),
        1.0
    );
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(5);
    while gauge(&server.metrics().await, "pathlight_websocket_connections") != 0.0 {
        assert!(
            Instant::now() < deadline,
            "a closed WebSocket still counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// A WebSocket session of the live feed for the test site, opened by hand (the handshake's
/// 101 read): the connection, to drop.
async fn open_websocket(server: &TestServer) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET /api/v1/realtime/ws?site=test HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer test-token\r\n\r\n",
        server.addr
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        assert_eq!(tcp.read(&mut byte).await.unwrap(), 1, "closed: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp
}

/// ClickHouse killed under two collectors: the one that writes to ClickHouse becomes unready
/// (503, naming ClickHouse) within seconds and without any traffic; the one with a spool
/// stays ready, reports ClickHouse `down` and its backlog growing with a batch; both are
/// ready, with the backlog shipped, once ClickHouse is back.
#[tokio::test]
async fn readyz_follows_a_clickhouse_outage_with_and_without_a_spool() {
    let ch = ClickHouseProcess::start("readyz");
    let direct = TestServer::start_at(&ch.url, "ops_direct", |_| {}).await;
    let dir =
        std::env::temp_dir().join(format!("pathlight-it-spool-readyz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spooled = TestServer::start_at(&ch.url, "ops_spooled", |c| {
        c.spool.dir = Some(dir.clone());
        c.spool.seal_ms = 100;
    })
    .await;
    let (status, body) = readyz(&spooled).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["writes_to"], "spool", "{body}");
    assert_eq!(body["components"]["spool"]["backlog"]["rows"], 0, "{body}");

    ch.kill();
    let (_, body) = readyz_until(
        &direct,
        Duration::from_secs(10),
        "503 without spool",
        |s, _| s == 503,
    )
    .await;
    assert_eq!(body["status"], "not_ready", "{body}");
    assert_eq!(
        body["unavailable"],
        serde_json::json!(["clickhouse"]),
        "{body}"
    );
    assert_eq!(body["components"]["clickhouse"]["state"], "down", "{body}");
    assert_eq!(
        gauge(&direct.metrics().await, "pathlight_clickhouse_up"),
        0.0
    );

    let (status, body) = readyz_until(
        &spooled,
        Duration::from_secs(10),
        "ClickHouse down",
        |_, b| b["components"]["clickhouse"]["state"] == "down",
    )
    .await;
    assert_eq!(status, 200, "the spool takes the writes: {body}");
    assert_eq!(body["status"], "ready", "{body}");
    let client = reqwest::Client::new();
    let batch = batch_now();
    let events = batch.events.len() as u64;
    let (status, ack) = post(
        &client,
        &spooled.url("/v1/batch"),
        None,
        cbor::encode(&batch),
    )
    .await;
    assert_eq!(status, 204, "{ack}");
    let (status, body) = readyz(&spooled).await;
    assert_eq!(status, 200, "{body}");
    let backlog = &body["components"]["spool"]["backlog"];
    assert_eq!(backlog["rows"], events, "{body}");
    assert!(backlog["bytes"].as_u64().unwrap() > 0, "{body}");
    assert!(backlog["segments"].as_u64().unwrap() >= 1, "{body}");
    let metrics = spooled.metrics().await;
    assert_eq!(gauge(&metrics, "pathlight_spool_rows"), events as f64);
    assert!(gauge(&metrics, "pathlight_spool_bytes") > 0.0);
    assert!(gauge(&metrics, "pathlight_spool_segments") >= 1.0);
    assert_eq!(gauge(&metrics, "pathlight_clickhouse_up"), 0.0);

    ch.restart();
    let (_, body) = readyz_until(&direct, Duration::from_secs(30), "ready again", |s, _| {
        s == 200
    })
    .await;
    assert_eq!(body["components"]["clickhouse"]["state"], "up", "{body}");
    let (_, body) = readyz_until(
        &spooled,
        Duration::from_secs(30),
        "backlog shipped",
        |_, b| {
            b["components"]["spool"]["backlog"]["rows"] == 0
                && b["components"]["clickhouse"]["state"] == "up"
        },
    )
    .await;
    assert_eq!(
        body["components"]["spool"]["backlog"]["segments"], 0,
        "{body}"
    );
    assert_eq!(body["components"]["spool"]["backlog"]["bytes"], 0, "{body}");
    assert_eq!(
        spooled.scalar("SELECT count() FROM events FINAL").await,
        events
    );
    direct.stop().await;
    spooled.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
