//! The collector's one configuration struct: a TOML file, then `PATHLIGHT_*` environment
//! overrides (`PATHLIGHT_CLICKHOUSE__URL=...` sets `clickhouse.url`). Every field has a default,
//! so an empty file is a working local setup; unknown keys are errors, so a typo never silently
//! falls back to a default.

use crate::query::analysis::AnomalyRules;
use crate::storage::clickhouse::ClickHouseConfig;
use anyhow::{Context, bail};
use pathlight_wire::Limits;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `pathlight.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address `pathlight serve` listens on for HTTP/1.1 and HTTP/2 (h2c).
    pub listen: SocketAddr,
    /// Directory served at `/` (the dashboards and heatmap viewer); none: not served.
    pub www_dir: Option<PathBuf>,
    /// Directory of the demo site (pages that embed the tracker), served at `/demo/` on
    /// `demo_listen` only: never on the dashboards' origin, where its pages' scripts could read
    /// a dashboard's token. None: not served.
    pub demo_dir: Option<PathBuf>,
    /// Address the demo site listens on, an origin of its own (`127.0.0.1:8081`); its pages
    /// load the tracker from this collector. None: not served.
    pub demo_listen: Option<SocketAddr>,
    /// The tracker build (`scripts/build-tracker.sh` writes `target/tracker`): the loader
    /// `p.js` and the content-hashed `p.HASH.wasm` and `p.HASH.js` are served at the root and
    /// under `prefix`, to any origin; none: not served.
    pub tracker_dir: Option<PathBuf>,
    /// A path prefix (`/_pl`) under which the tracker files and `v1/batch` are served too, for
    /// a site that forwards a path of its own here without rewriting it (a first-party setup:
    /// README "Add it to your site"). Empty: only at the root.
    pub prefix: String,
    /// Addresses of the reverse proxies trusted to set `client_ip_header` (`["127.0.0.1"]`):
    /// from any other peer the header is ignored and the peer's address is the client's.
    /// Empty: every peer is trusted, for a collector reachable only through its proxy.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Secret signing live tokens (`/api/v1/live-token`); collectors of one deployment share
    /// it so each accepts the others' tokens. (Visitor ids use random daily salts kept in
    /// ClickHouse, not this secret: see `pipeline/salts.rs`.) `serve` refuses to start without one of
    /// at least 16 characters that is not a published example: `pathlight secret` prints one.
    pub hash_secret: String,
    /// Who may frame the dashboards: CSP `frame-ancestors` sources, `'self'` (the default),
    /// `'none'` or origins (`https://intranet.example`) of pages that embed them.
    pub frame_ancestors: Vec<String>,
    /// Wrong API tokens one client address may send per minute; past them every query-API
    /// request from that address is answered `429` with `Retry-After` until the minute is
    /// over, so tokens cannot be guessed. 0: no limit.
    pub api_auth_failures_per_minute: u32,
    /// SHA-256 (hex; `pathlight hash-token` prints it) of the token edge workers in relay mode
    /// send on `/v1/relay` and `/v1/relay/salts` (`Authorization: Bearer`, the worker's secret
    /// `RELAY_TOKEN`). Empty: those endpoints are off.
    pub relay_token_sha256: String,
    /// Header a trusted reverse proxy sets to the client's address (`x-forwarded-for`: its
    /// last entry, the one the proxy appended, is used; earlier ones came from the client).
    /// Empty: the TCP peer address. Only set it behind such a proxy, since clients can send
    /// any header.
    pub client_ip_header: String,
    /// Header a trusted proxy or CDN sets to the client's ISO country code (`cf-ipcountry`).
    /// Empty: none. Used when no `geoip_db` is set or it has no answer.
    pub country_header: String,
    /// MaxMind GeoLite2/GeoIP2 Country or City database (`.mmdb`); none: no lookup.
    pub geoip_db: Option<PathBuf>,
    /// Inactivity after which a session ends, seconds (30 minutes by default). Server-side
    /// sessions, for events that arrive without a session id (server-side senders, the simple
    /// array format), end after it, and the sessions API calls a session `timed_out` once it has
    /// had no event for it. Edge workers should have the same (`PATHLIGHT_SESSION_TIMEOUT_SECS`).
    pub session_timeout_secs: u64,
    /// Limits every batch is held to.
    pub limits: Limits,
    /// Where events are stored.
    pub clickhouse: ClickHouseConfig,
    /// Events per second one client address may send, over all sites (429 + `Retry-After`
    /// beyond, bursts of ten seconds' worth); 0: no limit. Behind a proxy, set
    /// `client_ip_header` or every visitor shares the proxy's address.
    pub ip_events_per_sec: u32,
    /// HTTPS and HTTP/3.
    pub tls: crate::http::tls::TlsConfig,
    /// Connection limits: slow, stalled or too many clients.
    pub http: HttpConfig,
    /// The durable spool between ingest and ClickHouse (off unless `dir` is set).
    pub spool: crate::storage::spool::SpoolConfig,
    /// Scale-out mode: publish rows to a NATS JetStream stream for `pathlight load` to write
    /// (off unless `url` is set; see `storage/broker/mod.rs`).
    pub broker: crate::storage::broker::BrokerConfig,
    /// The query API's result cache (`query/cache.rs`).
    pub query_cache: QueryCacheConfig,
    /// The live feed over WebSocket (`http/ws.rs`).
    pub live: LiveConfig,
    /// Sign-in to the dashboards (`accounts/`).
    pub accounts: crate::accounts::AccountsConfig,
    /// The sites this collector accepts events for. Events for other sites are refused.
    pub sites: Vec<SiteConfig>,
    /// The anomaly rules of `sessions/{id}/analysis`, with their severities, for every site
    /// (a site's own `anomalies` override them rule by rule): `repeated` (`min` identical
    /// actions in a row, default 3; also the rule of the `anomalies` and `sessions` lists and
    /// their daily rollup, which keeps a rolled day's figures by the rule of its roll), `rage` (`clicks` within `ms` and `px`), `dead`,
    /// `missing_close` (a session that timed out without its page being hidden or left) and
    /// `rapid`; each with `enabled` and `severity` (`low`, `medium`, `high`).
    pub anomalies: AnomalyRules,
}

