//! The durable spool: acknowledged events wait here, on local disk, until ClickHouse has them.
//!
//! # The path of an event through the spool
//!
//! 1. `Pipeline::ingest` encodes a request's rows to RowBinary and calls [`Spool::append`],
//!    which computes their record's frame and refuses at once (503) when the spool is at its
//!    cap. The rows are not copied behind the frame: the two stay apart until the write.
//! 2. The writer thread takes every record waiting (group commit), writes them at the end of
//!    the active segment file in one `writev` (each record's frame and rows as two slices),
//!    `fdatasync`s, and only then resolves the appends: the 2xx leaves after the bytes are on
//!    disk. One fsync serves every request that arrived while the previous one ran, so its cost
//!    is shared under load.
//! 3. A segment is sealed when it reaches `segment_bytes`, or `seal_ms` after its first
//!    record (freshness), and handed to [`ship`], which sends all its rows to ClickHouse in one
//!    insert, retrying what is worth retrying (`storage/clickhouse/retry.rs`), and deletes the
//!    file only after ClickHouse confirmed. A segment ClickHouse refuses for good is moved to
//!    `dead/` and counted, so it cannot block the ones behind it.
//! 4. On start, every segment the previous process left (sealed or not) is read record by
//!    record; a torn tail (a crash in the middle of a write, never acknowledged) fails its
//!    checksum and is cut off; the rest is shipped before anything new.
//!
//! Exactly once in effect: a crash between an insert and the file's deletion leaves a segment
//! ClickHouse already has. Every segment left by the last run is therefore checked against the
//! stored event ids before it is shipped, and only the rows ClickHouse lacks are inserted: the
//! marts, which materialized views feed at insert, would otherwise count that segment twice.
//! A client retrying an unacknowledged batch sends the same event ids too; the events table is
//! a ReplacingMergeTree ordered by event id, so storage keeps one of each.
//!
//! A record is `len: u32 LE | crc32(payload): u32 LE | rows: u32 LE | payload (len bytes)`,
//! the payload being RowBinary rows ready for `INSERT INTO events (…) FORMAT RowBinary`, so a
//! replay re-sends bytes without decoding them. The top byte of `rows` is the rows'
//! [`Layout`] (0 before layouts were named): a segment left by an older version, whose rows
//! lack columns added since, is re-encoded in the current layout before it ships.

use crate::error::IngestError;
use crate::metrics::Metrics;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc as std_mpsc};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

mod segment;
mod ship;

use segment::{HEADER, header, recover, segment_files, segment_path};
pub use segment::{record, record_of};
pub(crate) use ship::drop_stored;
pub use ship::ship;

/// The spool's settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolConfig {
    /// Directory of segment files (created if missing). Unset: no spool, and a batch is
    /// acknowledged only once ClickHouse has written it (slower, and senders get 503s while
    /// ClickHouse is away).
    pub dir: Option<PathBuf>,
    /// Most bytes kept on disk. Past it — ClickHouse away for long — new batches get 503 +
    /// `Retry-After` (the tracker keeps them in its own queue) until shipping frees space.
    pub max_bytes: u64,
    /// A segment is sealed and shipped once it holds this many bytes…
    pub segment_bytes: u64,
    /// …or this long after its first record, ms: the delay before events are queryable.
    pub seal_ms: u64,
    /// Refuse new batches (503) while the spool's file system has less free space than this,
    /// bytes, so the spool never fills the disk other services need.
    pub min_free_bytes: u64,
    /// `fdatasync` before acknowledging. Turning it off trades the promise for throughput: a
    /// power loss or kernel crash can then lose acknowledged events (a process crash cannot).
    pub fsync: bool,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: None,
            max_bytes: 1 << 30,
            segment_bytes: 16 << 20,
            seal_ms: 500,
            min_free_bytes: 512 << 20,
            fsync: true,
        }
    }
}

/// Records written with one `write` + fsync at most; more wait for the next group.
const GROUP_BYTES: usize = 8 << 20;
/// Record bytes waiting in memory for the writer at most. When the disk is slower than the
/// network, new batches get 503 instead of piling up in memory.
const MAX_PENDING_BYTES: u64 = 64 << 20;

