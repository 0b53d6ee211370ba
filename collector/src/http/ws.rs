//! The live feed over WebSocket (RFC 6455), for clients that cannot read Server-Sent Events:
//! `GET /api/v1/realtime/ws?site=…` on HTTP/1.1 with the usual upgrade headers, authorized like
//! `realtime/stream` (a bearer token, or the `?token=` live token a browser can carry, since its
//! WebSocket API sets no headers). It speaks the live protocol v1 below.
//!
//! # Protocol v1
//! Every message either way is one text frame holding a JSON object whose `type` says what it
//! is. The server sends:
//! - `snapshot`, first, before any event, and again on each `refresh`: the site's figures
//!   now, `{"type":"snapshot","site":"shop","ts":…,"visitors":3,"last_30_min":{"visitors":…,
//!   "pageviews":…,"events":…},"today":{…}}` (`visitors`: distinct visitors of the last 5
//!   minutes, as `GET /api/v1/realtime` counts them; `today`'s from the traffic mart, its
//!   distinct visitors estimated);
//! - `heartbeat` every `live.heartbeat_ms` (5 s): `{"type":"heartbeat","ts":…,"visitors":3}`,
//!   `visitors` null when ClickHouse did not answer;
//! - `event`, each stored event of the site (`pipeline::LiveEvent`): `{"type":"event",
//!   "site","kind","path","selector"?,"name"? (a custom event's),"visitor" (the day's salted
//!   hash, never an address),"session","ts"}`; in scale-out mode every collector's;
//! - `lagged` when this client fell `missed` events behind and they were dropped for it;
//! - `pong` answering a `ping`, with the ping's `id` when it had one;
//! - `error`: `{"type":"error","error":CODE,"message":…}`. `bad_message` (the client sent
//!   something that is not a request below; the session goes on), `stats_unavailable` (the
//!   snapshot could not be read; events go on), `too_many_connections` (the site has
//!   `live.max_connections_per_site` sessions open: this one is closed right after, with code
//!   1013 and the reason as the close frame's text).
//!
//! The client may send `{"type":"ping","id":…}` (`id` optional, any JSON) and
//! `{"type":"refresh"}`.
//!
//! # The path of a live event over a WebSocket
//!
//! 1. [`accept_key`] answers the handshake (`101 Switching Protocols`); hyper hands the
//!    connection over once the response is written.
//! 2. [`run`] asks the snapshot, sends it, then each stored event of the site from the
//!    pipeline's live feed (the same broadcast SSE reads), a heartbeat on its interval, and a
//!    protocol ping every 30 s so idle proxies keep the connection.
//! 3. It reads what the client sends: pings are answered with pongs, JSON requests as above,
//!    a close frame is answered and ends the session; a frame that breaks the protocol
//!    (unmasked, oversized control frame, reserved bits) closes with 1002, a message over
//!    64 KiB with 1009. At shutdown the server closes with 1001.

use crate::pipeline::LiveEvent;
use crate::query::{LiveSnapshot, QueryApi, QueryError};
use base64::Engine;
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use sha1::{Digest, Sha1};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, watch};

/// Appended to the client's key before hashing (RFC 6455 §1.3).
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest client message read; clients only send small JSON requests.
const MAX_PAYLOAD: u64 = 64 * 1024;
/// Close code of a refused session: "Try Again Later" (RFC 6455 §7.4, IANA registry).
pub const TRY_AGAIN_LATER: u16 = 1013;

/// `Sec-WebSocket-Accept` for the client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let digest = Sha1::new()
        .chain_update(key.trim().as_bytes())
        .chain_update(GUID.as_bytes())
        .finalize();
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// A frame header and payload, unmasked (servers never mask).
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(n as u8),
        n @ 126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

fn close(code: u16) -> Vec<u8> {
    frame(0x8, &code.to_be_bytes())
}

/// A close frame with a reason (at most 123 bytes, RFC 6455 §5.5).
fn close_with(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(&reason.as_bytes()[..reason.len().min(123)]);
    frame(0x8, &payload)
}

/// A protocol message as a text frame.
fn text<T: Serialize>(message: &T) -> Vec<u8> {
    frame(
        0x1,
        serde_json::to_string(message)
            .unwrap_or_default()
            .as_bytes(),
    )
}

