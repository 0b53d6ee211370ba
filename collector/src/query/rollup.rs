//! Session figures per day, rolled up: what the dashboard's average session, bounce rate and
//! entry and exit pages read for every day but today, and for today on a busy site.
//!
//! # Why a rollup and not a view
//! A session's duration, page count, entry and exit are known only once it is over, and its
//! events arrive over many inserts; a materialized view sees one insert at a time, so the
//! `sessions` mart keeps one mergeable row per session and day, and a query groups those by
//! session. That is millions of rows a month (issue 27: half a second and more at 2.5 M
//! sessions). A session that started on day D is over once D + 1 is over (a session ends
//! 30 minutes after its last event; one running past midnight has a row on D + 1), so from
//! then on its figures can be summed: `session_days` holds, per site, start day, device,
//! entry page and exit page, the sessions, the bounces (at most one page view) and their
//! total duration: thousands of rows a month. Yesterday is rolled too, before it is final (a
//! session still going since before midnight), and rolled again at each pass after its
//! sessions' next events: its figures are as of the last pass, at most [`PERIOD`] old. Today
//! is rolled the same way, but the API reads it from here only for a site whose today had
//! [`query::TODAY_LIVE_MAX`] sessions or more at its last roll, where merging the day's
//! sessions live costs most of a second; on a smaller site today stays live, so a visitor's own
//! session shows at once.
//!
//! [`query::TODAY_LIVE_MAX`]: crate::query::TODAY_LIVE_MAX
//!
//! # The path of a day through it
//! 1. Every [`PERIOD`], [`roll`] lists the days up to today (UTC) whose
//!    `sessions` mart parts changed since they were last rolled: any part covering D - 1, D
//!    or D + 1 written (an insert, a late batch from a tracker's queue) after the day's
//!    latest roll; a part a merge wrote from rows the process already saw is not new
//!    ([`roll_since`]). ClickHouse's `system.parts` says which days a part covers and when
//!    it was written, so nothing is read from the mart to decide.
//! 2. For each such day (at most [`DAYS_PER_ROLL`] a time, oldest first) it inserts the day's
//!    sums under a new `version` (the roll's time). Queries read, per site, day and shard, the
//!    latest version only, so a re-roll replaces the day whole, including entry/exit pairs
//!    that no longer occur; `ReplacingMergeTree` folds the rows of one key's versions.
//! 3. The query API (`query::sql::stats`) reads the rolled days from here and the others
//!    (today on a small site, and any not yet rolled) from the `sessions` mart, and adds
//!    them up.
//!
//! In cluster mode each shard rolls its own part of the sessions into its `session_days_local`
//! (`shard` in the key keeps the shards' versions apart); `session_days` reads them all.
//!
//! The same pass rolls what each day's sessions did (`query::behaviour`: anomalies, rage and
//! dead clicks, action sequences) for every due day up to today: those are read only from the
//! rollup, so a session still going is rolled as it stands and again at the next pass after
//! its next events.

use super::behaviour;
use crate::dates::{civil, unix_day};
use crate::storage::clickhouse::ClickHouseConfig;
use clickhouse::Client;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

/// How often the rollup looks for days to roll, unless configured
/// (`[clickhouse] rollup_period_secs`).
pub const PERIOD: Duration =
    Duration::from_secs(crate::storage::clickhouse::DEFAULT_ROLLUP_PERIOD_SECS);

/// Most days rolled in one pass: a first start on months of history catches up over a few
/// passes instead of holding ClickHouse for minutes.
pub const DAYS_PER_ROLL: usize = 60;

/// The day's sums from the `sessions` mart, as inserted: the sessions that started on the
/// day (`?` 1: the day; 2, 3: the days around it; 4: the day; 5: shard; 6: version).
fn insert_sql(cfg: &ClickHouseConfig) -> String {
    let (days, sessions) = (cfg.local_table("session_days"), cfg.local_table("sessions"));
    format!(
        "INSERT INTO {days} (site_id, day, shard, device, entry, exit, sessions, bounced, duration_ms, version) \
         SELECT site_id, toDate(?) AS day, toUInt16(?) AS shard, device, entry, exit, count(), countIf(pv <= 1), \
         sum(t1 - t0), toDateTime(?) FROM \
         (SELECT site_id, session_id, any(device) AS device, minMerge(start_ms) AS t0, maxMerge(end_ms) AS t1, \
          countIfMerge(pageviews) AS pv, argMinIfMerge(entry) AS entry, argMaxIfMerge(exit) AS exit \
          FROM {sessions} WHERE day BETWEEN toDate(?) - 1 AND toDate(?) + 1 GROUP BY site_id, session_id \
          HAVING toDate(toDateTime(intDiv(t0, 1000))) = toDate(?)) \
         GROUP BY site_id, device, entry, exit"
    )
}

