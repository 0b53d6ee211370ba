//! Shipping: sealed segments to ClickHouse, oldest first, each as one insert, deleted only once
//! ClickHouse confirmed; and, for segments a previous process left, only the rows ClickHouse
//! does not have yet.

use super::Shipping;
use super::segment::parse;
use crate::metrics::Metrics;
use crate::storage::clickhouse::{ClickHouseConfig, RetryConfig, insert_retrying, retry, stored};
use bytes::Bytes;
use clickhouse::Client;
use pathlight_ingest::Layout;
use std::fs;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::watch;

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
        // Room again: the next append may be taken.
        shipping.refusing.store(false, Ordering::Relaxed);
        metrics
            .spool_bytes
            .set(shipping.used.load(Ordering::Relaxed) as i64);
        shipping.counts.sub(&metrics, segment.rows, 1);
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
