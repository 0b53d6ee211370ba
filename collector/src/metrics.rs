//! Prometheus metrics, served as text at `GET /metrics`. Label values are bounded sets
//! (routes, statuses, reasons, kinds, configured sites), never client-chosen values such as URLs,
//! so cardinality stays fixed.
//!
//! The collector's own metrics are named `pathlight_*`; the process's (CPU, memory, file
//! descriptors, threads, start time) keep the standard `process_*` names every Prometheus client
//! exports, so the usual process dashboards and alerts work unchanged.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `route` and `status` of an answered request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `batch`, `preflight`, `metrics`, `healthz`, `readyz`, `static`, `not_found`, ...
    pub route: &'static str,
    /// HTTP status code.
    pub status: u16,
}

/// One label `route`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// `batch` or `relay`.
    pub route: &'static str,
}

/// Bounds of [`Metrics::ingest_seconds`]: fine around the 10 ms answer time we aim for at
/// half load, so its share of slower answers can be read off the buckets.
const INGEST_SECONDS_BUCKETS: [f64; 17] = [
    0.000_5, 0.001, 0.002, 0.003, 0.005, 0.007_5, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// `endpoint` and `cache` of an answered query-API request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    /// The endpoint (`stats`, `heatmap`, `session` for `sessions/{id}`, ...; `other` for any
    /// path that names none): see `query::endpoint_label`.
    pub endpoint: &'static str,
    /// `hit`, `miss` or `bypass`: see `query::CacheOutcome`.
    pub cache: &'static str,
}

/// One label `endpoint` (a query-API endpoint, see [`QueryLabels`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    /// The endpoint.
    pub endpoint: &'static str,
}

/// Bounds of [`Metrics::query_seconds`]: from a cached answer (about a millisecond) to a scan
/// of a large range (tens of seconds), with 0.3 s and 1 s among them, the dashboard's goals at
/// 10 M and 100 M events, so the share of answers within each is read off exactly.
const QUERY_SECONDS_BUCKETS: [f64; 16] = [
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0,
];

/// One label `kind` (event kind).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// `pageview`, `click`, ...
    pub kind: &'static str,
}

/// One label `reason` (why events or requests were refused).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// A stable short reason, see `IngestError::reason`.
    pub reason: &'static str,
}

/// `site` (a configured site's id: a bounded set) and `outcome`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UndeliveredLabels {
    /// The site the tracker reported for.
    pub site: String,
    /// `failed` (a send failed; the batch was kept and sent later) or `dropped` (given up).
    pub outcome: &'static str,
}

/// A site and one of its ingest keys, named by the first 8 hex digits of its SHA-256 (what the
/// config holds), so that a rotation shows which key senders still use.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyLabels {
    /// The site.
    pub site: String,
    /// The key's digest prefix.
    pub key: String,
}

/// What became of an input message (`source/nats.rs`): `stored`, `partly_refused`, `refused`
/// (both moved to the dead subject) or `retried` (left for redelivery).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// The outcome.
    pub outcome: &'static str,
}

/// One label `site` (a configured site's id, or `other`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SiteLabel {
    /// The site.
    pub site: String,
}

/// Labels `site` and `path` (one of the site's `metric_paths`, or `other`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabel {
    /// The site.
    pub site: String,
    /// The path.
    pub path: String,
}

/// One label `stream`: the broker's JetStream stream (`broker.stream`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabel {
    /// The stream's name.
    pub stream: String,
}

