//! Whether ClickHouse answers, as `pathlight_clickhouse_up` says: a probe (`SELECT 1`) every
//! [`PROBE_INTERVAL`], and every insert's outcome in between (`sink.rs`), so an outage shows
//! within seconds with or without traffic. The gauge is the state: readiness (`/readyz`) reads
//! it, so what operators graph and what load balancers act on cannot disagree.

use crate::metrics::Metrics;
use clickhouse::Client;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often ClickHouse is asked whether it answers. Short, so that readiness follows an
/// outage and a recovery within seconds; `SELECT 1` costs the server nothing.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How long a probe waits: a server slower than this to say `1` cannot take inserts either.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Records whether ClickHouse answered, logging the changes.
pub fn set_up(metrics: &Metrics, up: bool) {
    let was = metrics.clickhouse_up.set(i64::from(up));
    match (was == 1, up) {
        (true, false) => tracing::warn!("ClickHouse is not answering"),
        (false, true) => tracing::info!("ClickHouse answers"),
        _ => {}
    }
}

/// Whether ClickHouse answered the last probe or insert.
pub fn is_up(metrics: &Metrics) -> bool {
    metrics.clickhouse_up.get() == 1
}

/// Records an insert's failure: ClickHouse is down when it gave no answer at all (refused
/// connection, timeout), not when it answered with an error (too many parts, bad rows), which
/// says it is there.
pub fn record_failure(metrics: &Metrics, error: &clickhouse::error::Error) {
    if !matches!(error, clickhouse::error::Error::BadResponse(_)) {
        set_up(metrics, false);
    }
}

/// Probes ClickHouse through `client` every [`PROBE_INTERVAL`] until `stop`'s sender is
/// dropped (the sink is gone).
pub async fn probe(client: Client, metrics: Arc<Metrics>, mut stop: watch::Receiver<bool>) {
    loop {
        let answered =
            tokio::time::timeout(PROBE_TIMEOUT, client.query("SELECT 1").fetch_one::<u8>()).await;
        set_up(&metrics, matches!(answered, Ok(Ok(1))));
        tokio::select! {
            () = tokio::time::sleep(PROBE_INTERVAL) => {}
            changed = stop.changed() => if changed.is_err() { return },
        }
    }
}