/// One request's rows, waiting for their group's fsync.
struct Append {
    rows: u64,
    /// The record's frame and its payload apart: the writer sends both in one `writev`, so the
    /// request's RowBinary body is never copied behind a header.
    header: [u8; HEADER],
    payload: Vec<u8>,
    done: oneshot::Sender<Result<(), IngestError>>,
}

impl Append {
    /// The record's size in the segment.
    fn len(&self) -> usize {
        HEADER + self.payload.len()
    }
}

/// A sealed segment file, ready to ship.
#[derive(Debug)]
pub struct Segment {
    path: PathBuf,
    bytes: u64,
    rows: u64,
    /// Left by the last run: ClickHouse may have it already.
    left_over: bool,
}

/// What the spool holds that ClickHouse does not have yet, as `/readyz` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Backlog {
    /// Bytes on disk, and reserved for appends being written.
    pub bytes: u64,
    /// Rows written.
    pub rows: u64,
    /// Segment files, the one being written included.
    pub segments: u64,
}

/// The backlog's rows and segments, kept by the writer and the shipper (bytes are `used`,
/// which also bounds appends) and mirrored in the metrics.
#[derive(Default)]
struct Counts {
    rows: AtomicU64,
    segments: AtomicU64,
}

impl Counts {
    fn add(&self, metrics: &Metrics, rows: u64, segments: u64) {
        let r = self.rows.fetch_add(rows, Ordering::Relaxed) + rows;
        let s = self.segments.fetch_add(segments, Ordering::Relaxed) + segments;
        metrics.spool_rows.set(r as i64);
        metrics.spool_segments.set(s as i64);
    }

    fn sub(&self, metrics: &Metrics, rows: u64, segments: u64) {
        let r = self.rows.fetch_sub(rows, Ordering::Relaxed) - rows;
        let s = self.segments.fetch_sub(segments, Ordering::Relaxed) - segments;
        metrics.spool_rows.set(r as i64);
        metrics.spool_segments.set(s as i64);
    }
}

/// Appends records; cloneless, shared behind the pipeline.
pub struct Spool {
    tx: std_mpsc::Sender<Append>,
    used: Arc<AtomicU64>,
    refusing: Arc<AtomicBool>,
    counts: Arc<Counts>,
    pending: Arc<AtomicU64>,
    max_bytes: u64,
    metrics: Arc<Metrics>,
}

/// What [`Spool::open`] hands to [`ship`].
pub struct Shipping {
    sealed: mpsc::UnboundedReceiver<Segment>,
    used: Arc<AtomicU64>,
    refusing: Arc<AtomicBool>,
    counts: Arc<Counts>,
    dir: PathBuf,
}

