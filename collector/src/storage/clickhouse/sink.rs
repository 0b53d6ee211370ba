//! The sink's handle and its inserts. Requests hand rows to [`ClickHouseSink::submit`] and
//! wait; the batcher task (`batcher.rs`) gathers rows from many requests into one insert,
//! [`insert_retrying`] retries what is worth retrying, and every waiting request then learns
//! how its rows fared.
//!
//! Memory is bounded by a semaphore of `queue_capacity` event permits taken before a request
//! is queued and given back when its rows are written: a full queue refuses new batches at
//! once (503) rather than holding them, so slow storage pushes back on senders.

use super::batcher::{Batcher, Insert, Job, set_queue_depth};
use super::config::ClickHouseConfig;
use super::dialect::Dialect;
use super::health;
use super::migrations;
use super::retry::{self, Decision};
use super::row;
use crate::error::IngestError;
use crate::metrics::{Metrics, ReasonLabel};
use anyhow::Context;
use clickhouse::Client;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Handle to the batcher task; clone-free, shared behind the pipeline's `Arc`.
pub struct ClickHouseSink {
    tx: mpsc::UnboundedSender<Job>,
    permits: Arc<Semaphore>,
    capacity: usize,
    ack_timeout: Duration,
    dialect: Dialect,
    metrics: Arc<Metrics>,
    drain: watch::Sender<bool>,
    bulk: Client,
    salts: Client,
}

/// A queued write, resolved when its rows are in ClickHouse.
pub struct Pending {
    rx: oneshot::Receiver<Result<(), IngestError>>,
    timeout: Duration,
}

impl Pending {
    /// Waits for the write, at most `ack_timeout`.
    pub async fn wait(self) -> Result<(), IngestError> {
        match tokio::time::timeout(self.timeout, self.rx).await {
            Ok(Ok(result)) => result,
            // The batcher stopped without answering: only at shutdown.
            Ok(Err(_)) => Err(IngestError::ShuttingDown),
            Err(_) => Err(IngestError::StorageTimeout),
        }
    }
}

/// A client for the configured server without a database selected.
pub fn client(cfg: &ClickHouseConfig) -> Client {
    Client::default()
        .with_url(&cfg.url)
        .with_user(&cfg.user)
        .with_password(&cfg.password)
}

/// A client for the small tables every collector reads whole (accounts, sites, keys): the
/// deployment's database, and in cluster mode inserts that return once every shard has them.
pub fn state_client(cfg: &ClickHouseConfig) -> Client {
    let c = client(cfg)
        .with_database(&cfg.database)
        .with_validation(false);
    if cfg.clustered() {
        c.with_setting("insert_distributed_sync", "1")
    } else {
        c
    }
}

/// A client for inserting rows and reading them back, database selected. In cluster mode an
/// insert into the `Distributed` table returns only once every shard has written its part
/// (`insert_distributed_sync`): otherwise the server would queue it on its own disk and
/// answer at once, and "acknowledged" would mean "on one server's queue".
pub fn writer(cfg: &ClickHouseConfig, dialect: Dialect) -> Client {
    let c = pathlight_ingest::insert_settings(dialect.version)
        .iter()
        .fold(client(cfg), |c, (name, value)| {
            c.with_setting(*name, *value)
        })
        .with_database(&cfg.database)
        .with_validation(dialect.client_validation());
    if cfg.clustered() {
        c.with_setting("insert_distributed_sync", "1")
    } else {
        c
    }
}

