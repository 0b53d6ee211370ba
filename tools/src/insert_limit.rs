//! `pathlight-bench insert-limit`: the storage limit. The rows the collector would insert for
//! the load generator's batches are built first, through the collector's own stages (decode,
//! validate, enrich, RowBinary); then ClickHouse takes them as fast as it can through the
//! collector's own insert, and the tool reports rows per second: what storage alone reaches,
//! beside what the collector reaches with it (bench/limits.sh), with and without the marts'
//! views (bench/storage.sh). With `--write` the rows go to files instead, which
//! bench/modern-storage.sh (and bench/chdb-insert.mjs) feed to other ClickHouse versions.

use pathlight_collector::config::Config;
use pathlight_collector::dates::now_ms;
use pathlight_collector::metrics::Metrics;
use pathlight_collector::pipeline::{IngestRequest, Stages};
use pathlight_collector::storage::clickhouse::{ClickHouseSink, insert_row_binary};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The storage limit: ClickHouse ingesting rows built beforehand, as fast as it takes them,
/// through the same insert the collector uses — one insert of `rows_per_insert` rows at a time,
/// for `duration`. Returns rows per second.
pub async fn run(
    config: &Config,
    batch: usize,
    rows_per_insert: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let metrics = Arc::new(Metrics::new());
    let (sink, _task) = ClickHouseSink::start(&config.clickhouse, metrics.clone()).await?;
    // A few distinct bodies (distinct event ids), built before the clock starts.
    let bodies = limit_rows(config, batch, rows_per_insert, 0..4)?;
    let rows_per_body = (rows_per_insert / batch.max(1)).max(1) * batch;
    let client = sink.bulk_writer();
    let start = Instant::now();
    let mut rows = 0u64;
    let mut i = 0;
    while start.elapsed() < duration {
        insert_row_binary(
            &client,
            &config.clickhouse,
            [bodies[i % bodies.len()].clone()],
        )
        .await?;
        rows += rows_per_body as u64;
        i += 1;
    }
    Ok(rows as f64 / start.elapsed().as_secs_f64())
}

/// Inserts' worth of RowBinary rows in the `events` columns' order
/// ([`pathlight_ingest::COLUMNS`]), one per number in `bodies`, each of `rows_per_insert` rows
/// (whole batches of `batch` events: rounded down, at least one) and with event ids of its own
/// (from its number): what the collector would insert for the generator's batches, through the
/// same stages. `insert-limit --write` saves them, so bench/modern-storage.sh can feed the
/// same rows to other servers.
pub fn limit_rows(
    config: &Config,
    batch: usize,
    rows_per_insert: usize,
    bodies: std::ops::Range<u64>,
) -> anyhow::Result<Vec<bytes::Bytes>> {
    let mut cfg = config.clone();
    cfg.ip_events_per_sec = 0;
    cfg.sites.iter_mut().for_each(|s| s.max_events_per_sec = 0);
    let site = cfg.sites.first().map(|s| s.id.clone()).unwrap_or_default();
    let stages = Stages::new(
        &cfg,
        pathlight_wire::enrich::VisitorHasher::new(&[], [7; 16]),
        Arc::new(Metrics::new()),
    )?;
    let seed = now_ms() as u32;
    let mut template = crate::loadgen::template(&site, batch);
    let batches_per_body = (rows_per_insert / batch.max(1)).max(1);
    let mut out = Vec::new();
    for b in bodies {
        let mut body = Vec::new();
        for k in 0..batches_per_body as u64 {
            let bytes = crate::loadgen::batch_bytes(&mut template, seed, b * 1_000_000 + k);
            let req = IngestRequest {
                body: &bytes,
                received_at: now_ms(),
                delivery: Default::default(),
                ..IngestRequest::default()
            };
            let mut counted = 0;
            for row in &stages.prepare(&req, &mut counted)?.rows {
                row.write_row_binary(&mut body);
            }
        }
        out.push(bytes::Bytes::from(body));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // bench/modern-storage.sh feeds these bytes to ClickHouse as `events` rows: they must be
    // whole rows in COLUMNS order, as many as asked (rounded down to whole batches), each body
    // with event ids of its own (a repeated id would be merged away, or a repeated block
    // dropped by the deduplication window, and flatter the rate).
    #[test]
    fn limit_rows_are_whole_rows_with_ids_of_their_own() {
        let config = Config::for_tests("http://127.0.0.1:1", "unused");
        let bodies = limit_rows(&config, 20, 1_010, 0..2).unwrap();
        assert_eq!(bodies.len(), 2);
        let mut ids = std::collections::HashSet::new();
        for body in &bodies {
            let rows = pathlight_ingest::read_rows(body).unwrap();
            assert_eq!(rows.len(), 1_000);
            assert!(rows.iter().all(|r| r.site_id == "test"));
            ids.extend(rows.iter().map(|r| r.event_id));
        }
        assert_eq!(ids.len(), 2_000);
    }
}
