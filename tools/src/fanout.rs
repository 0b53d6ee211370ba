//! `pathlight-bench ws-fanout`: how long a stored event takes to reach every viewer of a live
//! feed (`realtime/ws`, protocol v1), with many viewers open at once.
//!
//! # The path of a measured event
//! `clients` WebSocket sessions of the site open (each waits for its snapshot). Then one
//! batch of one custom event named `fanout-<i>` is posted every `interval_ms` over one
//! keep-alive HTTP/1.1 connection (to `post`, which in scale-out mode may be another
//! collector than the viewers'). Each session notes when each event reaches it. For every
//! (event, session) pair the report gives
//! - *end to end*: from the post's first byte to the event's arrival: ingest, the
//!   acknowledgement (ClickHouse's insert, the spool's fsync or the stream's ack), the fan-out
//!   and the client's read;
//! - *fan-out*: from the event's first arrival at any session to its arrival at this one: what
//!   serving many sessions adds.
//!
//! Events that never arrived and events that arrived twice are counted too.

use crate::ws;
use anyhow::{Context, bail};
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Clone, Debug)]
pub struct FanoutOptions {
    /// The collector the viewers connect to, `host:port`.
    pub viewers: String,
    /// The collector events are posted to, `host:port`.
    pub post: String,
    /// Site.
    pub site: String,
    /// The site's API token.
    pub token: String,
    /// Viewers.
    pub clients: usize,
    /// Events posted, one per batch.
    pub events: usize,
    /// Between posts, ms.
    pub interval_ms: u64,
}

/// What was measured, ms.
#[derive(Debug)]
pub struct FanoutReport {
    /// Post → arrival, per (event, viewer), sorted.
    pub end_to_end: Vec<f64>,
    /// First arrival of the event anywhere → arrival, per (event, viewer), sorted.
    pub fan_out: Vec<f64>,
    /// (event, viewer) pairs that never arrived.
    pub missing: usize,
    /// Arrivals of an event a viewer had already had.
    pub duplicates: usize,
}

/// The `q` quantile of sorted `v`.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

impl FanoutReport {
    /// A Markdown table.
    pub fn table(&self, opts: &FanoutOptions) -> String {
        let row = |name: &str, v: &[f64]| {
            format!(
                "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
                v.len(),
                quantile(v, 0.5),
                quantile(v, 0.9),
                quantile(v, 0.99),
                quantile(v, 1.0)
            )
        };
        format!(
            "{} viewers, {} events (1 per batch, every {} ms); missing {}, duplicates {}\n\n\
             | latency, ms | arrivals | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|\n{}{}",
            opts.clients,
            opts.events,
            opts.interval_ms,
            self.missing,
            self.duplicates,
            row("end to end (post → viewer)", &self.end_to_end),
            row("fan-out (first viewer → viewer)", &self.fan_out),
        )
    }
}

/// Arrivals: (event, viewer) → times it arrived.
type Arrivals = Arc<Mutex<HashMap<(usize, usize), Vec<Instant>>>>;

/// Runs the measurement.
pub async fn run(opts: FanoutOptions) -> anyhow::Result<FanoutReport> {
    let path = format!("/api/v1/realtime/ws?site={}", opts.site);
    let arrivals: Arrivals = Arc::default();
    let mut viewers = Vec::new();
    for v in 0..opts.clients {
        let mut c = ws::Client::connect_with(&opts.viewers, &path, Some(&opts.token)).await?;
        c.next_of("snapshot")
            .await
            .context("waiting for the snapshot")?;
        let arrivals = arrivals.clone();
        viewers.push(tokio::spawn(async move {
            loop {
                let m = match c.recv().await {
                    Ok(ws::Message::Text(t)) => t,
                    _ => return,
                };
                let at = Instant::now();
                let Ok(m) = serde_json::from_str::<serde_json::Value>(&m) else {
                    continue;
                };
                let event = m["name"]
                    .as_str()
                    .and_then(|n| n.strip_prefix("fanout-"))
                    .and_then(|i| i.parse::<usize>().ok());
                if let (Some("event"), Some(i)) = (m["type"].as_str(), event) {
                    let mut a = arrivals.lock().unwrap();
                    a.entry((i, v)).or_default().push(at);
                }
            }
        }));
    }
    let tcp = tokio::net::TcpStream::connect(&opts.post).await?;
    tcp.set_nodelay(true)?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let run_id = std::process::id() as u64 ^ now_ms();
    let mut sent = Vec::with_capacity(opts.events);
    for i in 0..opts.events {
        let body = batch(&opts.site, run_id, i);
        let req = http::Request::post(format!("http://{}/v1/batch", opts.post))
            .header("content-type", "application/cbor")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))?;
        let at = Instant::now();
        let resp = send.send_request(req).await?;
        let status = resp.status();
        resp.into_body().collect().await?;
        if status != 204 {
            bail!("event {i} was answered {status}");
        }
        sent.push(at);
        tokio::time::sleep(Duration::from_millis(opts.interval_ms)).await;
    }
    // The last events' arrivals, or as many as come within 10 s.
    let expected = opts.events * opts.clients;
    let deadline = Instant::now() + Duration::from_secs(10);
    while arrivals.lock().unwrap().len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for v in viewers {
        v.abort();
    }
    let arrivals = arrivals.lock().unwrap();
    let mut first = vec![None::<Instant>; opts.events];
    for ((i, _), at) in arrivals.iter() {
        let f = &mut first[*i];
        *f = Some(f.map_or(at[0], |f| f.min(at[0])));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (mut end_to_end, mut fan_out) = (Vec::new(), Vec::new());
    let mut duplicates = 0;
    for ((i, _), at) in arrivals.iter() {
        end_to_end.push(ms(at[0] - sent[*i]));
        fan_out.push(ms(at[0] - first[*i].unwrap_or(at[0])));
        duplicates += at.len() - 1;
    }
    end_to_end.sort_by(f64::total_cmp);
    fan_out.sort_by(f64::total_cmp);
    Ok(FanoutReport {
        missing: expected - arrivals.len(),
        end_to_end,
        fan_out,
        duplicates,
    })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One batch of one custom event, `fanout-<i>`, with ids of this run and times of now.
fn batch(site: &str, run: u64, i: usize) -> Vec<u8> {
    let mut b = pathlight_wire::sample::typical_batch();
    let now = now_ms() as i64;
    let mut e = b
        .events
        .iter()
        .find(|e| matches!(e.kind, pathlight_wire::EventKind::Custom { .. }))
        .cloned()
        .expect("the sample batch has a custom event");
    e.kind = pathlight_wire::EventKind::Custom {
        name: format!("fanout-{i}"),
    };
    e.timestamp = now;
    e.id.0[..8].copy_from_slice(&run.to_le_bytes());
    e.id.0[8..].copy_from_slice(&(i as u64).to_le_bytes());
    b.batch_id = e.id;
    b.batch_id.0[0] ^= 0xff;
    b.site_id = site.into();
    b.sent_at = now;
    b.events = vec![e];
    pathlight_wire::cbor::encode(&b)
}
