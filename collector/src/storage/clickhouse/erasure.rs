//! The right to erasure: every event of one person, by the identifiers that tie events to
//! someone — the site's own user id, a session id, or a visitor id (which rotates daily, so it
//! covers that day). The delete is a ClickHouse mutation (`ALTER TABLE … DELETE`), which
//! rewrites the affected parts in the background; [`erase`] waits until it has finished, so
//! "done" means the rows are gone from disk, not just hidden.
//!
//! Of the marts, only `sessions` holds rows of one person (their sessions' summaries, with
//! visitor and user id); those go too, and so does a user id's row of traits in `users`. The others hold counts per page, bin and element, and
//! distinct-visitor states (sets of daily visitor-id hashes, which the deleted salts make
//! unlinkable), nothing that names anyone.

use super::ClickHouseConfig;
use clickhouse::Client;
use clickhouse::query::Query;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// Whose events to erase.
#[derive(Clone, Debug)]
pub enum Subject {
    /// The site's user id (`identify`).
    UserId(String),
    /// A session id.
    SessionId(String),
    /// A visitor id (the daily hash), as stored.
    VisitorId(u64),
}

#[derive(Deserialize, clickhouse::Row)]
struct Pending {
    pending: u64,
}

impl Subject {
    fn column(&self) -> &'static str {
        match self {
            Subject::UserId(_) => "user_id",
            Subject::SessionId(_) => "session_id",
            Subject::VisitorId(_) => "visitor_id",
        }
    }

    /// `sql` with `site` and the id bound (escaped client-side, never spliced).
    fn query(&self, db: &Client, sql: &str, site: &str) -> Query {
        let q = db.query(&sql.replace("{column}", self.column())).bind(site);
        match self {
            Subject::UserId(v) | Subject::SessionId(v) => q.bind(v.as_str()),
            Subject::VisitorId(v) => q.bind(*v),
        }
    }
}

/// Deletes the subject's events of `site`; returns how many rows there were. Waits for the
/// mutation at most `wait`. In cluster mode the delete runs on every shard's local tables
/// (a `Distributed` table takes no mutation), and "done" means done on all of them.
pub async fn erase(
    cfg: &ClickHouseConfig,
    site: &str,
    who: &Subject,
    wait: Duration,
) -> anyhow::Result<u64> {
    if let Subject::UserId(v) | Subject::SessionId(v) = who {
        anyhow::ensure!(
            !v.is_empty(),
            "an empty id would match every anonymous event"
        );
    }
    let connect = |c: &ClickHouseConfig| {
        super::client(c)
            .with_database(&cfg.database)
            .with_validation(false)
    };
    let db = connect(cfg);
    let count = who
        .query(
            &db,
            "SELECT count() FROM events WHERE site_id = ? AND {column} = ?",
            site,
        )
        .fetch_one::<u64>()
        .await?;
    let traits = match who {
        Subject::UserId(user) => {
            db.query("SELECT count() FROM users WHERE site_id = ? AND user_id = ?")
                .bind(site)
                .bind(user.as_str())
                .fetch_one::<u64>()
                .await?
        }
        _ => 0,
    };
    if count == 0 && traits == 0 {
        return Ok(0);
    }
    let sessions: Vec<String> = who
        .query(
            &db,
            "SELECT DISTINCT session_id FROM events WHERE site_id = ? AND {column} = ? AND session_id != ''",
            site,
        )
        .fetch_all()
        .await?;
    let (events, summaries, users) = (
        cfg.local_table("events"),
        cfg.local_table("sessions"),
        cfg.local_table("users"),
    );
    let shards: Vec<Client> = cfg.shard_configs().iter().map(connect).collect();
    for shard in &shards {
        if !sessions.is_empty() {
            shard
                .query(&format!(
                    "ALTER TABLE {summaries} DELETE WHERE site_id = ? AND has(?, session_id)"
                ))
                .bind(site)
                .bind(&sessions)
                .execute()
                .await?;
        }
        who.query(
            shard,
            &format!("ALTER TABLE {events} DELETE WHERE site_id = ? AND {{column}} = ?"),
            site,
        )
        .execute()
        .await?;
        if let (Subject::UserId(user), true) = (who, traits > 0) {
            shard
                .query(&format!(
                    "ALTER TABLE {users} DELETE WHERE site_id = ? AND user_id = ?"
                ))
                .bind(site)
                .bind(user.as_str())
                .execute()
                .await?;
        }
    }
    let deadline = Instant::now() + wait;
    for shard in &shards {
        loop {
            let p = shard
                .query(
                    "SELECT count() AS pending FROM system.mutations \
                     WHERE database = currentDatabase() AND table IN (?, ?, ?) AND is_done = 0",
                )
                .bind(&events)
                .bind(&summaries)
                .bind(&users)
                .fetch_one::<Pending>()
                .await?;
            if p.pending == 0 {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the delete is still running after {wait:?}; it will finish in the background"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(count)
}