/// Asks the server its version. Retries for `wait`, since the collector often starts beside a
/// ClickHouse that is still starting: after `retry.rs`'s backoff with random jitter, so
/// collectors (and loaders) restarted together against a ClickHouse that is away do not all ask
/// at the same instants, and never waiting past `wait`.
pub async fn connect(cfg: &ClickHouseConfig, wait: Duration) -> anyhow::Result<Dialect> {
    let base = client(cfg).with_validation(false);
    // Tokio's clock (the same as the system's outside tests), so the unit test runs paused.
    let deadline = tokio::time::Instant::now() + wait;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match base.query("SELECT version()").fetch_one::<String>().await {
            Ok(v) => {
                return Dialect::parse(&v)
                    .with_context(|| format!("unrecognised server version {v:?}"));
            }
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, url = %cfg.url, attempt, "ClickHouse not reachable yet");
                let left = deadline - tokio::time::Instant::now();
                tokio::time::sleep(retry::backoff(&cfg.retry, attempt).min(left)).await;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("connecting to ClickHouse at {}", cfg.url));
            }
        }
    }
}

impl ClickHouseSink {
    /// Detects the server's dialect, applies migrations, and starts the batcher task.
    /// The task ends, after a last flush, once the sink is dropped.
    pub async fn start(
        cfg: &ClickHouseConfig,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<(Self, JoinHandle<()>)> {
        let dialect = connect(cfg, Duration::from_secs(30)).await?;
        let base = client(cfg).with_validation(false);
        migrations::run(&base, cfg, dialect).await?;
        let bulk = writer(cfg, dialect);
        let mut writer = bulk.clone();
        // Not into a Distributed table: it forwards each insert to the shards as it came.
        if dialect.async_insert() && !cfg.clustered() {
            // Many collectors' inserts become one part; `wait` keeps the ack meaning "written".
            writer = writer
                .with_setting("async_insert", "1")
                .with_setting("wait_for_async_insert", "1");
        }
        tracing::info!(version = ?dialect.version, database = %cfg.database, "ClickHouse ready");
        if !dialect.ttl() && cfg.retention_days > 0 {
            for shard in cfg.shard_configs() {
                super::retention::spawn(
                    client(&shard)
                        .with_database(&cfg.database)
                        .with_validation(false),
                    cfg.clone(),
                );
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let permits = Arc::new(Semaphore::new(cfg.queue_capacity));
        let insert = ClickHouseInsert {
            client: writer.clone(),
            cfg: cfg.clone(),
            metrics: metrics.clone(),
        };
        let batcher = Batcher::new(insert, cfg, metrics.clone(), permits.clone());
        let (drain, draining) = watch::channel(false);
        health::set_up(&metrics, true);
        tokio::spawn(health::probe(
            client(cfg).with_validation(false),
            metrics.clone(),
            drain.subscribe(),
        ));
        let task = tokio::spawn(batcher.run(rx, draining));
        let sink = ClickHouseSink {
            tx,
            permits,
            capacity: cfg.queue_capacity,
            ack_timeout: Duration::from_millis(cfg.ack_timeout_ms),
            dialect,
            metrics,
            drain,
            bulk,
            salts: client(&cfg.shard_configs()[0])
                .with_database(&cfg.database)
                .with_validation(dialect.client_validation()),
        };
        Ok((sink, task))
    }

    /// A client for large inserts (spool segments): database selected, no async inserts —
    /// the segment is already one big block, and synchronous inserts of a replayed segment
    /// are deduplicated by the server where it can (migration 2).
    pub fn bulk_writer(&self) -> Client {
        self.bulk.clone()
    }

    /// Where the visitor-id salts live, shared by every collector: this server, or in
    /// cluster mode the first shard's (a salt is one row a day, and deleting a day's is a
    /// mutation, which a Distributed table cannot take).
    pub fn salts_db(&self) -> Client {
        self.salts.clone()
    }

    /// The server's dialect, detected at start.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// From now on, writes without waiting for the flush interval: the server is shutting
    /// down and the requests still open should get their answers before it closes them.
    pub fn drain(&self) {
        self.drain.send_replace(true);
    }

    /// Queues `rows` RowBinary rows for writing, or refuses at once when the queue is full.
    pub fn submit(&self, body: Vec<u8>, rows: usize) -> Result<Pending, IngestError> {
        let n = u32::try_from(rows).map_err(|_| IngestError::QueueFull)?;
        let permit = self
            .permits
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| IngestError::QueueFull)?;
        set_queue_depth(&self.metrics, &self.permits, self.capacity);
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Job {
                body,
                rows,
                done,
                _permit: permit,
            })
            .map_err(|_| IngestError::ShuttingDown)?;
        Ok(Pending {
            rx,
            timeout: self.ack_timeout,
        })
    }
}

/// The collector's [`Insert`]: [`insert_retrying`] into `events`.
struct ClickHouseInsert {
    client: Client,
    cfg: ClickHouseConfig,
    metrics: Arc<Metrics>,
}

impl Insert for ClickHouseInsert {
    async fn insert(
        &mut self,
        body: bytes::Bytes,
        rows: usize,
        shutting_down: bool,
    ) -> Result<(), String> {
        // At shutdown, retrying stops after `ack_timeout`: nobody still waits by then.
        let give_up =
            shutting_down.then(|| Instant::now() + Duration::from_millis(self.cfg.ack_timeout_ms));
        insert_retrying(
            &self.client,
            &self.cfg,
            &self.metrics,
            vec![body],
            rows as u64,
            || give_up.is_some_and(|t| Instant::now() >= t),
        )
        .await
        .map_err(|stop| stop.error)
    }
}

/// Why [`insert_retrying`] stopped without writing.
pub struct Stopped {
    /// ClickHouse refused the rows for good (`retry::Decision::Fail`); otherwise the caller's
    /// `give_up` said to stop retrying.
    pub refused: bool,
    /// The last error.
    pub error: String,
}

/// One insert of `rows` RowBinary rows (the batcher's and the spool shipper's), retried by the
/// rules of `retry.rs` with backoff until it is written, refused for good, or `give_up()` is
/// true after a failure. Counts failed attempts by decision and, once written, the insert's
/// latency and rows.
pub async fn insert_retrying(
    client: &Client,
    cfg: &ClickHouseConfig,
    metrics: &Metrics,
    body: Vec<bytes::Bytes>,
    rows: u64,
    give_up: impl Fn() -> bool,
) -> Result<(), Stopped> {
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let e = match insert_row_binary(client, cfg, body.iter().cloned()).await {
            Ok(()) => break,
            Err(e) => e,
        };
        health::record_failure(metrics, &e);
        let decision = retry::decide(&e);
        let label = if decision == Decision::Retry {
            "retry"
        } else {
            "fail"
        };
        metrics
            .sink_errors
            .get_or_create(&ReasonLabel { reason: label })
            .inc();
        tracing::warn!(error = %e, attempt, rows, decision = label, "ClickHouse insert failed");
        let refused = decision == Decision::Fail;
        if refused || give_up() {
            return Err(Stopped {
                refused,
                error: e.to_string(),
            });
        }
        tokio::time::sleep(retry::backoff(&cfg.retry, attempt)).await;
    }
    health::set_up(metrics, true);
    tracing::debug!(rows, ms = started.elapsed().as_millis() as u64, "inserted");
    metrics
        .sink_latency
        .observe(started.elapsed().as_secs_f64());
    metrics.sink_flush_rows.observe(rows as f64);
    metrics.sink_rows_written.inc_by(rows);
    Ok(())
}

