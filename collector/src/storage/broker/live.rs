//! Scale-out mode's live feed: behind a load balancer each collector stores a share of the
//! events, yet a dashboard connected to any of them must see them all.
//!
//! # The path of a live event between collectors
//! 1. A collector stores a request's rows (`pipeline.rs`), hands their live events to its own
//!    clients at once, and [`LiveBus::publish`]es them as one JSON array to `live_subject`:
//!    core NATS, no stream, no acknowledgement. A live view is best effort; the events table
//!    is the record.
//! 2. Every collector's [`LiveBus::subscribe`] reads that subject and hands what it gets to its
//!    own clients. The connection is made with `no_echo`, so the NATS server never delivers
//!    a collector's own messages back to it: its clients saw those already, and see each
//!    event once.

use super::BrokerConfig;
use anyhow::Context as _;
use bytes::Bytes;
use std::time::Duration;

/// How long a stored request waits to queue its live events.
const PUBLISH_WAIT: Duration = Duration::from_millis(50);

/// Publishes and receives the collectors' live events; cheap to share.
#[derive(Clone)]
pub struct LiveBus {
    client: async_nats::Client,
    subject: String,
}

impl LiveBus {
    /// Connects to the broker's NATS (without echo); none when `live_subject` is empty.
    pub async fn connect(cfg: &BrokerConfig) -> anyhow::Result<Option<LiveBus>> {
        if !cfg.enabled() || cfg.live_subject.is_empty() {
            return Ok(None);
        }
        let addrs = cfg
            .urls()
            .map(|u| u.parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()?;
        let client = async_nats::ConnectOptions::new()
            .name("pathlight-live")
            .no_echo()
            .connection_timeout(Duration::from_secs(5))
            .connect(addrs)
            .await
            .with_context(|| format!("connecting to NATS at {} for the live feed", cfg.url))?;
        Ok(Some(LiveBus {
            client,
            subject: cfg.live_subject.clone(),
        }))
    }

    /// Sends `payload` (a JSON array of live events) to the other collectors. Only queued
    /// here: the client's writer sends it, and a lost live message is not an ingest error.
    /// The queue is bounded and fills while NATS is away; the request that stored the events
    /// waits [`PUBLISH_WAIT`] at most for room, then the live message is dropped.
    pub async fn publish(&self, payload: Vec<u8>) {
        let publish = self
            .client
            .publish(self.subject.clone(), Bytes::from(payload));
        match tokio::time::timeout(PUBLISH_WAIT, publish).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "publishing live events failed"),
            Err(_) => tracing::debug!("publishing live events timed out; dropped"),
        }
    }

    /// The other collectors' live messages.
    pub async fn subscribe(&self) -> anyhow::Result<async_nats::Subscriber> {
        self.client
            .subscribe(self.subject.clone())
            .await
            .map_err(|e| anyhow::anyhow!(e))
            .context("subscribing to the live subject")
    }
}
