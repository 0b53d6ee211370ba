//! The statements every receiver runs on the `salts` table (one random 16-byte salt per UTC
//! day, hex; see the collector's `pipeline/salts.rs` for why). Days are days since the Unix epoch and
//! salts are hex the receiver made itself, so the statements are built with no outside input.

/// `day, salt` (TabSeparated) of `today` and the day before; the smallest salt of a day wins,
/// so receivers that raced to create a day's salt agree.
pub fn select(today: i64) -> String {
    format!(
        "SELECT toInt64(toUInt16(day)) AS day, min(salt) AS salt FROM salts \
         WHERE toUInt16(day) >= {} GROUP BY day",
        today - 1
    )
}

/// Adds `salt_hex` for `today`.
pub fn insert(today: i64, salt_hex: &str) -> String {
    debug_assert!(salt_hex.bytes().all(|b| b.is_ascii_hexdigit()));
    format!("INSERT INTO salts (day, salt) SELECT toDate({today}), '{salt_hex}'")
}

/// How many salts are older than yesterday.
pub fn count_old(today: i64) -> String {
    format!(
        "SELECT count() FROM salts WHERE toUInt16(day) < {}",
        today - 1
    )
}

/// Forgets salts older than yesterday.
pub fn delete_old(today: i64) -> String {
    format!(
        "ALTER TABLE salts DELETE WHERE toUInt16(day) < {}",
        today - 1
    )
}

/// Parses `select`'s TabSeparated answer into `(day, salt)` pairs, skipping malformed lines.
pub fn parse(tsv: &str) -> Vec<(i64, [u8; 16])> {
    tsv.lines()
        .filter_map(|line| {
            let (day, salt) = line.split_once('\t')?;
            Some((day.parse().ok()?, crate::hex::decode(salt)?))
        })
        .collect()
}