/// The statement [`roll`] runs for `day` (`YYYY-MM-DD`) on shard `shard` at `version` (Unix
/// seconds), values bound: what `pathlight sql` shows and the modern dialect's test runs.
pub fn insert(
    client: &Client,
    cfg: &ClickHouseConfig,
    day: &str,
    shard: u16,
    version: u32,
) -> clickhouse::query::Query {
    leading(client, &insert_sql(cfg), day, shard, version)
        .bind(day)
        .bind(day)
        .bind(day)
}

/// `sql` with its leading day, shard and version bound (every roll statement, the behaviour
/// rollup's too, begins with those).
pub fn leading(
    client: &Client,
    sql: &str,
    day: &str,
    shard: u16,
    version: u32,
) -> clickhouse::query::Query {
    client.query(sql).bind(day).bind(shard).bind(version)
}

/// The behaviour rollup's statements ([`behaviour::roll_statements`]) bound for `day` on `shard` at `version`, each with its name.
pub fn behaviour_queries(
    client: &Client,
    cfg: &ClickHouseConfig,
    repeats: &behaviour::Repeats,
    day: &str,
    shard: u16,
    version: u32,
) -> Vec<(&'static str, clickhouse::query::Query)> {
    behaviour::roll_statements(cfg, repeats)
        .into_iter()
        .map(|s| {
            let mut q = leading(client, &s.sql, day, shard, version);
            if s.sql.contains(" FROM ") {
                for _ in 0..5 {
                    q = q.bind(day);
                }
            }
            for v in s.post {
                q = q.bind(v);
            }
            (s.name, q)
        })
        .collect()
}

#[derive(Deserialize, clickhouse::Row)]
struct Part {
    min_day: u16,
    max_day: u16,
    written: u32,
    partition: String,
    max_block: u64,
}

#[derive(Deserialize, clickhouse::Row)]
struct Rolled {
    day: u16,
    version: u32,
}

/// The days to roll on this shard, oldest first: those up to `last` (days since the epoch)
/// covered (with a day either side) by a part of the `sessions` mart (`(first day, last day,
/// written)`) written at or after the day's latest roll (`(day, version)`; at: a part of the
/// roll's own second may have missed it).
pub fn due(parts: &[(i64, i64, u32)], rolled: &[(i64, u32)], last: i64) -> Vec<i64> {
    let latest = |d: i64| rolled.iter().find(|r| r.0 == d).map(|r| r.1);
    let mut days: Vec<i64> = parts
        .iter()
        // A part covering D - 1 … D + 1 can change the sessions that started on D.
        .flat_map(|&(lo, hi, written)| ((lo - 1)..=(hi + 1)).map(move |d| (d, written)))
        // A second of slack: a version may be a second ahead of the clock (see `roll`).
        .filter(|&(d, written)| d <= last && latest(d).is_none_or(|v| written + 1 >= v))
        .map(|(d, _)| d)
        .collect();
    days.sort_unstable();
    days.dedup();
    days.truncate(DAYS_PER_ROLL);
    days
}

/// A day rolled with no session still gets a row (no site, nothing counted), so that it is
/// not due again until a part covering it is written.
fn marker_sql(cfg: &ClickHouseConfig) -> String {
    format!(
        "INSERT INTO {} (site_id, day, shard, version) SELECT '', toDate(?), toUInt16(?), toDateTime(?)",
        cfg.local_table("session_days")
    )
}

