//! Batches stored lately, so a batch sent again is stored once.
//!
//! A tracker cannot always learn whether a batch arrived: a page that is closed or left never
//! hears the answer to the batch it sent on its way out, so the site's next page sends that
//! batch again, saying so (`?r=1`, tracker-wasm/js/host.js). The `events` table would store it
//! once anyway (`ReplacingMergeTree` on the event id), but the marts, filled by materialized
//! views at every insert, would count it twice. So the collector remembers the batches it
//! stored lately, and a batch *sent again* that it has is answered `208` without storing it.
//! Other senders' repeats (a server's retry, `pathlight import` run twice, the load
//! generator's reused bodies) are stored as before: only a sender that says it resends gets
//! the shortcut, so nothing changes for them.
//!
//! A batch is known by its batch id, its first stored event's id and its number of stored
//! events: ids are random, so two different batches never share all three, while a sender
//! that reuses a batch id for other events still has them stored. Memory is bounded: two
//! generations of [`GENERATION`] batches (~20 MB at most). A repeat this memory does not know
//! — it arrives after both generations turned over, after a restart, or at another collector
//! of a fleet — is checked against `events` before it is stored (`Pipeline::ingest`), which is
//! slower but knows every batch. Only a repeat arriving before the first send (which carries
//! no flag) is stored twice and counted twice by the marts (`events FINAL` still has it once).

use std::collections::HashMap;
use std::sync::Mutex;

/// Batches per generation: hours of a busy site's batches, seconds of a load test's.
const GENERATION: usize = 200_000;

/// What identifies a batch: batch id, first stored event id, stored event count.
pub type BatchKey = (uuid::Uuid, uuid::Uuid, u32);

/// Where a batch stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Not seen: store it, then call [`RecentBatches::finish`].
    New,
    /// Stored already: answer as stored.
    Stored,
    /// Being stored by another request now: the sender should try again shortly.
    InFlight,
}

#[derive(Default)]
struct Generations {
    /// `true` once stored; `false` while being stored.
    current: HashMap<BatchKey, bool>,
    previous: HashMap<BatchKey, bool>,
}

/// The batches stored lately (see the module doc).
#[derive(Default)]
pub struct RecentBatches(Mutex<Generations>);

impl RecentBatches {
    /// Looks `key` up for a batch its sender sent `again`: one stored or in flight is not to
    /// be stored; any other batch is, and is marked in flight.
    pub fn claim(&self, key: BatchKey, again: bool) -> Claim {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match g.current.get(&key).or_else(|| g.previous.get(&key)) {
            Some(true) if again => return Claim::Stored,
            Some(false) if again => return Claim::InFlight,
            Some(_) => return Claim::New,
            None => {}
        }
        if g.current.len() >= GENERATION {
            g.previous = std::mem::take(&mut g.current);
        }
        g.current.insert(key, false);
        Claim::New
    }

    /// After storing a claimed batch: remembered as stored, or forgotten when storing failed
    /// (its retry must be stored).
    pub fn finish(&self, key: BatchKey, stored: bool) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let g = &mut *g;
        for generation in [&mut g.current, &mut g.previous] {
            if let Some(v) = generation.get_mut(&key) {
                if stored {
                    *v = true;
                } else if !*v {
                    generation.remove(&key);
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> BatchKey {
        (
            uuid::Uuid::from_bytes([n; 16]),
            uuid::Uuid::from_bytes([n; 16]),
            3,
        )
    }

    #[test]
    fn a_batch_is_stored_once_and_a_failed_one_again() {
        let recent = RecentBatches::default();
        assert_eq!(recent.claim(key(1), false), Claim::New);
        assert_eq!(recent.claim(key(1), true), Claim::InFlight);
        recent.finish(key(1), true);
        assert_eq!(recent.claim(key(1), true), Claim::Stored);
        assert_eq!(
            recent.claim(key(1), false),
            Claim::New,
            "only a resend is skipped"
        );
        recent.finish(key(1), false);
        assert_eq!(
            recent.claim(key(1), true),
            Claim::Stored,
            "a later failure forgets nothing stored"
        );
        assert_eq!(recent.claim(key(2), true), Claim::New);
        recent.finish(key(2), false);
        assert_eq!(
            recent.claim(key(2), true),
            Claim::New,
            "a failed store is tried again"
        );
    }

    #[test]
    fn memory_is_two_generations() {
        let recent = RecentBatches::default();
        let k = |i: usize| (uuid::Uuid::from_u128(i as u128), uuid::Uuid::nil(), 1);
        for i in 0..2 * GENERATION + 1 {
            assert_eq!(recent.claim(k(i), true), Claim::New);
            recent.finish(k(i), true);
        }
        assert_eq!(recent.claim(k(2 * GENERATION), true), Claim::Stored);
        assert_eq!(
            recent.claim(k(GENERATION + 1), true),
            Claim::Stored,
            "previous generation"
        );
        assert_eq!(recent.claim(k(0), true), Claim::New, "turned over");
    }
}
