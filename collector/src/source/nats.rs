//! The input stream's consumer: fetches what producers published, runs each message through the
//! pipeline as one batch, and acks it, dead-letters it or leaves it for redelivery by the
//! answer (see the module above for the path of an event).

use crate::dates::now_ms;
use crate::metrics::OutcomeLabel;
use crate::pipeline::{IngestRequest, Pipeline};
use crate::storage::broker::BrokerConfig;
use crate::storage::clickhouse::{RetryConfig, retry};
use async_nats::jetstream::{self, AckKind, Message, message::PublishMessage};
use futures_util::StreamExt;
use pathlight_ingest::Delivery;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::watch;

/// What a source did, for the loader's exit line and the tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceReport {
    /// Messages stored whole and acked.
    pub stored: u64,
    /// Messages moved to the dead subject: refused whole, or with some events refused (the
    /// others stored).
    pub dead: u64,
    /// Times a message was left for redelivery because storage was busy or away.
    pub retried: u64,
}

/// How long a message waits before it is offered again when storage could not take it.
const REDELIVER_AFTER: RetryConfig = RetryConfig {
    initial_backoff_ms: 1_000,
    max_backoff_ms: 30_000,
};

/// Consumes the input stream until `stopping` turns true, then finishes the messages in hand.
/// `exit_after_stored` is for crash tests: the process exits once that many messages were
/// stored, before their acks, as a loader killed at the worst moment would.
pub async fn run(
    pipeline: Arc<Pipeline>,
    cfg: BrokerConfig,
    mut stopping: watch::Receiver<bool>,
    exit_after_stored: Option<u64>,
) -> anyhow::Result<SourceReport> {
    let (js, stream) = cfg.connect_input("pathlight-source").await?;
    let consumer = cfg
        .pull_consumer(&stream, &cfg.input_consumer, cfg.input_of("*"))
        .await?;
    let counts = Counts::default();
    let mut failed = 0;
    while !*stopping.borrow() {
        let fetched = tokio::select! {
            r = cfg.fetch(&consumer) => r,
            _ = stopping.changed() => break,
        };
        match fetched {
            Ok(messages) => {
                failed = 0;
                // All at once: the pipeline gathers their rows into its next store.
                futures_util::stream::iter(messages)
                    .for_each_concurrent(None, |m| {
                        handle(&pipeline, &js, &cfg, m, &counts, exit_after_stored)
                    })
                    .await;
            }
            Err(e) => {
                failed += 1;
                tracing::warn!(error = %e, failed, "fetching from the input stream failed");
                tokio::select! {
                    () = tokio::time::sleep(retry::backoff(&REDELIVER_AFTER, failed)) => {}
                    _ = stopping.changed() => break,
                }
            }
        }
    }
    Ok(counts.report())
}

#[derive(Default)]
struct Counts {
    stored: AtomicU64,
    dead: AtomicU64,
    retried: AtomicU64,
}

impl Counts {
    fn report(&self) -> SourceReport {
        SourceReport {
            stored: self.stored.load(Ordering::Relaxed),
            dead: self.dead.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
        }
    }
}

/// One message through the pipeline, and what becomes of it.
async fn handle(
    pipeline: &Pipeline,
    js: &jetstream::Context,
    cfg: &BrokerConfig,
    m: Message,
    counts: &Counts,
    exit_after_stored: Option<u64>,
) {
    let site = m
        .subject
        .strip_prefix(cfg.input_subject.as_str())
        .and_then(|s| s.strip_prefix('.'))
        .unwrap_or_default()
        .to_owned();
    let header = |name: &str| {
        m.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    let delivered = m.info().map_or(1, |i| i.delivered);
    let (content_type, content_encoding, user_agent, ip) = (
        header("Content-Type"),
        header("Content-Encoding"),
        header("User-Agent"),
        header("Pathlight-Client-Ip"),
    );
    let req = IngestRequest {
        body: &m.payload,
        // Producers publish text: JSON unless they say otherwise.
        content_type: Some(content_type.as_deref().unwrap_or("application/json")),
        // A producer may publish gzip too: by its first bytes, or by its header.
        content_encoding: content_encoding.as_deref(),
        site: Some(&site),
        origin: None,
        ip: ip.and_then(|v| v.trim().parse().ok()),
        user_agent: user_agent.as_deref(),
        country: None,
        received_at: now_ms(),
        // Delivered again: its loader may have stored it and died before the ack. Checked
        // against what is stored, as a tracker's resent batch is, but not reported as a lost
        // send: a report row would change the rows, and their message id with them, so the
        // rows' stream could no longer drop the copy as a duplicate (issue 30's crash test).
        delivery: Delivery {
            redelivered: delivered > 1,
            ..Delivery::default()
        },
        key: None,
    };
    let outcome = match pipeline.ingest(req).await {
        Ok(ack) if ack.rejected.is_empty() => {
            let stored = counts.stored.fetch_add(1, Ordering::Relaxed) + 1;
            if exit_after_stored == Some(stored) {
                tracing::warn!(stored, "exiting before the ack, as asked (crash test)");
                std::process::exit(86);
            }
            let _ = m.ack().await;
            "stored"
        }
        Ok(ack) => {
            let reasons = serde_json::to_string(&ack.rejected).unwrap_or_default();
            dead(js, cfg, &site, &m, &reasons, counts).await;
            "partly_refused"
        }
        Err(e) if e.status().is_server_error() => {
            // Storage busy or away: offered again later, to this loader or another.
            let wait = retry::backoff(&REDELIVER_AFTER, u32::try_from(delivered).unwrap_or(1));
            let _ = m.ack_with(AckKind::Nak(Some(wait))).await;
            counts.retried.fetch_add(1, Ordering::Relaxed);
            "retried"
        }
        Err(e) => {
            let reason = serde_json::to_string(&e.body()).unwrap_or_default();
            dead(js, cfg, &site, &m, &reason, counts).await;
            "refused"
        }
    };
    pipeline
        .metrics()
        .source_messages
        .get_or_create(&OutcomeLabel { outcome })
        .inc();
}

/// Moves `m` to the site's dead subject with `reason`, then acks it. Should the publish fail,
/// the message stays unacked and comes again: never dropped without a word.
async fn dead(
    js: &jetstream::Context,
    cfg: &BrokerConfig,
    site: &str,
    m: &Message,
    reason: &str,
    counts: &Counts,
) {
    tracing::warn!(site, reason, "moving an input message to the dead subject");
    let publish = PublishMessage::build()
        .payload(m.payload.clone())
        .header("Pathlight-Refused", reason.replace(['\r', '\n'], " "));
    let stored = match js.send_publish(cfg.input_dead_of(site), publish).await {
        Ok(ack) => ack.await.is_ok(),
        Err(_) => false,
    };
    if stored && m.ack().await.is_ok() {
        counts.dead.fetch_add(1, Ordering::Relaxed);
    }
}
