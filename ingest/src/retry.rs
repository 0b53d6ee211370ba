//! Which storage failures are worth retrying: explicit rules, unit tested, shared by the
//! collector's sink and spool and the edge worker's queue consumer. A wrong decision either
//! drops events (retrying too little) or wedges a queue behind a batch that can never succeed
//! (retrying too much).

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

/// Decides from the text of a ClickHouse error answer. Everything not known to be final is
/// retried: an unknown failure that is in fact permanent costs queue space and shows in the
/// error metrics, while one wrongly called final would lose events.
pub fn decide_response(text: &str) -> Decision {
    match error_code(text) {
        Some(code) if FINAL_CODES.contains(&code) => Decision::Fail,
        _ => Decision::Retry,
    }
}

/// The numeric code in a ClickHouse error text: `Code: 60, e.displayText() = DB::Exception: ...`
/// (18.x) or `Code: 60. DB::Exception: ...` (current).
pub fn error_code(text: &str) -> Option<u32> {
    let rest = &text[text.find("Code: ")? + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}
