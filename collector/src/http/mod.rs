//! The HTTP layer: every transport, and what each route answers.
//!
//! # The path of a request through it
//! 1. A listener accepts the connection: [`listener`] for HTTP/1.1 and HTTP/2 over TCP (plain,
//!    or [`tls`] with ALPN), [`quic`] for HTTP/3 on the same port over UDP. Each holds one of
//!    [`App::permits`] per connection and hands every request to [`answer`], which picks the
//!    demo site's handler on the demo site's listener ([`demo_site`]) and [`handle`] on all
//!    others.
//! 2. [`handle`] decides the [`router::Route`] once, from the method and the path, and calls
//!    that route's function in [`routes`]: `batch`, `identify` and `relay` read the body under
//!    the limits of [`body`] and hand it to the pipeline (`crate::pipeline`); `query` and `websocket` ask
//!    the query API (`crate::query`); `auth` signs people in (`crate::accounts`) and `manage`
//!    changes sites, keys, members and shared links (`crate::sites`, `crate::accounts`);
//!    `files` serves the tracker and `www/`; `ops` the
//!    liveness and readiness checks, metrics and the OpenAPI document.
//! 3. Every refusal, of the pipeline, of the query API or of this layer, becomes its status
//!    and JSON body in one place, [`error::ApiError`]. [`handle`] adds CORS (batch routes),
//!    the [`security`] headers of the route, and counts the request in the metrics.
//!
//! This layer depends on the pipeline and the query API, never the reverse.

pub mod answer;
pub mod body;
pub mod demo_site;
pub mod error;
pub mod listener;
pub mod quic;
pub mod response;
pub mod router;
pub mod routes;
pub mod security;
pub mod tls;
pub mod ws;

use crate::metrics::{QueryLabels, RequestLabels, RouteLabel};
use crate::pipeline::Pipeline;
use crate::query::{CacheOutcome, QueryApi};
pub use answer::answer;
use bytes::Bytes;
use error::ApiError;
use http::{HeaderMap, Request, header};
pub use response::Resp;
use router::Route;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

/// What the HTTP layer needs besides the pipeline.
#[derive(Clone, Debug, Default)]
pub struct HttpOptions {
    /// Served at `/`.
    pub www_dir: Option<PathBuf>,
    /// Served at `/demo/` on the demo site's listener only (`demo_site`).
    pub demo_dir: Option<PathBuf>,
    /// This listener is the demo site's origin: its pages and assets, nothing else
    /// (`demo_site.rs`).
    pub demo_site: bool,
    /// The port of the collector's own listener, which the demo's pages load the tracker from.
    pub collector_port: u16,
    /// Response headers and the wrong-token throttle.
    pub security: Arc<crate::http::security::Security>,
    /// Holds the tracker files served at the root and under `prefix`.
    pub tracker_dir: Option<PathBuf>,
    /// Where the tracker files and `v1/batch` are served too (`/_pl`); empty: the root only.
    pub prefix: String,
    /// Peers whose `client_ip_header` is believed; empty: every peer's.
    pub trusted_proxies: Vec<IpAddr>,
    /// Lower-case name of the trusted client-address header, if any.
    pub client_ip_header: Option<String>,
    /// Lower-case name of the trusted country header, if any.
    pub country_header: Option<String>,
    /// Connection limits.
    pub limits: crate::config::HttpConfig,
    /// SHA-256 of the relay workers' token; none: `/v1/relay` is off.
    pub relay_token: Option<[u8; 32]>,
    /// TLS: HTTPS on the listener, and HTTP/3 on the same port over UDP when `http3`.
    pub tls: Option<Arc<crate::http::tls::Certificate>>,
    /// Serve HTTP/3 (needs `tls`).
    pub http3: bool,
    /// The live feed over WebSocket: per-site cap and heartbeat.
    pub live: crate::config::LiveConfig,
    /// Sign-in to the dashboards; none: `/api/v1/auth/*` does not exist.
    pub accounts: Option<Arc<crate::accounts::Accounts>>,
}

/// What every connection's requests are answered with.
pub struct App {
    pipeline: Arc<Pipeline>,
    query: Arc<QueryApi>,
    pub(crate) opts: HttpOptions,
    /// Open connections of every transport, capped at `http.max_connections`.
    pub(crate) permits: Arc<tokio::sync::Semaphore>,
    /// Bytes of request bodies held now, capped at `http.max_body_bytes_in_flight`.
    body_budget: Arc<tokio::sync::Semaphore>,
    /// Open WebSocket sessions. hyper hands an upgraded connection over and forgets it, so the
    /// graceful shutdown would not wait for the session's closing 1001 frame without this count.
    pub(crate) websockets: tokio::sync::watch::Sender<usize>,
    /// Open WebSocket sessions per site, capped at `live.max_connections_per_site`.
    pub(crate) websockets_per_site: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

/// The request bodies [`handle`] reads: hyper's for TCP, a channel fed by the QUIC stream for
/// HTTP/3.
#[allow(missing_docs)]
pub trait ReqBody:
    hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send
{
}

impl<B> ReqBody for B where
    B: hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
{
}

impl App {
    /// What the listeners answer with: the pipeline, the query API and the HTTP options.
    pub(crate) fn new(pipeline: Arc<Pipeline>, query: Arc<QueryApi>, opts: HttpOptions) -> App {
        let limits = &opts.limits;
        App {
            pipeline,
            query,
            // Each connection holds a permit: past the cap, new connections are closed at once.
            permits: Arc::new(tokio::sync::Semaphore::new(limits.max_connections)),
            body_budget: Arc::new(tokio::sync::Semaphore::new(
                limits
                    .max_body_bytes_in_flight
                    .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
            )),
            websockets: tokio::sync::watch::channel(0).0,
            websockets_per_site: Default::default(),
            opts,
        }
    }

