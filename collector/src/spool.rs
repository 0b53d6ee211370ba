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
//!    insert, retrying what is worth retrying (`sinks/clickhouse/retry.rs`), and deletes the
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
use crate::sinks::clickhouse::{ClickHouseConfig, RetryConfig, insert_retrying, retry, stored};
use bytes::Bytes;
use clickhouse::Client;
use pathlight_ingest::Layout;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc as std_mpsc};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

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

const HEADER: usize = 12;
/// Records written with one `write` + fsync at most; more wait for the next group.
const GROUP_BYTES: usize = 8 << 20;
/// Record bytes waiting in memory for the writer at most. When the disk is slower than the
/// network, new batches get 503 instead of piling up in memory.
const MAX_PENDING_BYTES: u64 = 64 << 20;

/// One request's rows, waiting for their group's fsync.
struct Append {
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
    /// Left by the last run: ClickHouse may have it already.
    left_over: bool,
}

/// Appends records; cloneless, shared behind the pipeline.
pub struct Spool {
    tx: std_mpsc::Sender<Append>,
    used: Arc<AtomicU64>,
    pending: Arc<AtomicU64>,
    max_bytes: u64,
    metrics: Arc<Metrics>,
}

/// What [`Spool::open`] hands to [`ship`].
pub struct Shipping {
    sealed: mpsc::UnboundedReceiver<Segment>,
    used: Arc<AtomicU64>,
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
        for (seq, path) in segment_files(&dir)? {
            next_seq = next_seq.max(seq + 1);
            let bytes = recover(&path)?;
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
            let _ = sealed_tx.send(Segment {
                path,
                bytes,
                left_over: true,
            });
        }
        let used = Arc::new(AtomicU64::new(used));
        metrics.spool_bytes.set(used.load(Ordering::Relaxed) as i64);
        let (tx, rx) = std_mpsc::channel();
        let pending = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            pending: pending.clone(),
            dir: dir.clone(),
            cfg: cfg.clone(),
            next_seq,
            active: None,
            sealed: sealed_tx,
            used: used.clone(),
            metrics: metrics.clone(),
        };
        std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || writer.run(rx))?;
        let spool = Spool {
            tx,
            used: used.clone(),
            pending,
            max_bytes: cfg.max_bytes,
            metrics,
        };
        Ok((spool, Shipping { sealed, used, dir }))
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

/// One record of a segment in one buffer: `payload` (RowBinary, under 4 GiB) holding `rows`
/// rows, framed as the module's documentation says. For tests, which write segments as a
/// crashed or older process would have left them; the writer sends frame and payload apart.
pub fn record(payload: &[u8], rows: u32) -> Vec<u8> {
    record_of(payload, rows, Layout::CURRENT)
}

/// [`record`] of rows written in `layout`, as an older version left them.
pub fn record_of(payload: &[u8], rows: u32, layout: Layout) -> Vec<u8> {
    let mut r = Vec::with_capacity(HEADER + payload.len());
    r.extend_from_slice(&header_of(payload, rows, layout));
    r.extend_from_slice(payload);
    r
}

/// The frame [`record`] puts before `payload`.
fn header(payload: &[u8], rows: u32) -> [u8; HEADER] {
    header_of(payload, rows, Layout::CURRENT)
}

/// Rows per record fit in the low 24 bits of the `rows` word (a request holds far fewer); the
/// top byte is the layout.
const ROWS_MASK: u32 = 0x00ff_ffff;

fn header_of(payload: &[u8], rows: u32, layout: Layout) -> [u8; HEADER] {
    let mut h = [0; HEADER];
    h[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[4..8].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let word = (rows & ROWS_MASK) | u32::from(layout.code()) << 24;
    h[8..].copy_from_slice(&word.to_le_bytes());
    h
}

/// `NNNNNNNNNNNNNNNNNNNN.seg` files of `dir`, oldest first.
fn segment_files(dir: &Path) -> anyhow::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(seq) = seq {
            out.push((seq, path));
        }
    }
    out.sort();
    Ok(out)
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.seg"))
}

/// A record's RowBinary payload in its segment, and the layout its rows were written in (none:
/// a newer version's, after a rollback; shipped as they are, so ClickHouse refuses them and
/// the segment is kept in `dead/` rather than lost).
type Payload = (std::ops::Range<usize>, Option<Layout>);

