//! The live feed over WebSocket, protocol v1 (`http/ws.rs`): the snapshot on connect, the
//! heartbeat, ping and refresh, the per-site cap, richer events, and in scale-out mode every
//! collector's events reaching a viewer of any of them, once. Read with the bench tools' client
//! (`pathlight_bench::ws`); Chromium's is in tests/browser/viewer.test.mjs.

use crate::broker::{NatsProcess, scale_out};
use crate::{TestServer, batch_now};
use pathlight_bench::ws::{Client, Message};
use pathlight_wire::{EventKind, Id, RawBatch, cbor};
use serde_json::Value;
use std::time::Duration;

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";

/// A viewer of site `test` with its API token.
async fn viewer(server: &TestServer) -> Client {
    Client::connect_with(
        &server.addr.to_string(),
        "/api/v1/realtime/ws?site=test",
        Some("test-token"),
    )
    .await
    .unwrap()
}

/// The next message, within 10 s: a bound on a hang, not a measure of speed.
async fn next(c: &mut Client) -> Message {
    tokio::time::timeout(Duration::from_secs(10), c.recv())
        .await
        .expect("a message within 10 s")
        .unwrap()
}

async fn next_json(c: &mut Client) -> Value {
    match next(c).await {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        close => panic!("closed: {close:?}"),
    }
}

async fn next_of(c: &mut Client, kind: &str) -> Value {
    loop {
        let m = next_json(c).await;
        if m["type"] == kind {
            return m;
        }
    }
}

/// Posts `batch` as a browser with `ua` would; panics unless stored.
async fn post(server: &TestServer, batch: &RawBatch, ua: &str) {
    let resp = reqwest::Client::new()
        .post(server.url("/v1/batch"))
        .header("user-agent", ua)
        .body(cbor::encode(batch))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "{:?}", resp.text().await);
}

/// A batch of one custom event named `name`, ids made from `n`.
fn custom(name: &str, n: u8) -> RawBatch {
    let mut b = batch_now();
    let mut e = b
        .events
        .iter()
        .find(|e| matches!(e.kind, EventKind::Custom { .. }))
        .cloned()
        .unwrap();
    e.kind = EventKind::Custom { name: name.into() };
    e.id = Id([n; 16]);
    b.batch_id = Id([n ^ 0xff; 16]);
    b.events = vec![e];
    b
}

#[tokio::test]
async fn the_snapshot_comes_on_connect_then_heartbeats_with_the_current_visitors() {
    let server = TestServer::start_with("ws_snapshot", |c| c.live.heartbeat_ms = 200).await;
    post(&server, &batch_now(), CHROME).await;
    let (visitors, pageviews, events): (u64, u64, u64) = server
        .db
        .query("SELECT toUInt64(uniqExact(visitor_id)), toUInt64(countIf(event_type = 'pageview')), toUInt64(count()) FROM events WHERE is_bot = 0")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!((visitors, pageviews), (1, 1), "one browser, one page view");
    let mut c = viewer(&server).await;
    let s = next_json(&mut c).await;
    assert_eq!(s["type"], "snapshot", "the first message: {s}");
    assert_eq!(s["site"], "test");
    assert_eq!(s["visitors"], 1);
    assert_eq!(
        s["last_30_min"],
        serde_json::json!({"visitors": visitors, "pageviews": pageviews, "events": events})
    );
    assert_eq!(
        s["today"],
        serde_json::json!({"visitors": visitors, "pageviews": pageviews, "events": events})
    );
    assert_eq!(next_of(&mut c, "heartbeat").await["visitors"], 1);
    // Another browser: a later heartbeat counts two.
    let mut other = batch_now();
    for e in &mut other.events {
        e.id.0[0] ^= 0x55;
    }
    other.batch_id.0[0] ^= 0x55;
    post(&server, &other, FIREFOX).await;
    let mut beats = 0;
    loop {
        let beat = next_of(&mut c, "heartbeat").await;
        beats += 1;
        if beat["visitors"] == 2 {
            break;
        }
        assert!(
            beats < 50,
            "the heartbeat never counted the second visitor: {beat}"
        );
    }
}

