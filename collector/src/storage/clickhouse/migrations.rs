//! Versioned schema. `pathlight migrate` (and `pathlight serve` at start) applies every
//! migration newer than the highest recorded in `schema_migrations`. Statements are
//! `IF NOT EXISTS`, so a run interrupted between a statement and its record is safe to repeat.
//!
//! The SQL depends on the server's [`Dialect`]: the stored data is the same everywhere, but
//! current servers get `LowCardinality` columns and a retention TTL, which 18.x lacks.

use super::config::ClickHouseConfig;
use super::dialect::{DEVICE, Dialect};
use super::marts;
use anyhow::Context;
use clickhouse::Client;

/// One schema step.
pub struct Migration {
    /// Recorded in `schema_migrations`; strictly increasing.
    pub version: u32,
    /// What it does.
    pub name: &'static str,
    /// Statements run in order.
    pub statements: Vec<String>,
}

/// The bookkeeping table, created before anything else.
pub fn migrations_table() -> &'static str {
    "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, applied_at DateTime) \
     ENGINE = MergeTree ORDER BY version"
}

/// Every migration for `dialect`, oldest first.
pub fn migrations(dialect: Dialect, cfg: &ClickHouseConfig) -> Vec<Migration> {
    let lc = |t: &str| dialect.lc(t);
    let s = lc("String");
    let ttl = if dialect.ttl() && cfg.retention_days > 0 {
        format!("\nTTL timestamp + INTERVAL {} DAY", cfg.retention_days)
    } else {
        String::new()
    };
    // One wide table for every event kind, as Plausible (`events_v2`) and PostHog (`events`)
    // do: each query reads only the columns it names, and the columns a kind does not use
    // compress to almost nothing.
    //
    // ORDER BY (site_id, event_type, toDate(timestamp), path, event_id):
    // - every query is for one site, and almost every one for one event kind (heatmaps read
    //   clicks, traffic reads pageviews), so those lead the key and each query reads one
    //   contiguous range of the table;
    // - then the day, like Plausible's and PostHog's keys, so date ranges (every dashboard
    //   has one) narrow that range;
    // - then the path, so a heatmap of one page over N days reads N small runs of granules
    //   instead of every click of the site;
    // - event_id last makes the key unique per event: ReplacingMergeTree keeps one row per
    //   key, so an event sent twice (a retried beacon) is stored once. Queries that must not
    //   see a not-yet-merged duplicate use FINAL or count distinct event ids.
    //   Retries carry the same id, site, kind, path and (client-corrected) day, so they share
    //   the key; see DESIGN.md for the one edge (a retry straddling midnight).
    // PARTITION BY month: few partitions, and retention drops whole months cheaply.
    let table = cfg.local_table("events");
    let events = format!(
        "CREATE TABLE IF NOT EXISTS {table} (
    site_id {s},
    event_id UUID,
    event_type Enum8('pageview' = 1, 'click' = 2, 'scroll' = 3, 'engagement' = 4, 'custom' = 5),
    timestamp DateTime,
    timestamp_ms UInt16,
    received_at DateTime,
    batch_id UUID,
    session_id String,
    visitor_id UInt64,
    user_id String,
    url String,
    host {s},
    path String,
    query String,
    referrer String,
    referrer_host {s},
    utm_source {s},
    utm_medium {s},
    utm_campaign {s},
    utm_term String,
    utm_content String,
    title String,
    viewport_w UInt16,
    viewport_h UInt16,
    document_w UInt32,
    document_h UInt32,
    x Int32,
    y Int32,
    element_id String,
    selector String,
    tag {s},
    text String,
    href String,
    rel_x Float32,
    rel_y Float32,
    box_x Int32,
    box_y Int32,
    box_w Int32,
    box_h Int32,
    scroll_depth UInt8,
    visible_ms UInt32,
    name {s},
    props String,
    browser {s},
    browser_version {s},
    os {s},
    os_version {s},
    device {DEVICE},
    is_bot UInt8,
    country {s},
    region {s},
    city {s},
    asn UInt32,
    colo {s},
    fixed UInt8,
    event_title String
)
ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (site_id, event_type, toDate(timestamp), path, event_id){ttl}"
    )
    .replace("{DEVICE}", DEVICE);
    // Replayed spool segments are inserted again byte for byte; where the server can, it drops
    // such a block at insert (non-replicated block deduplication, 21.x) instead of leaving
    // the copy for ReplacingMergeTree to collapse at merge.
    let dedup = if dialect.insert_dedup() {
        vec![format!(
            "ALTER TABLE {table} MODIFY SETTING non_replicated_deduplication_window = 1000"
        )]
    } else {
        Vec::new()
    };
    vec![
        Migration {
            version: 1,
            name: "events table",
            statements: vec![events],
        },
        Migration {
            version: 2,
            name: "insert deduplication of replayed blocks",
            statements: dedup,
        },
        // Visitor-id salts, one random per UTC day, deleted after a day (`pipeline/salts.rs`).
        Migration {
            version: 3,
            name: "visitor-id salts",
            statements: vec![
                "CREATE TABLE IF NOT EXISTS salts (day Date, salt String) \
                 ENGINE = MergeTree ORDER BY day"
                    .to_owned(),
            ],
        },
        Migration {
            version: 4,
            name: "marts: heatmap bins, daily pages and elements, sessions",
            statements: marts::statements(dialect, cfg),
        },
        Migration {
            version: 5,
            name: "distributed tables (cluster mode)",
            statements: distributed(cfg),
        },
        // Tables made by version 1 before `fixed` was in it get the column; the mart of click
        // positions is made again with it in its key, as fixed and sticky clicks are in
        // viewport coordinates and must not share bins with page coordinates.
        Migration {
            version: 6,
            name: "clicks in fixed or sticky contexts",
            statements: fixed_context(dialect, cfg),
        },
        // Made by version 4 on a new install (which has every mart); filled from the stored
        // events on an older one.
        Migration {
            version: 7,
            name: "mart: traffic per day and breakdown",
            statements: mart_and_tables(dialect, cfg, "traffic_daily"),
        },
        Migration {
            version: 8,
            name: "session figures of finished days (rollup.rs)",
            statements: std::iter::once(super::rolled::session_days(cfg, &s, DEVICE))
                .chain(distributed_table(cfg, "session_days", ""))
                .collect(),
        },
        Migration {
            version: 9,
            name: "session behaviour of each day (query/behaviour.rs)",
            statements: super::rolled::behaviour(cfg, &s)
                .into_iter()
                .chain(
                    super::rolled::BEHAVIOUR_TABLES
                        .iter()
                        .filter_map(|t| distributed_table(cfg, t, "")),
                )
                .collect(),
        },
        Migration {
            version: 10,
            name: "per-element clicks in small granules (element_days)",
            statements: element_days(dialect, cfg),
        },
        Migration {
            version: 11,
            name: "sessions mart in small granules",
            statements: regranulated(dialect, cfg, "sessions"),
        },
        // Made by version 4 on a new install; filled from the stored events on an older one.
        Migration {
            version: 12,
            name: "mart: traffic per hour",
            statements: mart_and_tables(dialect, cfg, "traffic_hourly"),
        },
        // Tables made by version 1 before `event_title` was in it get the column (row layout
        // 2). No mart reads it.
        Migration {
            version: 13,
            name: "the sender's own event title",
            statements: added_column(cfg, "event_title String"),
        },
        Migration {
            version: 14,
            name: "users and their latest traits (identify)",
            statements: super::users::statements(dialect, cfg),
        },
        Migration {
            version: 15,
            name: "accounts and their sessions",
            statements: super::accounts::statements(dialect, cfg),
        },
        Migration {
            version: 16,
            name: "sites made in the product and API keys",
            statements: super::sites::statements(dialect, cfg),
        },
        Migration {
            version: 17,
            name: "site members, invitations and shared links",
            statements: super::access::statements(dialect, cfg),
        },
    ]
}