/// Bounds on what clients can hold: sockets, time and header memory. Bodies are bounded by
/// `limits.max_batch_bytes`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Open connections at most. Past it, new connections are closed at once (counted in
    /// `pathlight_connections_refused_total`) rather than queued.
    pub max_connections: usize,
    /// A client must send a request's line and headers within this time, ms, or the
    /// connection is closed (slowloris). Also how long an idle keep-alive connection is kept.
    pub header_timeout_ms: u64,
    /// A request's body must arrive within this time, ms, or the answer is 408.
    pub body_timeout_ms: u64,
    /// Largest request line + headers, bytes (HTTP/1.1: 431 past it; HTTP/2: the header
    /// list size). At least 8192.
    pub max_header_bytes: usize,
    /// Concurrent requests (streams) on one HTTP/2 connection.
    pub max_streams: u32,
    /// Request bodies held at once over all connections, bytes: each request takes its bytes'
    /// share as they arrive (not as declared) and keeps it until answered. Past it a request
    /// waits up to a second for room, then gets 503, so many connections at their stream limit
    /// cannot hold more memory than this. At least `limits.max_batch_bytes`.
    pub max_body_bytes_in_flight: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_connections: 10_000,
            header_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            max_header_bytes: 16 * 1024,
            max_streams: 100,
            max_body_bytes_in_flight: 128 << 20,
        }
    }
}

