//! A client cannot hold the collector: headers and bodies that do not arrive in time are cut
//! off, connections are capped, compressed bodies and oversized headers are refused — each
//! with its status and counted, and the collector keeps serving.

use crate::{TestServer, batch_now};
use pathlight_wire::cbor;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the peer closes (or 5 s pass); returns what came.
async fn read_all(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn slow_compressed_and_oversized_requests_are_refused() {
    let server = TestServer::start_with("hardening", |c| {
        c.http.header_timeout_ms = 300;
        c.http.body_timeout_ms = 300;
    })
    .await;

    // Slowloris: the headers never end; the connection is closed after the header timeout.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"POST /v1/batch HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    read_all(&mut slow).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "slow headers were waited on for {:?}",
        started.elapsed()
    );

    // A body that stalls: 408 with its reason.
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled
        .write_all(b"POST /v1/batch HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let answer = read_all(&mut stalled).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""reason":"body_timeout""#), "{answer}");

    let client = reqwest::Client::new();
    let url = server.url("/v1/batch");
    // Compressed bodies other than gzip (which is inflated under the batch cap) are not
    // accepted; a body said to be gzip must be.
    let resp = client
        .post(&url)
        .header("content-encoding", "br")
        .body(vec![0x1f, 0x8b, 8, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let json = crate::json_body(resp).await;
    assert_eq!(json["reason"], "unsupported_encoding");
    let resp = client
        .post(&url)
        .header("content-encoding", "gzip")
        .body(cbor::encode(&batch_now()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let json = crate::json_body(resp).await;
    assert_eq!(json["reason"], "corrupt_gzip");

    // Headers past max_header_bytes (16 KiB by default).
    let resp = client
        .post(&url)
        .header("x-padding", "a".repeat(32 * 1024))
        .body(cbor::encode(&batch_now()))
        .send()
        .await;
    assert!(
        resp.as_ref().map_or(true, |r| r.status() == 431),
        "{resp:?}"
    );

    // Still serving, and the refusals are counted.
    assert_eq!(
        crate::post(&client, &url, None, cbor::encode(&batch_now()))
            .await
            .0,
        204
    );
    let metrics = server.metrics().await;
    for reason in ["body_timeout", "unsupported_encoding", "corrupt_gzip"] {
        assert!(
            metrics.contains(&format!(
                r#"pathlight_events_rejected_total{{reason="{reason}"}}"#
            )),
            "{reason}: {metrics}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_at_once() {
    let server = TestServer::start_with("connection_cap", |c| c.http.max_connections = 2).await;
    // Two connections, each proven live by a keep-alive request, hold the two permits.
    let mut held = Vec::new();
    // (The start-up probe's connection may still be closing: a refused try is retried.)
    while held.len() < 2 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        if buf[..n].starts_with(b"HTTP/1.1 200") {
            held.push(s);
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    let _ = third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    let answer = read_all(&mut third).await;
    assert!(answer.is_empty(), "a third connection was served: {answer}");

    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("pathlight_connections_refused_total 1"),
        "{metrics}"
    );
    server.stop().await;
}

/// One address over `ip_events_per_sec` gets 429 + Retry-After, whatever site it sends to.
#[tokio::test]
async fn one_address_over_its_rate_gets_429() {
    let server = TestServer::start_with("ip_limit", |c| c.ip_events_per_sec = 1).await;
    let client = reqwest::Client::new();
    let (accepted, resp) =
        crate::post_until_refused(&client, &server.url("/v1/batch"), 1_000, |n| {
            let mut batch = batch_now();
            for e in &mut batch.events {
                e.id.0[..4].copy_from_slice(&n.to_be_bytes());
            }
            cbor::encode(&batch)
        })
        .await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let json = crate::json_body(resp).await;
    assert_eq!(json["reason"], "rate_limited");
    // The burst: ten seconds' worth, but never less than one full batch (500 events): 100
    // batches of 5, plus what one event a second refilled while they were sent.
    assert!(
        (100..=105).contains(&accepted),
        "{accepted} batches of 5 within a 500-event burst"
    );
    server.stop().await;
}

// Bodies held at once are capped over all connections, counted as their bytes arrive: while
// one request holds most of the budget (19.5 kB of its 19.9 kB sent, the rest still due),
// another that would pass it waits a second, then gets 503 with its reason; once the first is
// gone the budget serves again. A client that only declares a large body holds nothing.
#[tokio::test]
async fn request_bodies_in_flight_are_capped() {
    let server = TestServer::start_with("body_budget", |c| {
        c.http.max_body_bytes_in_flight = 20_000;
        c.limits.max_batch_bytes = 20_000;
        // The holder keeps its share for all of this; others wait for room for one second.
        c.http.body_timeout_ms = 10_000;
    })
    .await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/batch");
    let body = cbor::encode(&batch_now());
    assert!(body.len() > 500, "{} bytes", body.len());
    // Polls until the answer is `want` (a few tries, each waiting up to its second for room).
    let until = |want: u16| {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        async move {
            let mut last = (0, serde_json::Value::Null);
            for _ in 0..20 {
                last = crate::post(&client, &url, None, body.clone()).await;
                if last.0 == want {
                    return last;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("never {want}: last {last:?}");
        }
    };

    let mut declarer = TcpStream::connect(server.addr).await.unwrap();
    declarer
        .write_all(b"POST /v1/batch HTTP/1.1\r\nhost: x\r\ncontent-length: 19900\r\n\r\n")
        .await
        .unwrap();
    let (status, json) = until(204).await;
    assert_eq!(status, 204, "a declared body holds nothing: {json}");

    let mut holder = TcpStream::connect(server.addr).await.unwrap();
    holder
        .write_all(b"POST /v1/batch HTTP/1.1\r\nhost: x\r\ncontent-length: 19900\r\n\r\n")
        .await
        .unwrap();
    holder.write_all(&[0u8; 19_500]).await.unwrap();
    let (_, json) = until(503).await;
    assert_eq!(json["reason"], "queue_full", "{json}");

    drop(holder);
    until(204).await;
    drop(declarer);
    server.stop().await;
}

// An HTTP/2 connection that answers the server's keep-alive pings but sends no request holds
// a connection slot; once it has had none in flight for the header timeout, the server asks
// it to go (GOAWAY) and the connection ends. One that keeps sending requests stays. In real
// time, as every test here: on tokio's paused clock the runtime, idle while it waits on real
// sockets, would jump to the next timer and fire the very timeouts under test.
#[tokio::test]
async fn idle_http2_connections_are_closed() {
    use http_body_util::{BodyExt, Empty};
    let server = TestServer::start_with("idle_h2", |c| {
        c.http.header_timeout_ms = 500;
    })
    .await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .handshake::<_, Empty<bytes::Bytes>>(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let healthz = || {
        hyper::Request::get(format!("http://{}/healthz", server.addr))
            .body(Empty::new())
            .unwrap()
    };
    // Busy for three idle timeouts: the connection stays.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1_500) {
        let resp = send.send_request(healthz()).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!conn.is_finished(), "closed while in use");
    // Then idle: it ends within a few timeouts.
    let ended = tokio::time::timeout(Duration::from_secs(5), conn).await;
    assert!(ended.is_ok(), "an idle HTTP/2 connection was kept");
    server.stop().await;
}