    pub(crate) fn metrics(&self) -> &crate::metrics::Metrics {
        self.pipeline.metrics()
    }
}

/// Answers one request, whatever transport it came by.
pub async fn handle<B: ReqBody>(app: &App, peer: SocketAddr, req: Request<B>) -> Resp {
    let started = std::time::Instant::now();
    let path = req.uri().path().to_owned();
    let origin = header_str(req.headers(), header::ORIGIN).map(str::to_owned);
    let route = Route::of(req.method(), &path, &app.opts.prefix);
    let found = |r: Option<Resp>| r.ok_or(ApiError::NotFound);
    let answered = match route {
        Route::Batch => Ok(routes::batch::batch(app, peer, req).await),
        Route::BatchPreflight => Ok(routes::batch::preflight()),
        Route::Identify => Ok(routes::identify::identify(app, peer, req).await),
        Route::Tracker(file) => found(routes::files::tracker(&app.opts, file, &req).await),
        Route::Relay => Ok(routes::relay::relay(app, req).await),
        Route::RelayUsers => Ok(routes::relay::users(app, req).await),
        Route::RelaySalts => Ok(routes::relay::salts(app, &req)),
        Route::Health => Ok(routes::ops::health()),
        Route::Ready => Ok(routes::ops::ready(app)),
        Route::Metrics => Ok(routes::ops::metrics(app)),
        Route::OpenApi => Ok(routes::ops::openapi()),
        Route::RealtimeWs => Ok(routes::websocket::open(app, peer, req)),
        Route::Export | Route::RealtimeStream => {
            Ok(routes::query::stream(app, peer, route, &req).await)
        }
        Route::Query(endpoint) => Ok(routes::query::answer(app, peer, endpoint, &req).await),
        Route::Auth(action) => Ok(routes::auth::answer(app, peer, action, req).await),
        Route::Manage(rest) => Ok(routes::manage::answer(app, peer, rest, req).await),
        Route::Static(p) => found(routes::files::www(&app.opts, p).await),
        Route::MethodNotAllowed(allow) => Err(ApiError::MethodNotAllowed(allow)),
        Route::NotFound => Err(ApiError::NotFound),
    };
    let (label, mut resp) = match answered {
        Ok(r) => (route.label(), r),
        Err(e @ ApiError::MethodNotAllowed(_)) => (route.label(), e.response()),
        Err(e) => ("not_found", e.response()),
    };
    if matches!(
        route,
        Route::Batch | Route::BatchPreflight | Route::Identify
    ) {
        routes::batch::cors(app, origin.as_deref(), resp.headers_mut());
    }
    app.opts.security.headers(label, &path, resp.headers_mut());
    let metrics = app.pipeline.metrics();
    if matches!(route, Route::Batch | Route::Relay) {
        metrics
            .ingest_seconds
            .get_or_create(&RouteLabel { route: label })
            .observe(started.elapsed().as_secs_f64());
    }
    // Queries only: the live feeds answer at once and then stream for as long as they are read.
    let endpoint = match route {
        Route::Query(e) => Some(e.label()),
        Route::OpenApi => Some("openapi.json"),
        Route::Export => Some("export"),
        _ => None,
    };
    if let Some(endpoint) = endpoint {
        let cache = if resp.status().is_success() {
            resp.extensions()
                .get::<CacheOutcome>()
                .map_or("bypass", |c| c.label())
        } else {
            "error"
        };
        metrics
            .query_seconds
            .get_or_create(&QueryLabels { endpoint, cache })
            .observe(started.elapsed().as_secs_f64());
    }
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route: label,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// The client's address: the peer's, or what `client_ip_header` says when the peer is a
/// trusted proxy.
fn client_ip(opts: &HttpOptions, peer: SocketAddr, h: &HeaderMap) -> IpAddr {
    let trusted = opts.trusted_proxies.is_empty() || opts.trusted_proxies.contains(&peer.ip());
    opts.client_ip_header
        .as_deref()
        .filter(|_| trusted)
        // The last entry is the one the trusted proxy wrote (it appends the address it saw, to
        // the header or as a header line of its own); entries before it arrived from the
        // client, who may have written anything there.
        .and_then(|name| h.get_all(name).iter().next_back())
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|v| v.trim().parse::<IpAddr>().ok())
        .unwrap_or(peer.ip())
}

fn header_str(h: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}