impl Spool {
    /// Opens (or creates) the spool in `cfg.dir`, recovers what a previous process left, and
    /// starts the writer thread. The thread stops, sealing its last segment, when the spool is
    /// dropped.
    pub fn open(cfg: &SpoolConfig, metrics: Arc<Metrics>) -> anyhow::Result<(Spool, Shipping)> {
        let dir = cfg
            .dir
            .clone()
            .ok_or_else(|| anyhow::anyhow!("spool.dir is not set"))?;
        fs::create_dir_all(dir.join("dead"))
            .map_err(|e| anyhow::anyhow!("creating the spool directory {dir:?}: {e}"))?;
        let (sealed_tx, sealed) = mpsc::unbounded_channel();
        let mut next_seq = 0;
        let mut used = 0;
        let counts = Arc::new(Counts::default());
        for (seq, path) in segment_files(&dir)? {
            next_seq = next_seq.max(seq + 1);
            let (bytes, rows) = recover(&path)?;
            if bytes == 0 {
                fs::remove_file(&path)?;
                continue;
            }
            tracing::info!(
                ?path,
                bytes,
                "replaying a spool segment left by the last run"
            );
            used += bytes;
            counts.add(&metrics, rows, 1);
            let _ = sealed_tx.send(Segment {
                path,
                bytes,
                rows,
                left_over: true,
            });
        }
        let used = Arc::new(AtomicU64::new(used));
        metrics.spool_bytes.set(used.load(Ordering::Relaxed) as i64);
        let (tx, rx) = std_mpsc::channel();
        let pending = Arc::new(AtomicU64::new(0));
        let refusing = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            refusing: refusing.clone(),
            pending: pending.clone(),
            dir: dir.clone(),
            cfg: cfg.clone(),
            next_seq,
            active: None,
            sealed: sealed_tx,
            used: used.clone(),
            counts: counts.clone(),
            metrics: metrics.clone(),
        };
        std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || writer.run(rx))?;
        let spool = Spool {
            tx,
            used: used.clone(),
            refusing: refusing.clone(),
            counts: counts.clone(),
            pending,
            max_bytes: cfg.max_bytes,
            metrics,
        };
        let shipping = Shipping {
            sealed,
            used,
            refusing,
            counts,
            dir,
        };
        Ok((spool, shipping))
    }

    /// What the spool holds that ClickHouse does not have yet.
    pub fn backlog(&self) -> Backlog {
        Backlog {
            bytes: self.used.load(Ordering::Relaxed),
            rows: self.counts.rows.load(Ordering::Relaxed),
            segments: self.counts.segments.load(Ordering::Relaxed),
        }
    }

    /// Whether the spool refuses writes: its last append found it at its cap (`max_bytes`) or
    /// its disk below `min_free_bytes`, and nothing has been shipped or written since. The
    /// collector is then not ready (`/readyz`): every batch would get 503.
    pub fn refusing(&self) -> bool {
        self.refusing.load(Ordering::Relaxed)
    }

    /// Queues `rows` (RowBinary, `n` rows) for the next group commit; the returned receiver
    /// resolves once they are on disk. Refuses at once when the spool is at its cap.
    pub fn append(
        &self,
        rows: Vec<u8>,
        n: usize,
    ) -> Result<oneshot::Receiver<Result<(), IngestError>>, IngestError> {
        // A record's length field is 32 bits.
        u32::try_from(rows.len()).map_err(|_| IngestError::SpoolFull)?;
        let size = (HEADER + rows.len()) as u64;
        // Reserved now, so concurrent appends cannot overshoot the cap together.
        if self.used.fetch_add(size, Ordering::Relaxed) + size > self.max_bytes {
            self.used.fetch_sub(size, Ordering::Relaxed);
            self.refusing.store(true, Ordering::Relaxed);
            return Err(IngestError::SpoolFull);
        }
        if self.pending.fetch_add(size, Ordering::Relaxed) + size > MAX_PENDING_BYTES {
            self.pending.fetch_sub(size, Ordering::Relaxed);
            self.used.fetch_sub(size, Ordering::Relaxed);
            return Err(IngestError::SpoolFull);
        }
        self.metrics
            .spool_bytes
            .set(self.used.load(Ordering::Relaxed) as i64);
        let (done, rx) = oneshot::channel();
        let append = Append {
            rows: n as u64,
            header: header(&rows, n as u32),
            payload: rows,
            done,
        };
        self.tx.send(append).map_err(|_| {
            self.pending.fetch_sub(size, Ordering::Relaxed);
            self.used.fetch_sub(size, Ordering::Relaxed);
            IngestError::ShuttingDown
        })?;
        Ok(rx)
    }
}

struct Active {
    path: PathBuf,
    file: File,
    len: u64,
    rows: u64,
    opened: Instant,
}

struct Writer {
    dir: PathBuf,
    cfg: SpoolConfig,
    next_seq: u64,
    active: Option<Active>,
    sealed: mpsc::UnboundedSender<Segment>,
    used: Arc<AtomicU64>,
    refusing: Arc<AtomicBool>,
    counts: Arc<Counts>,
    pending: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
}

