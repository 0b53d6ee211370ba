//! Sending generated traffic live: to a collector over HTTP, or through a pipeline in this
//! process (to scale-out mode's stream), with times moved to now.

use super::Visit;
use pathlight_wire::cbor;
use std::collections::BTreeMap;

/// Live sending: how fast, for how long.
pub struct SendOptions {
    /// Where the batches go.
    pub to: Destination,
    /// Events per second at most; 0: as fast as the collector answers.
    pub rate: u64,
    /// Stop after this long, whatever is left.
    pub duration: std::time::Duration,
}

/// Where live batches go.
#[derive(Clone)]
pub enum Destination {
    /// A collector's batch endpoint (`http://…/v1/batch`).
    Collector(String),
    /// A collector pipeline in this process; with `[broker]` set it publishes to JetStream.
    Pipeline(std::sync::Arc<crate::pipeline::Pipeline>),
    /// The broker's input stream, as an outside producer publishes: each batch in the public
    /// JSON form to `<input_subject>.<site>`, for the loaders to run through the stages.
    Input(
        Box<(
            async_nats::jetstream::Context,
            crate::storage::broker::BrokerConfig,
        )>,
    ),
}

/// What a live run did.
#[derive(Debug, Default)]
pub struct SendReport {
    /// Events in batches answered 2xx.
    pub events: u64,
    /// Batches sent.
    pub batches: u64,
    /// Batches answered otherwise, by status (0: no answer).
    pub failed: BTreeMap<u16, u64>,
}

/// Sends each visit as a CBOR batch to a collector, with its times moved to now (a session's
/// page views follow each other at once rather than minutes apart), its address in
/// `X-Forwarded-For` and its country in `CF-IPCountry`: a collector configured with
/// `client_ip_header`/`country_header` sees many visitors, one without them sees one.
pub async fn send(
    visits: impl Iterator<Item = Visit>,
    site: &str,
    opts: &SendOptions,
) -> anyhow::Result<SendReport> {
    let client = reqwest::Client::new();
    let start = std::time::Instant::now();
    let mut report = SendReport::default();
    let mut sent_events = 0u64;
    for visit in visits {
        if start.elapsed() >= opts.duration {
            break;
        }
        if opts.rate > 0 {
            // Event n is due at start + n / rate.
            let due =
                start + std::time::Duration::from_secs_f64(sent_events as f64 / opts.rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        let now = crate::dates::now_ms();
        let last = visit.events.last().map_or(now, |e| e.timestamp);
        let n = visit.events.len() as u64;
        let (ip, country) = (visit.ip, visit.country);
        let mut visit = visit;
        for e in &mut visit.events {
            // Keep the gaps inside the page view, capped so the first event is at most a
            // minute old.
            e.timestamp = now - (last - e.timestamp).min(60_000);
        }
        let batch = visit.batch(site, now);
        let user_agent = batch.events.first().and_then(|e| e.user_agent.clone());
        let body = cbor::encode(&batch);
        let status = match &opts.to {
            Destination::Collector(url) => client
                .post(url)
                .header("content-type", "application/cbor")
                .header("user-agent", user_agent.unwrap_or_default())
                .header("x-forwarded-for", ip.to_string())
                .header("cf-ipcountry", country)
                .body(body)
                .send()
                .await
                .map_or(0, |r| r.status().as_u16()),
            Destination::Pipeline(pipeline) => pipeline
                .ingest(crate::pipeline::IngestRequest {
                    body: &body,
                    content_type: Some("application/cbor"),
                    ip: Some(ip),
                    user_agent: user_agent.as_deref(),
                    country: Some(country),
                    received_at: now,
                    delivery: Default::default(),
                    ..Default::default()
                })
                .await
                .map_or_else(|e| e.status().as_u16(), |_| 204),
            Destination::Input(input) => {
                let (js, cfg) = &**input;
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Content-Type", "application/json");
                headers.insert("Pathlight-Client-Ip", ip.to_string().as_str());
                // A retried publish of the same batch is stored once by the stream.
                headers.insert(
                    "Nats-Msg-Id",
                    crate::hex::encode(&batch.batch_id.0).as_str(),
                );
                if let Some(ua) = &user_agent {
                    headers.insert("User-Agent", ua.as_str());
                }
                let publish = js
                    .publish_with_headers(
                        cfg.input_of(site),
                        headers,
                        pathlight_wire::json::encode(&batch).into(),
                    )
                    .await;
                match publish {
                    Ok(ack) => ack.await.map_or(503, |_| 204),
                    Err(_) => 503,
                }
            }
        };
        report.batches += 1;
        sent_events += n;
        match status {
            s if (200..300).contains(&s) => report.events += n,
            s => *report.failed.entry(s).or_default() += 1,
        }
    }
    Ok(report)
}
