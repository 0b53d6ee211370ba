//! The batcher task. Requests queue their rows through `ClickHouseSink::submit` and wait; the
//! batcher gathers rows from many requests into one insert (flushing on rows, bytes or time,
//! whichever comes first, and at once while the server drains), then tells every waiting
//! request how its rows fared and gives back their queue permits.
//!
//! The insert is a parameter ([`Insert`]; in the collector `sink.rs`'s, which retries by
//! `retry.rs`'s rules), so when the batcher flushes is unit tested on tokio's paused clock,
//! and this file knows nothing of ClickHouse.

use super::config::ClickHouseConfig;
use crate::error::IngestError;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

/// Rows of one request (RowBinary), on their way to an insert.
pub(super) struct Job {
    pub(super) body: Vec<u8>,
    pub(super) rows: usize,
    pub(super) done: oneshot::Sender<Result<(), IngestError>>,
    pub(super) _permit: OwnedSemaphorePermit,
}

/// Events queued = permits taken.
pub(super) fn set_queue_depth(metrics: &Metrics, permits: &Semaphore, capacity: usize) {
    metrics
        .queue_depth
        .set((capacity - permits.available_permits()) as i64);
}

/// Where the batcher's rows go: ClickHouse in the collector (`sink.rs`). A parameter so that when the batcher flushes (rows, bytes, interval, drain) is unit tested on
/// tokio's paused clock without a server.
pub(super) trait Insert {
    /// Writes `rows` RowBinary rows, retrying what is worth retrying; the error is the last
    /// failure's. `shutting_down`: the last flush, after the sink was dropped.
    fn insert(
        &mut self,
        body: bytes::Bytes,
        rows: usize,
        shutting_down: bool,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
}

/// The rows buffered for the next insert and the requests waiting on them.
pub(super) struct Batcher<I> {
    insert: I,
    cfg: ClickHouseConfig,
    metrics: Arc<Metrics>,
    body: Vec<u8>,
    rows: usize,
    waiters: Vec<(
        oneshot::Sender<Result<(), IngestError>>,
        OwnedSemaphorePermit,
    )>,
    permits: Arc<Semaphore>,
}

impl<I: Insert> Batcher<I> {
    pub(super) fn new(
        insert: I,
        cfg: &ClickHouseConfig,
        metrics: Arc<Metrics>,
        permits: Arc<Semaphore>,
    ) -> Self {
        Batcher {
            insert,
            cfg: cfg.clone(),
            metrics,
            body: Vec::new(),
            rows: 0,
            waiters: Vec::new(),
            permits,
        }
    }

