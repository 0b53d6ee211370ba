//! Scale-out mode: collectors hand validated, enriched rows to a NATS JetStream stream instead
//! of writing ClickHouse themselves, and `pathlight load` consumers write them to ClickHouse.
//!
//! # The path of an event in scale-out mode
//!
//! 1. A collector runs the usual stages (`pipeline.rs`) and encodes the request's rows as
//!    RowBinary, exactly as it would insert them.
//! 2. [`Publisher::publish`] sends them as one message to `subject`, with a `Nats-Msg-Id`
//!    derived from the rows' event ids, and waits for JetStream's acknowledgement: the stream
//!    has stored the message (on `replicas` servers). Only then does the sender get its `204`.
//!    A sender's retry of the same batch carries the same ids, so the stream drops it as a
//!    duplicate within `duplicate_window_secs`.
//! 3. Loaders ([`load::run`], `pathlight load`, as many as wanted) share one durable pull
//!    consumer: JetStream hands each message to one of them. A loader fetches up to
//!    `batch_messages` messages, inserts all their rows into ClickHouse as one insert, and acks
//!    the messages only after the insert succeeded.
//! 4. A loader that dies between its insert and its acks leaves messages JetStream redelivers
//!    (after `ack_wait_secs`) to another loader. A redelivered message's rows are checked
//!    against the event ids ClickHouse already has and only the missing ones inserted, as the
//!    spool does after a crash: the events table would collapse duplicates at merge time, but
//!    the marts' materialized views count every insert.
//!
//! The stream has work-queue retention: a message is deleted once acked. Rows ClickHouse
//! refuses for good are moved to `<subject>.dead` in the same stream, so they neither block
//! the queue nor vanish; like everything in the stream they are kept `max_age_days` at most.

mod live;
pub mod load;
mod publish;

pub use live::LiveBus;
pub use publish::Publisher;

/// The header naming a message's row layout ([`pathlight_ingest::Layout`]'s code), so a
/// loader of a later version reads rows published before a column was added.
pub const LAYOUT_HEADER: &str = pathlight_ingest::LAYOUT_HEADER;

use anyhow::{Context as _, bail};
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::{self, Message, stream};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[broker]`: the JetStream stream between collectors and loaders. Off while `url` is empty.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// NATS server URLs, comma-separated (`nats://10.0.0.1:4222,nats://10.0.0.2:4222`): any
    /// server of the cluster will do, the client learns the others. Empty: scale-out mode is
    /// off and the collector writes ClickHouse itself.
    pub url: String,
    /// JetStream stream name. Created on first use with the settings below; an existing
    /// stream is used as it is.
    pub stream: String,
    /// Subject rows are published to; refused rows go to `<subject>.dead`.
    pub subject: String,
    /// Copies of each message in a JetStream cluster (1, 3 or 5). A publish is acknowledged
    /// once this many servers stored it, so with 3 a server's disk can be lost.
    pub replicas: usize,
    /// The stream's size cap, bytes; 0: none of its own, the server's JetStream store limit
    /// (`max_file_store`, by default 75 % of the disk free when it started) bounds it. When
    /// loaders fall this far behind, publishes are refused (collectors answer 503) rather than
    /// old events dropped. A cap the server cannot reserve stops the collector at start with
    /// an error naming this key, rather than failing publishes later.
    pub max_bytes: i64,
    /// Publishes of the same rows (a sender's retry) within this window are stored once, s.
    pub duplicate_window_secs: u64,
    /// How long a collector waits for the stream to acknowledge a publish, ms; then 503.
    pub publish_timeout_ms: u64,
    /// Durable consumer the loaders share.
    pub consumer: String,
    /// A loader inserts up to this many messages' rows at once.
    pub batch_messages: usize,
    /// A loader waits at most this long to fill a batch, ms: the freshness cost of batching.
    pub batch_wait_ms: u64,
    /// A message not acked this long after delivery goes to another loader, s. Loaders signal
    /// progress while an insert is retried, so a slow ClickHouse does not cause redelivery.
    pub ack_wait_secs: u64,
    /// Messages are dropped this many days after they were published, loaded or not: the
    /// bound on how long loaders may be away, and how long refused rows are kept in
    /// `<subject>.dead` for a look.
    pub max_age_days: u64,
    /// Where outside producers publish events, one subject per site: `<input_subject>.<site>`
    /// (`pathlight.in.shop`), in the public JSON batch form or the simple array form (or CBOR
    /// with `Content-Type: application/cbor`). Loaders run them through the collector's stages
    /// as HTTP batches are run; a message they refuse goes to `<input_subject>.dead.<site>`
    /// with its reason. Empty: loaders read no input. NATS's own publish permissions say who
    /// may write which site; no ingest key is asked.
    pub input_subject: String,
    /// Where collectors pass each other the events they store, for their live feeds
    /// (`realtime/ws`, `realtime/stream`): core NATS, each collector publishing and
    /// subscribing, so a dashboard on any collector sees every collector's events, once.
    /// Empty: each collector's live feed has its own events only.
    pub live_subject: String,
    /// The JetStream stream holding the input subjects (apart from the rows' stream, so that
    /// each has one consumer per subject, as work-queue streams require).
    pub input_stream: String,
    /// Durable consumer of the input the loaders share.
    pub input_consumer: String,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            url: String::new(),
            stream: "PATHLIGHT".into(),
            subject: "pathlight.rows".into(),
            replicas: 1,
            max_bytes: 0,
            duplicate_window_secs: 120,
            publish_timeout_ms: 5_000,
            consumer: "loaders".into(),
            batch_messages: 1_000,
            batch_wait_ms: 500,
            ack_wait_secs: 60,
            max_age_days: 7,
            input_subject: "pathlight.in".into(),
            live_subject: "pathlight.live".into(),
            input_stream: "PATHLIGHT_IN".into(),
            input_consumer: "sources".into(),
        }
    }
}