/// The `error` message.
fn error(code: &str, message: &str) -> Vec<u8> {
    text(&serde_json::json!({ "type": "error", "error": code, "message": message }))
}

/// A frame from the client.
#[derive(Debug, PartialEq)]
enum Incoming {
    Close,
    Ping(Vec<u8>),
    /// A text or binary frame, or a continuation: opcode, final, payload.
    Data(u8, bool, Vec<u8>),
    /// A pong: nothing to do.
    Other,
    /// Close with this code.
    Violation(u16),
}

/// Reads one frame (RFC 6455 §5.2): the client must mask, control frames are final and at
/// most 125 bytes, reserved bits are zero.
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Incoming> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head).await?;
    let (fin, rsv, opcode) = (head[0] & 0x80 != 0, head[0] & 0x70, head[0] & 0x0F);
    let (masked, len7) = (head[1] & 0x80 != 0, u64::from(head[1] & 0x7F));
    let len = match len7 {
        126 => u64::from(r.read_u16().await?),
        127 => r.read_u64().await?,
        n => n,
    };
    let control = opcode & 0x8 != 0;
    if rsv != 0 || !masked || (control && (!fin || len > 125)) || matches!(opcode, 3..=7 | 0xB..) {
        return Ok(Incoming::Violation(1002));
    }
    if len > MAX_PAYLOAD {
        return Ok(Incoming::Violation(1009));
    }
    let mut mask = [0u8; 4];
    r.read_exact(&mut mask).await?;
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await?;
    payload
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b ^= mask[i % 4]);
    Ok(match opcode {
        0x8 => Incoming::Close,
        0x9 => Incoming::Ping(payload),
        0xA => Incoming::Other,
        op => Incoming::Data(op, fin, payload),
    })
}

/// A client's request (protocol v1).
#[derive(Debug, PartialEq)]
enum Request {
    Ping(Option<serde_json::Value>),
    Refresh,
    /// Not a request: why.
    Bad(String),
}

fn request(message: &[u8]) -> Request {
    #[derive(serde::Deserialize)]
    #[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
    enum Wire {
        Ping {
            #[serde(default)]
            id: Option<serde_json::Value>,
        },
        Refresh {},
    }
    match serde_json::from_slice::<Wire>(message) {
        Ok(Wire::Ping { id }) => Request::Ping(id),
        Ok(Wire::Refresh {}) => Request::Refresh,
        Err(e) => Request::Bad(format!(
            "expected {{\"type\":\"ping\"}} or {{\"type\":\"refresh\"}}: {e}"
        )),
    }
}

/// Where a session's figures come from: the query API, or a stand-in in unit tests.
pub trait LiveStats: Send + Sync + 'static {
    /// The site's snapshot.
    fn snapshot(&self, site: &str)
    -> impl Future<Output = Result<LiveSnapshot, QueryError>> + Send;
    /// The site's visitors of the last 5 minutes, counted at most `max_age` ago.
    fn visitors(
        &self,
        site: &str,
        max_age: Duration,
    ) -> impl Future<Output = Result<u64, QueryError>> + Send;
}

impl LiveStats for QueryApi {
    fn snapshot(
        &self,
        site: &str,
    ) -> impl Future<Output = Result<LiveSnapshot, QueryError>> + Send {
        self.live_snapshot(site)
    }

    fn visitors(
        &self,
        site: &str,
        max_age: Duration,
    ) -> impl Future<Output = Result<u64, QueryError>> + Send {
        self.current_visitors(site, max_age)
    }
}

/// One session's inputs.
pub struct Session<T> {
    /// The site it reads.
    pub site: String,
    /// Its figures.
    pub stats: Arc<T>,
    /// How often the heartbeat goes.
    pub heartbeat: Duration,
    /// The pipeline's live feed.
    pub feed: broadcast::Receiver<Arc<LiveEvent>>,
    /// Turns true at shutdown.
    pub stopping: watch::Receiver<bool>,
    /// Counts the client's messages that were no request.
    pub bad_messages: Counter,
}

fn now_ms() -> u64 {
    crate::dates::now_ms().max(0) as u64
}