/// `mart` made again with the settings `marts.rs` gives it now (a table's granularity cannot be
/// altered), its rows copied: a new table filled from the old, swapped in by name, its view
/// made again, the old dropped. On a new install it copies an empty mart. Statements that run
/// again after an interruption redo the copy from whichever table holds the mart's name, so
/// they never lose or double rows. Rows the view writes to the old mart while the copy runs
/// (from other collectors) miss the new one, as with any mart a migration fills.
fn regranulated(dialect: Dialect, cfg: &ClickHouseConfig, mart: &str) -> Vec<String> {
    let local = cfg.local_table(mart);
    let (new, old) = (format!("{local}_new"), format!("{local}_old"));
    let [create, _fill, view] = <[String; 3]>::try_from(marts::statements_of(dialect, cfg, mart))
        .expect("a table, a fill and a view");
    let create = create.replacen(
        &format!("CREATE TABLE IF NOT EXISTS {local} ("),
        &format!("CREATE TABLE {new} ("),
        1,
    );
    vec![
        format!("DROP TABLE IF EXISTS {new}"),
        create,
        format!("INSERT INTO {new} SELECT * FROM {local}"),
        format!("DROP TABLE IF EXISTS {local}_mv"),
        format!("DROP TABLE IF EXISTS {old}"),
        format!("RENAME TABLE {local} TO {old}, {new} TO {local}"),
        view,
        format!("DROP TABLE IF EXISTS {old}"),
    ]
}

