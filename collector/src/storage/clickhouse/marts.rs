//! Marts: small tables that materialized views keep up to date from `events`, so the daily
//! views of the query API read thousands of pre-aggregated rows instead of every event.
//!
//! # The path of an event into the marts
//!
//! An insert into `events` runs each view's `SELECT` over the inserted block (before any merge)
//! and inserts the result into its mart; ClickHouse merges the mart's rows with the same key
//! later (`SummingMergeTree` adds counts, `AggregatingMergeTree` combines aggregate states), so
//! every query over a mart still groups and merges (`sum`, `-Merge`) itself.
//!
//! - `heatmap_clicks` / `heatmap_anchors` (SummingMergeTree): clicks per page, day, layout
//!   class, device and bin — page position (x in 1/1000 of the document width, y in 2 px; a
//!   click in a fixed or sticky context, `fixed` > 0, is in viewport coordinates) or
//!   position inside the clicked element (1/100 of its box). At 1440 px a bin is 1.44 px wide,
//!   under the 2 px the viewer needs after scaling.
//! - `page_daily` / `element_days` (AggregatingMergeTree): per page and day, views and distinct
//!   visitors; per clicked element, clicks, distinct clickers, average position, id, tag, text.
//!   `element_days` is stored in granules of 256 rows instead of 8,192: its rows carry exact
//!   sets of clickers (kilobytes each), and a page's rows of a month are a few hundred rows
//!   among hundreds of thousands, so 8,192-row granules made the elements call read and
//!   deserialize about 30 times the states it merges (2.2 s to 0.1 s at 100 M events,
//!   bench/results/queries.md). It was `element_daily` before migration 10.
//! - `sessions` (AggregatingMergeTree): one row per session and day with start, end, last
//!   hide/leave, event counts by kind, pages, entry and exit page, top actions, user, and the
//!   session's visitor id, device, browser, OS and country (in the key). Also in granules of
//!   256 rows (since migration 11): the session list reads a page of 100 sessions scattered
//!   over a day's rows, and with 8,192-row granules it read the top actions of about 800 k
//!   rows to merge those of 100 (1.4 s to 0.2 s on a day of 833 k sessions).
//! - `traffic_daily` (AggregatingMergeTree): the dashboard's traffic per site, day and device,
//!   for the site's total and for each value of each breakdown (page, referrer host, device,
//!   browser, OS, country, campaign): page views, approximate distinct visitors, and, in the
//!   total, sessions, active users and undelivered batches. A month of it is thousands of rows
//!   where `events` has millions. The distinct counts are HyperLogLog states (`uniqHLL12`:
//!   4,096 registers, 2.5 KB, standard error 1.6 %, exact to 16): `uniq`'s states hold up to
//!   65,536 hashes (512 KB), and merging a month of them took 0.9 s at 10 M events
//!   (bench/results/queries.md); these merge in tens of ms.
//! - `traffic_hourly` (AggregatingMergeTree): the site's visitors (HyperLogLog), page views and
//!   events per hour and device, for the hourly series.
//!
//! Bots never reach a mart: each view skips `is_bot = 1`, as every query does.
//!
//! # Duplicates
//! `events` collapses a re-sent event (same id) at merge; a view sees the insert, not the merge,
//! so a mart counts what was inserted. The collector keeps re-sends out: a spool segment
//! replayed after a crash, and a batch a tracker says it sends again (`?r=1`), are checked
//! against the stored ids first (`storage/spool/`, `pipeline/recent_batches.rs`); a sender that re-sends
//! without saying so can still add one to a count. The other way round,
//! ClickHouse writes an insert's rows to `events` before it runs the views, not atomically: a
//! server killed between the two keeps the events and loses that insert's mart rows (the
//! replay check then finds the events stored). The API's `exact=true`
//! reads `events FINAL` instead, for figures that must be exact to the event.
//!
//! # Existing data
//! A migration fills each mart from `events FINAL` before creating its view, and only while the
//! mart is empty, so a migration interrupted and run again does not count twice. Events that
//! other collectors insert between the fill and the view's creation miss the mart: migrate
//! before the collectors start sending (`pathlight serve` migrates before it listens).

use super::config::ClickHouseConfig;
use super::dialect::{DEVICE, Dialect};

/// Layout class of the viewport the event was seen at: 0 phone (< 600 px), 1 tablet
/// (< 1000 px), 2 desktop; the query API's `width` picks one (layouts differ between them).
pub const LAYOUT: &str = "toUInt8(multiIf(viewport_w < 600, 0, viewport_w < 1000, 1, 2))";
/// Click x in thousandths of the document width (of the viewport for a click in a fixed or
/// sticky context, which is in viewport coordinates).
pub const PX: &str =
    "toUInt16(least(greatest(round(x * 1000 / if(fixed > 0, viewport_w, document_w)), 0), 1000))";