/// `[live]`: the live feed over WebSocket (`realtime/ws`, protocol v1 in `http/ws.rs`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveConfig {
    /// WebSocket sessions one site may have open at once (on this collector). One more is
    /// accepted, sent an `error` message (`too_many_connections`) and closed with code 1013
    /// (try again later), so a browser can tell why; counted in
    /// `pathlight_websocket_refused_total`.
    pub max_connections_per_site: usize,
    /// How often each session is sent the site's current visitors (`heartbeat`), ms. The
    /// count is asked of ClickHouse at most once per interval for all sessions of a site.
    pub heartbeat_ms: u64,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            max_connections_per_site: 100,
            heartbeat_ms: 5_000,
        }
    }
}

/// The query API's in-process result cache: a dashboard load asks a dozen questions, and
/// reloads, several people on one dashboard and the heatmap viewer beside it ask the same ones
/// again within seconds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryCacheConfig {
    /// How long an answer is served again, seconds, counted from when its query started: no
    /// answer is older than this, whatever its date range (the current hour included). 5 s
    /// keeps a dashboard as fresh as ingest makes it (events are queryable a second or so
    /// after they arrive: `clickhouse.flush_interval_ms`, `spool.seal_ms`), while a reload,
    /// a second person or a second tab within it is answered from memory. 0: no cache.
    pub ttl_secs: u64,
    /// Answers kept at most; past it the oldest go first.
    pub max_entries: usize,
    /// Bytes of answers (their JSON and their keys) kept at most; past it the oldest go
    /// first. An answer larger than an eighth of it is not kept.
    pub max_bytes: usize,
}

impl Default for QueryCacheConfig {
    fn default() -> Self {
        QueryCacheConfig {
            ttl_secs: 5,
            max_entries: 1_000,
            max_bytes: 64 << 20,
        }
    }
}

/// One site that may send events.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// The id the tracker sends (`data-site`).
    pub id: String,
    /// Origins whose pages may send events from a browser (`https://example.com`), answered
    /// with CORS headers. `"*"` allows any origin. Requests without an `Origin` header
    /// (server-side senders) are accepted whatever this says.
    #[serde(default)]
    pub origins: Vec<String>,
    /// Events per second this site may send through one collector, with bursts of up to
    /// ten seconds' worth; 0: unlimited. Beyond it the collector answers 429.
    #[serde(default)]
    pub max_events_per_sec: u32,
    /// The site's own names for search analytics (`[sites.search]`): which custom events are
    /// searches, result clicks and item steps, and which properties hold the query, the result
    /// count and the clicked position, so that a site's existing senders need no change.
    #[serde(default)]
    pub search: SearchConfig,
    /// Bearer token for this site's query API (`/api/v1/...`, the dashboards); empty (and no
    /// `api_token_sha256`): the site's data cannot be queried over HTTP. Only its SHA-256 is
    /// kept in memory.
    #[serde(default)]
    pub api_token: String,
    /// The token's SHA-256 in hex (`pathlight hash-token` prints it), so the config file need
    /// not hold the token itself. Used instead of `api_token` when set.
    #[serde(default)]
    pub api_token_sha256: String,
    /// SHA-256 digests (hex; `pathlight hash-token` prints one) of the site's ingest keys: a
    /// request with `X-API-Key: <key>` (or `Authorization: Bearer <key>`) is accepted for the
    /// site from anywhere, so servers can send its events. List two while replacing one.
    #[serde(default)]
    pub ingest_keys_sha256: Vec<String>,
    /// Refuse (`401`) requests from no allowed origin that carry no valid ingest key. Off: a
    /// request without an `Origin` (a server's) is accepted without a key, as before.
    #[serde(default)]
    pub require_key: bool,
    /// Where the site's pages live (`https://shop.example`), for "Open on site": the live
    /// heatmap overlay opens this plus the page's path. Empty: the first origin but `*`.
    #[serde(default)]
    pub base_url: String,
    /// Goal events: names of custom events (`pathlight.track("signup")`) whose visitors count
    /// as converted in `stats`' `conversion` (visitors with any of them per visitors). Empty:
    /// `conversion` is null.
    #[serde(default)]
    pub goals: Vec<String>,
    /// Paths whose page views `/metrics` counts one by one (`pathlight_page_views_by_path_total`,
    /// say `["/", "/pricing", "/checkout"]`); the site's other paths count as `other`. Only
    /// paths listed here become labels: the series stay few, and no text a visitor's URL
    /// carries reaches the metrics. Empty: the site's page views are counted per site only.
    #[serde(default)]
    pub metric_paths: Vec<String>,
    /// The site's anomaly rules (`sessions/{id}/analysis`): each rule named here replaces
    /// the global `[anomalies]` one.
    #[serde(default)]
    pub anomalies: AnomalyRules,
}

