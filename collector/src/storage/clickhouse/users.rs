//! The `users` table: each site's signed-in users as the site describes them (`identify`), one
//! row per identify, the latest of a (site, user) winning.
//!
//! A `ReplacingMergeTree` versioned by the time the identify was received (ms) keeps only the
//! newest row of a key once parts merge; readers take `argMax(traits, updated_ms)` so that
//! rows not merged yet give the same answer. Traits are a JSON object in a `String`: 18.16 has
//! no `Map` or `JSON` type, and the object is only ever read whole. The table is small (one
//! row per user, not per event), so it has no partitions and no TTL: a user's row goes with
//! the right to erasure (`erasure.rs`), not with the events' retention.

use super::config::ClickHouseConfig;
use super::dialect::Dialect;
use clickhouse::Client;
use std::time::Duration;

pub use pathlight_ingest::UserRow;

/// The statements creating the table (and, in cluster mode, its `Distributed` table over the
/// shards', sharded by user so that a user's rows meet in one shard's merges).
pub fn statements(dialect: Dialect, cfg: &ClickHouseConfig) -> Vec<String> {
    let local = cfg.local_table("users");
    let mut out = vec![format!(
        "CREATE TABLE IF NOT EXISTS {local} (
    site_id {site},
    user_id String,
    traits String,
    updated_ms UInt64
)
ENGINE = ReplacingMergeTree(updated_ms)
ORDER BY (site_id, user_id)",
        site = dialect.lc("String"),
    )];
    if cfg.clustered() {
        let (cluster, db) = (&cfg.cluster, &cfg.database);
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS users AS {local} \
             ENGINE = Distributed({cluster}, {db}, {local}, sipHash64(user_id))"
        ));
    }
    out
}

/// Inserts `rows` as one insert, answered within `timeout`.
pub async fn insert(
    client: &Client,
    rows: &[UserRow],
    timeout: Duration,
) -> clickhouse::error::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let t = Some(timeout);
    let mut insert = client
        .insert_formatted_with(pathlight_ingest::USERS_INSERT)
        .with_timeouts(t, t);
    insert
        .send(pathlight_ingest::write_user_rows(rows).into())
        .await?;
    insert.end().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_row_of_a_user_wins_and_legacy_gets_plain_types() {
        let cfg = ClickHouseConfig::for_tests();
        let old = statements(Dialect::LEGACY, &cfg).join("\n");
        assert!(old.contains("ReplacingMergeTree(updated_ms)") && !old.contains("LowCardinality"));
        assert!(statements(Dialect::MODERN, &cfg)[0].contains("site_id LowCardinality(String)"));
    }
}