impl Writer {
    fn run(mut self, rx: std_mpsc::Receiver<Append>) {
        let seal_after = Duration::from_millis(self.cfg.seal_ms);
        loop {
            let first = match &self.active {
                Some(a) => match rx.recv_timeout(seal_after.saturating_sub(a.opened.elapsed())) {
                    Ok(first) => first,
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {
                        self.seal();
                        continue;
                    }
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
                },
                None => match rx.recv() {
                    Ok(first) => first,
                    Err(_) => break,
                },
            };
            let mut group = vec![first];
            let mut bytes = group[0].len();
            while bytes < GROUP_BYTES {
                match rx.try_recv() {
                    Ok(next) => {
                        bytes += next.len();
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            let started = Instant::now();
            let size: u64 = group.iter().map(|a| a.len() as u64).sum();
            self.pending.fetch_sub(size, Ordering::Relaxed);
            let result = self.check_free_space().and_then(|()| self.write(&group));
            self.metrics
                .spool_commit
                .observe(started.elapsed().as_secs_f64());
            if let Err(e) = &result {
                tracing::error!(error = %e, records = group.len(), "spool write refused; answering 503");
                self.used.fetch_sub(size, Ordering::Relaxed);
            }
            self.refusing.store(result.is_err(), Ordering::Relaxed);
            for append in group {
                let _ = append.done.send(
                    result
                        .as_ref()
                        .map(|_| ())
                        .map_err(|_| IngestError::SpoolFull),
                );
            }
            if self.active.as_ref().is_some_and(|a| {
                a.len >= self.cfg.segment_bytes || a.opened.elapsed() >= seal_after
            }) {
                self.seal();
            }
        }
        self.seal();
    }

    /// Refuses while the file system is below `min_free_bytes` (checked per group: one
    /// `statvfs`, next to the fsync it guards).
    fn check_free_space(&self) -> std::io::Result<()> {
        let st = rustix::fs::statvfs(&self.dir)?;
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        if free < self.cfg.min_free_bytes {
            return Err(std::io::Error::new(
                ErrorKind::StorageFull,
                format!("{free} bytes free, below spool.min_free_bytes"),
            ));
        }
        Ok(())
    }

    /// Writes a group at the end of the active segment and makes it durable. On failure (disk
    /// full, I/O error) the segment is cut back to where the group began, so nothing half
    /// written is ever shipped, and a fresh segment is started next time.
    fn write(&mut self, group: &[Append]) -> std::io::Result<()> {
        if self.active.is_none() {
            let path = segment_path(&self.dir, self.next_seq);
            self.next_seq += 1;
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)?;
            // Counted from its creation: sealing it, empty or not, uncounts it.
            self.active = Some(Active {
                path,
                file,
                len: 0,
                rows: 0,
                opened: Instant::now(),
            });
            self.counts.add(&self.metrics, 0, 1);
            if self.cfg.fsync {
                // The new name must survive a crash too.
                if let Err(e) = File::open(&self.dir).and_then(|d| d.sync_all()) {
                    self.seal();
                    return Err(e);
                }
            }
        }
        let Some(active) = self.active.as_mut() else {
            return Err(ErrorKind::Other.into());
        };
        let len: usize = group.iter().map(Append::len).sum();
        let written = write_all_vectored(&mut active.file, group).and_then(|()| {
            if self.cfg.fsync {
                active.file.sync_data()
            } else {
                Ok(())
            }
        });
        match written {
            Ok(()) => {
                let rows: u64 = group.iter().map(|a| a.rows).sum();
                active.len += len as u64;
                active.rows += rows;
                self.counts.add(&self.metrics, rows, 0);
                Ok(())
            }
            Err(e) => {
                let _ = active.file.set_len(active.len);
                self.seal();
                Err(e)
            }
        }
    }

    fn seal(&mut self) {
        let Some(active) = self.active.take() else {
            return;
        };
        drop(active.file);
        if active.len == 0 {
            let _ = fs::remove_file(&active.path);
            self.counts.sub(&self.metrics, 0, 1);
            return;
        }
        // If the shipper is gone (shutdown), the file stays and the next start ships it.
        let _ = self.sealed.send(Segment {
            path: active.path,
            bytes: active.len,
            rows: active.rows,
            left_over: false,
        });
    }
}

/// Writes every record of `group` with as few system calls as the kernel allows (`writev`),
/// without first concatenating them.
fn write_all_vectored(file: &mut File, group: &[Append]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> = group
        .iter()
        .flat_map(|a| {
            [
                std::io::IoSlice::new(&a.header),
                std::io::IoSlice::new(&a.payload),
            ]
        })
        .collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
