//! The query API's result cache: a dashboard load asks a dozen questions, and a reload, a
//! second person on the same dashboard or the heatmap viewer beside it ask the same ones again
//! within seconds. Their answers (the JSON, as sent) are kept in memory for `ttl_secs`.
//!
//! - **Keyed after authorization** by the site the caller proved it may read, the endpoint as
//!   requested (`sessions/{id}` with its id) and every parsed parameter (`Filters`, defaults
//!   filled in, so `to` omitted and `to=<today>` are one key); never by the token. A token
//!   for one site therefore only ever reaches that site's entries.
//! - **Fresh within the TTL, whatever the range**: an entry is stamped with the moment its
//!   query *started*, and served only while that is less than `ttl` ago. A range that includes
//!   the current hour is never answered with data older than `ttl`; an answer whose query took
//!   longer than `ttl` is not kept at all.
//! - **One query per question at a time**: a request that finds the same question being
//!   answered (started less than `ttl` ago) waits for that answer instead of asking ClickHouse
//!   again, so ten people opening one slow dashboard cost one query. If that query fails or
//!   its caller goes away, the waiters ask again themselves; failures are never kept.
//! - **Bounded**: at most `max_entries` answers and `max_bytes` of answers and keys; the
//!   oldest go first. All entries share one TTL, so the oldest are also the first to expire.
//!
//! Callers bypass it for `exact=true` and for what must not be shared: tokens, streams.

use crate::config::QueryCacheConfig;
use crate::metrics::{EndpointLabel, Metrics, ReasonLabel};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::time::{Duration, Instant};

/// Where an answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CacheOutcome {
    /// From the cache, or from an identical query that was running when it was asked.
    Hit,
    /// Queried, and kept for the next ask.
    Miss,
    /// Not cacheable (`exact=true`, tokens, streams, the cache off) or refused before a lookup.
    Bypass,
}

impl CacheOutcome {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Bypass => "bypass",
        }
    }
}

/// The cache; see the module doc.
pub struct QueryCache {
    ttl: Duration,
    max_entries: usize,
    max_bytes: usize,
    metrics: Arc<Metrics>,
    inner: Mutex<Inner>,
}

struct Entry {
    body: Bytes,
    /// When its query started.
    at: Instant,
    /// Its place in [`Inner::order`].
    seq: u64,
    /// What it counts against `max_bytes`.
    size: usize,
}

/// A question being answered now: when its query started, and where its answer will appear
/// (`None` until then; the sender dropped without one means it failed).
struct Running {
    at: Instant,
    answer: watch::Receiver<Option<Bytes>>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Arc<str>, Entry>,
    /// Keys by insertion, oldest first.
    order: BTreeMap<u64, Arc<str>>,
    next_seq: u64,
    bytes: usize,
    running: HashMap<Arc<str>, Running>,
}

/// Per entry, besides its key and body: the map slots, the order index, the `Arc`.
const ENTRY_OVERHEAD: usize = 128;

