//! Which insert failures are worth retrying, and how long to wait. Explicit rules, unit tested:
//! a wrong decision either drops events (retrying too little) or wedges the queue behind a
//! batch that can never succeed (retrying too much).

use super::config::RetryConfig;
use std::time::Duration;

/// What to do after a failed insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The failure is transient (network, overload, server restarting): try the same rows again.
    Retry,
    /// The server refused these rows or this request for good (schema, data, auth): retrying
    /// the same bytes gives the same answer. The batch fails and its senders get an error.
    Fail,
}

/// ClickHouse error codes that mean the request itself is wrong, not the moment.
/// Names from ClickHouse's `src/Common/ErrorCodes.cpp`. Overload codes (241 memory limit,
/// 252 too many parts, 202 too many queries) are deliberately absent: they pass.
const FINAL_CODES: &[u32] = &[
    6,   // CANNOT_PARSE_TEXT
    16,  // NO_SUCH_COLUMN_IN_TABLE
    26,  // CANNOT_PARSE_QUOTED_STRING
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    33,  // CANNOT_READ_ALL_DATA (RowBinary shorter than the columns: row type mismatch)
    36,  // BAD_ARGUMENTS
    38,  // CANNOT_PARSE_DATE
    41,  // CANNOT_PARSE_DATETIME
    44,  // ILLEGAL_COLUMN
    53,  // TYPE_MISMATCH
    60,  // UNKNOWN_TABLE
    62,  // SYNTAX_ERROR
    69,  // ARGUMENT_OUT_OF_BOUND
    70,  // CANNOT_CONVERT_TYPE
    72,  // CANNOT_PARSE_NUMBER
    73,  // UNKNOWN_FORMAT
    81,  // UNKNOWN_DATABASE
    115, // UNKNOWN_SETTING
    117, // INCORRECT_DATA
    164, // READONLY
    192, // UNKNOWN_USER
    193, // WRONG_PASSWORD
    194, // REQUIRED_PASSWORD
    195, // IP_ADDRESS_NOT_ALLOWED
    497, // ACCESS_DENIED
    516, // AUTHENTICATION_FAILED
];

/// Decides from a `clickhouse` crate error. Everything not known to be final is retried:
/// an unknown failure that is in fact permanent costs queue space and shows in
/// `pathlight_sink_errors_total`, while one wrongly called final would lose events.
pub fn decide(err: &clickhouse::error::Error) -> Decision {
    use clickhouse::error::Error as E;
    match err {
        E::BadResponse(text) => match error_code(text) {
            Some(code) if is_final(code) => Decision::Fail,
            _ => Decision::Retry,
        },
        // The rows could not be serialized for the table: a bug that no retry fixes.
        E::InvalidParams(_)
        | E::SchemaMismatch(_)
        | E::Custom(_)
        | E::SequenceMustHaveLength
        | E::Unsupported(_) => Decision::Fail,
        _ => Decision::Retry,
    }
}

fn is_final(code: u32) -> bool {
    FINAL_CODES.contains(&code)
}

/// The numeric code in a ClickHouse error text: `Code: 60, e.displayText() = DB::Exception: ...`
/// (18.x) or `Code: 60. DB::Exception: ...` (current).
pub fn error_code(text: &str) -> Option<u32> {
    let rest = &text[text.find("Code: ")? + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
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
