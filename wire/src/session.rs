//! Server-side sessions for clients that send no session id (imports, server-side senders):
//! a visitor's events belong to one session until the session timeout ([`DEFAULT_TIMEOUT_SECS`]
//! unless configured) passes without an event.

use std::collections::HashMap;

/// The session timeout where none is configured: 30 minutes without an event, as the tracker's
/// own session ids. The collector's `session_timeout_secs` and the edge worker's
/// `PATHLIGHT_SESSION_TIMEOUT_SECS` default to it, and the two should be set alike: the worker's
/// server-assigned sessions and the collector's (and its sessions API) then end at the same time.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30 * 60;

/// Assigns session ids per (site, visitor). Bounded twice: idle entries are dropped by
/// [`Sessionizer::prune`], and the table never holds more than its `max_open` entries, since
/// anyone may send events for many made-up visitors (a new User-Agent each) faster than they
/// go idle.
#[derive(Debug)]
pub struct Sessionizer {
    timeout_ms: i64,
    max_open: usize,
    /// Counts assignments: recency for eviction, which event times (the sender's clock, up to
    /// a minute ahead) must not decide.
    tick: u64,
    open: HashMap<(String, u64), Open>,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    started: i64,
    last: i64,
    seen: u64,
}

impl Sessionizer {
    /// A sessionizer that ends a session after `timeout_ms` of inactivity and tracks at most
    /// `max_open` (at least 4) sessions at once.
    pub fn new(timeout_ms: i64, max_open: usize) -> Self {
        Sessionizer {
            timeout_ms,
            max_open: max_open.max(4),
            tick: 0,
            open: HashMap::new(),
        }
    }

    /// The session id for an event of `visitor` on `site` at `ts` (ms). Ids are derived from the
    /// visitor and the session's start, so they are stable across retries of the same events.
    pub fn assign(&mut self, site: &str, visitor: u64, ts: i64) -> String {
        let timeout = self.timeout_ms;
        let key = (site.to_owned(), visitor);
        if self.open.len() >= self.max_open && !self.open.contains_key(&key) {
            self.evict_least_recent();
        }
        self.tick += 1;
        let seen = self.tick;
        let entry = self.open.entry(key).or_insert(Open {
            started: ts,
            last: ts,
            seen,
        });
        if ts - entry.last > timeout || entry.started - ts > timeout {
            *entry = Open {
                started: ts,
                last: ts,
                seen,
            };
        } else {
            entry.last = entry.last.max(ts);
            entry.started = entry.started.min(ts);
            entry.seen = seen;
        }
        format!("s{:016x}{:x}", visitor, entry.started)
    }

    /// Full: forgets the quarter of sessions assigned to least recently (by arrival, not by
    /// the events' own times), at one pass over the table per `max_open / 4` new visitors. A
    /// visitor forgotten while still active starts a new session with its next event: a split
    /// session, never an unbounded table.
    fn evict_least_recent(&mut self) {
        let mut seen: Vec<u64> = self.open.values().map(|s| s.seen).collect();
        let k = seen.len() / 4;
        let (_, &mut cut, _) = seen.select_nth_unstable(k);
        // Ticks are unique, so exactly k + 1 entries go.
        self.open.retain(|_, s| s.seen > cut);
    }

    /// Forgets sessions idle since before `now - timeout`; returns how many are left.
    pub fn prune(&mut self, now: i64) -> usize {
        let timeout = self.timeout_ms;
        self.open.retain(|_, s| now - s.last <= timeout);
        self.open.len()
    }

    /// Sessions currently tracked.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// True when no session is tracked.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inactivity_starts_a_new_session() {
        let mut s = Sessionizer::new(DEFAULT_TIMEOUT_SECS as i64 * 1000, 100);
        let a = s.assign("site", 7, 1_000);
        assert_eq!(s.assign("site", 7, 1_000 + 29 * 60_000), a);
        let later = 1_000 + 29 * 60_000 + 31 * 60_000;
        let b = s.assign("site", 7, later);
        assert_ne!(a, b);
        assert_ne!(
            s.assign("site", 8, later),
            b,
            "visitors never share sessions"
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s.prune(later + 31 * 60_000), 0);
    }

    #[test]
    fn a_configured_timeout_ends_sessions_after_it() {
        // 10 minutes: what ends a session here is well within the default's 30.
        let mut s = Sessionizer::new(10 * 60_000, 100);
        let a = s.assign("site", 7, 0);
        assert_eq!(
            s.assign("site", 7, 9 * 60_000),
            a,
            "9 minutes on: the same session"
        );
        let b = s.assign("site", 7, 9 * 60_000 + 11 * 60_000);
        assert_ne!(a, b, "11 quiet minutes: a new session");
        assert_eq!(
            s.assign("site", 7, 9 * 60_000 + 21 * 60_000),
            b,
            "10 minutes: still b"
        );
        assert_eq!(
            s.prune(40 * 60_000),
            1,
            "idle for exactly the timeout: kept"
        );
        assert_eq!(s.prune(40 * 60_000 + 1), 0);
    }

    #[test]
    fn a_flood_of_new_visitors_is_bounded_and_spares_the_active() {
        let mut s = Sessionizer::new(DEFAULT_TIMEOUT_SECS as i64 * 1000, 1_000);
        let active = s.assign("site", 0, 0);
        for v in 1..100_000u64 {
            let ts = v as i64;
            // Flooding visitors dated a minute ahead must not look more recent than the one
            // real visitor.
            s.assign("site", v, ts + 60_000);
            if v % 100 == 0 {
                // The one real visitor keeps clicking.
                assert_eq!(s.assign("site", 0, ts), active, "after {v} visitors");
            }
            assert!(s.len() <= 1_000, "{} sessions after {v} visitors", s.len());
        }
    }
}
