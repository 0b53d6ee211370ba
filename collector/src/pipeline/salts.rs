//! The visitor-id salts: one random 16-byte salt per UTC day, kept in ClickHouse (`salts`)
//! so every collector of a deployment hashes alike, and forgotten after a day. The collector
//! holds today's and yesterday's (late events of yesterday still get yesterday's ids); older
//! rows are deleted, so past visitor ids can no longer be linked or reversed by anyone.
//!
//! Two collectors starting on a new day may both insert a salt; everyone uses the smallest of
//! the day's salts, so they agree from their next refresh (each refreshes every minute).

use clickhouse::Client;
use pathlight_ingest::salts as sql;
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
    let read = || async { db.query(&sql::select(today)).fetch_all::<Salt>().await };
    let mut salts = read().await?;
    if !salts.iter().any(|s| s.day == today) {
        db.query(&sql::insert(today, &crate::hex::encode(&random_salt()?)))
            .execute()
            .await?;
        salts = read().await?;
    }
    let old = db.query(&sql::count_old(today)).fetch_one::<u64>().await?;
    if old > 0 {
        db.query(&sql::delete_old(today)).execute().await?;
    }
    Ok(salts
        .iter()
        .filter_map(|s| Some((s.day, crate::hex::decode(&s.salt)?)))
        .collect())
}

/// A hasher for `today` from storage, with a fresh random fallback for days without a salt,
/// and the salts it holds.
pub async fn hasher(
    db: &Client,
    today: i64,
) -> anyhow::Result<(VisitorHasher, Vec<(i64, [u8; 16])>)> {
    let salts = current(db, today).await?;
    Ok((VisitorHasher::new(&salts, random_salt()?), salts))
}
