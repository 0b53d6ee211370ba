//! What a tracker reports about its earlier sends, and the `$undelivered` row that stores it.
//!
//! The tracker (tracker-wasm/js/host.js) sends a batch again when it could not learn that the
//! first send arrived: the send failed, or the page went away before the answer. Such a send
//! says so in the batch URL (`?r=1`), with the batches it had to drop from its full queue since
//! its last report (`d=N`). A batch sent again that had not arrived before (the collector's
//! recent-batch memory decides, or else the stored event ids; a repeat is answered 208 and not
//! stored) was undelivered at its first try. Both counts are stored as one custom event named `$undelivered` with properties
//! `failed` and `dropped`, beside the batch's own rows, so the dashboard can sum them per site
//! and day like any event, through every storage path (spool, broker, edge queue).

use crate::EventRow;

/// The custom event name of the report.
pub const EVENT_NAME: &str = "$undelivered";

/// What a send says about earlier ones (`?r=1&d=N`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// The batch was sent before and its outcome was not known (`r=1`).
    pub resent: bool,
    /// Batches the sender dropped for good since its last report (`d=N`).
    pub dropped: u32,
    /// The transport delivered the batch again (a broker's redelivery after a loader died
    /// before its ack): checked against what is stored like a resent batch, but no report is
    /// stored, since nothing was lost. Its rows are then published exactly as the first time,
    /// so the broker's deduplication drops them if the first copy is still on its way.
    pub redelivered: bool,
}

/// At most this many drops are believed from one report: the tracker's queue holds 30.
const MAX_DROPPED: u32 = 1_000;

impl Delivery {
    /// Reads `r` and `d` from a batch URL's query; anything unreadable counts as absent.
    pub fn from_query(query: Option<&str>) -> Delivery {
        let mut d = Delivery::default();
        for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match &*k {
                "r" => d.resent = v == "1",
                "d" => d.dropped = v.parse::<u32>().unwrap_or(0).min(MAX_DROPPED),
                _ => {}
            }
        }
        d
    }

    /// The `$undelivered` row to store beside `first`'s batch, which was stored now (not a
    /// repeat): none when there is nothing to report. It takes the first row's site, session,
    /// visitor, page, client and time, and an id derived from the first row's, so a replayed
    /// batch stores it once.
    pub fn row(&self, first: &EventRow) -> Option<EventRow> {
        if !self.resent && self.dropped == 0 {
            return None;
        }
        let mut row = first.clone();
        let mut id = *first.event_id.as_bytes();
        // Any fixed change makes a distinct id; the xor keeps it random-looking.
        for (b, k) in id.iter_mut().zip(b"$undelivered....") {
            *b ^= k;
        }
        row.event_id = uuid::Uuid::from_bytes(id);
        row.event_type = 5;
        row.name = EVENT_NAME.to_owned();
        row.props = format!(
            r#"{{"failed":{},"dropped":{}}}"#,
            u8::from(self.resent),
            self.dropped
        );
        row.x = 0;
        row.y = 0;
        row.element_id.clear();
        row.selector.clear();
        row.tag.clear();
        row.text.clear();
        row.href.clear();
        row.rel_x = 0.0;
        row.rel_y = 0.0;
        (row.box_x, row.box_y, row.box_w, row.box_h) = (0, 0, 0, 0);
        row.scroll_depth = 0;
        row.visible_ms = 0;
        Some(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_query() {
        assert_eq!(Delivery::from_query(None), Delivery::default());
        assert_eq!(
            Delivery::from_query(Some("site=x&r=1&d=3")),
            Delivery {
                resent: true,
                dropped: 3,
                ..Delivery::default()
            }
        );
        assert_eq!(
            Delivery::from_query(Some("r=yes&d=-1")),
            Delivery::default()
        );
        assert_eq!(
            Delivery::from_query(Some("d=99999999")).dropped,
            MAX_DROPPED
        );
    }
}