    /// Gathers jobs and flushes them until every sender is gone, then flushes the rest.
    /// `drain` turning true (shutdown) flushes at once from then on.
    pub(super) async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Job>,
        mut drain: watch::Receiver<bool>,
    ) {
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut draining = false;
        loop {
            let timer = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                job = rx.recv() => match job {
                    Some(job) => {
                        self.body.extend_from_slice(&job.body);
                        self.rows += job.rows;
                        self.waiters.push((job.done, job._permit));
                        let wait = if draining { Duration::ZERO } else { self.cfg.flush_interval() };
                        deadline.get_or_insert_with(|| tokio::time::Instant::now() + wait);
                        if self.rows >= self.cfg.max_rows || self.body.len() >= self.cfg.max_bytes {
                            self.flush(false).await;
                            deadline = None;
                        }
                    }
                    None => {
                        self.flush(true).await;
                        return;
                    }
                },
                Ok(()) = drain.changed(), if !draining => {
                    draining = true;
                    if self.rows > 0 {
                        deadline = Some(tokio::time::Instant::now());
                    }
                }
                () = timer => {
                    self.flush(false).await;
                    deadline = None;
                }
            }
        }
    }

    /// Writes everything buffered, retrying transient failures. While it retries, new jobs
    /// wait in the channel (bounded by the permits). At shutdown, retrying stops after
    /// `ack_timeout`: nobody still waits for an answer by then, so nothing acknowledged is lost.
    async fn flush(&mut self, shutting_down: bool) {
        if self.rows == 0 {
            return;
        }
        let body = bytes::Bytes::from(std::mem::take(&mut self.body));
        let n = self.rows;
        let result = self.insert.insert(body, n, shutting_down).await;
        if result.is_err() {
            self.metrics.reject("storage_rejected", n as u64);
        }
        self.rows = 0;
        for (done, permit) in self.waiters.drain(..) {
            // A waiter that timed out has gone; its rows are written all the same.
            let _ = done.send(result.clone().map_err(IngestError::StorageRejected));
            drop(permit);
        }
        set_queue_depth(&self.metrics, &self.permits, self.cfg.queue_capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::task::JoinHandle;

    /// Stands in for ClickHouse in the batcher's timing tests: records when each flush came,
    /// its rows, and whether it was the last one.
    #[derive(Clone, Default)]
    struct Flushes(Arc<std::sync::Mutex<Vec<(tokio::time::Instant, usize, bool)>>>);

    impl Insert for Flushes {
        async fn insert(
            &mut self,
            _body: bytes::Bytes,
            rows: usize,
            shutting_down: bool,
        ) -> Result<(), String> {
            let at = tokio::time::Instant::now();
            self.0.lock().unwrap().push((at, rows, shutting_down));
            Ok(())
        }
    }

    impl Flushes {
        /// Each flush so far: when, after `start`, in ms; its rows; whether it was the last.
        fn since(&self, start: tokio::time::Instant) -> Vec<(u64, usize, bool)> {
            let flushes = self.0.lock().unwrap();
            flushes
                .iter()
                .map(|&(at, rows, last)| ((at - start).as_millis() as u64, rows, last))
                .collect()
        }
    }

    /// A batcher flushing into [`Flushes`], with its queue and drain switch.
    struct Harness {
        tx: Option<mpsc::UnboundedSender<Job>>,
        permits: Arc<Semaphore>,
        drain: watch::Sender<bool>,
        flushes: Flushes,
        task: JoinHandle<()>,
    }

    impl Harness {
        fn start(cfg: ClickHouseConfig) -> Harness {
            let flushes = Flushes::default();
            let permits = Arc::new(Semaphore::new(cfg.queue_capacity));
            let metrics = Arc::new(Metrics::new());
            let batcher = Batcher::new(flushes.clone(), &cfg, metrics, permits.clone());
            let (tx, rx) = mpsc::unbounded_channel();
            let (drain, draining) = watch::channel(false);
            Harness {
                tx: Some(tx),
                permits,
                drain,
                flushes,
                task: tokio::spawn(batcher.run(rx, draining)),
            }
        }

        /// Queues `rows` rows of `bytes` bytes, as `ClickHouseSink::submit` does.
        fn submit(&self, rows: usize, bytes: usize) -> oneshot::Receiver<Result<(), IngestError>> {
            let permit = self
                .permits
                .clone()
                .try_acquire_many_owned(rows as u32)
                .unwrap();
            let (done, rx) = oneshot::channel();
            let job = Job {
                body: vec![0; bytes],
                rows,
                done,
                _permit: permit,
            };
            assert!(self.tx.as_ref().unwrap().send(job).is_ok());
            rx
        }
    }

    fn batching(flush_interval_ms: u64, max_rows: usize, max_bytes: usize) -> ClickHouseConfig {
        ClickHouseConfig {
            flush_interval_ms,
            max_rows,
            max_bytes,
            queue_capacity: 1_000,
            ..ClickHouseConfig::default()
        }
    }

    /// The interval runs from the first buffered row: not flushed a millisecond before it,
    /// flushed at it with every row that came meanwhile. On tokio's paused clock, so the
    /// instants are exact and the test takes no real time.
    #[tokio::test(start_paused = true)]
    async fn buffered_rows_are_flushed_one_interval_after_the_first() {
        let h = Harness::start(batching(1_000, 100, 1 << 20));
        let start = tokio::time::Instant::now();
        let mut first = h.submit(1, 10);
        tokio::time::sleep(Duration::from_millis(600)).await;
        // A later row does not push the deadline back.
        let second = h.submit(2, 10);
        tokio::time::sleep_until(start + Duration::from_millis(999)).await;
        assert_eq!(h.flushes.since(start), []);
        assert!(first.try_recv().is_err(), "answered before the flush");
        first.await.unwrap().unwrap();
        second.await.unwrap().unwrap();
        assert_eq!(h.flushes.since(start), [(1_000, 3, false)]);
        assert_eq!(h.permits.available_permits(), 1_000, "permits given back");

        // The next row starts the next interval.
        tokio::time::sleep(Duration::from_millis(5_000)).await;
        h.submit(1, 10).await.unwrap().unwrap();
        assert_eq!(
            h.flushes.since(start),
            [(1_000, 3, false), (7_000, 1, false)]
        );
    }

    /// Rows or bytes reaching their bound flush at once, without waiting for the interval.
    #[tokio::test(start_paused = true)]
    async fn a_full_batch_is_flushed_at_once() {
        let h = Harness::start(batching(60_000, 5, 100));
        let start = tokio::time::Instant::now();
        let mut below = h.submit(4, 10);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(below.try_recv().is_err(), "4 of 5 rows were flushed");
        h.submit(1, 10).await.unwrap().unwrap();
        below.await.unwrap().unwrap();
        h.submit(1, 100).await.unwrap().unwrap();
        assert_eq!(h.flushes.since(start), [(10, 5, false), (10, 1, false)]);
    }

    /// Draining (the server is shutting down) writes what is buffered, and each row that still
    /// comes, at once.
    #[tokio::test(start_paused = true)]
    async fn draining_flushes_at_once() {
        let h = Harness::start(batching(60_000, 100, 1 << 20));
        let start = tokio::time::Instant::now();
        let queued = h.submit(1, 10);
        tokio::time::sleep(Duration::from_millis(10)).await;
        h.drain.send_replace(true);
        queued.await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        h.submit(2, 10).await.unwrap().unwrap();
        assert_eq!(h.flushes.since(start), [(10, 1, false), (20, 2, false)]);
    }

    /// Dropping the sink flushes what is buffered as the last flush, and ends the task.
    #[tokio::test(start_paused = true)]
    async fn the_end_flushes_the_rest() {
        let mut h = Harness::start(batching(60_000, 100, 1 << 20));
        let start = tokio::time::Instant::now();
        let last = h.submit(3, 10);
        tokio::time::sleep(Duration::from_millis(10)).await;
        h.tx = None;
        last.await.unwrap().unwrap();
        h.task.await.unwrap();
        assert_eq!(h.flushes.since(start), [(10, 3, true)]);
    }
}