/// Every metric the collector exports.
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by route and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Events stored (acknowledged), by kind.
    pub events_accepted: Family<KindLabel, Counter>,
    /// Events refused, by reason. A whole refused batch counts each of its events when they
    /// could be counted, else one.
    pub events_rejected: Family<ReasonLabel, Counter>,
    /// Seconds from a batch request's headers to its answer, by route: the collector's own
    /// share of the sender's latency (the rest is the network and the sender).
    pub ingest_seconds: Family<RouteLabel, Histogram, fn() -> Histogram>,
    /// Events per accepted batch.
    pub batch_events: Histogram,
    /// Body bytes per batch request.
    pub batch_bytes: Histogram,
    /// Seconds from the first try of an insert to its success (retries included).
    pub sink_latency: Histogram,
    /// Rows per insert.
    pub sink_flush_rows: Histogram,
    /// Rows written to ClickHouse.
    pub sink_rows_written: Counter,
    /// Failed insert attempts, by decision (`retry` or `fail`).
    pub sink_errors: Family<ReasonLabel, Counter>,
    /// Events waiting to be written.
    pub queue_depth: Gauge,
    /// Connections closed at accept because `http.max_connections` were open.
    pub connections_refused: Counter,
    /// WebSocket sessions refused because their site had `live.max_connections_per_site`.
    pub websocket_refused: Counter,
    /// Messages of WebSocket clients that were no request of the live protocol.
    pub websocket_bad_messages: Counter,
    /// Bytes of acknowledged events in the spool, not yet in ClickHouse.
    pub spool_bytes: Gauge,
    /// Rows of acknowledged events in the spool, not yet in ClickHouse.
    pub spool_rows: Gauge,
    /// Spool segment files not yet shipped (the one being written included).
    pub spool_segments: Gauge,
    /// 1 while ClickHouse answers (probes and inserts), 0 while it does not
    /// (`storage/clickhouse/health.rs`; readiness reads it).
    pub clickhouse_up: Gauge,
    /// In broker mode, 1 while the collector is connected to NATS, 0 while it is not; no series
    /// otherwise.
    pub nats_up: Family<StreamLabel, Gauge>,
    /// Seconds per spool group commit (write + fsync).
    pub spool_commit: Histogram,
    /// Spool segments ClickHouse refused for good.
    pub spool_dead_segments: Counter,
    /// Batches trackers could not deliver at their first try, or gave up, as their later sends
    /// reported them (stored as `$undelivered` events too), by site and outcome.
    pub undelivered_batches: Family<UndeliveredLabels, Counter>,
    /// Batches stored once although sent again (a tracker's retry of a batch it could not
    /// learn the outcome of): answered as stored, not stored twice.
    pub duplicate_batches: Counter,
    /// Query-API requests refused for a missing or wrong token, by the site they named.
    pub api_unauthorized: Family<SiteLabel, Counter>,
    /// Batches (and identifies) accepted with an ingest key, by site and key (wrong and missing
    /// keys are counted in `events_rejected` as `invalid_key` and `key_required`, and in
    /// `identify_requests`).
    pub ingest_key_batches: Family<KeyLabels, Counter>,
    /// Messages of the broker's input stream, by outcome.
    pub source_messages: Family<OutcomeLabel, Counter>,
    /// `identify` requests by outcome: `stored`, `relayed` (an edge worker's, stored), `named`
    /// (no traits: nothing to store), or the refusal's reason.
    pub identify_requests: Family<ReasonLabel, Counter>,
    /// Visitors with an event stored in the last five minutes, by site (configured sites, or
    /// `other`): what this collector saw (`pipeline/visitors.rs`), bots left out.
    pub current_visitors: Family<SiteLabel, Gauge>,
    /// Page views stored, by site, bots left out. Per site, not per path: paths are the
    /// senders' to choose, unbounded, and may carry personal data, none of which belongs in
    /// labels; the query API's `pages` answers by path.
    pub page_views: Family<SiteLabel, Counter>,
    /// Page views stored by site and path, for the sites that list `metric_paths` (the paths
    /// they list, the rest as `other`), bots left out.
    pub page_views_by_path: Family<PathLabel, Counter>,
    /// Open WebSocket sessions of the live feed.
    pub websocket_connections: Gauge,
    /// Query-API requests refused because their address sent too many wrong tokens.
    pub api_throttled: Counter,
    /// Seconds from a query-API request's headers to its answer (for `export`, to its first
    /// bytes), by endpoint and cache outcome.
    pub query_seconds: Family<QueryLabels, Histogram, fn() -> Histogram>,
    /// Query-API answers taken from the result cache (or from an identical query running at
    /// the time), by endpoint.
    pub query_cache_hits: Family<EndpointLabel, Counter>,
    /// Cacheable query-API requests that ran their query, by endpoint.
    pub query_cache_misses: Family<EndpointLabel, Counter>,
    /// Cached answers dropped, by reason: `expired` (past the TTL) or `full` (room for a
    /// newer one).
    pub query_cache_evictions: Family<ReasonLabel, Counter>,
    /// Answers in the result cache.
    pub query_cache_entries: Gauge,
    /// Bytes the result cache holds (answers and keys).
    pub query_cache_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let mut root = Registry::default();
        // Read from /proc at each scrape: nothing to update in between.
        if let Err(e) =
            kubert_prometheus_process::register(root.sub_registry_with_prefix("process"))
        {
            tracing::warn!(error = %e, "process metrics are not available");
        }
        let registry = root.sub_registry_with_prefix("pathlight");
        let m = Metrics {
            requests: Family::default(),
            events_accepted: Family::default(),
            events_rejected: Family::default(),
            ingest_seconds: Family::new_with_constructor(|| Histogram::new(INGEST_SECONDS_BUCKETS)),
            batch_events: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            batch_bytes: Histogram::new(exponential_buckets(64.0, 4.0, 10)),
            sink_latency: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            sink_flush_rows: Histogram::new(exponential_buckets(1.0, 4.0, 10)),
            sink_rows_written: Counter::default(),
            sink_errors: Family::default(),
            queue_depth: Gauge::default(),
            connections_refused: Counter::default(),
            websocket_refused: Counter::default(),
            websocket_bad_messages: Counter::default(),
            spool_bytes: Gauge::default(),
            spool_rows: Gauge::default(),
            spool_segments: Gauge::default(),
            clickhouse_up: Gauge::default(),
            nats_up: Family::default(),
            spool_commit: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            spool_dead_segments: Counter::default(),
            undelivered_batches: Family::default(),
            duplicate_batches: Counter::default(),
            api_unauthorized: Family::default(),
            ingest_key_batches: Family::default(),
            source_messages: Family::default(),
            identify_requests: Family::default(),
            api_throttled: Counter::default(),
            current_visitors: Family::default(),
            page_views: Family::default(),
            page_views_by_path: Family::default(),
            websocket_connections: Gauge::default(),
            query_seconds: Family::new_with_constructor(|| Histogram::new(QUERY_SECONDS_BUCKETS)),
            query_cache_hits: Family::default(),
            query_cache_misses: Family::default(),
            query_cache_evictions: Family::default(),
            query_cache_entries: Gauge::default(),
            query_cache_bytes: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered",
            m.requests.clone(),
        );
        registry.register(
            "events_accepted",
            "Events stored",
            m.events_accepted.clone(),
        );
        registry.register(
            "events_rejected",
            "Events refused, by reason",
            m.events_rejected.clone(),
        );
        registry.register(
            "ingest_request_seconds",
            "Seconds from a batch request's headers to its answer",
            m.ingest_seconds.clone(),
        );
        registry.register(
            "batch_events",
            "Events per accepted batch",
            m.batch_events.clone(),
        );
        registry.register(
            "batch_bytes",
            "Body bytes per batch request",
            m.batch_bytes.clone(),
        );
        registry.register(
            "sink_latency_seconds",
            "Time to write one insert to ClickHouse, retries included",
            m.sink_latency.clone(),
        );
        registry.register(
            "sink_flush_rows",
            "Rows per ClickHouse insert",
            m.sink_flush_rows.clone(),
        );
        registry.register(
            "sink_rows_written",
            "Rows written to ClickHouse",
            m.sink_rows_written.clone(),
        );
        registry.register(
            "sink_errors",
            "Failed ClickHouse insert attempts, by decision",
            m.sink_errors.clone(),
        );
        registry.register(
            "queue_depth_events",
            "Events waiting to be written",
            m.queue_depth.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed at accept: http.max_connections were open",
            m.connections_refused.clone(),
        );
        registry.register(
            "websocket_refused",
            "WebSocket sessions refused: their site had live.max_connections_per_site open",
            m.websocket_refused.clone(),
        );
        registry.register(
            "websocket_bad_messages",
            "WebSocket client messages that were no request of the live protocol",
            m.websocket_bad_messages.clone(),
        );
        registry.register(
            "spool_bytes",
            "Bytes of acknowledged events on disk, not yet in ClickHouse",
            m.spool_bytes.clone(),
        );
        registry.register(
            "spool_rows",
            "Rows of acknowledged events on disk, not yet in ClickHouse",
            m.spool_rows.clone(),
        );
        registry.register(
            "spool_segments",
            "Spool segment files not yet shipped to ClickHouse",
            m.spool_segments.clone(),
        );
        registry.register(
            "clickhouse_up",
            "1 while ClickHouse answers probes and inserts, 0 while it does not",
            m.clickhouse_up.clone(),
        );
        registry.register(
            "nats_up",
            "Broker mode: 1 while connected to NATS, 0 while not",
            m.nats_up.clone(),
        );
        registry.register(
            "spool_commit_seconds",
            "Time to write and fsync one group of spool records",
            m.spool_commit.clone(),
        );
        registry.register(
            "spool_dead_segments",
            "Spool segments ClickHouse refused for good, moved to dead/",
            m.spool_dead_segments.clone(),
        );
        registry.register(
            "tracker_undelivered_batches",
            "Batches trackers could not deliver at first (failed) or gave up (dropped), as reported later",
            m.undelivered_batches.clone(),
        );
        registry.register(
            "duplicate_batches",
            "Batches sent again that were already stored, answered without storing them twice",
            m.duplicate_batches.clone(),
        );
        registry.register(
            "api_unauthorized",
            "Query-API requests with a missing or wrong token, by the site they named",
            m.api_unauthorized.clone(),
        );
        registry.register(
            "ingest_key_batches",
            "Batches and identifies accepted with an ingest key, by site and key (its SHA-256's first 8 hex digits)",
            m.ingest_key_batches.clone(),
        );
        registry.register(
            "source_messages",
            "Messages producers published to the broker's input stream, by outcome",
            m.source_messages.clone(),
        );
        registry.register(
            "identify_requests",
            "Identify requests by outcome: stored, named (no traits), or the refusal's reason",
            m.identify_requests.clone(),
        );
        registry.register(
            "current_visitors",
            "Visitors with an event stored in the last 5 minutes, by site, bots left out (this collector's)",
            m.current_visitors.clone(),
        );
        registry.register(
            "page_views",
            "Page views stored, by site, bots left out",
            m.page_views.clone(),
        );
        registry.register(
            "page_views_by_path",
            "Page views stored, by site and path (a site's metric_paths, the rest as other), bots left out",
            m.page_views_by_path.clone(),
        );
        registry.register(
            "websocket_connections",
            "Open WebSocket sessions of the live feed",
            m.websocket_connections.clone(),
        );
        registry.register(
            "api_throttled",
            "Query-API requests refused (429) from addresses that sent too many wrong tokens",
            m.api_throttled.clone(),
        );
        registry.register(
            "query_request_seconds",
            "Seconds from a query-API request's headers to its answer, by endpoint and cache outcome",
            m.query_seconds.clone(),
        );
        registry.register(
            "query_cache_hits",
            "Query-API answers taken from the result cache, by endpoint",
            m.query_cache_hits.clone(),
        );
        registry.register(
            "query_cache_misses",
            "Cacheable query-API requests that ran their query, by endpoint",
            m.query_cache_misses.clone(),
        );
        registry.register(
            "query_cache_evictions",
            "Cached query answers dropped, by reason (expired, full)",
            m.query_cache_evictions.clone(),
        );
        registry.register(
            "query_cache_entries",
            "Answers in the query result cache",
            m.query_cache_entries.clone(),
        );
        registry.register(
            "query_cache_bytes",
            "Bytes the query result cache holds",
            m.query_cache_bytes.clone(),
        );
        Metrics {
            registry: root,
            ..m
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts what a stored batch reported of its sender's earlier sends: itself, sent again
    /// and stored only now (`failed`), and the batches its sender dropped (`dropped`).
    pub fn count_undelivered(&self, site: &str, delivery: pathlight_ingest::Delivery) {
        for (outcome, n) in [
            ("failed", u64::from(delivery.resent)),
            ("dropped", u64::from(delivery.dropped)),
        ] {
            if n > 0 {
                self.undelivered_batches
                    .get_or_create(&UndeliveredLabels {
                        site: site.to_owned(),
                        outcome,
                    })
                    .inc_by(n);
            }
        }
    }

    /// Counts `n` refused events.
    pub fn reject(&self, reason: &'static str, n: u64) {
        self.events_rejected
            .get_or_create(&ReasonLabel { reason })
            .inc_by(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The process's figures come under their standard names beside the collector's own,
    /// which keep their prefix.
    #[test]
    fn process_metrics_are_exported_under_their_standard_names() {
        let text = Metrics::new().encode();
        for series in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_threads ",
            "process_start_time_seconds ",
            "pathlight_queue_depth_events ",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(series)),
                "{series:?} missing from\n{text}"
            );
        }
        let rss: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            rss > 1e6,
            "a running test process uses more than 1 MB: {rss}"
        );
    }
}