impl BrokerConfig {
    /// Whether scale-out mode is on.
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }

    /// Checks the values.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.enabled() {
            return Ok(());
        }
        for url in self.urls() {
            url.parse::<async_nats::ServerAddr>()
                .with_context(|| format!("broker.url: {url:?} is not a NATS URL"))?;
        }
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if ![
            &self.stream,
            &self.consumer,
            &self.input_stream,
            &self.input_consumer,
        ]
        .iter()
        .all(|n| name_ok(n))
        {
            bail!(
                "broker.stream, consumer, input_stream and input_consumer must be letters, digits, _ and -"
            );
        }
        if self.input_subject.contains(['*', '>', ' ']) {
            bail!("broker.input_subject must be a plain subject, without wildcards");
        }
        if self.live_subject.contains(['*', '>', ' ']) {
            bail!("broker.live_subject must be a plain subject, without wildcards");
        }
        // A stream's subject would store every live message and hand it to the loaders.
        let streamed = self.live_subject == self.subject
            || self.live_subject == self.dead_subject()
            || self
                .live_subject
                .starts_with(&format!("{}.", self.input_subject));
        if !self.live_subject.is_empty() && streamed {
            bail!("broker.live_subject must be none of the streams' subjects");
        }
        if self.subject.is_empty() || self.subject.contains(['*', '>', ' ']) {
            bail!("broker.subject must be a plain subject, without wildcards");
        }
        if ![1, 3, 5].contains(&self.replicas) {
            bail!("broker.replicas must be 1, 3 or 5");
        }
        if self.max_bytes < 0 {
            bail!("broker.max_bytes must be >= 0 (0: the server's store limit)");
        }
        if self.batch_messages == 0 || self.ack_wait_secs == 0 || self.publish_timeout_ms == 0 {
            bail!("broker.batch_messages, ack_wait_secs and publish_timeout_ms must be > 0");
        }
        Ok(())
    }

    fn urls(&self) -> impl Iterator<Item = &str> {
        self.url.split(',').map(str::trim).filter(|s| !s.is_empty())
    }

    fn dead_subject(&self) -> String {
        format!("{}.dead", self.subject)
    }

    /// The input subject of `site`.
    pub fn input_of(&self, site: &str) -> String {
        format!("{}.{site}", self.input_subject)
    }

    /// Where a refused input message of `site` goes.
    pub fn input_dead_of(&self, site: &str) -> String {
        format!("{}.dead.{site}", self.input_subject)
    }

    /// Connects and makes sure the input stream exists: every site's input subject, and their
    /// dead letters (one token more, so the consumer's `<input_subject>.*` never reads them).
    pub async fn connect_input(
        &self,
        name: &str,
    ) -> anyhow::Result<(jetstream::Context, stream::Stream)> {
        let subjects = vec![self.input_of("*"), self.input_dead_of("*")];
        self.open(name, &self.input_stream, subjects).await
    }

    /// The durable pull consumer `name` of `stream` reading `filter`, which loaders share:
    /// JetStream gives each message to one of them, and to another after `ack_wait_secs`
    /// without an ack.
    pub async fn pull_consumer(
        &self,
        stream: &stream::Stream,
        name: &str,
        filter: String,
    ) -> anyhow::Result<PullConsumer> {
        stream
            .get_or_create_consumer(
                name,
                pull::Config {
                    durable_name: Some(name.to_owned()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(self.ack_wait_secs),
                    filter_subject: filter,
                    // Every loader may hold a few batches unacked; the default (1 000) would let
                    // one loader's batch starve the others.
                    max_ack_pending: (self.batch_messages as i64).saturating_mul(64),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!(e))
            .with_context(|| format!("creating or binding consumer {name}"))
    }

    /// Up to `batch_messages` messages of `consumer`, waiting at most `batch_wait_ms`.
    pub async fn fetch(&self, consumer: &PullConsumer) -> anyhow::Result<Vec<Message>> {
        let mut batch = consumer
            .batch()
            .max_messages(self.batch_messages)
            .expires(Duration::from_millis(self.batch_wait_ms.max(100)))
            .messages()
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        let mut out = Vec::new();
        while let Some(m) = batch.next().await {
            match m {
                Ok(m) => out.push(m),
                // Keep what arrived; the rest comes again.
                Err(e) if !out.is_empty() => {
                    tracing::warn!(error = %e, "a fetch ended early");
                    break;
                }
                Err(e) => return Err(anyhow::anyhow!(e)),
            }
        }
        Ok(out)
    }

    /// A JetStream context on a new connection named `name`.
    async fn context(&self, name: &str) -> anyhow::Result<jetstream::Context> {
        let addrs = self
            .urls()
            .map(|u| u.parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()?;
        let client = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_secs(5))
            .connect(addrs)
            .await
            .with_context(|| format!("connecting to NATS at {}", self.url))?;
        Ok(jetstream::ContextBuilder::new()
            .timeout(Duration::from_millis(self.publish_timeout_ms))
            // Many requests publish at once; each waits for its own acknowledgement.
            .max_ack_inflight(16_384)
            .backpressure_on_inflight(true)
            .build(client))
    }

    /// Connects and makes sure the rows' stream exists.
    async fn connect(&self, name: &str) -> anyhow::Result<(jetstream::Context, stream::Stream)> {
        let subjects = vec![self.subject.clone(), self.dead_subject()];
        self.open(name, &self.stream, subjects).await
    }

    /// Connects as `name` and makes sure the work-queue stream `stream` of `subjects` exists,
    /// with the settings above.
    async fn open(
        &self,
        name: &str,
        stream: &str,
        subjects: Vec<String>,
    ) -> anyhow::Result<(jetstream::Context, stream::Stream)> {
        let js = self.context(name).await?;
        let created = js
            .get_or_create_stream(stream::Config {
                name: stream.to_owned(),
                subjects,
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                num_replicas: self.replicas,
                max_bytes: self.max_bytes,
                discard: stream::DiscardPolicy::New,
                duplicate_window: Duration::from_secs(self.duplicate_window_secs),
                max_age: Duration::from_secs(self.max_age_days * 86_400),
                ..Default::default()
            })
            .await
            .map_err(|e| {
                // The cap is a reservation the server checks against its store limit.
                let too_big = matches!(e.kind(), jetstream::context::CreateStreamErrorKind::JetStream(j)
                    if j.error_code() == jetstream::ErrorCode::STORAGE_RESOURCES_EXCEEDED);
                let e = anyhow::anyhow!(e);
                if too_big {
                    e.context(format!(
                        "broker.max_bytes = {} is more than the NATS server can reserve; lower \
                         it, or give the server more store (0: the server's own limit)",
                        self.max_bytes
                    ))
                } else {
                    e
                }
            })
            .with_context(|| format!("creating or opening JetStream stream {stream}"))?;
        Ok((js, created))
    }
}
