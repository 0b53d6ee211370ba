//! The rolled tables: what the query API's rollups (`query/rollup.rs`, `query/behaviour.rs`)
//! write every few minutes, for what needs a whole session in order and so cannot come from a
//! materialized view. Their schema is storage's, made by the migrations like every other table;
//! what fills them and what reads them is the query API's.

use super::ClickHouseConfig;

/// `session_days` (migration 8): session figures per site, day, device, entry and exit page,
/// which `query/rollup.rs` fills.
pub fn session_days(cfg: &ClickHouseConfig, lc_string: &str, device: &str) -> String {
    let name = cfg.local_table("session_days");
    format!(
        "CREATE TABLE IF NOT EXISTS {name} (site_id {lc_string}, day Date, shard UInt16, \
         device {device}, entry String, exit String, sessions UInt64, bounced UInt64, \
         duration_ms UInt64, version DateTime) \
         ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(day) \
         ORDER BY (site_id, day, shard, device, entry, exit)"
    )
}

/// What sessions did per day (migration 9), which `query/behaviour.rs` fills: `CREATE`
/// statements for a server whose `String` of low cardinality is `lc_string`.
pub fn behaviour(cfg: &ClickHouseConfig, lc_string: &str) -> Vec<String> {
    let key = format!("site_id {lc_string}, day Date, shard UInt16");
    let engine = "ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(day)";
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({key}, session_id String, events UInt64, rapid UInt64, \
             repeated UInt64, loops UInt64, version DateTime) {engine} \
             ORDER BY (site_id, day, shard, session_id)",
            cfg.local_table("anomaly_days")
        ),
        // Per page, layout and device (the heatmap's frustration layer), and for the whole site
        // (`path` '', `layout` 255, `device` '': `anomalies`, whose session counts must not add
        // up a session once per page).
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({key}, kind UInt8, path String, layout UInt8, \
             device String, selector String, count UInt64, sessions UInt64, sum_x Float64, \
             sum_y Float64, version DateTime) {engine} \
             ORDER BY (site_id, day, shard, kind, path, layout, device, selector)",
            cfg.local_table("frustration_days")
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({key}, gram Array(String), occurrences UInt64, \
             sessions UInt64, version DateTime) {engine} ORDER BY (site_id, day, shard, gram)",
            cfg.local_table("pattern_days")
        ),
    ]
}

/// The tables of [`behaviour`].
pub const BEHAVIOUR_TABLES: [&str; 3] = ["anomaly_days", "frustration_days", "pattern_days"];
