//! Rate limits on ingest, per site and per client address, with governor's GCRA (a token
//! bucket without a timer): a batch of n events takes n cells. Bursts of ten seconds' worth are
//! allowed, and never less than one maximal batch, so a legitimate full batch always fits.
//! Refusals say when to retry (`429` + `Retry-After`).

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

fn quota(per_sec: u32, max_batch: usize) -> Option<Quota> {
    let rate = NonZeroU32::new(per_sec)?;
    let burst = per_sec
        .saturating_mul(10)
        .max(u32::try_from(max_batch).unwrap_or(u32::MAX));
    Some(Quota::per_second(rate).allow_burst(NonZeroU32::new(burst)?))
}

/// `n` events as governor cells (at least one).
fn cells(n: usize) -> NonZeroU32 {
    NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN)
}

/// What to tell a refused sender: how long until the batch would conform.
fn verdict<T, N: WaitTime>(
    outcome: Result<Result<T, N>, governor::InsufficientCapacity>,
) -> Result<(), Duration> {
    match outcome {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(not_until)) => Err(not_until.wait()),
        // Larger than the burst: cannot happen with `quota`'s floor, but refuse sanely.
        Err(_) => Err(Duration::from_secs(1)),
    }
}

trait WaitTime {
    fn wait(&self) -> Duration;
}

impl WaitTime for governor::NotUntil<<DefaultClock as Clock>::Instant> {
    fn wait(&self) -> Duration {
        self.wait_time_from(DefaultClock::default().now())
    }
}

/// One site's limit.
pub struct SiteLimit(DefaultDirectRateLimiter);

impl SiteLimit {
    /// `per_sec` events per second; none when 0 (no limit).
    pub fn new(per_sec: u32, max_batch: usize) -> Option<SiteLimit> {
        quota(per_sec, max_batch).map(|q| SiteLimit(RateLimiter::direct(q)))
    }

    /// Takes `n` events, or says how long to wait.
    pub fn take(&self, n: usize) -> Result<(), Duration> {
        verdict(self.0.check_n(cells(n)))
    }
}

/// The limit per client address, shared by every site. Addresses not seen for a while are
/// forgotten by [`IpLimit::forget_idle`], so memory follows the number of active senders.
pub struct IpLimit(DefaultKeyedRateLimiter<IpAddr>);

impl IpLimit {
    /// `per_sec` events per second per address; none when 0.
    pub fn new(per_sec: u32, max_batch: usize) -> Option<IpLimit> {
        quota(per_sec, max_batch).map(|q| IpLimit(RateLimiter::keyed(q)))
    }

    /// Takes `n` events for `ip`, or says how long to wait.
    pub fn take(&self, ip: IpAddr, n: usize) -> Result<(), Duration> {
        verdict(self.0.check_key_n(&ip, cells(n)))
    }

    /// Drops the state of addresses whose bucket is full again (idle long enough).
    pub fn forget_idle(&self) {
        self.0.retain_recent();
        self.0.shrink_to_fit();
    }

    /// Addresses remembered.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_pass_then_the_rate_holds_and_says_when_to_retry() {
        let site = SiteLimit::new(10, 50).unwrap();
        assert!(site.take(100).is_ok(), "ten seconds' burst");
        let wait = site.take(5).unwrap_err();
        assert!(
            wait > Duration::from_millis(300) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        assert!(SiteLimit::new(0, 50).is_none());
        // A full batch fits even under a tiny rate.
        assert!(SiteLimit::new(1, 500).unwrap().take(500).is_ok());
    }

    #[test]
    fn addresses_are_limited_apart_and_idle_ones_forgotten() {
        let ips = IpLimit::new(1, 10).unwrap();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert!(ips.take(a, 10).is_ok());
        assert!(ips.take(a, 1).is_err());
        assert!(
            ips.take(b, 10).is_ok(),
            "another address has its own budget"
        );
        assert_eq!(ips.len(), 2);
    }
}
