//! Which insert failures are worth retrying, and how long to wait. Explicit rules, unit tested:
//! a wrong decision either drops events (retrying too little) or wedges the queue behind a
//! batch that can never succeed (retrying too much).

use super::config::RetryConfig;
use std::time::Duration;

pub use pathlight_ingest::retry::{Decision, error_code};

/// Decides from a `clickhouse` crate error. Everything not known to be final is retried:
/// an unknown failure that is in fact permanent costs queue space and shows in
/// `pathlight_sink_errors_total`, while one wrongly called final would lose events.
pub fn decide(err: &clickhouse::error::Error) -> Decision {
    use clickhouse::error::Error as E;
    match err {
        E::BadResponse(text) => pathlight_ingest::retry::decide_response(text),
        // The rows could not be serialized for the table: a bug that no retry fixes.
        E::InvalidParams(_)
        | E::SchemaMismatch(_)
        | E::Custom(_)
        | E::SequenceMustHaveLength
        | E::Unsupported(_) => Decision::Fail,
        _ => Decision::Retry,
    }
}

/// Capped exponential backoff before retry `attempt` (1-based), with random jitter: the delay
/// doubles from `initial_backoff_ms` up to `max_backoff_ms`, and a uniformly random share of up
/// to a quarter of it is added. Collectors that failed together (a ClickHouse outage) then come
/// back spread over that window, not all at the same instants as with jitter derived from the
/// attempt alone. The randomness is the OS's, drawn per retry: retries are rare enough for a
/// system call each, and no seed can be shared between collectors.
pub fn backoff(cfg: &RetryConfig, attempt: u32) -> Duration {
    let random = getrandom::u64().unwrap_or_else(|_| {
        // No OS randomness (never seen on Linux): the clock's nanoseconds still differ
        // between collectors.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()))
    });
    backoff_with(cfg, attempt, random)
}

/// [`backoff`] with the jitter taken from `random`, a uniformly random `u64`.
fn backoff_with(cfg: &RetryConfig, attempt: u32, random: u64) -> Duration {
    let exp = cfg
        .initial_backoff_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(cfg.max_backoff_ms);
    // Full jitter over the window above the exponential delay (AWS's "Exponential Backoff And
    // Jitter"), within the documented bounds: at least the doubled delay, at most +25%. The
    // modulo's bias is below window / 2^64.
    let jitter = random % (capped / 4 + 1);
    Duration::from_millis(capped + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickhouse::error::Error as E;

    fn bad(text: &str) -> E {
        E::BadResponse(text.into())
    }

    #[test]
    fn codes_are_read_from_both_message_styles() {
        assert_eq!(
            error_code("Code: 60, e.displayText() = DB::Exception: Table x doesn't exist"),
            Some(60)
        );
        assert_eq!(
            error_code("Code: 252. DB::Exception: Too many parts (300)."),
            Some(252)
        );
        assert_eq!(error_code("<html>502 Bad Gateway</html>"), None);
    }

    #[test]
    fn schema_data_and_auth_errors_are_final() {
        for text in [
            "Code: 60. DB::Exception: Table pathlight.events doesn't exist",
            "Code: 16, e.displayText() = DB::Exception: No such column foo",
            "Code: 33. DB::Exception: Cannot read all data",
            "Code: 516. DB::Exception: default: Authentication failed",
        ] {
            assert_eq!(decide(&bad(text)), Decision::Fail, "{text}");
        }
        assert_eq!(decide(&E::SchemaMismatch("x".into())), Decision::Fail);
    }

    #[test]
    fn overload_network_and_unknown_errors_are_retried() {
        for text in [
            "Code: 252. DB::Exception: Too many parts",
            "Code: 241. DB::Exception: Memory limit (total) exceeded",
            "Code: 202. DB::Exception: Too many simultaneous queries",
            "Code: 999. Coordination::Exception: Session expired",
            "503 Service Unavailable",
        ] {
            assert_eq!(decide(&bad(text)), Decision::Retry, "{text}");
        }
        assert_eq!(decide(&E::TimedOut), Decision::Retry);
        assert_eq!(
            decide(&E::Network("connection refused".into())),
            Decision::Retry
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let cfg = RetryConfig {
            initial_backoff_ms: 100,
            max_backoff_ms: 1_000,
        };
        let ms = |a| backoff(&cfg, a).as_millis() as u64;
        assert!((100..=125).contains(&ms(1)));
        assert!((200..=250).contains(&ms(2)));
        assert!((1_000..=1_250).contains(&ms(10)));
        assert!((1_000..=1_250).contains(&ms(u32::MAX)));
        // The window's two ends.
        let at = |a, r| backoff_with(&cfg, a, r).as_millis() as u64;
        assert_eq!((at(1, 0), at(1, 25), at(1, 26)), (100, 125, 100));
        assert_eq!((at(10, 251), at(10, 250)), (1_000, 1_250));
    }

    #[test]
    fn two_collectors_retry_on_different_schedules_within_the_bounds() {
        let cfg = RetryConfig {
            initial_backoff_ms: 100,
            max_backoff_ms: 10_000,
        };
        // Two collectors' first 12 waits, as each draws them. With jitter from the attempt
        // alone, they were equal; drawn at random, two equal schedules have a chance below
        // 10^-30.
        let schedule = || {
            (1..=12)
                .map(|a| backoff(&cfg, a).as_millis() as u64)
                .collect::<Vec<_>>()
        };
        let (a, b) = (schedule(), schedule());
        for s in [&a, &b] {
            for (i, &ms) in s.iter().enumerate() {
                let base = (100u64 << i).min(10_000);
                assert!(
                    (base..=base + base / 4).contains(&ms),
                    "attempt {}: {ms}",
                    i + 1
                );
            }
        }
        assert_ne!(a, b, "two collectors retry at the same instants");
        // The jitter fills its window rather than sitting at one end: 1,000 waits at the cap
        // (10,000..=12,500 ms; each bound below is missed with a chance under 10^-9).
        let waits: Vec<u64> = (0..1_000)
            .map(|_| backoff(&cfg, 20).as_millis() as u64)
            .collect();
        let (lo, hi) = (waits.iter().min().unwrap(), waits.iter().max().unwrap());
        assert!(*lo < 10_100 && *hi > 12_400, "{lo}..{hi}");
        let mean = waits.iter().sum::<u64>() / 1_000;
        assert!((11_100..=11_400).contains(&mean), "mean {mean}");
    }
}
