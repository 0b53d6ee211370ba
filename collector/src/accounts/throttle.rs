//! Failed sign-ins, counted per account and per client address: past `MAX_FAILURES` within
//! `WINDOW_MS`, further attempts on that account or from that address are refused (429 with
//! `Retry-After`) until the oldest failure leaves the window, whatever the password. Kept in
//! each collector's memory: behind a load balancer an attacker gets at most this many tries
//! per collector, which still turns an online guess into years.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

/// Failures allowed in a window.
pub const MAX_FAILURES: usize = 5;
/// The window, ms.
pub const WINDOW_MS: u64 = 15 * 60_000;
/// Keys remembered at most: past it the oldest windows are forgotten, so a flood of addresses
/// cannot grow memory without bound.
const MAX_KEYS: usize = 100_000;

/// Failures by account (lowercased email) and by address.
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, VecDeque<u64>>>,
}

fn keys(email: &str, ip: IpAddr) -> [String; 2] {
    [format!("account:{email}"), format!("address:{ip}")]
}

impl Throttle {
    /// Seconds to wait before trying again, when either key is over the limit at `now_ms`.
    pub fn blocked(&self, email: &str, ip: IpAddr, now_ms: u64) -> Option<u64> {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        keys(email, ip)
            .iter()
            .filter_map(|k| {
                let q = map.get_mut(k)?;
                while q.front().is_some_and(|t| t + WINDOW_MS <= now_ms) {
                    q.pop_front();
                }
                (q.len() >= MAX_FAILURES).then(|| (q[0] + WINDOW_MS - now_ms).div_ceil(1000))
            })
            .max()
    }

    /// Counts a failed attempt.
    pub fn failed(&self, email: &str, ip: IpAddr, now_ms: u64) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_KEYS {
            map.retain(|_, q| q.back().is_some_and(|t| t + WINDOW_MS > now_ms));
        }
        for k in keys(email, ip) {
            let q = map.entry(k).or_default();
            q.push_back(now_ms);
            if q.len() > MAX_FAILURES {
                q.pop_front();
            }
        }
    }

    /// Forgets the account's failures after a successful sign-in (the address's stay: one
    /// good password must not reset a guesser trying many accounts).
    pub fn succeeded(&self, email: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&format!("account:{email}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_block_the_account_and_the_address_until_the_window_passes() {
        let t = Throttle::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for i in 0..5 {
            assert_eq!(t.blocked("ada@x", a, i), None);
            t.failed("ada@x", a, i);
        }
        assert_eq!(t.blocked("ada@x", a, 5), Some(900));
        assert!(
            t.blocked("ada@x", b, 5).is_some(),
            "the account, from anywhere"
        );
        assert!(
            t.blocked("bob@x", a, 5).is_some(),
            "the address, for any account"
        );
        assert_eq!(t.blocked("bob@x", b, 5), None);
        t.succeeded("ada@x");
        assert!(
            t.blocked("bob@x", a, 5).is_some(),
            "the address's failures stay"
        );
        assert_eq!(
            t.blocked("bob@x", a, WINDOW_MS),
            None,
            "the first failure left"
        );
    }
}
