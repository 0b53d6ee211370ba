//! Retention on servers without TTL (18.x): whole monthly partitions of `events` and of the
//! marts are dropped once every day in them is older than `retention_days`. Current servers
//! get a table TTL instead (`migrations.rs`, `marts.rs`), which drops rows as they expire.

use super::config::ClickHouseConfig;
use super::marts;
use crate::dates::{days_from_civil, unix_day};
use clickhouse::Client;
use serde::Deserialize;
use std::time::Duration;

#[derive(Deserialize, clickhouse::Row)]
struct Partition {
    table: String,
    partition: String,
}

/// The `toYYYYMM` partitions of `events` whose last day is before `today - retention_days`
/// (days since the epoch), given the partitions present.
pub fn expired(partitions: &[String], retention_days: u32, today: i64) -> Vec<String> {
    let cutoff = today - i64::from(retention_days);
    partitions
        .iter()
        .filter(|p| {
            let Ok(ym) = p.parse::<i64>() else {
                return false;
            };
            let (y, m) = (ym / 100, ym % 100);
            if !(1..=12).contains(&m) {
                return false;
            }
            // The first day of the next month, as days since the epoch.
            let (ny, nm) = if m == 12 {
                (y + 1, 1)
            } else {
                (y, m as u32 + 1)
            };
            days_from_civil(ny, nm, 1) <= cutoff
        })
        .cloned()
        .collect()
}

/// Drops the expired partitions of `events` and the marts now, on the server of `client`;
/// returns the events' ones.
pub async fn enforce(
    client: &Client,
    cfg: &ClickHouseConfig,
    today: i64,
) -> clickhouse::error::Result<Vec<String>> {
    // Cluster mode: each shard's own tables (the Distributed ones hold no parts).
    let events = cfg.local_table("events");
    let tables: Vec<String> = std::iter::once("events")
        .chain(marts::NAMES)
        .map(|t| cfg.local_table(t))
        .collect();
    let present: Vec<Partition> = client
        .query("SELECT DISTINCT table, partition FROM system.parts WHERE database = ? AND has(?, table) AND active")
        .bind(&cfg.database)
        .bind(&tables)
        .fetch_all()
        .await?;
    let mut dropped = Vec::new();
    for table in &tables {
        let present: Vec<String> = present
            .iter()
            .filter(|p| &p.table == table)
            .map(|p| p.partition.clone())
            .collect();
        for p in expired(&present, cfg.retention_days, today) {
            // The partition id is digits only (checked by `expired`), and the table one of
            // ours, so both can stand in the SQL.
            client
                .query(&format!("ALTER TABLE {table} DROP PARTITION {p}"))
                .execute()
                .await?;
            tracing::info!(table, partition = %p, retention_days = cfg.retention_days, "dropped expired partition");
            if *table == events {
                dropped.push(p);
            }
        }
    }
    Ok(dropped)
}

/// Runs [`enforce`] at start and then every six hours, for as long as the process lives.
pub fn spawn(client: Client, cfg: ClickHouseConfig) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(6 * 3600));
        loop {
            tick.tick().await;
            let today = unix_day(crate::dates::now_ms());
            if let Err(e) = enforce(&client, &cfg, today).await {
                tracing::warn!(error = %e, "retention: dropping expired partitions failed");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_months_past_the_cutoff_expire() {
        let today = days_from_civil(2026, 11, 23);
        let parts: Vec<String> = [
            "202409", "202410", "202411", "202511", "junk", "202413", "-1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // 400 days before 2026-11-23 is 2025-10-19: months ending before it go.
        assert_eq!(expired(&parts, 400, today), ["202409", "202410", "202411"]);
        assert_eq!(
            expired(&parts, 30, today),
            ["202409", "202410", "202411", "202511"]
        );
    }
}