/// `element_daily` made again as `element_days`, whose granules are 256 rows (see `marts.rs`;
/// a table's granularity cannot be altered). A new install made it in version 4. An older one
/// fills it from the stored events like any added mart, and drops the old mart and its view
/// after that: every statement may run again if the migration is interrupted.
fn element_days(dialect: Dialect, cfg: &ClickHouseConfig) -> Vec<String> {
    let old = "element_daily";
    let local = cfg.local_table(old);
    let mut out = mart_and_tables(dialect, cfg, "element_days");
    out.push(format!("DROP TABLE IF EXISTS {local}_mv"));
    out.push(format!("DROP TABLE IF EXISTS {local}"));
    if cfg.clustered() {
        out.push(format!("DROP TABLE IF EXISTS {old}"));
    }
    out
}

/// `column` (name and type) added to `events`, and in cluster mode to its `Distributed` table
/// too, which lists the columns it reads and inserts. The runner drops `IF NOT EXISTS` where
/// the server lacks it (18.16).
fn added_column(cfg: &ClickHouseConfig, column: &str) -> Vec<String> {
    let add = format!("ADD COLUMN IF NOT EXISTS {column}");
    let mut out = vec![format!("ALTER TABLE {} {add}", cfg.local_table("events"))];
    if cfg.clustered() {
        out.push(format!("ALTER TABLE events {add}"));
    }
    out
}

fn fixed_context(dialect: Dialect, cfg: &ClickHouseConfig) -> Vec<String> {
    let mut out = added_column(cfg, "fixed UInt8");
    let mart = "heatmap_clicks";
    let local = cfg.local_table(mart);
    if cfg.clustered() {
        out.push(format!("DROP TABLE IF EXISTS {mart}"));
    }
    out.push(format!("DROP TABLE IF EXISTS {local}_mv"));
    out.push(format!("DROP TABLE IF EXISTS {local}"));
    out.extend(mart_and_tables(dialect, cfg, mart));
    out
}

/// A mart added after version 4, with its `Distributed` table in cluster mode.
fn mart_and_tables(dialect: Dialect, cfg: &ClickHouseConfig, mart: &str) -> Vec<String> {
    let mut out = marts::statements_of(dialect, cfg, mart);
    out.extend(distributed_table(cfg, mart, ""));
    out
}

/// Where the server lacks `ADD COLUMN IF NOT EXISTS` (18.16): the statement without the clause
/// when the column is missing, none when it is there.
async fn without_if_not_exists(db: &Client, sql: &str) -> anyhow::Result<Option<String>> {
    const CLAUSE: &str = " ADD COLUMN IF NOT EXISTS ";
    let Some((head, rest)) = sql.split_once(CLAUSE) else {
        return Ok(Some(sql.to_owned()));
    };
    let table = head.trim_start_matches("ALTER TABLE ").trim();
    let column = rest.split_whitespace().next().unwrap_or_default();
    let present: u64 = db
        .query("SELECT count() FROM system.columns WHERE database = currentDatabase() AND table = ? AND name = ?")
        .bind(table)
        .bind(column)
        .fetch_one()
        .await?;
    Ok((present == 0).then(|| format!("{head} ADD COLUMN {rest}")))
}

/// Cluster mode: on every server, a `Distributed` table under each data table's usual name
/// over the shards' `<name>_local` tables, so queries and inserts name `events` and the marts
/// wherever they run. Inserts into `events` go to the shard of `sipHash64(session_id)`: a
/// session's events share a shard, so per-session work (funnels, paths, FINAL's collapsing of
/// a retried event) happens inside one shard. The marts' views fill each shard's local mart
/// from its local events; their `Distributed` tables only read.
fn distributed(cfg: &ClickHouseConfig) -> Vec<String> {
    std::iter::once(("events", ", sipHash64(session_id)"))
        .chain(marts::NAMES.iter().map(|m| (*m, "")))
        .filter_map(|(t, key)| distributed_table(cfg, t, key))
        .collect()
}

/// In cluster mode, the `Distributed` table `t` over the shards' `t_local` (`key`: `, <sharding
/// expression>` for a table inserted into through it); none on one server.
fn distributed_table(cfg: &ClickHouseConfig, t: &str, key: &str) -> Option<String> {
    let (cluster, db) = (&cfg.cluster, &cfg.database);
    cfg.clustered().then(|| {
        format!(
            "CREATE TABLE IF NOT EXISTS {t} AS {t}_local \
             ENGINE = Distributed({cluster}, {db}, {t}_local{key})"
        )
    })
}