/// The `snapshot` message, or the `error` saying why there is none.
async fn snapshot<T: LiveStats>(stats: &T, site: &str) -> Vec<u8> {
    match stats.snapshot(site).await {
        Ok(s) => {
            #[derive(Serialize)]
            struct Snapshot<'a> {
                r#type: &'static str,
                site: &'a str,
                ts: u64,
                #[serde(flatten)]
                figures: LiveSnapshot,
            }
            text(&Snapshot {
                r#type: "snapshot",
                site,
                ts: now_ms(),
                figures: s,
            })
        }
        Err(e) => {
            tracing::warn!(error = %e, "the live snapshot could not be read");
            error(
                "stats_unavailable",
                "the site's figures could not be read; events go on",
            )
        }
    }
}

/// Sends the snapshot, then a heartbeat every `heartbeat` and a snapshot on each refresh,
/// until the reader stops asking (it ended).
async fn figures<T: LiveStats>(
    stats: Arc<T>,
    site: String,
    heartbeat: Duration,
    mut refreshes: mpsc::Receiver<()>,
    out: mpsc::Sender<Vec<u8>>,
) {
    if out.send(snapshot(&*stats, &site).await).await.is_err() {
        return;
    }
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let message = tokio::select! {
            _ = beat.tick() => {
                // Half the interval: sessions of a site that beat at different moments share
                // one count per beat.
                let visitors = stats.visitors(&site, heartbeat / 2).await.ok();
                text(&serde_json::json!({ "type": "heartbeat", "ts": now_ms(), "visitors": visitors }))
            }
            asked = refreshes.recv() => match asked {
                Some(()) => snapshot(&*stats, &site).await,
                None => return,
            },
        };
        if out.send(message).await.is_err() {
            return;
        }
    }
}

/// Reads the client's frames: answers pings and requests through `out`, asks `refreshes`,
/// ends after a close frame (answered) or a violation (closed with its code).
async fn read_client<R: AsyncRead + Unpin>(
    mut rd: R,
    out: mpsc::Sender<Vec<u8>>,
    refreshes: mpsc::Sender<()>,
    bad_messages: Counter,
) {
    // A fragmented message's parts so far.
    let mut message: Option<(u8, Vec<u8>)> = None;
    loop {
        let reply = match read_frame(&mut rd).await {
            Ok(Incoming::Close) => close(1000),
            Ok(Incoming::Violation(code)) => close(code),
            Ok(Incoming::Ping(p)) => frame(0xA, &p),
            Ok(Incoming::Other) => continue,
            Ok(Incoming::Data(op, fin, part)) => {
                let whole = match (op, message.take()) {
                    (0, Some((op, mut so_far))) => {
                        so_far.extend_from_slice(&part);
                        if so_far.len() as u64 > MAX_PAYLOAD {
                            let _ = out.send(close(1009)).await;
                            return;
                        }
                        (op, so_far)
                    }
                    (0, None) | (_, Some(_)) => {
                        let _ = out.send(close(1002)).await;
                        return;
                    }
                    (op, None) => (op, part),
                };
                if !fin {
                    message = Some(whole);
                    continue;
                }
                match whole {
                    (0x1, m) => match request(&m) {
                        Request::Ping(id) => text(&serde_json::json!({
                            "type": "pong", "id": id, "ts": now_ms()
                        })),
                        Request::Refresh => {
                            // One refresh waiting is as good as several.
                            let _ = refreshes.try_send(());
                            continue;
                        }
                        Request::Bad(why) => {
                            bad_messages.inc();
                            error("bad_message", &why)
                        }
                    },
                    _ => {
                        bad_messages.inc();
                        error("bad_message", "requests are JSON text messages")
                    }
                }
            }
            Err(_) => return,
        };
        let last = reply[0] == 0x88;
        if out.send(reply).await.is_err() || last {
            return;
        }
    }
}