/// A site's names for what `/api/v1/search` reads (custom events and their properties), and
/// what counts as a refinement. Every name is matched exactly; the defaults are the names the
/// tracker's README uses (`track("search", {query, results})`, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// The custom event of a search: `search`. Counted when it carries a non-empty query.
    pub search_event: String,
    /// The custom event of a click on a search result: `search_result_click`. Counted when it
    /// carries the query or the position property (so an `item_viewed` used here but sent
    /// from a category page too is not taken for a result click), and credited to the
    /// session's latest search before it.
    pub click_event: String,
    /// The property holding the query text, on searches (and clicks): `query`.
    pub query_property: String,
    /// The property holding a search's number of results (0: a zero-result search): `results`.
    /// A search without it is not counted as zero-result.
    pub results_property: String,
    /// The property holding a clicked result's position, 1 for the first: `position`.
    pub position_property: String,
    /// The property holding the item id, on result clicks and the item events: `item_id`.
    pub item_property: String,
    /// The custom event of an item (product) page view: `view_item`.
    pub view_event: String,
    /// The custom event of an item put in the cart: `add_to_cart`.
    pub cart_event: String,
    /// The custom event of an item bought: `purchase`.
    pub purchase_event: String,
    /// A search followed, in the same session and with no result click between, by a search
    /// for another query within this many seconds is a refinement: 60.
    pub refinement_secs: u32,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            search_event: "search".into(),
            click_event: "search_result_click".into(),
            query_property: "query".into(),
            results_property: "results".into(),
            position_property: "position".into(),
            item_property: "item_id".into(),
            view_event: "view_item".into(),
            cart_event: "add_to_cart".into(),
            purchase_event: "purchase".into(),
            refinement_secs: 60,
        }
    }
}

impl SearchConfig {
    /// The names, each with its key, in a fixed order (for checking them).
    fn names(&self) -> [(&'static str, &str); 9] {
        [
            ("search_event", &self.search_event),
            ("click_event", &self.click_event),
            ("query_property", &self.query_property),
            ("results_property", &self.results_property),
            ("position_property", &self.position_property),
            ("item_property", &self.item_property),
            ("view_event", &self.view_event),
            ("cart_event", &self.cart_event),
            ("purchase_event", &self.purchase_event),
        ]
    }
}

impl SiteConfig {
    /// `base_url`, else the first listed origin that is not `*`; empty when there is none.
    pub fn base_url(&self) -> String {
        let base = if self.base_url.is_empty() {
            self.origins
                .iter()
                .find(|o| *o != "*")
                .map_or("", |o| o.as_str())
        } else {
            self.base_url.as_str()
        };
        base.trim_end_matches('/').to_owned()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            www_dir: None,
            demo_dir: None,
            demo_listen: None,
            tracker_dir: None,
            prefix: String::new(),
            trusted_proxies: Vec::new(),
            hash_secret: String::new(),
            frame_ancestors: vec!["'self'".into()],
            api_auth_failures_per_minute: 10,
            relay_token_sha256: String::new(),
            client_ip_header: String::new(),
            country_header: String::new(),
            geoip_db: None,
            session_timeout_secs: pathlight_wire::session::DEFAULT_TIMEOUT_SECS,
            limits: Limits::default(),
            clickhouse: ClickHouseConfig::default(),
            ip_events_per_sec: 1_000,
            tls: crate::http::tls::TlsConfig::default(),
            http: HttpConfig::default(),
            spool: crate::storage::spool::SpoolConfig::default(),
            broker: crate::storage::broker::BrokerConfig::default(),
            query_cache: QueryCacheConfig::default(),
            live: LiveConfig::default(),
            accounts: crate::accounts::AccountsConfig::default(),
            sites: Vec::new(),
            anomalies: AnomalyRules::default(),
        }
    }
}

