//! A WebSocket client (RFC 6455) of the collector's live feed, `GET /api/v1/realtime/ws`: the
//! client of the collector's integration tests (`tests/it/websocket.rs`) and of
//! [`crate::fanout`]. Small on purpose: one connection, text messages, the handshake's `101`
//! checked; it answers the server's pings and masks what it sends, as a browser does.

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A message from the server.
#[derive(Debug, PartialEq)]
pub enum Message {
    /// A text message.
    Text(String),
    /// The server's close frame: code and reason.
    Close(u16, String),
}

/// One connection to a live feed.
pub struct Client {
    stream: BufReader<TcpStream>,
    /// The next mask: different for each frame, as RFC 6455 §5.3 asks.
    mask: u32,
}

impl Client {
    /// Opens `ws_path` (`/api/v1/realtime/ws?site=…&token=…`) on the collector at `addr`
    /// (`127.0.0.1:8080`): the handshake must be answered `101`.
    pub async fn connect(addr: &str, ws_path: &str) -> anyhow::Result<Client> {
        Self::connect_with(addr, ws_path, None).await
    }

    /// [`Client::connect`] with a bearer token in `Authorization` (a browser can send none,
    /// and uses a `?token=` live token instead).
    pub async fn connect_with(
        addr: &str,
        ws_path: &str,
        bearer: Option<&str>,
    ) -> anyhow::Result<Client> {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        tcp.set_nodelay(true)?;
        let mut stream = BufReader::new(tcp);
        let request = format!(
            "GET {ws_path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{}\r\n",
            bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"))
        );
        stream.get_mut().write_all(request.as_bytes()).await?;
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(
                stream
                    .read_u8()
                    .await
                    .context("reading the handshake's answer")?,
            );
            if head.len() > 16 * 1024 {
                bail!("the handshake's answer has no end");
            }
        }
        let head = String::from_utf8_lossy(&head);
        if !head.starts_with("HTTP/1.1 101") {
            bail!(
                "the handshake was answered {}",
                head.lines().next().unwrap_or("")
            );
        }
        // RFC 6455's example key's accept value.
        if !head
            .to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=")
        {
            bail!("the handshake's Sec-WebSocket-Accept is wrong: {head}");
        }
        Ok(Client {
            stream,
            mask: 0x9e37_79b9,
        })
    }

    /// Sends a frame of `opcode`, masked.
    async fn send(&mut self, opcode: u8, payload: &[u8]) -> anyhow::Result<()> {
        self.mask = self.mask.rotate_left(5).wrapping_mul(0x0100_0193) ^ 0x5bd1_e995;
        let mask = self.mask.to_be_bytes();
        let mut f = vec![0x80 | opcode];
        match payload.len() {
            n @ 0..=125 => f.push(0x80 | n as u8),
            n @ 126..=0xFFFF => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.get_mut().write_all(&f).await?;
        Ok(())
    }

    /// Sends a text message.
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.send(0x1, text.as_bytes()).await
    }

    /// Sends a close frame with `code`.
    pub async fn close(&mut self, code: u16) -> anyhow::Result<()> {
        self.send(0x8, &code.to_be_bytes()).await
    }

    /// The next text message or the close frame; answers pings on the way. A server's frame
    /// must be unmasked and final (the collector never fragments).
    pub async fn recv(&mut self) -> anyhow::Result<Message> {
        loop {
            let b0 = self.stream.read_u8().await.context("reading a frame")?;
            let b1 = self.stream.read_u8().await?;
            if b1 & 0x80 != 0 || b0 & 0x80 == 0 {
                bail!("a masked or fragmented frame from the server: {b0:#x} {b1:#x}");
            }
            let len = match b1 & 0x7F {
                126 => u64::from(self.stream.read_u16().await?),
                127 => self.stream.read_u64().await?,
                n => u64::from(n),
            };
            let mut payload = vec![0; usize::try_from(len)?];
            self.stream.read_exact(&mut payload).await?;
            match b0 & 0x0F {
                0x1 => return Ok(Message::Text(String::from_utf8(payload)?)),
                0x8 => {
                    let code = match payload.get(..2) {
                        Some(c) => u16::from_be_bytes([c[0], c[1]]),
                        None => 1005,
                    };
                    let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or(&[]));
                    return Ok(Message::Close(code, reason.into_owned()));
                }
                0x9 => self.send(0xA, &payload).await?,
                0xA => {}
                op => bail!("an unexpected frame from the server, opcode {op}"),
            }
        }
    }

    /// The next text message, as JSON; an error at a close frame.
    pub async fn recv_json(&mut self) -> anyhow::Result<serde_json::Value> {
        match self.recv().await? {
            Message::Text(t) => Ok(serde_json::from_str(&t)?),
            Message::Close(code, reason) => bail!("closed by the server: {code} {reason}"),
        }
    }

    /// The next message whose `type` is `kind`, skipping others (heartbeats, events).
    pub async fn next_of(&mut self, kind: &str) -> anyhow::Result<serde_json::Value> {
        loop {
            let m = self.recv_json().await?;
            if m["type"] == kind {
                return Ok(m);
            }
        }
    }
}