/// The records of a segment that are whole and match their checksum: where their RowBinary
/// payloads are, the number of rows, and the length of that valid prefix.
fn parse(data: &[u8]) -> (Vec<Payload>, u64, usize) {
    let mut payloads = Vec::new();
    let (mut rows, mut at) = (0u64, 0usize);
    while let Some(header) = data.get(at..at + HEADER) {
        let word =
            |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let (len, crc, n) = (word(0) as usize, word(4), word(8));
        let Some(payload) = data.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let layout = Layout::from_code((n >> 24) as u8);
        payloads.push((at + HEADER..at + HEADER + len, layout));
        rows += u64::from(n & ROWS_MASK);
        at += HEADER + len;
    }
    (payloads, rows, at)
}

/// Cuts a segment left by a previous process back to its last whole record; returns its size.
fn recover(path: &Path) -> anyhow::Result<u64> {
    let data = fs::read(path)?;
    let (_, _, valid) = parse(&data);
    if valid < data.len() {
        tracing::warn!(
            ?path,
            cut = data.len() - valid,
            "spool segment ends in a torn record (a crash mid-write, never acknowledged); cutting it off"
        );
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(valid as u64)?;
    }
    Ok(valid as u64)
}

struct Active {
    path: PathBuf,
    file: File,
    len: u64,
    opened: Instant,
}

