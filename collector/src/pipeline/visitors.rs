//! Current visitors: the visitors of each site with an event stored in the last five minutes,
//! the window of the query API's `realtime` (and like it, bots left out), kept in memory as
//! events are stored so that `/metrics` can report them without asking ClickHouse. Each
//! collector sees the visitors whose events reached it; behind a load balancer the fleet's
//! figure is at most the sum (a visitor whose batches went to two collectors counts in both),
//! and `realtime` reads the exact one from ClickHouse.

use crate::storage::clickhouse::EventRow;
use std::collections::HashMap;
use std::sync::Mutex;

/// The window, ms: `realtime`'s five minutes.
pub const WINDOW_MS: i64 = 5 * 60_000;
/// Visitors tracked at once across sites (16 bytes each and the map's overhead: ~20 MB full).
/// Past it, new visitors are not counted until older ones leave the window: a flood of
/// made-up visitor ids cannot grow memory without bound, and the gauge saturates instead.
const MAX_TRACKED: usize = 1_000_000;

/// Each current visitor of a site and the time of their last event, ms.
type Visitors = HashMap<u64, i64>;

/// Per site, its current visitors; and how many are tracked across sites.
#[derive(Default)]
pub struct LiveVisitors {
    sites: Mutex<(HashMap<String, Visitors>, usize)>,
}

impl LiveVisitors {
    /// Notes the visitors of stored `rows` (one lock per batch; a batch is mostly one
    /// visitor's). Events older than the window (a batch resent after days) do not make their
    /// visitor current; events from the future count as now.
    pub fn record(&self, rows: &[EventRow], now_ms: i64) {
        let mut guard = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        let (sites, tracked) = &mut *guard;
        let mut last: Option<(&str, u64)> = None;
        for r in rows {
            if r.is_bot != 0 || last == Some((r.site_id.as_str(), r.visitor_id)) {
                continue;
            }
            last = Some((r.site_id.as_str(), r.visitor_id));
            let at = (i64::from(r.timestamp) * 1000 + i64::from(r.timestamp_ms)).min(now_ms);
            if at < now_ms - WINDOW_MS {
                continue;
            }
            let site = match sites.get_mut(r.site_id.as_str()) {
                Some(site) => site,
                None => sites.entry(r.site_id.clone()).or_default(),
            };
            match site.get_mut(&r.visitor_id) {
                Some(seen) => *seen = (*seen).max(at),
                None if *tracked < MAX_TRACKED => {
                    site.insert(r.visitor_id, at);
                    *tracked += 1;
                }
                None => {}
            }
        }
    }

    /// Forgets visitors whose last event left the window; returns each site's current
    /// visitors.
    pub fn current(&self, now_ms: i64) -> Vec<(String, usize)> {
        let mut guard = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        let (sites, tracked) = &mut *guard;
        let since = now_ms - WINDOW_MS;
        sites.retain(|_, visitors| {
            visitors.retain(|_, at| *at >= since);
            !visitors.is_empty()
        });
        *tracked = sites.values().map(HashMap::len).sum();
        sites.iter().map(|(s, v)| (s.clone(), v.len())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(site: &str, visitor: u64, at_ms: i64) -> EventRow {
        EventRow {
            site_id: site.into(),
            visitor_id: visitor,
            timestamp: (at_ms / 1000) as u32,
            timestamp_ms: (at_ms % 1000) as u16,
            ..EventRow::default()
        }
    }

    #[test]
    fn visitors_are_current_for_five_minutes_after_their_last_event() {
        let live = LiveVisitors::default();
        let t = 1_767_261_600_000;
        live.record(&[row("a", 1, t), row("a", 1, t + 10), row("a", 2, t)], t);
        live.record(&[row("b", 1, t)], t);
        // Too old to be current, and a bot: not counted.
        let mut bot = row("a", 3, t);
        bot.is_bot = 1;
        live.record(&[row("a", 4, t - WINDOW_MS - 1), bot], t);
        let mut now = live.current(t);
        now.sort();
        assert_eq!(now, [("a".into(), 2), ("b".into(), 1)]);
        // Visitor 2 comes back a minute later; visitor 1 does not.
        live.record(&[row("a", 2, t + 60_000)], t + 60_000);
        assert_eq!(live.current(t + WINDOW_MS + 10), [("a".into(), 1)]);
        assert_eq!(live.current(t + 60_000 + WINDOW_MS + 1), []);
    }
}
