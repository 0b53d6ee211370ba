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

/// Exponential backoff with deterministic jitter from `attempt` (1-based), capped.
pub fn backoff(cfg: &RetryConfig, attempt: u32) -> Duration {
    let exp = cfg
        .initial_backoff_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(cfg.max_backoff_ms);
    // Spread collectors that failed together so they do not retry in lockstep: up to +25%.
    let jitter = capped / 4 * u64::from(attempt.wrapping_mul(2_654_435_761) % 100) / 100;
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
    }
}