impl QueryCache {
    /// A cache as `config` says, counting into `metrics`.
    pub fn new(config: &QueryCacheConfig, metrics: Arc<Metrics>) -> QueryCache {
        QueryCache {
            ttl: Duration::from_secs(config.ttl_secs),
            max_entries: config.max_entries,
            max_bytes: config.max_bytes,
            metrics,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Whether it keeps anything.
    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.max_entries > 0 && self.max_bytes > 0
    }

    /// The answer to the question `key` (of `endpoint`, for the metrics): a fresh one kept,
    /// the one of an identical query running now, or `run`'s, which is then kept if it
    /// succeeded.
    pub async fn get_or_run<E>(
        &self,
        endpoint: &'static str,
        key: String,
        run: impl Future<Output = Result<Bytes, E>>,
    ) -> Result<(Bytes, CacheOutcome), E> {
        if !self.enabled() {
            return run.await.map(|b| (b, CacheOutcome::Bypass));
        }
        let key: Arc<str> = key.into();
        let label = EndpointLabel { endpoint };
        let tx = loop {
            let waiting = {
                let mut inner = self.lock();
                let now = Instant::now();
                if let Some(body) = self.fresh(&mut inner, &key, now) {
                    drop(inner);
                    self.metrics.query_cache_hits.get_or_create(&label).inc();
                    return Ok((body, CacheOutcome::Hit));
                }
                match inner.running.get(&key) {
                    Some(r) if now < r.at + self.ttl => Some(r.answer.clone()),
                    // Running for longer than the TTL: its answer would be too old for this
                    // request. Ask again, alongside; the later answer replaces it.
                    Some(_) => None,
                    None => {
                        let (tx, rx) = watch::channel(None);
                        inner.running.insert(
                            key.clone(),
                            Running {
                                at: now,
                                answer: rx,
                            },
                        );
                        break Some(tx);
                    }
                }
            };
            let Some(mut answer) = waiting else {
                break None;
            };
            if let Ok(body) = answer.wait_for(Option::is_some).await {
                let body = body.clone().unwrap_or_default();
                self.metrics.query_cache_hits.get_or_create(&label).inc();
                return Ok((body, CacheOutcome::Hit));
            }
            // The query failed or its caller went away: look again, and maybe ask it.
        };
        self.metrics.query_cache_misses.get_or_create(&label).inc();
        let started = Instant::now();
        let running = tx.map(|tx| RunningGuard {
            cache: self,
            key: key.clone(),
            tx: Some(tx),
        });
        let body = run.await?;
        self.store(key, body.clone(), started, running.is_some());
        if let Some(mut r) = running
            && let Some(tx) = r.tx.take()
        {
            tx.send_replace(Some(body.clone()));
        }
        Ok((body, CacheOutcome::Miss))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry of `key` if fresh; an expired one is dropped.
    fn fresh(&self, inner: &mut Inner, key: &Arc<str>, now: Instant) -> Option<Bytes> {
        let e = inner.entries.get(key)?;
        if now < e.at + self.ttl {
            return Some(e.body.clone());
        }
        let seq = e.seq;
        self.evict(inner, seq, "expired");
        self.gauges(inner);
        None
    }

    /// Keeps `body` for `key`, asked at `started`, unless it is already too old or too large,
    /// then makes room; `ran` says this query is the one [`Inner::running`] names.
    fn store(&self, key: Arc<str>, body: Bytes, started: Instant, ran: bool) {
        let mut inner = self.lock();
        if ran {
            inner.running.remove(&key);
        }
        let now = Instant::now();
        let size = key.len() + body.len() + ENTRY_OVERHEAD;
        if now >= started + self.ttl || size > self.max_bytes / 8 {
            return;
        }
        if let Some(old) = inner.entries.get(&key) {
            let seq = old.seq;
            // Replaced by a newer answer: not an eviction.
            if let Some(old) = inner.entries.remove(&key) {
                inner.bytes -= old.size;
            }
            inner.order.remove(&seq);
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.order.insert(seq, key.clone());
        inner.bytes += size;
        inner.entries.insert(
            key,
            Entry {
                body,
                at: started,
                seq,
                size,
            },
        );
        while let Some((&seq, key)) = inner.order.first_key_value() {
            let expired = inner
                .entries
                .get(key)
                .is_none_or(|e| now >= e.at + self.ttl);
            let over = inner.entries.len() > self.max_entries || inner.bytes > self.max_bytes;
            if !expired && !over {
                break;
            }
            self.evict(&mut inner, seq, if expired { "expired" } else { "full" });
        }
        self.gauges(&inner);
    }

    fn evict(&self, inner: &mut Inner, seq: u64, reason: &'static str) {
        if let Some(key) = inner.order.remove(&seq)
            && let Some(e) = inner.entries.remove(&key)
        {
            inner.bytes -= e.size;
            self.metrics
                .query_cache_evictions
                .get_or_create(&ReasonLabel { reason })
                .inc();
        }
    }

    fn gauges(&self, inner: &Inner) {
        let m = &self.metrics;
        m.query_cache_entries
            .set(i64::try_from(inner.entries.len()).unwrap_or(i64::MAX));
        m.query_cache_bytes
            .set(i64::try_from(inner.bytes).unwrap_or(i64::MAX));
    }
}

/// The running query of a key, until it has stored its answer or is dropped (it failed, or
/// its caller went away): then the key is free again, and only after that are its waiters
/// woken, so that they find it free.
struct RunningGuard<'a> {
    cache: &'a QueryCache,
    key: Arc<str>,
    tx: Option<watch::Sender<Option<Bytes>>>,
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        if self.tx.is_some() {
            self.cache.lock().running.remove(&self.key);
        }
        drop(self.tx.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn cache(ttl_secs: u64, max_entries: usize, max_bytes: usize) -> QueryCache {
        let config = QueryCacheConfig {
            ttl_secs,
            max_entries,
            max_bytes,
        };
        QueryCache::new(&config, Arc::new(Metrics::new()))
    }

    async fn ask(c: &QueryCache, key: &str, body: &'static str) -> (Bytes, CacheOutcome) {
        c.get_or_run("stats", key.into(), async {
            Ok::<_, ()>(Bytes::from_static(body.as_bytes()))
        })
        .await
        .unwrap()
    }

    fn metric(c: &QueryCache, line_start: &str) -> String {
        let text = c.metrics.encode();
        text.lines()
            .find(|l| l.starts_with(line_start))
            .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned()
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_is_served_again_until_the_ttl_from_its_query_start() {
        let c = cache(5, 100, 1 << 20);
        assert_eq!(ask(&c, "a", "1").await, ("1".into(), CacheOutcome::Miss));
        tokio::time::advance(Duration::from_millis(4_900)).await;
        assert_eq!(ask(&c, "a", "2").await, ("1".into(), CacheOutcome::Hit));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(ask(&c, "a", "3").await, ("3".into(), CacheOutcome::Miss));
        assert_eq!(ask(&c, "b", "4").await, ("4".into(), CacheOutcome::Miss));
        assert_eq!(
            metric(&c, "pathlight_query_cache_hits_total{endpoint=\"stats\"}"),
            "1"
        );
        assert_eq!(
            metric(&c, "pathlight_query_cache_misses_total{endpoint=\"stats\"}"),
            "3"
        );
        assert_eq!(
            metric(
                &c,
                "pathlight_query_cache_evictions_total{reason=\"expired\"}"
            ),
            "1"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_query_slower_than_the_ttl_is_not_kept() {
        let c = cache(1, 100, 1 << 20);
        let slow = async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok::<_, ()>(Bytes::from_static(b"old"))
        };
        assert_eq!(
            c.get_or_run("stats", "a".into(), slow).await.unwrap().0,
            "old"
        );
        assert_eq!(
            ask(&c, "a", "new").await,
            ("new".into(), CacheOutcome::Miss)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_not_kept() {
        let c = cache(5, 100, 1 << 20);
        let failed = c
            .get_or_run("stats", "a".into(), async { Err::<Bytes, _>("down") })
            .await;
        assert_eq!(failed, Err("down"));
        assert_eq!(ask(&c, "a", "1").await, ("1".into(), CacheOutcome::Miss));
    }

    #[tokio::test(start_paused = true)]
    async fn the_oldest_go_first_past_the_entry_and_byte_bounds() {
        let c = cache(60, 3, 1 << 20);
        for k in ["a", "b", "c", "d"] {
            ask(&c, k, "x").await;
        }
        assert_eq!(ask(&c, "a", "y").await.1, CacheOutcome::Miss);
        assert_eq!(ask(&c, "c", "y").await.1, CacheOutcome::Hit);
        assert_eq!(
            metric(&c, "pathlight_query_cache_evictions_total{reason=\"full\"}"),
            "2"
        );
        assert_eq!(metric(&c, "pathlight_query_cache_entries"), "3");

        // Four answers of ~1/8 of the bytes fit, with room for little more.
        let c = cache(60, 100, 8 * (1000 + ENTRY_OVERHEAD + 1));
        let big: &'static str = "x".repeat(1000).leak();
        for k in ["a", "b", "c", "d", "e", "f", "g", "h", "i"] {
            ask(&c, k, big).await;
        }
        let bytes: usize = metric(&c, "pathlight_query_cache_bytes").parse().unwrap();
        assert!(bytes <= 8 * (1000 + ENTRY_OVERHEAD + 1), "{bytes}");
        assert_eq!(ask(&c, "a", big).await.1, CacheOutcome::Miss);
        assert_eq!(ask(&c, "i", big).await.1, CacheOutcome::Hit);
        // Past an eighth of the bytes: never kept.
        let huge: &'static str = "x".repeat(2000).leak();
        ask(&c, "j", huge).await;
        assert_eq!(ask(&c, "j", huge).await.1, CacheOutcome::Miss);
    }

    #[tokio::test(start_paused = true)]
    async fn identical_questions_at_once_cost_one_query() {
        let c = cache(5, 100, 1 << 20);
        let runs = AtomicUsize::new(0);
        let (c, runs) = (&c, &runs);
        let one = || async move {
            c.get_or_run("stats", "a".into(), async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, ()>(Bytes::from_static(b"1"))
            })
            .await
            .unwrap()
        };
        let answers = futures_util::future::join_all((0..5).map(|_| one())).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(answers.iter().all(|(b, _)| b == "1"));
        let hits = answers
            .iter()
            .filter(|(_, o)| *o == CacheOutcome::Hit)
            .count();
        assert_eq!(hits, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_ask_again_when_the_running_query_fails() {
        let c = cache(5, 100, 1 << 20);
        let failing = c.get_or_run("stats", "a".into(), async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Err::<Bytes, _>("down")
        });
        let waiting = async {
            // Starts while the failing one runs.
            tokio::time::sleep(Duration::from_millis(10)).await;
            c.get_or_run("stats", "a".into(), async {
                Ok::<_, &str>(Bytes::from_static(b"1"))
            })
            .await
        };
        let (failed, answered) = tokio::join!(failing, waiting);
        assert_eq!(failed, Err("down"));
        assert_eq!(answered, Ok(("1".into(), CacheOutcome::Miss)));
    }

    #[tokio::test(start_paused = true)]
    async fn off_with_a_zero_ttl() {
        let c = cache(0, 100, 1 << 20);
        assert_eq!(ask(&c, "a", "1").await, ("1".into(), CacheOutcome::Bypass));
        assert_eq!(ask(&c, "a", "2").await, ("2".into(), CacheOutcome::Bypass));
    }
}
