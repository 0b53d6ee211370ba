//! The live feed over WebSocket (RFC 6455), for clients that cannot read Server-Sent Events:
//! `GET /api/v1/realtime/ws?site=…` on HTTP/1.1 with the usual upgrade headers, authorized like
//! `realtime/stream` (a bearer token, or the `?token=` live token a browser can carry, since its
//! WebSocket API sets no headers).
//!
//! # The path of a live event over a WebSocket
//!
//! 1. [`accept_key`] answers the handshake (`101 Switching Protocols`); hyper hands the
//!    connection over once the response is written.
//! 2. [`run`] subscribes to the pipeline's live feed (the same broadcast SSE reads) and sends
//!    each stored event of the site as one text message of JSON, `{"lagged": n}` when this
//!    client fell `n` events behind, and a ping every 30 s so idle proxies keep the connection.
//! 3. It reads what the client sends only to answer pings and to close: a close frame is
//!    answered and ends the session; data messages are ignored; a frame that breaks the
//!    protocol (unmasked, oversized control frame, reserved bits) closes with 1002, a message
//!    over 64 KiB with 1009. At shutdown the server closes with 1001.

use crate::pipeline::LiveEvent;
use base64::Engine;
use sha1::{Digest, Sha1};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, watch};

/// Appended to the client's key before hashing (RFC 6455 §1.3).
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest client frame payload read; clients only need to send control frames.
const MAX_PAYLOAD: u64 = 64 * 1024;

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

/// A frame from the client.
#[derive(Debug, PartialEq)]
enum Incoming {
    Close,
    Ping(Vec<u8>),
    /// Pong or a data frame: nothing to do.
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
        _ => Incoming::Other,
    })
}

/// Serves one upgraded connection until the client closes, the connection breaks or the server
/// stops.
pub async fn run<S>(
    io: S,
    site: String,
    mut feed: broadcast::Receiver<Arc<LiveEvent>>,
    mut stopping: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    // The reader's replies (pongs, the close answer). It holds the only sender, so once it ends
    // (the peer went away) `recv` says so and the session ends too, instead of at the next
    // failed write.
    let (out, mut out_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    let mut reader = tokio::spawn(async move {
        loop {
            let reply = match read_frame(&mut rd).await {
                Ok(Incoming::Close) => close(1000),
                Ok(Incoming::Violation(code)) => close(code),
                Ok(Incoming::Ping(p)) => {
                    if out.send(frame(0xA, &p)).await.is_err() {
                        return;
                    }
                    continue;
                }
                Ok(Incoming::Other) => continue,
                Err(_) => return,
            };
            let _ = out.send(reply).await;
            return;
        }
    });
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
            event = feed.recv() => match event {
                Ok(e) if e.site == site => (frame(0x1, serde_json::to_string(&*e).unwrap_or_default().as_bytes()), false),
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(n)) => (frame(0x1, format!("{{\"lagged\":{n}}}").as_bytes()), false),
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
    let _ = wr.shutdown().await;
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let session = tokio::spawn(run(server, "demo".into(), events, stopping));
        stop.send_replace(true);
        let mut first = [0; 4];
        client.read_exact(&mut first).await.unwrap();
        assert_eq!(first, close(1001)[..]);
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
        let session = tokio::spawn(run(server, "demo".into(), events, stopping));
        let start = tokio::time::Instant::now();
        stop.send_replace(true);
        let mut first = [0; 4];
        client.read_exact(&mut first).await.unwrap();
        assert_eq!(first, close(1001)[..]);
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
        assert_eq!(read(masked(0x1, b"hello")).await, Incoming::Other);
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