/// Click y in 2 px bins.
pub const PY: &str = "toInt32(intDiv(y, 2) * 2)";
/// Click position inside its element, hundredths of the box.
pub const RX: &str = "toUInt8(least(greatest(round(rel_x * 100), 0), 100))";
/// See [`RX`].
pub const RY: &str = "toUInt8(least(greatest(round(rel_y * 100), 0), 100))";
/// An event's time in ms.
pub const TS: &str = "toUInt64(timestamp) * 1000 + timestamp_ms";
/// The action an event stands for, in `topK` of a session.
pub const ACTION: &str =
    "concat(toString(event_type), ' ', if(event_type = 'custom', toString(name), selector))";

/// One mart: its table and the `SELECT` over `events` that feeds it.
struct Mart {
    name: &'static str,
    columns: String,
    engine: &'static str,
    key: &'static str,
    /// `SELECT … FROM events WHERE …`, grouped by the key unless `group` says otherwise.
    select: String,
    group: Option<&'static str>,
    /// `SETTINGS …` of the table, if any.
    settings: &'static str,
}

fn marts(dialect: Dialect) -> Vec<Mart> {
    let s = dialect.lc("String");
    let clicks = "FROM events WHERE event_type = 'click' AND is_bot = 0";
    vec![
        Mart {
            name: "heatmap_clicks",
            columns: format!(
                "site_id {s}, path String, day Date, layout UInt8, device {DEVICE}, \
                 fixed UInt8, px UInt16, py Int32, clicks UInt64"
            ),
            engine: "SummingMergeTree(clicks)",
            key: "site_id, path, day, layout, device, fixed, px, py",
            select: format!(
                "SELECT site_id, path, toDate(timestamp) AS day, {LAYOUT} AS layout, device, \
                 fixed, {PX} AS px, {PY} AS py, count() AS clicks \
                 {clicks} AND document_w > 0"
            ),
            group: None,
            settings: "",
        },
        Mart {
            name: "heatmap_anchors",
            columns: format!(
                "site_id {s}, path String, day Date, layout UInt8, device {DEVICE}, \
                 selector String, rx UInt8, ry UInt8, clicks UInt64"
            ),
            engine: "SummingMergeTree(clicks)",
            key: "site_id, path, day, layout, device, selector, rx, ry",
            select: format!(
                "SELECT site_id, path, toDate(timestamp) AS day, {LAYOUT} AS layout, device, \
                 selector, {RX} AS rx, {RY} AS ry, count() AS clicks \
                 {clicks} AND selector != ''"
            ),
            group: None,
            settings: "",
        },
        Mart {
            name: "page_daily",
            columns: format!(
                "site_id {s}, path String, day Date, layout UInt8, device {DEVICE}, \
                 views AggregateFunction(count), visitors AggregateFunction(uniqExact, UInt64)"
            ),
            engine: "AggregatingMergeTree",
            key: "site_id, path, day, layout, device",
            select: format!(
                "SELECT site_id, path, toDate(timestamp) AS day, {LAYOUT} AS layout, device, \
                 countState() AS views, uniqExactState(visitor_id) AS visitors \
                 FROM events WHERE event_type = 'pageview' AND is_bot = 0"
            ),
            group: None,
            settings: "",
        },
        Mart {
            name: "element_days",
            columns: format!(
                "site_id {s}, path String, day Date, layout UInt8, device {DEVICE}, selector String, \
                 element_id AggregateFunction(any, String), tag AggregateFunction(any, String), \
                 text AggregateFunction(any, String), clicks AggregateFunction(count), \
                 clickers AggregateFunction(uniqExact, UInt64), \
                 rel_x AggregateFunction(avg, Float32), rel_y AggregateFunction(avg, Float32)"
            ),
            engine: "AggregatingMergeTree",
            key: "site_id, path, day, layout, device, selector",
            select: format!(
                "SELECT site_id, path, toDate(timestamp) AS day, {LAYOUT} AS layout, device, selector, \
                 anyState(element_id) AS element_id, anyState(toString(tag)) AS tag, \
                 anyState(text) AS text, countState() AS clicks, \
                 uniqExactState(visitor_id) AS clickers, \
                 avgState(rel_x) AS rel_x, avgState(rel_y) AS rel_y \
                 {clicks} AND selector != ''"
            ),
            group: None,
            settings: " SETTINGS index_granularity = 256",
        },
        Mart {
            name: "sessions",
            columns: format!(
                "site_id {s}, day Date, session_id String, visitor_id UInt64, device {DEVICE}, \
                 browser {s}, os {s}, country {s}, \
                 start_ms AggregateFunction(min, UInt64), end_ms AggregateFunction(max, UInt64), \
                 left_ms AggregateFunction(maxIf, UInt64, UInt8), \
                 events AggregateFunction(count), \
                 pageviews AggregateFunction(countIf, UInt8), \
                 clicks AggregateFunction(countIf, UInt8), \
                 scrolls AggregateFunction(countIf, UInt8), \
                 customs AggregateFunction(countIf, UInt8), \
                 pages AggregateFunction(uniqExactIf, String, UInt8), \
                 entry AggregateFunction(argMinIf, String, UInt64, UInt8), \
                 exit AggregateFunction(argMaxIf, String, UInt64, UInt8), \
                 actions AggregateFunction(topKIf(3), String, UInt8), \
                 user_id AggregateFunction(max, String)"
            ),
            engine: "AggregatingMergeTree",
            // The session's visitor, device, browser, OS and country end the key: the same for
            // nearly every session's events, so they add no rows, and a session that changes
            // network (country) mid-way keeps both rows, merged by the queries' GROUP BY.
            key: "site_id, day, session_id, visitor_id, device, browser, os, country",
            // `left_ms`: the last engagement report, which the tracker sends when the page is
            // hidden or left (and before an SPA route change, always followed by a page view):
            // a session whose last event it is ended cleanly.
            select: format!(
                "SELECT site_id, toDate(timestamp) AS day, session_id, any(visitor_id) AS visitor_id, \
                 any(device) AS device, any(browser) AS browser, any(os) AS os, any(country) AS country, \
                 minState({TS}) AS start_ms, maxState({TS}) AS end_ms, \
                 maxIfState({TS}, event_type = 'engagement') AS left_ms, countState() AS events, \
                 countIfState(event_type = 'pageview') AS pageviews, \
                 countIfState(event_type = 'click') AS clicks, \
                 countIfState(event_type = 'scroll') AS scrolls, \
                 countIfState(event_type = 'custom') AS customs, \
                 uniqExactIfState(path, event_type = 'pageview') AS pages, \
                 argMinIfState(path, {TS}, event_type = 'pageview') AS entry, \
                 argMaxIfState(path, {TS}, event_type = 'pageview') AS exit, \
                 topKIfState(3)({ACTION}, event_type IN ('click', 'custom')) AS actions, \
                 maxState(user_id) AS user_id \
                 FROM events WHERE is_bot = 0 AND session_id != ''"
            ),
            // The key's other columns are the session's, taken with any().
            group: Some("site_id, day, session_id"),
            settings: " SETTINGS index_granularity = 256",
        },
        Mart {
            name: "traffic_daily",
            columns: format!(
                "site_id {s}, dim UInt8, day Date, device {DEVICE}, value String, \
                 visitors AggregateFunction(uniqHLL12, UInt64), \
                 sessions AggregateFunction(uniqHLL12If, String, UInt8), \
                 actives AggregateFunction(uniqHLL12If, UInt64, UInt8), \
                 pageviews AggregateFunction(countIf, UInt8), \
                 events AggregateFunction(countIf, UInt8), \
                 failed AggregateFunction(sumIf, UInt64, UInt8), \
                 dropped AggregateFunction(sumIf, UInt64, UInt8)"
            ),
            engine: "AggregatingMergeTree",
            // The dashboard reads one dimension over a range of days: those lead the key.
            key: "site_id, dim, day, device, value",
            // Every event once per dimension (ARRAY JOIN): the site's total (dim 0, where the
            // session, active-user and undelivered states are kept) and its value in each
            // breakdown; page views and distinct visitors per value.
            select: format!(
                "SELECT site_id, tupleElement(d, 1) AS dim, toDate(timestamp) AS day, device, \
                 tupleElement(d, 2) AS value, uniqHLL12State(visitor_id) AS visitors, \
                 uniqHLL12IfState(session_id, dim = 0) AS sessions, \
                 uniqHLL12IfState(if(user_id != '', cityHash64(user_id), visitor_id), dim = 0) AS actives, \
                 countIfState(event_type = 'pageview') AS pageviews, \
                 countIfState(dim = 0) AS events, \
                 sumIfState(visitParamExtractUInt(props, 'failed'), dim = 0 AND {UNDELIVERED}) AS failed, \
                 sumIfState(visitParamExtractUInt(props, 'dropped'), dim = 0 AND {UNDELIVERED}) AS dropped \
                 FROM events ARRAY JOIN {dims} AS d WHERE is_bot = 0",
                dims = traffic_dims()
            ),
            group: None,
            settings: "",
        },
        // The series of `stats?interval=hour`: a day's hours for the site's total. From events
        // it was a FINAL over the range's events (0.8 s for one day at 100 M a month; a
        // month's hours, seconds).
        Mart {
            name: "traffic_hourly",
            columns: format!(
                "site_id {s}, day Date, hour DateTime, device {DEVICE}, \
                 visitors AggregateFunction(uniqHLL12, UInt64), \
                 pageviews AggregateFunction(countIf, UInt8), events AggregateFunction(count)"
            ),
            engine: "AggregatingMergeTree",
            key: "site_id, day, hour, device",
            select: "SELECT site_id, toDate(timestamp) AS day, toStartOfHour(timestamp) AS hour, \
                     device, uniqHLL12State(visitor_id) AS visitors, \
                     countIfState(event_type = 'pageview') AS pageviews, countState() AS events \
                     FROM events WHERE is_bot = 0"
                .to_owned(),
            group: None,
            settings: "",
        },
    ]
}