/// `hash_secret` values printed in this repository's documentation and earlier demo configs.
const PUBLISHED_SECRETS: &[&str] = &["a long random string", "demo-secret-change-me"];

/// Whether `o` is an http(s) origin that can stand in a header as it is (CORS, CSP sources).
pub fn is_origin(o: &str) -> bool {
    (o.starts_with("http://") || o.starts_with("https://"))
        && o.bytes()
            .all(|b| b.is_ascii_graphic() && !b";,'\"".contains(&b))
}

/// A new random secret for `hash_secret` or an API token: 32 bytes from the OS, as hex.
pub fn random_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(crate::hex::encode(&bytes))
}

/// Paths per site counted one by one in `/metrics`: labels multiply series in every scrape.
pub const MAX_METRIC_PATHS: usize = 100;

/// Variables that configure the process rather than the config struct.
const NOT_OVERRIDES: &[&str] = &["PATHLIGHT_CONFIG", "PATHLIGHT_LOG"];

impl Config {
    /// Reads `path` (if any) and applies `PATHLIGHT_*` overrides from `env`. The environment
    /// is passed in, so tests never touch the process's own.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let mut table = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading config file {}", p.display()))?;
                text.parse::<toml::Table>()
                    .with_context(|| format!("parsing config file {}", p.display()))?
            }
            None => toml::Table::new(),
        };
        for (key, value) in env {
            let Some(rest) = key.strip_prefix("PATHLIGHT_") else {
                continue;
            };
            if NOT_OVERRIDES.contains(&key.as_str()) {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            set_path(&mut table, &path, parse_env_value(&value))
                .with_context(|| format!("applying environment variable {key}"))?;
        }
        let origin = path.map_or("defaults".to_owned(), |p| p.display().to_string());
        let config: Config = toml::Value::Table(table)
            .try_into()
            .with_context(|| format!("invalid configuration ({origin} + PATHLIGHT_* variables)"))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: values that parse but make no sense together.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.live.max_connections_per_site == 0 || self.live.heartbeat_ms == 0 {
            bail!("live.max_connections_per_site and live.heartbeat_ms must be > 0");
        }
        let mut seen = std::collections::HashSet::new();
        self.anomalies
            .check()
            .map_err(|e| anyhow::anyhow!("anomalies: {e}"))?;
        for site in &self.sites {
            site.anomalies
                .check()
                .map_err(|e| anyhow::anyhow!("sites.{}: anomalies: {e}", site.id))?;
            if site.id.is_empty() || site.id.len() > self.limits.max_ident_len {
                bail!(
                    "sites: site id {:?} must be 1..={} bytes",
                    site.id,
                    self.limits.max_ident_len
                );
            }
            if !seen.insert(&site.id) {
                bail!("sites: site id {:?} is listed twice", site.id);
            }
            if site.metric_paths.len() > MAX_METRIC_PATHS {
                bail!(
                    "sites.{}: metric_paths lists {} paths, at most {MAX_METRIC_PATHS}",
                    site.id,
                    site.metric_paths.len()
                );
            }
            if let Some(p) = site
                .metric_paths
                .iter()
                .find(|p| !p.starts_with('/') || p.len() > 200)
            {
                bail!(
                    "sites.{}: metric_paths: {p:?} must be a path (starting with /, at most 200 bytes)",
                    site.id
                );
            }
            let sha = &site.api_token_sha256;
            if !sha.is_empty() && crate::hex::decode::<32>(sha).is_none() {
                bail!("sites.{}: api_token_sha256 must be 64 hex digits", site.id);
            }
            if let Some(k) = site
                .ingest_keys_sha256
                .iter()
                .find(|k| crate::hex::decode::<32>(k).is_none())
            {
                bail!(
                    "sites.{}: ingest_keys_sha256 {k:?} must be 64 hex digits (pathlight hash-token prints them)",
                    site.id
                );
            }
            if site.require_key && site.ingest_keys_sha256.is_empty() {
                bail!(
                    "sites.{}: require_key needs at least one key in ingest_keys_sha256",
                    site.id
                );
            }
            // Names as the tracker stores them: an event name or property key is at most
            // `max_ident_len` bytes, so a longer one could never match.
            for (key, name) in site.search.names() {
                if name.is_empty() || name.len() > self.limits.max_ident_len {
                    bail!(
                        "sites.{}.search: {key} must be 1..={} bytes",
                        site.id,
                        self.limits.max_ident_len
                    );
                }
            }
            if !(1..=86_400).contains(&site.search.refinement_secs) {
                bail!(
                    "sites.{}.search: refinement_secs must be 1..=86400",
                    site.id
                );
            }
            if site.search.search_event == site.search.click_event {
                bail!(
                    "sites.{}.search: search_event and click_event must differ",
                    site.id
                );
            }
            for o in &site.origins {
                if o != "*" && !is_origin(o) {
                    bail!(
                        "sites.{}: origin {o:?} must be \"*\" or an origin such as \
                         https://shop.example (http:// or https://, no spaces, ';', ',' or quotes)",
                        site.id
                    );
                }
            }
        }
        let p = &self.prefix;
        if !p.is_empty()
            && (!p.starts_with('/')
                || p.ends_with('/')
                || p.len() > 64
                || !p
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/_-.".contains(&b))
                || p.split('/')
                    .skip(1)
                    .any(|seg| seg.is_empty() || seg == "." || seg == "..")
                || matches!(p.as_str(), "/api" | "/demo" | "/v1"))
        {
            bail!(
                "prefix {p:?} must be a path such as \"/_pl\": starting with /, not ending with \
                 one, of letters, digits, '_', '-' and '.', and not /api, /demo or /v1"
            );
        }
        for source in &self.frame_ancestors {
            if !matches!(source.as_str(), "'self'" | "'none'") && !is_origin(source) {
                bail!("frame_ancestors: {source:?} must be 'self', 'none' or an http(s) origin");
            }
        }
        if !self.relay_token_sha256.is_empty()
            && crate::hex::decode::<32>(&self.relay_token_sha256).is_none()
        {
            bail!("relay_token_sha256 must be 64 hex digits");
        }
        if self.session_timeout_secs == 0 {
            bail!("session_timeout_secs must be > 0");
        }
        if self.limits.max_events == 0 || self.limits.max_batch_bytes == 0 {
            bail!("limits: max_events and max_batch_bytes must be > 0");
        }
        if self.tls.http3 && !self.tls.enabled() {
            bail!("tls: http3 needs TLS (cert and key, or self_signed)");
        }
        if self.http.max_connections == 0 || self.http.max_header_bytes < 8192 {
            bail!("http: max_connections must be > 0 and max_header_bytes at least 8192");
        }
        if self.spool.segment_bytes == 0 || self.spool.max_bytes < self.spool.segment_bytes {
            bail!("spool: segment_bytes must be > 0 and max_bytes at least segment_bytes");
        }
        if self.http.max_body_bytes_in_flight < self.limits.max_batch_bytes {
            // One request at the batch limit must fit, or it would wait for room in vain.
            bail!(
                "http.max_body_bytes_in_flight ({}) is below limits.max_batch_bytes ({})",
                self.http.max_body_bytes_in_flight,
                self.limits.max_batch_bytes
            );
        }
        self.broker.validate()?;
        if self.broker.enabled() && self.spool.dir.is_some() {
            // The stream is the durable buffer in scale-out mode; a spool in front of it would
            // be a second one with its own ack point.
            bail!("set either broker.url (scale-out) or spool.dir, not both");
        }
        self.clickhouse.validate()
    }

    /// What `serve` needs besides [`Config::validate`]: a `hash_secret` nobody can guess, or
    /// anyone could sign live tokens and read every site's live feed.
    pub fn check_secrets(&self) -> anyhow::Result<()> {
        const HOW: &str = "set a random one: `pathlight secret` prints one, e.g. \
             PATHLIGHT_HASH_SECRET=$(pathlight secret), or hash_secret in the config file";
        let secret = self.hash_secret.trim();
        if secret.is_empty() {
            bail!("hash_secret is empty: anyone could sign live tokens; {HOW}");
        }
        if PUBLISHED_SECRETS.contains(&secret) {
            bail!("hash_secret is an example published with Pathlight; {HOW}");
        }
        if secret.chars().count() < 16 {
            bail!("hash_secret is shorter than 16 characters; {HOW}");
        }
        Ok(())
    }

    /// A config for tests: every default, one site `test` open to any origin, a fixed secret,
    /// no query cache.
    pub fn for_tests(clickhouse_url: &str, database: &str) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            hash_secret: "test-secret-of-the-integration-tests".into(),
            // Every test sender is 127.0.0.1; the per-address limit is tested on its own.
            ip_events_per_sec: 0,
            sites: vec![SiteConfig {
                id: "test".into(),
                origins: vec!["*".into()],
                max_events_per_sec: 0,
                api_token: "test-token".into(),
                api_token_sha256: String::new(),
                ingest_keys_sha256: Vec::new(),
                search: Default::default(),
                require_key: false,
                base_url: String::new(),
                goals: Vec::new(),
                metric_paths: Vec::new(),
                anomalies: Default::default(),
            }],
            clickhouse: ClickHouseConfig {
                url: clickhouse_url.into(),
                database: database.into(),
                // Tests store history at fixed dates, so that their figures are exact, and
                // those dates age past any window; the tests of retention set their own.
                retention_days: 0,
                ..ClickHouseConfig::for_tests()
            },
            // Tests read right after they write, and a test that a replay changes no figure
            // would pass on a cached answer whatever the replay did. The cache's own tests
            // turn it on.
            query_cache: QueryCacheConfig {
                ttl_secs: 0,
                ..QueryCacheConfig::default()
            },
            ..Config::default()
        }
    }
}