/// Serves one upgraded connection until the client closes, the connection breaks or the server
/// stops.
pub async fn run<S, T>(io: S, session: Session<T>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: LiveStats,
{
    let Session {
        site,
        stats,
        heartbeat,
        mut feed,
        mut stopping,
        bad_messages,
    } = session;
    let (rd, mut wr) = tokio::io::split(io);
    // The reader's replies (pongs, the close answer). It holds the only sender, so once it ends
    // (the peer went away) `recv` says so and the session ends too, instead of at the next
    // failed write.
    let (out, mut out_rx) = mpsc::channel::<Vec<u8>>(16);
    let (refresh, refreshes) = mpsc::channel::<()>(1);
    let mut reader = tokio::spawn(read_client(rd, out, refresh, bad_messages));
    let (figures_out, mut figures_rx) = mpsc::channel::<Vec<u8>>(4);
    let figures = tokio::spawn(figures(
        stats,
        site.clone(),
        heartbeat,
        refreshes,
        figures_out,
    ));
    // Events wait in the feed until the snapshot is sent: it comes first.
    let mut snapshot_sent = false;
    let mut ping = tokio::time::interval(Duration::from_secs(30));
    ping.tick().await;
    loop {
        // `ours`: this side's own close frame, which the peer answers (the reader's close
        // frames are answers).
        let (bytes, ours) = tokio::select! {
            out = out_rx.recv() => match out {
                Some(f) => (f, false),
                None => break,
            },
            Some(f) = figures_rx.recv() => {
                snapshot_sent = true;
                (f, false)
            }
            event = feed.recv(), if snapshot_sent => match event {
                Ok(e) if e.site == site => (text(&Tagged { r#type: "event", event: &e }), false),
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    (text(&serde_json::json!({ "type": "lagged", "missed": n })), false)
                }
                Err(broadcast::error::RecvError::Closed) => (close(1001), true),
            },
            _ = ping.tick() => (frame(0x9, b""), false),
            _ = stopping.wait_for(|s| *s) => (close(1001), true),
        };
        if wr.write_all(&bytes).await.is_err() {
            break;
        }
        // A close frame is the last one.
        if bytes[0] == 0x88 {
            // RFC 6455 §7.1.1: after its own close frame the server reads until the peer's,
            // then closes TCP first. Closing with the answer unread would send a reset, which
            // can reach the client before it has read the close code (it then reports 1006).
            if ours {
                let _ = tokio::time::timeout(Duration::from_secs(2), &mut reader).await;
            }
            break;
        }
    }
    figures.abort();
    let _ = wr.shutdown().await;
    reader.abort();
}

/// A live event as a protocol message.
#[derive(Serialize)]
struct Tagged<'a> {
    r#type: &'static str,
    #[serde(flatten)]
    event: &'a LiveEvent,
}

/// Refuses a session that was upgraded already: tells the client why (an `error` message
/// `code`, then a close frame with `close_code` and `message` as its reason), waits up to 2 s
/// for the client's close answer, and closes.
pub async fn refuse<S>(io: S, code: &str, close_code: u16, message: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut bytes = error(code, message);
    bytes.extend(close_with(close_code, message));
    if wr.write_all(&bytes).await.is_ok() {
        let answered =
            async { while !matches!(read_frame(&mut rd).await, Ok(Incoming::Close) | Err(_)) {} };
        let _ = tokio::time::timeout(Duration::from_secs(2), answered).await;
    }
    let _ = wr.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Figures that count their asks: the session's logic without ClickHouse (the
    /// integration tests in `tests/it/websocket.rs` use the real one).
    #[derive(Default)]
    struct Fixed {
        asked: std::sync::atomic::AtomicU64,
    }

    impl LiveStats for Fixed {
        async fn snapshot(&self, _: &str) -> Result<LiveSnapshot, QueryError> {
            let n = self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(LiveSnapshot {
                visitors: 100 + n,
                ..LiveSnapshot::default()
            })
        }
        async fn visitors(&self, _: &str, _: Duration) -> Result<u64, QueryError> {
            Ok(7)
        }
    }

    fn session(
        feed: broadcast::Receiver<Arc<LiveEvent>>,
        stopping: watch::Receiver<bool>,
    ) -> Session<Fixed> {
        Session {
            site: "demo".into(),
            stats: Arc::new(Fixed::default()),
            heartbeat: Duration::from_secs(5),
            feed,
            stopping,
            bad_messages: Counter::default(),
        }
    }

    /// The next text message the server sent, as JSON (server frames are unmasked).
    async fn next_json<R: AsyncRead + Unpin>(r: &mut R) -> serde_json::Value {
        loop {
            let mut head = [0u8; 2];
            r.read_exact(&mut head).await.unwrap();
            let len = match head[1] {
                126 => usize::from(r.read_u16().await.unwrap()),
                n => usize::from(n),
            };
            let mut payload = vec![0; len];
            r.read_exact(&mut payload).await.unwrap();
            if head[0] == 0x81 {
                return serde_json::from_slice(&payload).unwrap();
            }
        }
    }

    /// The next close frame the server sent, whole (the snapshot may come before it).
    async fn next_close<R: AsyncRead + Unpin>(r: &mut R) -> Vec<u8> {
        loop {
            let mut head = [0u8; 2];
            r.read_exact(&mut head).await.unwrap();
            let mut payload = vec![0; usize::from(head[1] & 0x7F)];
            r.read_exact(&mut payload).await.unwrap();
            if head[0] == 0x88 {
                return [head.to_vec(), payload].concat();
            }
        }
    }

    // Paused clock: the heartbeat's 5 s pass at once, and exactly.
    #[tokio::test(start_paused = true)]
    async fn the_snapshot_comes_first_then_a_heartbeat_every_interval() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let (feed, events) = broadcast::channel(4);
        let (_stop, stopping) = watch::channel(false);
        let start = tokio::time::Instant::now();
        // An event stored before the snapshot is sent waits for it.
        feed.send(Arc::new(LiveEvent {
            site: "demo".into(),
            kind: "custom".into(),
            path: "/".into(),
            selector: String::new(),
            name: "signup".into(),
            visitor: "42".into(),
            session: "s".into(),
            ts: 1,
        }))
        .unwrap();
        tokio::spawn(run(server, session(events, stopping)));
        let first = next_json(&mut client).await;
        assert_eq!(
            (first["type"].as_str(), first["visitors"].as_u64()),
            (Some("snapshot"), Some(100))
        );
        assert_eq!(first["site"], "demo");
        assert_eq!(first["today"]["pageviews"], 0);
        let event = next_json(&mut client).await;
        assert_eq!(
            (event["type"].as_str(), event["name"].as_str()),
            (Some("event"), Some("signup"))
        );
        for beat in 1..=3 {
            let m = next_json(&mut client).await;
            assert_eq!(
                (m["type"].as_str(), m["visitors"].as_u64()),
                (Some("heartbeat"), Some(7))
            );
            assert_eq!(start.elapsed(), Duration::from_secs(5 * beat));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pings_are_answered_refreshes_resend_the_snapshot_and_bad_requests_are_told() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let (_feed, events) = broadcast::channel(4);
        let (_stop, stopping) = watch::channel(false);
        let s = session(events, stopping);
        let bad = s.bad_messages.clone();
        tokio::spawn(run(server, s));
        assert_eq!(next_json(&mut client).await["type"], "snapshot");
        client
            .write_all(&masked(0x1, br#"{"type":"ping","id":9}"#))
            .await
            .unwrap();
        let pong = next_json(&mut client).await;
        assert_eq!(
            (pong["type"].as_str(), pong["id"].as_u64()),
            (Some("pong"), Some(9))
        );
        client
            .write_all(&masked(0x1, br#"{"type":"refresh"}"#))
            .await
            .unwrap();
        let again = next_json(&mut client).await;
        assert_eq!(
            (again["type"].as_str(), again["visitors"].as_u64()),
            (Some("snapshot"), Some(101))
        );
        // A request in two fragments is one request.
        let mut first = masked(0x1, br#"{"type":"#);
        first[0] &= 0x7F;
        client.write_all(&first).await.unwrap();
        client.write_all(&masked(0x0, br#""ping"}"#)).await.unwrap();
        assert_eq!(next_json(&mut client).await["type"], "pong");
        for wrong in [
            &br#"{"type":"subscribe"}"#[..],
            b"not json",
            br#"{"type":"ping","x":1}"#,
        ] {
            client.write_all(&masked(0x1, wrong)).await.unwrap();
            let e = next_json(&mut client).await;
            assert_eq!(
                (e["type"].as_str(), e["error"].as_str()),
                (Some("error"), Some("bad_message")),
                "{e}"
            );
        }
        assert_eq!(bad.get(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_session_is_told_why_then_closed_with_1013() {
        let (mut client, server) = tokio::io::duplex(4096);
        let refused = tokio::spawn(async move {
            refuse(
                server,
                "too_many_connections",
                TRY_AGAIN_LATER,
                "the site has 2 sessions open",
            )
            .await
        });
        let e = next_json(&mut client).await;
        assert_eq!(e["error"], "too_many_connections");
        let mut head = [0u8; 2];
        client.read_exact(&mut head).await.unwrap();
        let mut payload = vec![0; usize::from(head[1])];
        client.read_exact(&mut payload).await.unwrap();
        assert_eq!(head[0], 0x88);
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1013);
        assert_eq!(&payload[2..], b"the site has 2 sessions open");
        client.write_all(&masked(0x8, &[0x03, 0xF5])).await.unwrap();
        refused.await.unwrap();
    }

    #[test]
    fn the_accept_key_is_rfc_6455s_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn frames_use_the_shortest_length_form() {
        assert_eq!(frame(0x1, b"hi"), [0x81, 2, b'h', b'i']);
        assert_eq!(&frame(0x1, &[0; 300])[..4], [0x81, 126, 1, 44]);
        assert_eq!(
            &frame(0x2, &[0; 70_000])[..10],
            [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]
        );
        assert_eq!(close(1001), [0x88, 2, 0x03, 0xE9]);
    }

    /// A client's frame (clients mask theirs), payload under 126 bytes.
    fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut f = vec![0x80 | opcode, 0x80 | payload.len() as u8];
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    // On tokio's paused clock (the connection is an in-memory pipe): the waits below cost no
    // real time, and the 2 s bound on the answer is checked to the millisecond.
    #[tokio::test(start_paused = true)]
    async fn a_stopping_server_closes_with_1001_and_waits_for_the_answer() {
        use tokio::io::AsyncReadExt;
        let (mut client, server) = tokio::io::duplex(4096);
        let (_feed, events) = broadcast::channel(4);
        let (stop, stopping) = watch::channel(false);
        let session = tokio::spawn(run(server, session(events, stopping)));
        stop.send_replace(true);
        assert_eq!(next_close(&mut client).await, close(1001));
        // Still open: closing now would leave the client's answer unread.
        tokio::time::sleep(Duration::from_millis(1_999)).await;
        assert!(!session.is_finished());
        client.write_all(&masked(0x8, &[0x03, 0xE9])).await.unwrap();
        tokio::time::timeout(Duration::from_secs(1), session)
            .await
            .expect("the session ends on the answer")
            .unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "nothing after the close frame: {rest:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_close_without_answer_ends_the_session_after_2_s() {
        use tokio::io::AsyncReadExt;
        let (mut client, server) = tokio::io::duplex(4096);
        let (_feed, events) = broadcast::channel(4);
        let (stop, stopping) = watch::channel(false);
        let session = tokio::spawn(run(server, session(events, stopping)));
        let start = tokio::time::Instant::now();
        stop.send_replace(true);
        assert_eq!(next_close(&mut client).await, close(1001));
        // The client never answers: the server stops waiting and closes.
        session.await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "nothing after the close frame: {rest:?}");
    }

    #[tokio::test]
    async fn client_frames_are_unmasked_and_checked() {
        let read = |bytes: Vec<u8>| async move { read_frame(&mut bytes.as_slice()).await.unwrap() };
        assert_eq!(
            read(masked(0x9, b"abc")).await,
            Incoming::Ping(b"abc".to_vec())
        );
        assert_eq!(read(masked(0x8, &[0x03, 0xE8])).await, Incoming::Close);
        assert_eq!(
            read(masked(0x1, b"hello")).await,
            Incoming::Data(1, true, b"hello".to_vec())
        );
        // Unmasked, a reserved bit, a reserved opcode, a fragmented ping: protocol errors.
        assert_eq!(read(vec![0x81, 0]).await, Incoming::Violation(1002));
        let mut rsv = masked(0x1, b"x");
        rsv[0] |= 0x40;
        assert_eq!(read(rsv).await, Incoming::Violation(1002));
        assert_eq!(read(masked(0x3, b"")).await, Incoming::Violation(1002));
        let mut fragmented = masked(0x9, b"");
        fragmented[0] &= 0x7F;
        assert_eq!(read(fragmented).await, Incoming::Violation(1002));
        // Too big to read.
        assert_eq!(
            read(vec![0x82, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 1]).await,
            Incoming::Violation(1009)
        );
    }
}