/// The breakdowns of `traffic_daily`, by their `dim` code less one (0 is the site's total):
/// the columns the dashboard ranks by page views.
pub const TRAFFIC_DIMS: [&str; 7] = [
    "path",
    "referrer_host",
    "device",
    "browser",
    "os",
    "country",
    "utm_campaign",
];

/// The tracker's report of batches it could not deliver (`ingest::delivery`).
const UNDELIVERED: &str = "event_type = 'custom' AND name = '$undelivered'";

/// `[(0, ''), (1, path), …]`: each event's value in each breakdown, as plain `String` (the
/// modern dialect's columns are `LowCardinality`, and an array needs one element type).
fn traffic_dims() -> String {
    let values = TRAFFIC_DIMS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("({}, CAST(toString({c}) AS String))", i + 1));
    let all: Vec<String> = std::iter::once("(0, '')".to_owned())
        .chain(values)
        .collect();
    format!("[{}]", all.join(", "))
}

/// The names of the marts, for retention and erasure.
pub const NAMES: [&str; 7] = [
    "heatmap_clicks",
    "heatmap_anchors",
    "page_daily",
    "element_days",
    "sessions",
    "traffic_daily",
    "traffic_hourly",
];

/// The statements of one mart (see [`statements`]), for a migration that makes it again.
pub fn statements_of(dialect: Dialect, cfg: &ClickHouseConfig, mart: &str) -> Vec<String> {
    let at = NAMES
        .iter()
        .position(|n| *n == mart)
        .expect("a mart's name");
    statements(dialect, cfg)[3 * at..3 * at + 3].to_vec()
}