struct Writer {
    dir: PathBuf,
    cfg: SpoolConfig,
    next_seq: u64,
    active: Option<Active>,
    sealed: mpsc::UnboundedSender<Segment>,
    used: Arc<AtomicU64>,
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
            if self.cfg.fsync {
                // The new name must survive a crash too.
                File::open(&self.dir)?.sync_all()?;
            }
            self.active = Some(Active {
                path,
                file,
                len: 0,
                opened: Instant::now(),
            });
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
                active.len += len as u64;
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
            return;
        }
        // If the shipper is gone (shutdown), the file stays and the next start ships it.
        let _ = self.sealed.send(Segment {
            path: active.path,
            bytes: active.len,
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

/// Ships sealed segments to ClickHouse, oldest first, until the spool's writer has stopped
/// and every segment is shipped. Once `stopping` turns true, an insert that fails is not
/// retried: its segment stays on disk for the next start, so shutdown is not held up by a
/// ClickHouse that is away.
pub async fn ship(
    mut shipping: Shipping,
    client: Client,
    cfg: ClickHouseConfig,
    metrics: Arc<Metrics>,
    stopping: watch::Receiver<bool>,
) {
    while let Some(segment) = shipping.sealed.recv().await {
        // Read and checked off the runtime: the checksums of 16 MiB are milliseconds of CPU
        // that answers waiting on the same worker would sit behind (bench/results/limits.md).
        let path = segment.path.clone();
        let read = tokio::task::spawn_blocking(move || {
            fs::read(&path).map(|data| {
                let (payloads, rows, _) = parse(&data);
                // Sent as slices of the file's bytes: no second copy of a segment in memory.
                // An older version's rows are re-encoded with today's columns; rows that do not
                // read back (they passed their checksum, so never in practice) go as they are
                // and ClickHouse judges them.
                let data = Bytes::from(data);
                let body: Vec<Bytes> = payloads
                    .into_iter()
                    .map(|(r, layout)| match layout {
                        Some(old) if old != Layout::CURRENT => {
                            pathlight_ingest::upgrade(&data[r.clone()], old)
                                .map_or_else(|_| data.slice(r), Bytes::from)
                        }
                        _ => data.slice(r),
                    })
                    .collect();
                (body, rows)
            })
        })
        .await;
        let (mut body, mut rows) = match read {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => {
                tracing::error!(path = ?segment.path, error = %e, "cannot read a spool segment");
                continue;
            }
            Err(e) => {
                tracing::error!(path = ?segment.path, error = %e, "reading a spool segment failed");
                continue;
            }
        };
        if segment.left_over {
            let give_up = || *stopping.borrow();
            // Given up: the segment stays on disk for the next start.
            let Some(stored) =
                drop_stored(&client, &cfg.retry, &mut body, &mut rows, give_up).await
            else {
                return;
            };
            if stored > 0 {
                tracing::info!(path = ?segment.path, stored, "rows of a replayed segment were already in ClickHouse");
            }
        }
        if rows == 0 {
            let _ = tokio::fs::remove_file(&segment.path).await;
        } else {
            match insert_retrying(&client, &cfg, &metrics, body, rows, || *stopping.borrow()).await
            {
                Ok(()) => {
                    if let Err(e) = tokio::fs::remove_file(&segment.path).await {
                        tracing::error!(path = ?segment.path, error = %e, "cannot delete a shipped segment; it will be shipped again (deduplicated)");
                    }
                }
                Err(stop) if stop.refused => {
                    tracing::error!(path = ?segment.path, error = %stop.error, "ClickHouse refused a spool segment; moving it to dead/");
                    let dead = shipping
                        .dir
                        .join("dead")
                        .join(segment.path.file_name().unwrap_or_default());
                    if let Err(e) = tokio::fs::rename(&segment.path, &dead).await {
                        tracing::error!(error = %e, "cannot move a refused segment to dead/");
                    }
                    metrics.spool_dead_segments.inc();
                    metrics.reject("storage_rejected", rows);
                }
                // Shutting down: the segment stays on disk for the next start.
                Err(_) => return,
            }
        }
        shipping.used.fetch_sub(segment.bytes, Ordering::Relaxed);
        metrics
            .spool_bytes
            .set(shipping.used.load(Ordering::Relaxed) as i64);
    }
}

/// Takes out of `body` (`rows` rows) the rows whose event ids ClickHouse already has — rows
/// that may have been inserted before, by a run that died before it could record so (a left
/// spool segment, a loader's unacked message) — and returns how many. While ClickHouse cannot
/// answer, asks again after `retry.rs`'s backoff by `policy`, whose random jitter keeps
/// collectors and loaders that lost ClickHouse together from coming back in step; `None` once
/// `give_up()` is true after a failure.
pub(crate) async fn drop_stored(
    client: &Client,
    policy: &RetryConfig,
    body: &mut Vec<Bytes>,
    rows: &mut u64,
    give_up: impl Fn() -> bool,
) -> Option<u64> {
    let mut attempt = 0u32;
    let unstored = loop {
        attempt += 1;
        match not_stored(client, body).await {
            Ok(found) => break found,
            Err(_) if give_up() => return None,
            Err(e) => {
                tracing::warn!(error = %e, attempt, "cannot check rows against ClickHouse yet");
                tokio::time::sleep(retry::backoff(policy, attempt)).await;
            }
        }
    };
    let Some((unstored, n)) = unstored else {
        return Some(0);
    };
    let stored = *rows - n;
    *body = vec![unstored];
    *rows = n;
    Some(stored)
}

/// The rows of `body` whose event ids ClickHouse does not have, re-encoded, and their count;
/// none if `body` is not whole rows (it passed its checksum, so it is sent as it is).
async fn not_stored(
    client: &Client,
    body: &[Bytes],
) -> clickhouse::error::Result<Option<(Bytes, u64)>> {
    let mut rows = Vec::new();
    for payload in body {
        match pathlight_ingest::read_rows(payload) {
            Ok(r) => rows.extend(r),
            Err(_) => return Ok(None),
        }
    }
    stored::drop_stored(client, &mut rows).await?;
    let n = rows.len() as u64;
    Ok(Some((Bytes::from(pathlight_ingest::write_rows(&rows)), n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_or_corrupt_tail_is_cut_at_the_last_whole_record() {
        let mut data = record(b"first", 1);
        data.extend(record(b"second", 2));
        let whole = data.len();
        let (payloads, rows, valid) = parse(&data);
        let body: Vec<u8> = payloads
            .iter()
            .flat_map(|(r, _)| data[r.clone()].to_vec())
            .collect();
        assert_eq!(
            (body.as_slice(), rows, valid),
            (&b"firstsecond"[..], 3, whole)
        );
        // The rows' layout rides in the top byte of the count.
        let old = record_of(b"old", 5, Layout::FIRST);
        assert_eq!(parse(&old).0, [(HEADER..HEADER + 3, Some(Layout::FIRST))]);
        assert_eq!(parse(&old).1, 5);
        // Every cut of a third record leaves the first two.
        let third = record(b"third", 4);
        for cut in 0..third.len() {
            let mut torn = data.clone();
            torn.extend_from_slice(&third[..cut]);
            assert_eq!(parse(&torn).2, whole, "cut at {cut}");
        }
        // A flipped payload byte fails the checksum.
        let mut corrupt = data.clone();
        corrupt[HEADER + 1] ^= 1;
        assert_eq!(parse(&corrupt), (Vec::new(), 0, 0));
    }
}
