//! Server-side sessions for clients that send no session id (imports, server-side senders):
//! a visitor's events belong to one session until 30 minutes pass without an event.

use std::collections::HashMap;

/// Assigns session ids per (site, visitor). Bounded: idle entries are dropped by [`Sessionizer::prune`].
#[derive(Debug)]
pub struct Sessionizer {
    timeout_ms: i64,
    open: HashMap<(String, u64), Open>,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    started: i64,
    last: i64,
}

impl Sessionizer {
    /// A sessionizer that ends a session after `timeout_ms` of inactivity.
    pub fn new(timeout_ms: i64) -> Self {
        Sessionizer {
            timeout_ms,
            open: HashMap::new(),
        }
    }

    /// The session id for an event of `visitor` on `site` at `ts` (ms). Ids are derived from the
    /// visitor and the session's start, so they are stable across retries of the same events.
    pub fn assign(&mut self, site: &str, visitor: u64, ts: i64) -> String {
        let timeout = self.timeout_ms;
        let entry = self.open.entry((site.to_owned(), visitor)).or_insert(Open {
            started: ts,
            last: ts,
        });
        if ts - entry.last > timeout || entry.started - ts > timeout {
            *entry = Open {
                started: ts,
                last: ts,
            };
        } else {
            entry.last = entry.last.max(ts);
            entry.started = entry.started.min(ts);
        }
        format!("s{:016x}{:x}", visitor, entry.started)
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
        let mut s = Sessionizer::new(30 * 60_000);
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
}