/// Per mart: its table, its fill from existing events, its view.
pub fn statements(dialect: Dialect, cfg: &ClickHouseConfig) -> Vec<String> {
    let ttl = if dialect.ttl() && cfg.retention_days > 0 {
        format!(" TTL day + INTERVAL {} DAY", cfg.retention_days)
    } else {
        String::new()
    };
    marts(dialect)
        .into_iter()
        .flat_map(|m| {
            let Mart {
                name,
                columns,
                engine,
                key,
                select,
                group,
                settings,
            } = m;
            let group = group.unwrap_or(key);
            // Cluster mode: each shard's view fills its own part of the mart from its own part
            // of the events (`migrations::distributed` puts the usual names over them).
            let name = cfg.local_table(name);
            let events = cfg.local_table("events");
            let select = select.replacen("FROM events ", &format!("FROM {events} "), 1);
            // The view's SELECT reads the inserted block; the fill reads the table
            // deduplicated, and only into an empty mart.
            let fill = select.replacen(
                &format!("FROM {events} "),
                &format!("FROM {events} FINAL "),
                1,
            );
            [
                format!(
                    "CREATE TABLE IF NOT EXISTS {name} ({columns}) ENGINE = {engine} \
                     PARTITION BY toYYYYMM(day) ORDER BY ({key}){ttl}{settings}"
                ),
                format!(
                    "INSERT INTO {name} {fill} AND (SELECT count() FROM {name}) = 0 GROUP BY {group}"
                ),
                format!(
                    "CREATE MATERIALIZED VIEW IF NOT EXISTS {name}_mv TO {name} AS {select} GROUP BY {group}"
                ),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mart_has_a_table_a_guarded_fill_and_a_view() {
        let cfg = ClickHouseConfig::default();
        let sql = statements(Dialect::LEGACY, &cfg);
        assert_eq!(sql.len(), 3 * NAMES.len());
        for (name, s) in NAMES.iter().zip(sql.chunks(3)) {
            assert!(s[0].starts_with(&format!("CREATE TABLE IF NOT EXISTS {name} (")));
            assert!(
                s[1].contains("FROM events FINAL ")
                    && s[1].contains(&format!("(SELECT count() FROM {name}) = 0 GROUP BY")),
                "{}",
                s[1]
            );
            assert!(s[2].contains(&format!("{name}_mv TO {name} AS SELECT")));
            assert!(!s[2].contains("FINAL") && s[2].contains("is_bot = 0"));
        }
        assert!(!sql.concat().contains("TTL"));
        let modern = statements(Dialect::MODERN, &cfg).concat();
        assert!(modern.contains("TTL day + INTERVAL 400 DAY"));
    }
}