/// `PATHLIGHT_X=8` is the integer 8, `true` a bool, `["a","b"]` an array; anything that is not
/// a TOML value is taken as a string, so URLs and paths need no quoting.
fn parse_env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> anyhow::Result<()> {
    let (last, parents) = path.split_last().context("empty key")?;
    let mut cur = table;
    for p in parents {
        let next = cur
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = next
            .as_table_mut()
            .with_context(|| format!("{p} is not a section"))?;
    }
    cur.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_overrides_nested_fields_with_typed_values() {
        let c = Config::load(
            None,
            env(&[
                ("PATHLIGHT_CLICKHOUSE__URL", "http://db:8123"),
                ("PATHLIGHT_CLICKHOUSE__MAX_ROWS", "42"),
                ("PATHLIGHT_LIMITS__MAX_EVENTS", "7"),
                ("PATHLIGHT_CONFIG", "/ignored.toml"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(c.clickhouse.url, "http://db:8123");
        assert_eq!(c.clickhouse.max_rows, 42);
        assert_eq!(c.limits.max_events, 7);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err = Config::load(None, env(&[("PATHLIGHT_CLICKHOUS__URL", "x")])).unwrap_err();
        assert!(format!("{err:#}").contains("clickhous"), "{err:#}");
    }

    #[test]
    fn the_demo_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo-site/pathlight.toml");
        let c = Config::load(Some(&path), Vec::new()).unwrap();
        assert!(c.sites.iter().any(|s| s.id == "demo"));
    }

    #[test]
    fn serve_needs_a_secret_nobody_can_guess() {
        let mut c = Config::default();
        for weak in [
            "",
            "  ",
            "demo-secret-change-me",
            "a long random string",
            "short",
        ] {
            c.hash_secret = weak.into();
            let e = c.check_secrets().unwrap_err().to_string();
            assert!(e.contains("pathlight secret"), "{weak:?}: {e}");
        }
        c.hash_secret = random_secret().unwrap();
        assert_eq!(c.hash_secret.len(), 64);
        assert_ne!(c.hash_secret, random_secret().unwrap());
        c.check_secrets().unwrap();
    }

    #[test]
    fn frame_ancestors_are_sources_not_header_text() {
        let mut c = Config {
            frame_ancestors: vec!["'none'".into(), "https://intranet.example:8443".into()],
            ..Config::default()
        };
        c.validate().unwrap();
        for bad in [
            "*",
            "https://a.example; script-src *",
            "'unsafe-inline'",
            "a.example",
        ] {
            c.frame_ancestors = vec![bad.into()];
            assert!(c.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_site_names_its_search_events_in_toml_and_the_rest_keep_their_defaults() {
        let path =
            std::env::temp_dir().join(format!("pathlight-search-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "[[sites]]\nid = \"shop\"\n[sites.search]\nsearch_event = \"search_performed\"\n\
             click_event = \"item_viewed\"\nresults_property = \"results_count\"\nrefinement_secs = 120\n\
             [[sites]]\nid = \"plain\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), Vec::new()).unwrap();
        std::fs::remove_file(&path).unwrap();
        let s = &c.sites[0].search;
        assert_eq!(
            (
                &*s.search_event,
                &*s.click_event,
                &*s.results_property,
                s.refinement_secs
            ),
            ("search_performed", "item_viewed", "results_count", 120)
        );
        assert_eq!((&*s.query_property, &*s.view_event), ("query", "view_item"));
        assert_eq!(c.sites[1].search, SearchConfig::default());
        c.validate().unwrap();
        let mut bad = c.clone();
        bad.sites[0].search.query_property.clear();
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("sites.shop.search: query_property"), "{e}");
        let mut bad = c.clone();
        bad.sites[0].search.click_event = "search_performed".into();
        assert!(bad.validate().is_err());
        let mut bad = c;
        bad.sites[0].search.refinement_secs = 0;
        assert!(bad.validate().is_err());
        let typo = Config::load(
            None,
            env(&[(
                "PATHLIGHT_SITES",
                "[{id = \"a\", search = {search_evnt = \"x\"}}]",
            )]),
        );
        assert!(format!("{:#}", typo.unwrap_err()).contains("search_evnt"));
    }

    #[test]
    fn bad_origins_and_duplicate_sites_are_rejected() {
        let mut c = Config::default();
        c.sites.push(SiteConfig {
            id: "a".into(),
            origins: vec!["example.com".into()],
            max_events_per_sec: 0,
            api_token: String::new(),
            api_token_sha256: String::new(),
            ingest_keys_sha256: Vec::new(),
            search: Default::default(),
            require_key: false,
            base_url: String::new(),
            goals: Vec::new(),
            metric_paths: Vec::new(),
            anomalies: Default::default(),
        });
        assert!(c.validate().is_err());
        c.sites[0].origins.clear();
        c.sites.push(c.sites[0].clone());
        assert!(c.validate().is_err());
    }
}