#[tokio::test]
async fn pings_are_answered_refresh_resends_the_snapshot_and_bad_requests_are_told() {
    let server = TestServer::start("ws_requests").await;
    let mut c = viewer(&server).await;
    let first = next_json(&mut c).await;
    assert_eq!(
        (first["type"].as_str(), first["visitors"].as_u64()),
        (Some("snapshot"), Some(0))
    );
    c.send_text(r#"{"type":"ping","id":"p-1"}"#).await.unwrap();
    let pong = next_of(&mut c, "pong").await;
    assert_eq!(pong["id"], "p-1");
    assert!(pong["ts"].as_u64().unwrap() > 0);
    // Stored after the first snapshot: the refreshed one has it.
    post(&server, &batch_now(), CHROME).await;
    c.send_text(r#"{"type":"refresh"}"#).await.unwrap();
    let again = next_of(&mut c, "snapshot").await;
    assert_eq!(again["visitors"], 1);
    assert_eq!(again["last_30_min"]["pageviews"], 1);
    c.send_text("{\"type\":\"subscribe\"}").await.unwrap();
    let e = next_of(&mut c, "error").await;
    assert_eq!(e["error"], "bad_message");
    // The session goes on.
    c.send_text(r#"{"type":"ping"}"#).await.unwrap();
    assert_eq!(next_of(&mut c, "pong").await["id"], Value::Null);
    assert!(
        server
            .metrics()
            .await
            .contains("pathlight_websocket_bad_messages_total 1\n")
    );
}

#[tokio::test]
async fn past_the_sites_cap_a_session_is_told_why_and_closed_with_1013() {
    let server = TestServer::start_with("ws_cap", |c| c.live.max_connections_per_site = 2).await;
    let mut a = viewer(&server).await;
    let mut b = viewer(&server).await;
    for c in [&mut a, &mut b] {
        assert_eq!(next_json(c).await["type"], "snapshot");
    }
    let mut third = viewer(&server).await;
    let e = next_json(&mut third).await;
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"], "too_many_connections");
    match next(&mut third).await {
        Message::Close(code, reason) => {
            assert_eq!(code, 1013);
            assert_eq!(reason, e["message"]);
            assert!(reason.contains("2 live sessions"), "{reason}");
        }
        m => panic!("expected the close frame, got {m:?}"),
    }
    third.close(1000).await.unwrap();
    assert!(
        server
            .metrics()
            .await
            .contains("pathlight_websocket_refused_total 1\n")
    );
    // A session that ends gives its place back.
    a.close(1000).await.unwrap();
    assert!(matches!(next(&mut a).await, Message::Close(1000, _)));
    drop(a);
    let mut tries = 0;
    loop {
        let mut again = viewer(&server).await;
        if next_json(&mut again).await["type"] == "snapshot" {
            break;
        }
        tries += 1;
        assert!(tries < 50, "the ended session's place never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn events_carry_the_hashed_visitor_and_the_custom_name_never_the_address() {
    let server = TestServer::start("ws_events").await;
    let mut c = viewer(&server).await;
    assert_eq!(next_json(&mut c).await["type"], "snapshot");
    post(&server, &batch_now(), CHROME).await;
    let visitor: String = server
        .db
        .query("SELECT toString(any(visitor_id)) FROM events")
        .fetch_one()
        .await
        .unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < batch_now().events.len() {
        let Message::Text(raw) = next(&mut c).await else {
            panic!("closed")
        };
        assert!(!raw.contains("127.0.0.1"), "an address in {raw}");
        let e: Value = serde_json::from_str(&raw).unwrap();
        if e["type"] != "event" {
            continue;
        }
        assert_eq!(e["site"], "test");
        assert_eq!(e["visitor"], visitor.as_str());
        assert!(!e["session"].as_str().unwrap().is_empty());
        if e["kind"] == "custom" {
            assert_eq!(e["name"], "signup");
        }
        kinds.push(e["kind"].as_str().unwrap().to_owned());
    }
    assert!(kinds.contains(&"custom".to_owned()), "{kinds:?}");
}

#[tokio::test]
async fn behind_a_balancer_a_viewer_sees_each_collectors_events_once() {
    let nats = NatsProcess::start("ws-live");
    let stream = "IT_WS_LIVE";
    let a = TestServer::start_with("ws_live_a", |c| scale_out(c, &nats.url, stream)).await;
    let b = TestServer::start_with("ws_live_b", |c| scale_out(c, &nats.url, stream)).await;
    let mut c = viewer(&a).await;
    assert_eq!(next_json(&mut c).await["type"], "snapshot");
    post(&b, &custom("to-b", 1), CHROME).await;
    post(&a, &custom("to-a", 2), CHROME).await;
    post(&b, &custom("to-b-again", 3), CHROME).await;
    // Markers through both: once they are in, an echo of the events above would be too.
    post(&a, &custom("end-a", 4), CHROME).await;
    post(&b, &custom("end-b", 5), CHROME).await;
    let mut seen: Vec<String> = Vec::new();
    while !(seen.iter().any(|n| n == "end-a") && seen.iter().any(|n| n == "end-b")) {
        let e = next_of(&mut c, "event").await;
        seen.push(e["name"].as_str().unwrap().to_owned());
    }
    // And a round trip through A's own feed, for anything still on its way.
    c.send_text(r#"{"type":"ping"}"#).await.unwrap();
    loop {
        let m = next_json(&mut c).await;
        match m["type"].as_str() {
            Some("pong") => break,
            Some("event") => seen.push(m["name"].as_str().unwrap().to_owned()),
            _ => {}
        }
    }
    seen.sort();
    assert_eq!(seen, ["end-a", "end-b", "to-a", "to-b", "to-b-again"]);
}
