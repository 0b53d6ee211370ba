//! `pathlight load`: a loader. It takes batches of messages from the stream's shared durable
//! consumer, writes their rows to ClickHouse in one insert, and acks them only after that
//! insert succeeded. Run as many as ClickHouse can take inserts from; JetStream gives each
//! message to one of them, and to another when a loader goes away without acking.

use super::{BrokerConfig, LAYOUT_HEADER};
use crate::metrics::Metrics;
use crate::storage::clickhouse::{
    self, ClickHouseConfig, RetryConfig, insert_retrying, migrations, retry,
};
use async_nats::jetstream::{
    self, AckKind, Message, consumer::PullConsumer, message::PublishMessage,
};
use bytes::Bytes;
use pathlight_ingest::Layout;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What one loader did, for its exit line and the tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Messages acked after their rows were inserted (or found already stored).
    pub messages: u64,
    /// Rows inserted.
    pub rows: u64,
    /// Inserts made.
    pub inserts: u64,
    /// Redelivered rows that ClickHouse already had, hence not inserted again.
    pub already_stored: u64,
    /// Messages moved to `<subject>.dead`: not rows, or refused by ClickHouse for good.
    pub dead: u64,
}

/// Options of a loader beyond the configuration.
#[derive(Default)]
pub struct LoadOptions {
    /// For crash tests: after this many inserts, the process exits at once, between an insert
    /// and its acks — the worst moment for a loader to die.
    pub exit_after_inserts: Option<u64>,
    /// Serve `GET /metrics` here: rows written, insert latency and failures by decision, and
    /// messages refused (`events_rejected_total{reason="storage_rejected"}`).
    pub metrics: Option<tokio::net::TcpListener>,
    /// The metrics to count in and serve, when the process counts more than the loader (its
    /// input source's pipeline); new ones otherwise.
    pub shared_metrics: Option<Arc<Metrics>>,
}

/// Loads until `shutdown` resolves, then finishes the batch in hand and returns.
pub async fn run(
    cfg: &BrokerConfig,
    ch: &ClickHouseConfig,
    mut opts: LoadOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<LoadReport> {
    anyhow::ensure!(
        cfg.enabled(),
        "pathlight load needs [broker] url in the configuration"
    );
    let dialect = clickhouse::connect(ch, Duration::from_secs(30)).await?;
    let base = clickhouse::client(ch).with_validation(false);
    migrations::run(&base, ch, dialect).await?;
    let db = clickhouse::writer(ch, dialect);
    let (js, stream) = cfg.connect("pathlight-load").await?;
    let consumer = cfg
        .pull_consumer(&stream, &cfg.consumer, cfg.subject.clone())
        .await?;
    let (stop, stopping) = watch::channel(false);
    let metrics = opts
        .shared_metrics
        .take()
        .unwrap_or_else(|| Arc::new(Metrics::new()));
    let server = opts
        .metrics
        .take()
        .map(|l| tokio::spawn(serve_metrics(l, metrics.clone())));
    let loader = Loader {
        js,
        db,
        ch: ch.clone(),
        cfg: cfg.clone(),
        metrics,
        stopping,
        opts,
        report: LoadReport::default(),
    };
    let work = loader.run(consumer);
    tokio::pin!(work);
    tokio::pin!(shutdown);
    let report = tokio::select! {
        r = &mut work => r,
        () = &mut shutdown => {
            stop.send_replace(true);
            work.await
        }
    };
    if let Some(server) = server {
        server.abort();
    }
    report
}

/// Answers `GET /metrics` on `listener` for as long as the loader runs.
async fn serve_metrics(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    use http_body_util::Full;
    use hyper::{Request, Response, StatusCode, body::Incoming};
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, say: wait rather than spin.
                tracing::warn!(error = %e, "accepting a metrics connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let resp = if req.uri().path() == "/metrics" {
                    Response::builder()
                        .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                        .body(Full::new(Bytes::from(metrics.encode())))
                } else {
                    Response::builder()
                        .status(StatusCode::NOT_FOUND)
                        .body(Full::new(Bytes::new()))
                };
                async move { resp }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await;
        });
    }
}

/// Waits between failed fetches (NATS away; its client reconnects by itself meanwhile): from
/// the second this loop always waited, doubling up to the inserts' default cap, with
/// `retry.rs`'s random jitter, so loaders that lost NATS together do not come back in step.
const FETCH_RETRY: RetryConfig = RetryConfig {
    initial_backoff_ms: 1_000,
    max_backoff_ms: 10_000,
};

struct Loader {
    js: jetstream::Context,
    db: ::clickhouse::Client,
    ch: ClickHouseConfig,
    cfg: BrokerConfig,
    metrics: Arc<Metrics>,
    stopping: watch::Receiver<bool>,
    opts: LoadOptions,
    report: LoadReport,
}

impl Loader {
    async fn run(mut self, consumer: PullConsumer) -> anyhow::Result<LoadReport> {
        let mut stopping = self.stopping.clone();
        let mut failed = 0u32;
        while !*stopping.borrow() {
            let batch = tokio::select! {
                b = self.cfg.fetch(&consumer) => b,
                // Messages delivered but not yet in hand are redelivered after `ack_wait`.
                _ = stopping.changed() => break,
            };
            if batch.is_ok() {
                failed = 0;
            }
            match batch {
                Ok(messages) if messages.is_empty() => {}
                Ok(messages) => {
                    if !self.load(messages).await {
                        break;
                    }
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!(error = %e, failed, "fetching from JetStream failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(retry::backoff(&FETCH_RETRY, failed)) => {}
                        _ = stopping.changed() => break,
                    }
                }
            }
        }
        Ok(self.report)
    }