/// The statement that marks `day` rolled on `shard` at `version`, after its rows.
pub fn marker(
    client: &Client,
    cfg: &ClickHouseConfig,
    day: &str,
    shard: u16,
    version: u32,
) -> clickhouse::query::Query {
    leading(client, &marker_sql(cfg), day, shard, version)
}

/// Rolls the due days of one shard (`shard`: its index in the config, 0 on one server) as of
/// `today`; returns them. The version is the server's clock, the clock its parts' times are
/// from.
pub async fn roll(
    client: &Client,
    cfg: &ClickHouseConfig,
    repeats: &behaviour::Repeats,
    shard: u16,
    today: i64,
) -> clickhouse::error::Result<RolledDays> {
    roll_since(client, cfg, repeats, shard, today, &mut Seen::new()).await
}

/// Per partition of the `sessions` mart, the highest insert block a pass has seen.
pub type Seen = HashMap<String, u64>;

/// [`roll`], leaving out the parts whose rows `seen` says an earlier pass of this process saw
/// (the parts a background merge wrote from them: the same rows, a new modification time),
/// and updating `seen` once the pass has rolled its days. Without this a merge of a month of
/// the mart made every day of it due again: at 100 M events a month, rolling them took longer
/// than the period.
pub async fn roll_since(
    client: &Client,
    cfg: &ClickHouseConfig,
    repeats: &behaviour::Repeats,
    shard: u16,
    today: i64,
    seen: &mut Seen,
) -> clickhouse::error::Result<RolledDays> {
    let version: u32 = client.query("SELECT toUInt32(now())").fetch_one().await?;
    let all: Vec<Part> = client
        .query(
            "SELECT toUInt16(min_date), toUInt16(max_date), toUInt32(modification_time), \
             partition_id, toUInt64(max_block_number) FROM system.parts \
             WHERE database = currentDatabase() AND table = ? AND active",
        )
        .bind(cfg.local_table("sessions"))
        .fetch_all()
        .await?;
    // Insert block numbers grow per partition, and a merged part spans its parts' blocks: a
    // part holds new rows only if its highest block is above what was seen.
    let parts: Vec<&Part> = all
        .iter()
        .filter(|p| seen.get(&p.partition).is_none_or(|&b| p.max_block > b))
        .collect();
    let rolled_of = |sql: String| client.query(&sql).bind(shard).fetch_all::<Rolled>();
    let (rolled, behaviour) = tokio::try_join!(
        rolled_of(format!(
            "SELECT toUInt16(day), toUInt32(max(version)) FROM {} WHERE shard = ? GROUP BY day",
            cfg.local_table("session_days")
        )),
        rolled_of(format!(
            "SELECT toUInt16(day), toUInt32(max(version)) FROM {} WHERE shard = ? AND site_id = '' \
             GROUP BY day",
            cfg.local_table("anomaly_days")
        )),
    )?;
    let parts: Vec<(i64, i64, u32)> = parts
        .iter()
        .map(|p| (i64::from(p.min_day), i64::from(p.max_day), p.written))
        .collect();
    let pairs = |r: &[Rolled]| -> Vec<(i64, u32)> {
        r.iter().map(|r| (i64::from(r.day), r.version)).collect()
    };
    let (rolled, behaviour) = (pairs(&rolled), pairs(&behaviour));
    let days = due(&parts, &rolled, today);
    let behaviour_days = due(&parts, &behaviour, today);
    // Later than every roll before, even one earlier in this very second: the queries read
    // each day's latest version, so two rolls must never share one.
    let version = rolled
        .iter()
        .chain(&behaviour)
        .map(|r| r.1.saturating_add(1))
        .fold(version, u32::max);
    for &d in &days {
        let day = civil(d);
        insert(client, cfg, &day, shard, version).execute().await?;
        marker(client, cfg, &day, shard, version).execute().await?;
    }
    for &d in &behaviour_days {
        for (_, q) in behaviour_queries(client, cfg, repeats, &civil(d), shard, version) {
            q.execute().await?;
        }
    }
    remember(seen, &all, [&days, &behaviour_days]);
    Ok(RolledDays {
        sessions: days,
        behaviour: behaviour_days,
    })
}

