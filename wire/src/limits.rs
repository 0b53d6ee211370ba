//! The explicit limits a batch is held to. Defaults fit the tracker with a wide margin;
//! every figure is configurable in the collector's `[limits]` section.

use serde::{Deserialize, Serialize};

/// Limits applied while decoding and validating a batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body accepted, bytes. The tracker's batches are a few KB.
    pub max_batch_bytes: usize,
    /// Most events in one batch.
    pub max_events: usize,
    /// Longest URL, referrer and href, bytes.
    pub max_url_len: usize,
    /// Longest page title, bytes.
    pub max_title_len: usize,
    /// Longest CSS selector, bytes (the tracker bounds its selectors well below this).
    pub max_selector_len: usize,
    /// Longest element id, tag, session id, user id or custom event name, bytes.
    pub max_ident_len: usize,
    /// Longest click text, bytes (the tracker sends at most 32 characters).
    pub max_text_len: usize,
    /// Longest User-Agent, bytes.
    pub max_user_agent_len: usize,
    /// Most custom properties on one event.
    pub max_props: usize,
    /// Longest custom property value, bytes.
    pub max_prop_len: usize,
    /// Most bytes one event's properties take as the JSON they are stored as: control
    /// characters grow sixfold when escaped, so within the per-value limits a row could pass
    /// the edge queue's 128 KB message limit and never be delivered.
    pub max_props_json_bytes: usize,
    /// Largest page coordinate or document dimension, CSS px.
    pub max_coordinate: u32,
    /// Largest viewport dimension, CSS px.
    pub max_viewport: u32,
    /// How far an event may lie after its batch's `sent_at`, ms: a little, for clock jitter.
    pub max_future_skew_ms: i64,
    /// How much older than its batch's `sent_at` an event may be, ms: the tracker keeps
    /// undelivered batches for a while when offline.
    pub max_event_age_ms: i64,
    /// Deepest nesting of arrays and maps the decoder follows when skipping unknown fields.
    pub max_depth: usize,
    /// Events older than this many days (at their corrected time, against the receipt) are
    /// refused one by one (`too_old`); 0 takes any age. Not a `[limits]` key: each receiver
    /// sets it from its storage's retention (the collector's `[clickhouse] retention_days`, the
    /// edge worker's `PATHLIGHT_RETENTION_DAYS`), so that nothing is acknowledged that
    /// retention would then delete.
    #[serde(skip)]
    pub retention_days: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch_bytes: 512 * 1024,
            max_events: 500,
            max_url_len: 2048,
            max_title_len: 512,
            max_selector_len: 512,
            max_ident_len: 256,
            max_text_len: 128,
            max_user_agent_len: 1024,
            max_props: 32,
            max_prop_len: 1024,
            max_props_json_bytes: 48 * 1024,
            max_coordinate: 1_000_000,
            max_viewport: 20_000,
            max_future_skew_ms: 60_000,
            max_event_age_ms: 7 * 24 * 3600 * 1000,
            max_depth: 16,
            retention_days: 0,
        }
    }
}

/// How far after its receipt an event may lie at its corrected time, ms: a day. The tracker's
/// events are corrected to the receiver's clock, so only senders without `sent_at` (the simple
/// array form, imports) come near it; a day leaves room for their clocks and time zones.
pub const MAX_AHEAD_MS: i64 = 86_400_000;

/// Earliest timestamp accepted anywhere, ms (2015-01-01): older values are clock garbage.
pub const MIN_TIMESTAMP_MS: i64 = 1_420_070_400_000;
/// Latest timestamp accepted anywhere, ms (2100-01-01).
pub const MAX_TIMESTAMP_MS: i64 = 4_102_444_800_000;
