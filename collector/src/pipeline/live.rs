//! The live feed's view of a stored event: what `realtime/stream` and `realtime/ws` send, and,
//! in scale-out mode, what collectors pass each other over NATS (`storage/broker/live.rs`), so
//! it reads back what it writes.

use crate::storage::clickhouse::EventRow;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// A stored event as the live feed shows it.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveEvent {
    /// Site.
    pub site: String,
    /// Kind (`pageview`, `click`, ...).
    pub kind: Cow<'static, str>,
    /// Page path.
    pub path: String,
    /// Clicked element, for clicks.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// A custom event's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The visitor: the day's salted hash the events table keeps (never the address it was
    /// made from), in decimal as a string, since it passes JavaScript's safe integers.
    #[serde(default)]
    pub visitor: String,
    /// The session.
    #[serde(default)]
    pub session: String,
    /// Event time, ms.
    pub ts: u64,
}

impl LiveEvent {
    pub(super) fn of(r: &EventRow) -> LiveEvent {
        LiveEvent {
            site: r.site_id.clone(),
            kind: Cow::Borrowed(
                pathlight_wire::EventKind::name_of_code(r.event_type as u8).unwrap_or("unknown"),
            ),
            path: r.path.clone(),
            selector: r.selector.clone(),
            name: r.name.clone(),
            visitor: r.visitor_id.to_string(),
            session: r.session_id.clone(),
            ts: u64::from(r.timestamp) * 1000 + u64::from(r.timestamp_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_event_carries_the_hashed_visitor_and_the_custom_name_and_reads_back() {
        let row = EventRow {
            site_id: "shop".into(),
            event_type: 5,
            path: "/cart".into(),
            name: "checkout".into(),
            visitor_id: u64::MAX,
            session_id: "s1".into(),
            timestamp: 1_700_000_000,
            timestamp_ms: 5,
            ..EventRow::default()
        };
        let e = LiveEvent::of(&row);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"site": "shop", "kind": "custom", "path": "/cart",
                "name": "checkout", "visitor": "18446744073709551615", "session": "s1",
                "ts": 1_700_000_000_005u64})
        );
        assert_eq!(serde_json::from_value::<LiveEvent>(json).unwrap(), e);
    }
}
