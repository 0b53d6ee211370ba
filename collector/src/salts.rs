//! The visitor-id salts: one random 16-byte salt per UTC day, kept in ClickHouse (`salts`)
//! so every collector of a deployment hashes alike, and forgotten after a day. The collector
//! holds today's and yesterday's (late events of yesterday still get yesterday's ids); older
//! rows are deleted, so past visitor ids can no longer be linked or reversed by anyone.
//!
//! Two collectors starting on a new day may both insert a salt; everyone uses the smallest of
//! the day's salts, so they agree from their next refresh (each refreshes every minute).

use clickhouse::Client;
use pathlight_wire::enrich::VisitorHasher;
use serde::Deserialize;

#[derive(Deserialize, clickhouse::Row)]
struct Salt {
    day: i64,
    salt: String,
}

fn random_salt() -> anyhow::Result<[u8; 16]> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("no randomness for a salt: {e}"))?;
    Ok(salt)
}

/// The salts of `today` and the day before (days since the epoch), creating today's if
/// missing, and deleting every older one.
pub async fn current(db: &Client, today: i64) -> anyhow::Result<Vec<(i64, [u8; 16])>> {
    let read = || async {
        db.query(
            "SELECT toInt64(toUInt16(day)) AS day, min(salt) AS salt FROM salts \
             WHERE toUInt16(day) >= ? GROUP BY day",
        )
        .bind(today - 1)
        .fetch_all::<Salt>()
        .await
    };
    let mut salts = read().await?;
    if !salts.iter().any(|s| s.day == today) {
        db.query("INSERT INTO salts (day, salt) SELECT toDate(?), ?")
            .bind(today)
            .bind(crate::hex::encode(&random_salt()?))
            .execute()
            .await?;
        salts = read().await?;
    }
    let old = db
        .query("SELECT count() FROM salts WHERE toUInt16(day) < ?")
        .bind(today - 1)
        .fetch_one::<u64>()
        .await?;
    if old > 0 {
        db.query("ALTER TABLE salts DELETE WHERE toUInt16(day) < ?")
            .bind(today - 1)
            .execute()
            .await?;
    }
    Ok(salts
        .iter()
        .filter_map(|s| Some((s.day, crate::hex::decode(&s.salt)?)))
        .collect())
}

/// A hasher for `today` from storage, with a fresh random fallback for days without a salt.
pub async fn hasher(db: &Client, today: i64) -> anyhow::Result<VisitorHasher> {
    Ok(VisitorHasher::new(
        &current(db, today).await?,
        random_salt()?,
    ))
}