/// One insert of RowBinary rows into `events`, sent as the given chunks in order, gathered
/// into blocks of [`INSERT_BLOCK_BYTES`]: a spool segment comes as one slice per request
/// (~6 KB), and sent as they are each slice is its own compressed block and its own hand-off to
/// the connection's task, so shipping crawled behind a busy ingest (bench/results/limits.md).
/// Gathered here rather than by the crate's buffered writer, whose flush reports a request
/// ClickHouse already failed as a closed channel (retried) instead of ClickHouse's error (a
/// refused segment, moved aside).
pub async fn insert_row_binary(
    client: &Client,
    cfg: &ClickHouseConfig,
    body: impl IntoIterator<Item = bytes::Bytes>,
) -> clickhouse::error::Result<()> {
    let t = Some(Duration::from_millis(cfg.insert_timeout_ms));
    let mut insert = client
        .insert_formatted_with(row::insert_sql())
        .with_timeouts(t, t);
    let mut block = bytes::BytesMut::new();
    for chunk in body {
        let full = if block.is_empty() && chunk.len() >= INSERT_BLOCK_BYTES {
            chunk
        } else {
            block.extend_from_slice(&chunk);
            if block.len() < INSERT_BLOCK_BYTES {
                continue;
            }
            block.split().freeze()
        };
        insert.send(full).await?;
        // Each send compresses its block on this worker, and the send and the connection's
        // task then wake each other without the worker polling its sockets in between: a whole
        // segment went out while the requests on the same worker waited (stalls of 23 ms in
        // `perf sched timehist`, bench/results/limits.md). yield_now lets the worker poll its
        // sockets first.
        tokio::task::yield_now().await;
    }
    if !block.is_empty() {
        insert.send(block.freeze()).await?;
    }
    insert.end().await
}

