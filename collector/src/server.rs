//! What every HTTP transport answers with: the one [`handle`] that requests of HTTP/1.1 and
//! HTTP/2 over TCP and of HTTP/3 over QUIC (`listen.rs`, `http3.rs`) reach: routes, CORS, body
//! limits, static files. It turns a request into an [`IngestRequest`] and the pipeline's answer
//! into a response; every decision about the batch itself is the pipeline's.

use crate::error::{ErrorBody, IngestError};
use crate::metrics::{QueryLabels, RequestLabels, RouteLabel};
use crate::pipeline::{IngestRequest, Pipeline, now_ms};
use crate::query::{CacheOutcome, QueryApi, QueryError};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use pathlight_ingest::rules;
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
    pub security: Arc<crate::security::Security>,
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
    pub tls: Option<Arc<crate::tls::Certificate>>,
    /// Serve HTTP/3 (needs `tls`).
    pub http3: bool,
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
}

/// A response of any route (bodies may stream).
pub type Resp = Response<BoxBody<Bytes, Infallible>>;

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

pub(crate) fn full(bytes: impl Into<Bytes>) -> BoxBody<Bytes, Infallible> {
    Full::new(bytes.into()).boxed()
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
    let post = req.method() == Method::POST;
    let path = req.uri().path().to_owned();
    let origin = header_str(req.headers(), header::ORIGIN).map(str::to_owned);
    // What a site's pages ask for (the tracker and the batch endpoint), at the root and under
    // the prefix; nothing else under the prefix.
    let prefix = app.opts.prefix.as_str();
    let (public, under_prefix) = match path.strip_prefix(prefix) {
        Some(rest) if !prefix.is_empty() && rest.starts_with('/') => (rest, true),
        _ => (path.as_str(), false),
    };
    let tracker = tracker_file_name(public);
    let (route, mut resp) = match (req.method(), public) {
        (&Method::POST, "/v1/batch") => ("batch", batch(app, peer, req).await),
        (&Method::OPTIONS, "/v1/batch") => ("preflight", preflight()),
        (&Method::GET | &Method::HEAD, _) if tracker.is_some() => {
            match tracker_file(&app.opts, tracker, &req).await {
                Some(r) => ("tracker", r),
                None => ("not_found", not_found()),
            }
        }
        _ if under_prefix => ("not_found", not_found()),
        (&Method::POST, "/v1/relay") => ("relay", relay(app, req).await),
        (&Method::GET, "/v1/relay/salts") => ("relay", relay_salts(app, &req)),
        (&Method::GET, "/healthz") => (
            "healthz",
            json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        ),
        (&Method::GET, "/metrics") => ("metrics", metrics(app)),
        (&Method::GET, "/api/v1/openapi.json") => ("api", openapi()),
        (&Method::GET, "/api/v1/realtime/ws") => ("api_ws", websocket(app, peer, req)),
        (&Method::GET, "/api/v1/export" | "/api/v1/realtime/stream") => {
            ("api_stream", api_stream(app, peer, &req).await)
        }
        (&Method::GET, p) if p.starts_with("/api/v1/") => ("api", api(app, peer, &req).await),
        (&Method::GET | &Method::HEAD, p) => match static_file(&app.opts, p).await {
            Some(r) => ("static", r),
            None => ("not_found", not_found()),
        },
        _ => ("not_found", not_found()),
    };
    if route == "batch" || route == "preflight" {
        cors(app, origin.as_deref(), resp.headers_mut());
    }
    app.opts.security.headers(route, &path, resp.headers_mut());
    let metrics = app.pipeline.metrics();
    if post && (route == "batch" || route == "relay") {
        metrics
            .ingest_seconds
            .get_or_create(&RouteLabel { route })
            .observe(started.elapsed().as_secs_f64());
    }
    // Queries only: the live feeds answer at once and then stream for as long as they are read.
    if matches!(route, "api" | "api_stream") && path != "/api/v1/realtime/stream" {
        let endpoint = crate::query::endpoint_label(path.trim_start_matches("/api/v1/"));
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
            route,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

async fn batch<B: ReqBody>(app: &App, peer: SocketAddr, req: Request<B>) -> Resp {
    match read_and_ingest(app, peer, req).await {
        Ok(ack) if ack.duplicate => empty(StatusCode::ALREADY_REPORTED),
        Ok(ack) if ack.rejected.is_empty() => empty(StatusCode::NO_CONTENT),
        Ok(ack) => json(StatusCode::OK, &ack),
        Err(e) => error_response(&e),
    }
}

/// Rows are at most a few kilobytes each and a relayed batch holds at most `max_events`.
const MAX_RELAY_BYTES: usize = 16 << 20;

/// The answer to a relay request without the relay token; none when it carries it.
fn relay_refusal<B>(app: &App, req: &Request<B>) -> Option<Resp> {
    let Some(digest) = &app.opts.relay_token else {
        return Some(not_found());
    };
    let authorization = header_str(req.headers(), header::AUTHORIZATION);
    if crate::query::auth::bearer_matches(digest, authorization) {
        None
    } else {
        Some(json(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({"error": "missing or wrong relay token", "reason": "unauthorized"}),
        ))
    }
}

/// `POST /v1/relay`: RowBinary rows an edge worker in relay mode validated and enriched.
async fn relay<B: ReqBody>(app: &App, req: Request<B>) -> Resp {
    if let Some(refusal) = relay_refusal(app, &req) {
        return refusal;
    }
    let stored = match read_body(app, req.into_body(), MAX_RELAY_BYTES).await {
        Ok((body, _held)) => app.pipeline.relay(body.to_vec()).await,
        Err(e) => Err(e),
    };
    match stored {
        Ok(_) => empty(StatusCode::NO_CONTENT),
        Err(e) => {
            app.pipeline.metrics().reject(e.reason(), 1);
            error_response(&e)
        }
    }
}

/// `GET /v1/relay/salts`: today's and yesterday's visitor-id salts (`day<TAB>hex` lines), so
/// relay workers hash visitors exactly as this collector does.
fn relay_salts<B>(app: &App, req: &Request<B>) -> Resp {
    if let Some(refusal) = relay_refusal(app, req) {
        return refusal;
    }
    let text: String = app
        .pipeline
        .salts()
        .iter()
        .map(|(day, salt)| format!("{day}\t{}\n", crate::hex::encode(salt)))
        .collect();
    let mut r = Response::new(full(text));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// How long a request waits for room under `http.max_body_bytes_in_flight`. Shorter than the
/// body timeout: a budget full for a second means bodies arrive faster than they are stored,
/// and a prompt 503 with Retry-After sheds the load better than a queue of waiters would.
const BODY_BUDGET_WAIT: Duration = Duration::from_secs(1);

/// The whole body, at most `max` bytes, arriving within `http.body_timeout_ms`, and its bytes'
/// share of `http.max_body_bytes_in_flight`, to hold until the request is answered. Taken as
/// the bytes arrive, not as declared: a client that declares much and sends little holds only
/// what it sent. Each piece waits up to [`BODY_BUDGET_WAIT`] for room, else 503.
async fn read_body<B: ReqBody>(
    app: &App,
    body: B,
    max: usize,
) -> Result<(Bytes, Option<tokio::sync::OwnedSemaphorePermit>), IngestError> {
    let timeout = Duration::from_millis(app.opts.limits.body_timeout_ms);
    let wait = BODY_BUDGET_WAIT.min(timeout);
    let read = async {
        let mut body = std::pin::pin!(Limited::new(body, max));
        let mut parts: Vec<Bytes> = Vec::new();
        let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
        while let Some(frame) = body.frame().await {
            let frame = match frame {
                Ok(f) => f,
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    return Err(rules::too_large(max + 1, max));
                }
                Err(e) => return Err(IngestError::Body(e.to_string())),
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            let n = u32::try_from(data.len()).unwrap_or(u32::MAX);
            let permit = tokio::time::timeout(wait, app.body_budget.clone().acquire_many_owned(n))
                .await
                // Closed never happens (the semaphore lives with the app); a full budget past
                // the wait is an overload, answered like a full queue.
                .map_err(|_| IngestError::QueueFull)?
                .map_err(|_| IngestError::QueueFull)?;
            match &mut held {
                Some(h) => h.merge(permit),
                None => held = Some(permit),
            }
            parts.push(data);
        }
        // Most bodies come as one frame, kept as it is; only pieces are copied together.
        let body = match parts.len() {
            0 => Bytes::new(),
            1 => parts.pop().unwrap_or_default(),
            _ => Bytes::from(parts.concat()),
        };
        Ok((body, held))
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(IngestError::BodyTimeout))
}

/// At most this much of a refused body is read from a trusted proxy (see `read_and_ingest`).
const MAX_DRAIN_BYTES: usize = 16 << 20;

/// Reads and drops up to `max` bytes of `body`.
async fn drain<B: ReqBody>(body: B, max: usize) {
    let mut body = std::pin::pin!(body);
    let mut seen = 0;
    while seen <= max {
        match body.frame().await {
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}

async fn read_and_ingest<B: ReqBody>(
    app: &App,
    peer: SocketAddr,
    req: Request<B>,
) -> Result<crate::pipeline::Ack, IngestError> {
    let received_at = now_ms();
    let max = app.pipeline.limits().max_batch_bytes;
    // Refusals before the pipeline runs are counted here, as it counts its own.
    let early = |e: IngestError| {
        app.pipeline.metrics().reject(e.reason(), 1);
        e
    };
    if let Err(e) = rules::precheck(
        header_str(req.headers(), header::CONTENT_LENGTH),
        header_str(req.headers(), header::CONTENT_ENCODING),
        max,
    ) {
        // A reverse proxy sends the whole body before it reads the answer: closing on it
        // mid-body turns the answer into the proxy's 502. From a proxy named in
        // trusted_proxies (whose own body limit bounds this) the body is read and dropped
        // first, so the client gets this JSON reason.
        if app.opts.trusted_proxies.contains(&peer.ip()) {
            let timeout = Duration::from_millis(app.opts.limits.body_timeout_ms);
            let _ = tokio::time::timeout(timeout, drain(req.into_body(), MAX_DRAIN_BYTES)).await;
        }
        return Err(early(e));
    }
    let (parts, body) = req.into_parts();
    let (body, _held) = read_body(app, body, max).await.map_err(early)?;
    let h = &parts.headers;
    let site = rules::site_param(parts.uri.query());
    let opts = &app.opts;
    let request = IngestRequest {
        body: &body,
        content_type: header_str(h, header::CONTENT_TYPE),
        site: site.as_deref(),
        origin: header_str(h, header::ORIGIN),
        ip: Some(client_ip(opts, peer, h)),
        user_agent: header_str(h, header::USER_AGENT),
        country: opts
            .country_header
            .as_deref()
            .and_then(|name| header_str(h, name)),
        received_at,
        delivery: pathlight_ingest::Delivery::from_query(parts.uri.query()),
    };
    app.pipeline.ingest(request).await
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

/// The answer to a query-API request from an address that sent too many wrong tokens lately:
/// 429 until its window ends, whatever token it sends now, so guessing stops there.
fn throttled(app: &App, ip: IpAddr) -> Option<Resp> {
    let wait = app
        .opts
        .security
        .throttle
        .blocked(ip, std::time::Instant::now())?;
    app.metrics().api_throttled.inc();
    let mut r = json(
        StatusCode::TOO_MANY_REQUESTS,
        &ErrorBody {
            error: "too many wrong API tokens from this address; retry later".into(),
            field: None,
            reason: "throttled",
        },
    );
    r.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(wait.as_secs_f64().ceil() as u64),
    );
    Some(r)
}

/// The answer to a refused query-API request; a missing or wrong token is counted against
/// the address (see [`throttled`]), logged and counted per site.
fn api_error(app: &App, ip: IpAddr, e: &QueryError) -> Resp {
    if let QueryError::Unauthorized(site) = e {
        let failures = app
            .opts
            .security
            .throttle
            .failed(ip, std::time::Instant::now());
        let site = app.opts.security.site_label(site);
        // No address: raw IPs never reach the logs.
        tracing::warn!(%site, failures, "query API: missing or wrong token");
        app.metrics()
            .api_unauthorized
            .get_or_create(&crate::metrics::SiteLabel { site })
            .inc();
    }
    json(e.status(), &e.body())
}

async fn api<B>(app: &App, peer: SocketAddr, req: &Request<B>) -> Resp {
    let ip = client_ip(&app.opts, peer, req.headers());
    if let Some(r) = throttled(app, ip) {
        return r;
    }
    let endpoint = req.uri().path().trim_start_matches("/api/v1/");
    let auth = header_str(req.headers(), header::AUTHORIZATION);
    let query = req.uri().query().unwrap_or("");
    if matches!(endpoint, "heatmap" | "elements" | "viewer-check")
        && crate::query::token_param(query).is_some()
    {
        return overlay_answer(app, ip, endpoint, query, req).await;
    }
    match app.query.handle(endpoint, query, auth).await {
        Ok(answer) => answered(answer),
        Err(e) => {
            if e.status().is_server_error() {
                tracing::warn!(error = %e, endpoint, "query failed");
            }
            api_error(app, ip, &e)
        }
    }
}

/// A query's JSON answer, carrying where it came from for the latency histogram ([`handle`]).
fn answered(answer: crate::query::Answer) -> Resp {
    let mut r = json_bytes(StatusCode::OK, answer.body);
    r.extensions_mut().insert(answer.cache);
    r
}

/// The live overlay's reads (an overlay token in `?token=`), from the site's own pages: CORS
/// open to the page's origin once the query API has found it among the site's origins.
async fn overlay_answer<B>(
    app: &App,
    ip: IpAddr,
    endpoint: &str,
    query: &str,
    req: &Request<B>,
) -> Resp {
    let origin = header_str(req.headers(), header::ORIGIN);
    let mut r = match app.query.overlay(endpoint, query, origin).await {
        Ok(answer) => answered(answer),
        Err(e) => api_error(app, ip, &e),
    };
    let refused = r.status() == StatusCode::FORBIDDEN;
    let h = r.headers_mut();
    if let Some(o) = origin.filter(|_| !refused)
        && let Ok(v) = HeaderValue::from_str(o)
    {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Streamed answers: raw events (`export`) and the live event feed (`realtime/stream`).
async fn api_stream<B>(app: &App, peer: SocketAddr, req: &Request<B>) -> Resp {
    let ip = client_ip(&app.opts, peer, req.headers());
    if let Some(r) = throttled(app, ip) {
        return r;
    }
    let auth = header_str(req.headers(), header::AUTHORIZATION);
    let query = req.uri().query().unwrap_or("");
    let answer = if req.uri().path() == "/api/v1/export" {
        app.query.export(query, auth).await
    } else {
        app.query.live(
            query,
            auth,
            app.pipeline.subscribe(),
            app.pipeline.stopping(),
        )
    };
    match answer {
        Ok((content_type, body)) => {
            let mut r = Response::new(body.boxed());
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            r
        }
        Err(e) => api_error(app, ip, &e),
    }
}

/// `realtime/ws`: the live feed over a WebSocket (`ws.rs`). Only HTTP/1.1 upgrades: HTTP/2
/// and HTTP/3 clients read `realtime/stream`.
fn websocket<B>(app: &App, peer: SocketAddr, mut req: Request<B>) -> Resp {
    let ip = client_ip(&app.opts, peer, req.headers());
    if let Some(r) = throttled(app, ip) {
        return r;
    }
    let h = req.headers();
    let has = |name: header::HeaderName, token: &str| {
        h.get_all(name).iter().any(|v| {
            v.to_str()
                .unwrap_or("")
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    };
    let key = header_str(h, header::SEC_WEBSOCKET_KEY).map(str::to_owned);
    let handshake = req.version() == http::Version::HTTP_11
        && has(header::UPGRADE, "websocket")
        && has(header::CONNECTION, "upgrade")
        && header_str(h, header::SEC_WEBSOCKET_VERSION) == Some("13");
    let Some(key) = key.filter(|_| handshake) else {
        let e = QueryError::BadParam {
            param: "upgrade",
            detail: "expected a WebSocket handshake (HTTP/1.1, Upgrade: websocket, Sec-WebSocket-Version: 13, Sec-WebSocket-Key)".into(),
        };
        return json(StatusCode::BAD_REQUEST, &e.body());
    };
    let auth = header_str(h, header::AUTHORIZATION);
    let site = match app.query.live_site(req.uri().query().unwrap_or(""), auth) {
        Ok(site) => site,
        Err(e) => return api_error(app, ip, &e),
    };
    let (feed, stopping) = (app.pipeline.subscribe(), app.pipeline.stopping());
    // Resolves once hyper has written the 101 below and handed the connection over.
    let upgrade = hyper::upgrade::on(&mut req);
    let open = WebSocketOpen::new(&app.websockets);
    tokio::spawn(async move {
        let _open = open;
        match upgrade.await {
            Ok(upgraded) => crate::ws::run(TokioIo::new(upgraded), site, feed, stopping).await,
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    let mut r = empty(StatusCode::SWITCHING_PROTOCOLS);
    let headers = r.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(v) = HeaderValue::from_str(&crate::ws::accept_key(&key)) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

/// Counts one WebSocket session in [`App::websockets`] from the 101 until its task ends.
struct WebSocketOpen(tokio::sync::watch::Sender<usize>);

impl WebSocketOpen {
    fn new(count: &tokio::sync::watch::Sender<usize>) -> Self {
        count.send_modify(|n| *n += 1);
        Self(count.clone())
    }
}

impl Drop for WebSocketOpen {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// The OpenAPI document of `/api/v1`.
fn openapi() -> Resp {
    let mut r = Response::new(full(crate::query::OPENAPI));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(e: &IngestError) -> Resp {
    let mut resp = json(e.status(), &e.body());
    if let Some(secs) = e.retry_after() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

fn preflight() -> Resp {
    let mut r = empty(StatusCode::NO_CONTENT);
    for (name, value) in rules::PREFLIGHT_HEADERS {
        r.headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    r
}

fn cors(app: &App, origin: Option<&str>, h: &mut HeaderMap) {
    for (name, value) in rules::cors_headers(origin, |o| app.pipeline.origin_allowed(o)) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
}

fn metrics(app: &App) -> Resp {
    let mut r = Response::new(full(app.pipeline.metrics().encode()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

fn header_str(h: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

pub(crate) fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Resp {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    json_bytes(status, bytes.into())
}

/// An answer of JSON already serialized.
fn json_bytes(status: StatusCode, bytes: Bytes) -> Resp {
    let mut r = Response::new(full(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub(crate) fn empty(status: StatusCode) -> Resp {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

pub(crate) fn not_found() -> Resp {
    json(
        StatusCode::NOT_FOUND,
        &ErrorBody {
            error: "not found".into(),
            field: None,
            reason: "not_found",
        },
    )
}

/// The tracker file a request path names, and whether its name carries its content's hash:
/// the loader `p.js` (which sites' tags name, so its address never changes), content-hashed
/// files `NAME.HASH.js|wasm` (the wasm, the pinned loader, modules loaded later) and the
/// build's `manifest.json`; `pathlight.js` and `pathlight_bg.wasm` are the earlier names.
fn tracker_file_name(path: &str) -> Option<(&str, bool)> {
    let name = path.strip_prefix('/')?;
    let hashed = |n: &str| {
        let mut parts = n.split('.');
        let (Some(stem), Some(hash), Some(ext), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        !stem.is_empty()
            && stem.bytes().all(|b| b.is_ascii_lowercase())
            && hash.len() >= 8
            && hash
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            && matches!(ext, "js" | "wasm")
    };
    match name {
        "p.js" | "manifest.json" | "pathlight.js" | "pathlight_bg.wasm" => Some((name, false)),
        n if hashed(n) => Some((n, true)),
        _ => None,
    }
}

/// A tracker file, for pages of any origin: CORS and `Cross-Origin-Resource-Policy` open, so
/// a site's page may load it from here whatever its own policies. Content-hashed files are
/// cached for a year; the loader and the manifest for five minutes, then revalidated by ETag,
/// so a release reaches every site within minutes.
async fn tracker_file<B>(
    opts: &HttpOptions,
    named: Option<(&str, bool)>,
    req: &Request<B>,
) -> Option<Resp> {
    let (name, hashed) = named?;
    let dir = opts.tracker_dir.as_ref()?;
    let name = match name {
        "pathlight.js" => "p.js".to_owned(),
        "pathlight_bg.wasm" => {
            let manifest = tokio::fs::read(dir.join("manifest.json")).await.ok()?;
            let m: serde_json::Value = serde_json::from_slice(&manifest).ok()?;
            m["wasm"].as_str()?.to_owned()
        }
        n => n.to_owned(),
    };
    let file = dir.join(&name);
    let bytes = tokio::fs::read(&file).await.ok()?;
    let etag = format!("\"{}\"", crate::hex::encode(&Sha256::digest(&bytes)[..12]));
    let fresh = header_str(req.headers(), header::IF_NONE_MATCH)
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut r = if fresh {
        empty(StatusCode::NOT_MODIFIED)
    } else {
        Response::new(full(bytes))
    };
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&file)),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if hashed {
            "public, max-age=31536000, immutable"
        } else {
            "public, max-age=300"
        }),
    );
    h.insert(header::ETAG, HeaderValue::from_str(&etag).ok()?);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Some(r)
}

/// A file of `www/`. The demo site has a listener of its own (`demo_site.rs`).
async fn static_file(opts: &HttpOptions, path: &str) -> Option<Resp> {
    dir_file(opts.www_dir.as_ref()?, path, path, None).await
}

/// What a static directory serves: pages and what they load. Never config, data or notes
/// (`pathlight.toml`, `layout.json`, `*.csv`) that may lie beside them.
const STATIC_EXTENSIONS: [&str; 12] = [
    "html", "css", "js", "mjs", "wasm", "svg", "png", "jpg", "gif", "webp", "ico", "woff2",
];

/// The file `rest` (`/…` or empty) names in `dir`, requested as `path`. Refused (none): `..`
/// and other non-normal components, hidden names, `\\` and `//` (a redirect to `//x/` would
/// leave the origin), and extensions not in [`STATIC_EXTENSIONS`]. A directory redirects to
/// its path with a `/` (so relative links in its index resolve), then serves its index. In an
/// HTML file, `replace` (what, with) is applied to the text.
pub(crate) async fn dir_file(
    dir: &Path,
    rest: &str,
    path: &str,
    replace: Option<(&str, &str)>,
) -> Option<Resp> {
    if !(rest.is_empty() || rest.starts_with('/')) || rest.contains('\\') || path.contains("//") {
        return None;
    }
    let rel = Path::new(rest.trim_start_matches('/'));
    let normal = |c: Component<'_>| match c {
        Component::Normal(name) => !name.as_encoded_bytes().starts_with(b"."),
        _ => false,
    };
    if !rel.components().all(normal) {
        return None;
    }
    let mut file = dir.join(rel);
    if rest.is_empty() || rest.ends_with('/') || tokio::fs::metadata(&file).await.ok()?.is_dir() {
        if !rest.ends_with('/') {
            // `path` starts with one `/` and has no `//`: the target stays on this origin.
            let mut r = empty(StatusCode::MOVED_PERMANENTLY);
            r.headers_mut().insert(
                header::LOCATION,
                HeaderValue::from_str(&format!("{path}/")).ok()?,
            );
            return Some(r);
        }
        file = file.join("index.html");
    }
    let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
    if !STATIC_EXTENSIONS.contains(&ext) {
        return None;
    }
    let mut bytes = tokio::fs::read(&file).await.ok()?;
    if let Some((what, with)) = replace.filter(|_| ext == "html") {
        bytes = String::from_utf8(bytes)
            .ok()?
            .replace(what, with)
            .into_bytes();
    }
    let mut r = Response::new(full(bytes));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&file)),
    );
    // Small files that change with every deploy: always revalidate.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(r)
}

pub(crate) fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        // Needed by WebAssembly.instantiateStreaming.
        "wasm" => "application/wasm",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
