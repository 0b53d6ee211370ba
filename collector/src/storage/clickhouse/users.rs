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

/// One identify, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct UserRow {
    /// The site.
    pub site_id: String,
    /// The site's id of the user.
    pub user_id: String,
    /// The traits, a JSON object.
    pub traits: String,
    /// When the identify was received, ms since the epoch: the latest wins.
    pub updated_ms: u64,
}

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

const INSERT: &str = "INSERT INTO users (site_id, user_id, traits, updated_ms) FORMAT RowBinary";

/// `rows` as RowBinary, in the columns of [`INSERT`].
fn row_binary(rows: &[UserRow]) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        let mut n = s.len() as u64;
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
        out.extend_from_slice(s.as_bytes());
    }
    let mut out = Vec::with_capacity(rows.iter().map(|r| r.traits.len() + 64).sum());
    for r in rows {
        string(&mut out, &r.site_id);
        string(&mut out, &r.user_id);
        string(&mut out, &r.traits);
        out.extend_from_slice(&r.updated_ms.to_le_bytes());
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
    let mut insert = client.insert_formatted_with(INSERT).with_timeouts(t, t);
    insert.send(row_binary(rows).into()).await?;
    insert.end().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_row_binary_in_the_insert_order() {
        let row = UserRow {
            site_id: "s".into(),
            user_id: "u".repeat(130),
            traits: "{}".into(),
            updated_ms: 0x0102,
        };
        let bytes = row_binary(&[row]);
        // A length of 130 takes two LEB128 bytes.
        assert_eq!(&bytes[..4], &[1, b's', 130, 1]);
        assert_eq!(&bytes[134..137], &[2, b'{', b'}']);
        assert_eq!(&bytes[137..], &[2, 1, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn the_latest_row_of_a_user_wins_and_legacy_gets_plain_types() {
        let cfg = ClickHouseConfig::for_tests();
        let old = statements(Dialect::LEGACY, &cfg).join("\n");
        assert!(old.contains("ReplacingMergeTree(updated_ms)") && !old.contains("LowCardinality"));
        assert!(statements(Dialect::MODERN, &cfg)[0].contains("site_id LowCardinality(String)"));
    }
}