/// Notes the blocks of `parts` as seen once a pass has rolled `rolled` (each list of due days).
/// A pass that rolled as many days as it may ([`DAYS_PER_ROLL`]) may have left due days for
/// the next, whose parts must stay new to it: then nothing is noted.
fn remember(seen: &mut Seen, parts: &[Part], rolled: [&[i64]; 2]) {
    if rolled.iter().any(|days| days.len() >= DAYS_PER_ROLL) {
        return;
    }
    for p in parts {
        let b = seen.entry(p.partition.clone()).or_default();
        *b = (*b).max(p.max_block);
    }
}

/// The days a [`roll`] rolled.
#[derive(Debug, Default)]
pub struct RolledDays {
    /// Session figures (`session_days`).
    pub sessions: Vec<i64>,
    /// Behaviour (`query::behaviour`).
    pub behaviour: Vec<i64>,
}

/// Runs [`roll`] on every shard now and then every [`PERIOD`], for as long as the process
/// lives. Several collectors may run it: a day rolled twice has two versions, and the
/// queries read the latest.
pub fn spawn(
    cfg: ClickHouseConfig,
    repeats: behaviour::Repeats,
    client: impl Fn(&ClickHouseConfig) -> Client + Send + 'static,
) {
    tokio::spawn(async move {
        let period = Duration::from_secs(cfg.rollup_period_secs);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen: Vec<Seen> = vec![Seen::new(); cfg.shard_configs().len()];
        loop {
            tick.tick().await;
            let today = unix_day(crate::dates::now_ms());
            for (i, shard) in cfg.shard_configs().iter().enumerate() {
                let db = client(shard).with_database(&cfg.database);
                match roll_since(&db, &cfg, &repeats, i as u16, today, &mut seen[i]).await {
                    Ok(days) if !days.sessions.is_empty() || !days.behaviour.is_empty() => {
                        tracing::info!(
                            shard = i,
                            sessions = days.sessions.len(),
                            behaviour = days.behaviour.len(),
                            "rolled up days"
                        )
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, shard = i, "session rollup failed"),
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_noted_only_after_a_pass_that_left_nothing_due() {
        let part = |partition: &str, max_block| Part {
            min_day: 0,
            max_day: 0,
            written: 0,
            partition: partition.to_owned(),
            max_block,
        };
        let parts = [part("202612", 7), part("202612", 3), part("202611", 9)];
        let mut seen = Seen::new();
        let full: Vec<i64> = (0..DAYS_PER_ROLL as i64).collect();
        remember(&mut seen, &parts, [&full, &[]]);
        remember(&mut seen, &parts, [&[], &full]);
        assert!(seen.is_empty(), "a capped pass notes nothing: {seen:?}");
        remember(&mut seen, &parts, [&[1, 2], &[1, 2, 3]]);
        assert_eq!(
            seen,
            Seen::from([("202612".into(), 7), ("202611".into(), 9)])
        );
    }

    #[test]
    fn days_are_due_once_finished_and_again_after_a_part_covering_them_is_written() {
        let today = 100;
        // A part of days 90–95 written at 1000, one of 98–99 at 1500; up to day 98 (the day
        // before yesterday) as `roll` asks for `session_days` before the change to today - 1.
        let parts = [(90, 95, 1_000), (98, 99, 1_500)];
        assert_eq!(
            due(&parts, &[], today - 2),
            vec![89, 90, 91, 92, 93, 94, 95, 96, 97, 98]
        );
        // Rolled at 1200: only the days the later part touches are due again.
        let rolled: Vec<(i64, u32)> = (89..=98).map(|d| (d, 1_200)).collect();
        assert_eq!(due(&parts, &rolled, today - 2), vec![97, 98]);
        // A late batch for day 92 (written at 2000, after the roll at 1200).
        let late = [(90, 95, 1_000), (92, 92, 2_000)];
        assert_eq!(due(&late, &rolled, today - 2), vec![91, 92, 93]);
        // Bounded per pass, oldest first.
        let many = [(0, 99, 1)];
        assert_eq!(due(&many, &[], today - 2).len(), DAYS_PER_ROLL);
        assert_eq!(due(&many, &[], today - 2)[0], -1);
        // Up to today, as `roll` asks for both.
        assert_eq!(due(&parts, &rolled, today), vec![97, 98, 99, 100]);
    }
}