/// Uncompressed bytes per compressed block of an insert (at least), between ClickHouse's own
/// `min_compress_block_size` (64 KiB) and `max_compress_block_size` (1 MiB): small enough that
/// compressing one holds the worker well under a millisecond.
pub const INSERT_BLOCK_BYTES: usize = 256 << 10;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::clickhouse::config::RetryConfig;

    /// A port nobody listens on: every attempt is refused at once, a retryable failure.
    fn unreachable(retry: RetryConfig) -> ClickHouseConfig {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        ClickHouseConfig {
            url: format!("http://127.0.0.1:{port}"),
            retry,
            ..ClickHouseConfig::default()
        }
    }

    /// Connecting backs off between attempts but gives up at the wait it was given, not at the
    /// end of a backoff past it. On tokio's paused clock: exact, and no real time.
    #[tokio::test(start_paused = true)]
    async fn connecting_gives_up_when_the_wait_is_over() {
        let cfg = unreachable(RetryConfig {
            initial_backoff_ms: 1_000,
            max_backoff_ms: 10_000,
        });
        let start = tokio::time::Instant::now();
        // Waits of 1, 2 and 4 s (each up to a quarter more) bring the fourth attempt by 8.75 s;
        // after the next wait (8 s or more) the fifth would come past 15 s.
        let err = connect(&cfg, Duration::from_secs(10)).await.unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        assert!(
            format!("{err:#}").contains("connecting to ClickHouse"),
            "{err:#}"
        );
    }

    /// The waits between attempts are the backoff's, measured on tokio's paused clock: exact,
    /// and the test takes no real time.
    #[tokio::test(start_paused = true)]
    async fn a_failing_insert_is_retried_after_growing_jittered_waits() {
        let cfg = unreachable(RetryConfig {
            initial_backoff_ms: 100,
            max_backoff_ms: 1_000,
        });
        let metrics = Metrics::new();
        let failed = std::sync::Mutex::new(Vec::new());
        let stopped = insert_retrying(
            &client(&cfg),
            &cfg,
            &metrics,
            vec![bytes::Bytes::from_static(b"\0")],
            1,
            || {
                let mut at = failed.lock().unwrap();
                at.push(tokio::time::Instant::now());
                at.len() == 7
            },
        )
        .await
        .expect_err("nothing to insert into");
        assert!(!stopped.refused, "{}", stopped.error);
        let at = failed.into_inner().unwrap();
        let waits: Vec<u64> = at
            .windows(2)
            .map(|w| (w[1] - w[0]).as_millis() as u64)
            .collect();
        for (i, (&ms, base)) in waits
            .iter()
            .zip([100, 200, 400, 800, 1_000, 1_000])
            .enumerate()
        {
            assert!(
                (base..=base + base / 4).contains(&ms),
                "wait {}: {ms} ms in {waits:?}",
                i + 1
            );
        }
        let retried = metrics
            .sink_errors
            .get_or_create(&ReasonLabel { reason: "retry" })
            .get();
        assert_eq!(retried, 7);
    }
}
