//! The live feed's view of a stored event: what `realtime/stream` and `realtime/ws` send.

use crate::storage::clickhouse::EventRow;
use serde::Serialize;

/// A stored event as the live feed shows it.
#[derive(Debug, Serialize)]
pub struct LiveEvent {
    /// Site.
    pub site: String,
    /// Kind (`pageview`, `click`, ...).
    pub kind: &'static str,
    /// Page path.
    pub path: String,
    /// Clicked element, for clicks.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Event time, ms.
    pub ts: u64,
}

impl LiveEvent {
    pub(super) fn of(r: &EventRow) -> LiveEvent {
        LiveEvent {
            site: r.site_id.clone(),
            kind: pathlight_wire::EventKind::name_of_code(r.event_type as u8).unwrap_or("unknown"),
            path: r.path.clone(),
            selector: r.selector.clone(),
            ts: u64::from(r.timestamp) * 1000 + u64::from(r.timestamp_ms),
        }
    }
}