/// Creates the database if needed, then applies pending migrations, on the one server or on
/// every shard. Returns the versions applied (on the last shard).
pub async fn run(
    base: &Client,
    cfg: &ClickHouseConfig,
    dialect: Dialect,
) -> anyhow::Result<Vec<u32>> {
    if !cfg.clustered() {
        return run_on(base, cfg, dialect).await;
    }
    let mut applied = Vec::new();
    for shard in cfg.shard_configs() {
        applied = run_on(&super::client(&shard).with_validation(false), cfg, dialect)
            .await
            .with_context(|| format!("migrating the shard at {}", shard.url))?;
    }
    Ok(applied)
}

async fn run_on(
    base: &Client,
    cfg: &ClickHouseConfig,
    dialect: Dialect,
) -> anyhow::Result<Vec<u32>> {
    base.query(&format!("CREATE DATABASE IF NOT EXISTS {}", cfg.database))
        .execute()
        .await
        .with_context(|| format!("creating database {}", cfg.database))?;
    let db = base.clone().with_database(&cfg.database);
    db.query(migrations_table())
        .execute()
        .await
        .context("creating schema_migrations")?;
    let current: u32 = db
        .query("SELECT max(version) FROM schema_migrations")
        .fetch_one()
        .await
        .context("reading schema_migrations")?;
    let mut applied = Vec::new();
    for m in migrations(dialect, cfg)
        .into_iter()
        .filter(|m| m.version > current)
    {
        for sql in &m.statements {
            let context = || format!("migration {} ({})", m.version, m.name);
            let sql = if dialect.add_column_if_not_exists() {
                Some(sql.clone())
            } else {
                without_if_not_exists(&db, sql)
                    .await
                    .with_context(context)?
            };
            if let Some(sql) = sql {
                db.query(&sql).execute().await.with_context(context)?;
            }
        }
        db.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, now())")
            .bind(m.version)
            .bind(m.name)
            .execute()
            .await
            .with_context(|| format!("recording migration {}", m.version))?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
        applied.push(m.version);
    }
    Ok(applied)
}

/// Every statement for `dialect`, as `pathlight migrate --print` shows them (and the modern
/// dialect's test runs them in an embedded current ClickHouse).
pub fn script(dialect: Dialect, cfg: &ClickHouseConfig) -> String {
    let mut out = format!("{};\n", migrations_table());
    for m in migrations(dialect, cfg) {
        out.push_str(&format!("-- migration {}: {}\n", m.version, m.name));
        for s in m.statements {
            out.push_str(&s);
            out.push_str(";\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each column of the shared row (`pathlight_ingest::row`) is declared by the migrations,
    /// once; the order against the struct is checked end to end
    /// (`it::ingest::every_column_round_trips`).
    #[test]
    fn columns_are_the_tables() {
        let ddl: String = migrations(Dialect::LEGACY, &ClickHouseConfig::for_tests())
            .into_iter()
            .filter(|m| m.version == 1)
            .flat_map(|m| m.statements)
            .collect();
        let columns: Vec<&str> = pathlight_ingest::COLUMNS
            .split(',')
            .map(str::trim)
            .collect();
        for c in &columns {
            assert!(ddl.contains(&format!("\n    {c} ")), "{c} is not a column");
        }
        let declared = ddl
            .lines()
            .filter(|l| l.starts_with("    ") && !l.starts_with("     "))
            .count();
        assert_eq!(declared, columns.len(), "a column is missing from COLUMNS");
    }

    #[test]
    fn versions_parse_and_gate_features() {
        let old = Dialect::parse("18.16.1").unwrap();
        assert_eq!(old, Dialect::LEGACY);
        assert!(
            !old.low_cardinality() && !old.ttl() && !old.async_insert() && !old.query_parameters()
        );
        let new = Dialect::parse("25.8.1.5").unwrap();
        assert!(
            new.low_cardinality() && new.ttl() && new.async_insert() && new.client_validation()
        );
        assert_eq!(Dialect::parse("garbage"), None);
    }

    #[test]
    fn legacy_sql_avoids_modern_features() {
        let cfg = ClickHouseConfig {
            retention_days: 30,
            ..Default::default()
        };
        let old = script(Dialect::LEGACY, &cfg);
        assert!(!old.contains("LowCardinality") && !old.contains("TTL"));
        let new = script(Dialect::MODERN, &cfg);
        assert!(
            new.contains("LowCardinality(String)")
                && new.contains("TTL timestamp + INTERVAL 30 DAY")
        );
    }

    #[test]
    fn versions_increase() {
        let m = migrations(Dialect::MODERN, &ClickHouseConfig::default());
        assert!(m.windows(2).all(|w| w[0].version < w[1].version));
    }
}
