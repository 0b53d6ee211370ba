//! The clock, and calendar days without a date library: UTC day numbers and `YYYY-MM-DD`,
//! for query parameters and retention (H. Hinnant's civil-from-days algorithms). RFC 3339
//! times, which the management API takes with any offset, are `time`'s.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The UTC day (days since 1970-01-01) of a time in ms since the epoch.
pub fn unix_day(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` of days since 1970-01-01.
pub fn civil(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `2026-03-01T12:00:00.250Z` of a time in ms since the epoch.
pub fn rfc3339(ms: i64) -> String {
    let t = ms.div_euclid(1000);
    let (day, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    format!(
        "{}T{:02}:{:02}:{:02}.{:03}Z",
        civil(day),
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ms.rem_euclid(1000)
    )
}

/// Milliseconds since the epoch of an RFC 3339 time (`2026-03-01T13:00:00+01:00`).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil(0), "1970-01-01");
        assert_eq!(civil(days_from_civil(2024, 2, 29)), "2024-02-29");
        assert_eq!(unix_day(86_400_000 * 3 + 5), 3);
        assert_eq!(unix_day(-1), -1);
    }

    #[test]
    fn rfc3339_times_round_trip_at_any_offset() {
        let ms = days_from_civil(2026, 3, 1) * 86_400_000 + 12 * 3_600_000 + 250;
        assert_eq!(rfc3339(ms), "2026-03-01T12:00:00.250Z");
        assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms));
        assert_eq!(parse_rfc3339("2026-03-01T13:00:00.250+01:00"), Some(ms));
        for bad in ["", "2026-03-01", "tomorrow", "2026-13-01T00:00:00Z"] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}

/// Row versions for the tables a collector changes and every collector re-reads (accounts,
/// sites, keys): the clock in ms, but always later than the last one given here, so two
/// changes within a millisecond keep their order.
#[derive(Debug, Default)]
pub struct VersionClock {
    last: std::sync::atomic::AtomicU64,
}

impl VersionClock {
    /// A version later than any this clock gave.
    pub fn next(&self) -> u64 {
        use std::sync::atomic::Ordering;
        let at = now_ms().max(0) as u64;
        let last = self
            .last
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
                Some(at.max(l + 1))
            })
            .unwrap_or_default();
        at.max(last + 1)
    }
}