    /// Inserts the rows of `messages` and acks them. False when shutdown interrupted it (the
    /// messages are then left unacked, for another loader).
    async fn load(&mut self, messages: Vec<Message>) -> bool {
        let mut good = Vec::with_capacity(messages.len());
        for m in messages {
            // The rows' layout (`publish.rs`); none: a message from before layouts were named.
            let layout = match m.headers.as_ref().and_then(|h| h.get(LAYOUT_HEADER)) {
                None => Some(Layout::FIRST),
                Some(v) => v.as_str().parse().ok().and_then(Layout::from_code),
            };
            let read = match layout {
                Some(layout) => pathlight_ingest::read_rows_of(&m.payload, layout)
                    .map_err(|e| format!("not RowBinary event rows: {e}")),
                None => Err("rows of a layout this version does not know".to_owned()),
            };
            match read {
                Ok(rows) => {
                    let body = if layout == Some(Layout::CURRENT) {
                        m.payload.clone()
                    } else {
                        pathlight_ingest::write_rows(&rows).into()
                    };
                    good.push((m, rows.len() as u64, body))
                }
                Err(reason) => self.dead(&m, &reason).await,
            }
        }
        if good.is_empty() {
            return true;
        }
        self.insert_and_ack(good).await
    }

    /// `messages`: each with its row count and its rows in the current layout.
    async fn insert_and_ack(&mut self, messages: Vec<(Message, u64, Bytes)>) -> bool {
        let mut body: Vec<Bytes> = messages.iter().map(|(_, _, b)| b.clone()).collect();
        let mut rows: u64 = messages.iter().map(|(_, n, _)| n).sum();
        // A redelivered message's rows may be in ClickHouse already: its loader died (or lost
        // its connection) between the insert and the acks.
        let redelivered = messages
            .iter()
            .any(|(m, _, _)| m.info().map_or(true, |i| i.delivered > 1));
        if redelivered {
            let give_up = || *self.stopping.borrow();
            let check = crate::storage::spool::drop_stored(
                &self.db,
                &self.ch.retry,
                &mut body,
                &mut rows,
                give_up,
            );
            let dropped = self.with_progress(&messages, check).await;
            let Some(stored) = dropped else {
                return false;
            };
            self.report.already_stored += stored;
        }
        if rows > 0 {
            let result = {
                let stopping = self.stopping.clone();
                let insert = insert_retrying(&self.db, &self.ch, &self.metrics, body, rows, || {
                    *stopping.borrow()
                });
                self.with_progress(&messages, insert).await
            };
            match result {
                Ok(()) => {}
                Err(stop) if stop.refused && messages.len() > 1 => {
                    // One message can poison a batch: try them one by one, so only the
                    // refused ones go to the dead subject.
                    for m in messages {
                        if !Box::pin(self.insert_and_ack(vec![m])).await {
                            return false;
                        }
                    }
                    return true;
                }
                Err(stop) if stop.refused => {
                    self.dead(&messages[0].0, &stop.error).await;
                    return true;
                }
                Err(_) => return false,
            }
            self.report.inserts += 1;
            self.report.rows += rows;
            if self.opts.exit_after_inserts == Some(self.report.inserts) {
                tracing::error!("exiting between an insert and its acks, as asked (crash test)");
                std::process::exit(86);
            }
        }
        for (m, _, _) in &messages {
            // Lost acks are harmless: the message comes again and its rows are found stored.
            if let Err(e) = m.ack().await {
                tracing::warn!(error = %e, "acking a message failed");
            } else {
                self.report.messages += 1;
            }
        }
        true
    }

    /// Runs `work` (a check or an insert, retried while ClickHouse is slow or away) while
    /// telling JetStream every third of `ack_wait` that `messages` are being worked on, so they
    /// are not handed to another loader meanwhile.
    async fn with_progress<T>(
        &self,
        messages: &[(Message, u64, Bytes)],
        work: impl Future<Output = T>,
    ) -> T {
        tokio::pin!(work);
        let every = Duration::from_secs(self.cfg.ack_wait_secs).max(Duration::from_secs(3)) / 3;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                r = &mut work => break r,
                _ = tick.tick() => self.progress(messages).await,
            }
        }
    }

    async fn progress(&self, messages: &[(Message, u64, Bytes)]) {
        for (m, _, _) in messages {
            let _ = m.ack_with(AckKind::Progress).await;
        }
    }

    /// Moves a message ClickHouse cannot take to `<subject>.dead`, then acks it; if the move
    /// fails, it stays unacked and comes back.
    async fn dead(&mut self, m: &Message, reason: &str) {
        tracing::error!(reason, "moving a message to the dead subject");
        let publish = PublishMessage::build()
            .payload(m.payload.clone())
            .header("Pathlight-Refused", reason.replace(['\r', '\n'], " "));
        let stored = match self.js.send_publish(self.cfg.dead_subject(), publish).await {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        };
        if stored && m.ack().await.is_ok() {
            self.report.dead += 1;
            self.metrics.reject("storage_rejected", 1);
        }
    }
}
