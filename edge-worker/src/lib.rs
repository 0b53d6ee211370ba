//! Pathlight's edge collector as a Cloudflare Worker: the collector's ingest stages, run where
//! the visitor is, first-party on the site's own domain.
//!
//! # The path of an event through the worker
//!
//! 0. The page loads the tracker from the worker's route on the site's own zone,
//!    `{prefix}/p.js` (`PATHLIGHT_PREFIX`, `/_pl` by default), and its wasm beside it
//!    ([`tracker`]).
//! 1. `POST {prefix}/v1/batch` (or `/v1/batch`, for the worker on a host of its own; `fetch`):
//!    the same header rules (`pathlight_ingest::rules`), the same inflate (gzip bodies, under
//!    the batch cap) → decode (CBOR v1 or v2, JSON) → authorize → validate
//!    (`pathlight_ingest::check`) and the same enrichment
//!    (`pathlight_ingest::enrich`) as the collector, with Cloudflare's request data as the
//!    context: country, region, city, ASN and colo from `request.cf`, the client address from
//!    `CF-Connecting-IP` (hashed into the visitor id with the deployment's daily salt,
//!    `pipeline/salts.rs`, and dropped). Refusals get the collector's statuses and JSON bodies.
//! 2. The rows, as RowBinary, leave by the mode `wrangler.toml` chooses (`settings.rs`):
//!    - *queue* (default): sent to the `EVENTS` queue and answered `204` at once;
//!      [`consumer`] inserts each message batch into ClickHouse over HTTP, retries transient
//!      failures and dead-letters poison;
//!    - *direct*: inserted per request with `async_insert=1, wait_for_async_insert=1`, refused
//!      with a clear error on servers older than 21.11, which lack async inserts;
//!    - *relay*: posted to a collector's `/v1/relay`, which spools and stores them like its own.
//!
//! 3. `POST {prefix}/v1/identify` (`identify`): a page's `pathlight.identify` or a site's
//!    server with an ingest key names a user and their traits; checked as the collector checks
//!    them (`pathlight_ingest::identify`), the users' row leaves by the same mode: a `PU1`
//!    queue message, a synchronous insert into `users`, or `/v1/relay/users`.
//!
//! Sessions are the tracker's; for senders without one, each isolate assigns them like the
//! collector does (isolates do not share state, so such sessions can split across isolates).
//! Rate limits are left to Cloudflare's rate-limiting rules in front of the worker.

#![warn(missing_docs)]

mod clickhouse;
mod consumer;
pub mod message;
mod salts;
mod settings;
mod tracker;

use pathlight_ingest::retry::Decision;
use pathlight_ingest::{
    Ack, Checked, EventRow, IngestError, IngestRequest, UserRow, rules, write_rows, write_user_rows,
};
use pathlight_wire::session::Sessionizer;
use pathlight_wire::{Geo, Limits, RequestContext};
use settings::{EVENTS_QUEUE, Mode, Settings};
use std::cell::{Cell, RefCell};
use wasm_bindgen::JsValue;
use worker::{
    Context, Env, Fetch, Headers, MessageBatch, Method, QueueContentType, RawMessageBuilder,
    Request, RequestInit, Response, Result, event,
};

/// Server-side sessions one isolate tracks (~100 bytes each): a few MB of its 128 MB. A Worker
/// has no timer to prune idle ones by, so this cap is what bounds the table.
const MAX_SESSIONS: usize = 50_000;
/// Async inserts arrived in ClickHouse 21.11.
const ASYNC_INSERT_SINCE: (u32, u32) = (21, 11);

thread_local! {
    /// Server-side sessions, made at the isolate's first batch: the timeout is a setting.
    static SESSIONS: RefCell<Option<Sessionizer>> = const { RefCell::new(None) };
    /// Direct mode: whether the server takes async inserts, learned once per isolate.
    static ASYNC_INSERTS: Cell<Option<bool>> = const { Cell::new(None) };
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let settings = match settings::current(&env) {
        Ok(s) => s,
        Err(e) => {
            return json(
                500,
                &serde_json::json!({"error": e, "reason": "misconfigured"}),
            );
        }
    };
    let path = req.path();
    let route = route(&settings.prefix, &path);
    if let Route::Tracker(name, caching) = route
        && matches!(req.method(), Method::Get | Method::Head)
    {
        return tracker::serve(&req, &env, name, caching).await;
    }
    let origin = req.headers().get("Origin").ok().flatten();
    let mut resp = match (req.method(), route) {
        (Method::Post, Route::Batch) => batch(req, &env, &settings).await?,
        (Method::Post, Route::Identify) => identify(req, &env, &settings).await?,
        (Method::Options, Route::Batch | Route::Identify) => {
            let r = Response::empty()?.with_status(204);
            for (name, value) in rules::PREFLIGHT_HEADERS {
                r.headers().set(name, value)?;
            }
            r
        }
        (Method::Get, Route::Health) => json(200, &serde_json::json!({"status": "ok"}))?,
        _ => json(
            404,
            &serde_json::json!({"error": "not found", "reason": "not_found"}),
        )?,
    };
    let allowed = |o: &str| {
        settings
            .sites
            .values()
            .any(|s| pathlight_ingest::origin_matches(&s.origins, o))
    };
    for (name, value) in rules::cors_headers(origin.as_deref(), allowed) {
        resp.headers_mut().set(name, &value)?;
    }
    Ok(resp)
}

/// What a request's path asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    /// `{prefix}/v1/batch` on the site's route, or `/v1/batch` (the worker on a host of its
    /// own, as before the prefix).
    Batch,
    /// `{prefix}/v1/identify`, or `/v1/identify`, as `Batch`.
    Identify,
    /// `/healthz`.
    Health,
    /// A tracker file under the prefix, by name.
    Tracker(&'a str, tracker::Caching),
    /// Anything else.
    NotFound,
}

fn route<'a>(prefix: &str, path: &'a str) -> Route<'a> {
    match path {
        "/v1/batch" => return Route::Batch,
        "/v1/identify" => return Route::Identify,
        "/healthz" => return Route::Health,
        _ => {}
    }
    match path.strip_prefix(prefix).and_then(|p| p.strip_prefix('/')) {
        Some("v1/batch") => Route::Batch,
        Some("v1/identify") => Route::Identify,
        Some(name) => tracker::caching(name).map_or(Route::NotFound, |c| Route::Tracker(name, c)),
        None => Route::NotFound,
    }
}

#[event(queue)]
async fn queue(batch: MessageBatch<()>, env: Env, _ctx: Context) -> Result<()> {
    let settings = settings::current(&env).map_err(worker::Error::RustError)?;
    consumer::consume(batch, env, &settings).await
}

/// The limits events are checked with here: the wire's, with this deployment's retention.
fn limits(settings: &Settings) -> Limits {
    Limits {
        retention_days: settings.retention_days,
        ..Limits::default()
    }
}

/// At most this much of a body refused from its headers is read before answering: twice the
/// batch limit, so a batch a little too large still gets its answer.
const LINGER_BYTES: usize = 1 << 20;

/// The collector's refusals by headers alone (`rules::precheck`), before a body of at most
/// `max` bytes is read (`gzip`: the route inflates gzip bodies, as batches do). A refused body is still read, up to [`LINGER_BYTES`], unless it is
/// declared larger: answering while the client is still sending makes the runtime reset the
/// connection, and the client sees a network error instead of the JSON reason (the edge tests
/// hit it once, a 600 KiB body through miniflare).
async fn precheck(
    req: &mut Request,
    max: usize,
    gzip: bool,
) -> std::result::Result<(), IngestError> {
    let h = req.headers();
    let header = |name: &str| h.get(name).ok().flatten();
    let declared = header("Content-Length");
    let refused = rules::precheck(
        declared.as_deref(),
        header("Content-Encoding").as_deref(),
        max,
        gzip,
    );
    if refused.is_err()
        && declared
            .and_then(|n| n.trim().parse::<usize>().ok())
            .is_none_or(|n| n <= LINGER_BYTES)
    {
        let _ = read_capped(req, LINGER_BYTES).await;
    }
    refused
}

async fn batch(mut req: Request, env: &Env, settings: &Settings) -> Result<Response> {
    let limits = limits(settings);
    let received_at = worker::Date::now().as_millis();
    if let Err(e) = precheck(&mut req, limits.max_batch_bytes, true).await {
        return error(&e);
    }
    let h = req.headers();
    let header = |name: &str| h.get(name).ok().flatten();
    let content_type = header("Content-Type");
    let content_encoding = header("Content-Encoding");
    let origin = header("Origin");
    let user_agent = header("User-Agent");
    let (x_api_key, authorization) = (header("X-API-Key"), header("Authorization"));
    let ip = header("CF-Connecting-IP").and_then(|v| v.trim().parse().ok());
    let site = rules::site_param(req.url()?.query());
    let geo = cf_geo(&req);
    let max = limits.max_batch_bytes;
    let Some(body) = read_capped(&mut req, max).await? else {
        // Said as the collector says it of a body it stopped reading.
        return error(&rules::too_large(max + 1, max));
    };
    let request = IngestRequest {
        body: &body,
        content_type: content_type.as_deref(),
        content_encoding: content_encoding.as_deref(),
        site: site.as_deref(),
        origin: origin.as_deref(),
        ip,
        user_agent: user_agent.as_deref(),
        country: None,
        received_at: received_at as i64,
        delivery: Default::default(),
        key: pathlight_ingest::keys::presented(x_api_key.as_deref(), authorization.as_deref()),
    };
    let mut counted = 0;
    let Checked {
        batch, rejected, ..
    } = match pathlight_ingest::check(&request, &limits, &settings.sites, &mut counted) {
        Ok(c) => c,
        Err(e) => return error(&e),
    };
    let ctx = RequestContext {
        received_at: request.received_at,
        ip,
        user_agent: user_agent.clone(),
        geo,
    };
    let hasher = salts::hasher(settings, received_at).await;
    let rows = SESSIONS.with_borrow_mut(|sessions| {
        let sessions = sessions.get_or_insert_with(|| sessionizer(settings));
        pathlight_ingest::enrich(batch, &rejected, &ctx, &hasher, |e| {
            sessions.assign(&e.site_id, e.visitor_id, e.timestamp)
        })
    });
    let stored = match settings.mode {
        Mode::Queue => enqueue(env, message::encode(&rows)).await,
        Mode::Direct => direct(&rows, settings).await,
        Mode::Relay => {
            let layout = pathlight_ingest::Layout::CURRENT.code().to_string();
            let header = (pathlight_ingest::LAYOUT_HEADER, layout.as_str());
            relay(settings, "/v1/relay", write_rows(&rows), Some(header)).await
        }
    };
    if let Err(e) = stored {
        return error(&e);
    }
    let ack = Ack::new(rows.len(), rejected);
    if ack.rejected.is_empty() {
        Ok(Response::empty()?.with_status(204))
    } else {
        json(200, &ack)
    }
}

async fn identify(mut req: Request, env: &Env, settings: &Settings) -> Result<Response> {
    use pathlight_ingest::identify::{self as id, MAX_BYTES};
    let limits = limits(settings);
    let received_at = worker::Date::now().as_millis();
    if let Err(e) = precheck(&mut req, MAX_BYTES, false).await {
        return error(&e);
    }
    let h = req.headers();
    let header = |name: &str| h.get(name).ok().flatten();
    let content_type = header("Content-Type");
    let origin = header("Origin");
    let (x_api_key, authorization) = (header("X-API-Key"), header("Authorization"));
    let site = rules::site_param(req.url()?.query());
    let Some(body) = read_capped(&mut req, MAX_BYTES).await? else {
        return error(&rules::too_large(MAX_BYTES + 1, MAX_BYTES));
    };
    let checked = (|| {
        id::readable(content_type.as_deref())?;
        let identify = id::decode(&body, site.as_deref(), &limits)?;
        let rules = settings
            .sites
            .get(&identify.site)
            .ok_or_else(|| IngestError::UnknownSite(identify.site.clone()))?;
        let key = pathlight_ingest::keys::presented(x_api_key.as_deref(), authorization.as_deref());
        id::admit(rules, key, origin.as_deref(), &identify.site)?;
        Ok::<_, IngestError>(identify)
    })();
    let identify = match checked {
        Ok(i) => i,
        Err(e) => return error(&e),
    };
    if identify.traits.is_empty() {
        // Nothing to store: the user is named on the events the page sends.
        return Ok(Response::empty()?.with_status(204));
    }
    let row = UserRow {
        traits: identify.traits_json(),
        site_id: identify.site,
        user_id: identify.user_id,
        updated_ms: received_at,
    };
    let rows = std::slice::from_ref(&row);
    let stored = match settings.mode {
        Mode::Queue => enqueue(env, message::encode_users(rows)).await,
        Mode::Direct => match settings.clickhouse.as_ref() {
            Some(ch) => clickhouse::insert_users(ch, write_user_rows(rows))
                .await
                .map_err(storage_error),
            None => Err(no_clickhouse()),
        },
        Mode::Relay => relay(settings, "/v1/relay/users", write_user_rows(rows), None).await,
    };
    match stored {
        Ok(()) => Ok(Response::empty()?.with_status(204)),
        Err(e) => error(&e),
    }
}

/// Server-side sessions that end as `settings` says (`PATHLIGHT_SESSION_TIMEOUT_SECS`).
fn sessionizer(settings: &Settings) -> Sessionizer {
    Sessionizer::new(settings.session_timeout_ms(), MAX_SESSIONS)
}

/// Location and network from `request.cf`, read field by field: a field Cloudflare (or a
/// test) leaves out is unknown, never an error.
fn cf_geo(req: &Request) -> Geo {
    let cf =
        js_sys::Reflect::get(req.inner(), &JsValue::from_str("cf")).unwrap_or(JsValue::UNDEFINED);
    let get = |key: &str| {
        if cf.is_object() {
            js_sys::Reflect::get(&cf, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
        } else {
            JsValue::UNDEFINED
        }
    };
    let text = |key: &str| get(key).as_string().unwrap_or_default();
    Geo {
        country: rules::country_code(&text("country")).unwrap_or_default(),
        region: text("regionCode"),
        city: text("city"),
        asn: get("asn").as_f64().map_or(0, |n| n as u32),
        colo: text("colo"),
    }
}

/// Queue mode: the messages go to the `EVENTS` queue; the consumer stores them.
async fn enqueue(env: &Env, messages: Vec<Vec<u8>>) -> std::result::Result<(), IngestError> {
    let unavailable = |e: worker::Error| {
        worker::console_error!("queue {EVENTS_QUEUE}: {e}");
        IngestError::QueueFull
    };
    let queue = env.queue(EVENTS_QUEUE).map_err(unavailable)?;
    for m in messages {
        let body: JsValue = js_sys::Uint8Array::from(m.as_slice()).into();
        queue
            .send_raw(RawMessageBuilder::new(body).build_with_content_type(QueueContentType::V8))
            .await
            .map_err(unavailable)?;
    }
    Ok(())
}

/// The request body, read chunk by chunk up to `max` bytes: a body sent without a
/// Content-Length (chunked) escapes the precheck, and read whole it could hold more than the
/// isolate's 128 MB (twice: JavaScript's buffer and the Rust copy). `None` once it passes
/// `max`; the rest is never read.
async fn read_capped(req: &mut Request, max: usize) -> Result<Option<Vec<u8>>> {
    use futures_util::StreamExt;
    if req.inner().body().is_none() {
        // An empty POST: refused later as an empty batch, as any other.
        return Ok(Some(Vec::new()));
    }
    let mut stream = req.stream()?;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > max {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// Direct mode: one async insert per request, acknowledged once ClickHouse has it.
async fn direct(rows: &[EventRow], settings: &Settings) -> std::result::Result<(), IngestError> {
    let ch = settings.clickhouse.as_ref().ok_or_else(no_clickhouse)?;
    let supported = match ASYNC_INSERTS.get() {
        Some(s) => s,
        None => {
            let version = clickhouse::version(ch).await.map_err(storage_error)?;
            let s = version >= ASYNC_INSERT_SINCE;
            if !s {
                worker::console_error!(
                    "direct mode needs async inserts; ClickHouse is {}.{}",
                    version.0,
                    version.1
                );
            }
            ASYNC_INSERTS.set(Some(s));
            s
        }
    };
    if !supported {
        return Err(IngestError::StorageRejected(format!(
            "PATHLIGHT_MODE=direct needs async inserts (ClickHouse {}.{} or later) and this \
             server has none; use queue or relay mode",
            ASYNC_INSERT_SINCE.0, ASYNC_INSERT_SINCE.1
        )));
    }
    clickhouse::insert(
        ch,
        pathlight_ingest::write_rows(rows),
        &[("async_insert", "1"), ("wait_for_async_insert", "1")],
    )
    .await
    .map_err(storage_error)
}

fn no_clickhouse() -> IngestError {
    IngestError::StorageRejected("CLICKHOUSE_URL is not set".into())
}

fn storage_error(f: clickhouse::Failure) -> IngestError {
    worker::console_error!("{}", f.message);
    match f.decision {
        Decision::Retry => IngestError::StorageTimeout,
        Decision::Fail => IngestError::StorageRejected(f.message),
    }
}

/// Relay mode: the enriched rows (`/v1/relay`, in the layout `header` names) or users' rows
/// (`/v1/relay/users`) go to a collector, which acknowledges once they are durable there (its
/// spool or ClickHouse).
async fn relay(
    settings: &Settings,
    path: &str,
    body: Vec<u8>,
    header: Option<(&str, &str)>,
) -> std::result::Result<(), IngestError> {
    let url = settings.collector_url.as_deref().unwrap_or_default();
    let sent = async {
        let headers = Headers::new();
        headers.set("Authorization", &format!("Bearer {}", settings.relay_token))?;
        headers.set("Content-Type", "application/vnd.pathlight.rowbinary")?;
        if let Some((name, value)) = header {
            headers.set(name, value)?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
        let req = Request::new_with_init(&format!("{url}{path}"), &init)?;
        let mut resp = Fetch::Request(req).send().await?;
        Ok::<_, worker::Error>((resp.status_code(), resp.text().await.unwrap_or_default()))
    };
    match sent.await {
        Ok((204 | 200, _)) => Ok(()),
        Ok((status, text)) => {
            worker::console_error!("collector answered {status}: {text}");
            Err(if status >= 500 || status == 429 {
                IngestError::StorageTimeout
            } else {
                IngestError::StorageRejected(format!("the collector answered {status}"))
            })
        }
        Err(e) => {
            worker::console_error!("collector unreachable: {e}");
            Err(IngestError::StorageTimeout)
        }
    }
}

fn error(e: &IngestError) -> Result<Response> {
    let resp = json(e.status().as_u16(), &e.body())?;
    if let Some(secs) = e.retry_after() {
        resp.headers().set("Retry-After", &secs.to_string())?;
    }
    Ok(resp)
}

fn json(status: u16, value: &impl serde::Serialize) -> Result<Response> {
    Ok(Response::from_json(value)?.with_status(status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracker::Caching;

    #[test]
    fn paths_route_under_the_prefix_and_without_it() {
        for prefix in ["/_pl", "/a/b", ""] {
            let at = |rest: &str| format!("{prefix}{rest}");
            assert_eq!(route(prefix, &at("/v1/batch")), Route::Batch, "{prefix}");
            assert_eq!(route(prefix, "/v1/batch"), Route::Batch);
            assert_eq!(route(prefix, &at("/v1/identify")), Route::Identify);
            assert_eq!(route(prefix, "/v1/identify"), Route::Identify);
            assert_eq!(route(prefix, "/healthz"), Route::Health);
            assert_eq!(
                route(prefix, &at("/p.js")),
                Route::Tracker("p.js", Caching::Loader)
            );
            assert_eq!(
                route(prefix, &at("/p.0123abcd.wasm")),
                Route::Tracker("p.0123abcd.wasm", Caching::Immutable)
            );
            for other in ["/manifest.json", "/v1/batch/", "/x/p.js", "/p.js/"] {
                assert_eq!(route(prefix, &at(other)), Route::NotFound, "{other}");
            }
        }
        assert_eq!(route("/_pl", "/_plp.js"), Route::NotFound);
        assert_eq!(route("/_pl", "/p.js"), Route::NotFound);
    }

    #[test]
    fn server_sessions_end_after_the_configured_timeout() {
        let minutes = |m: i64| m * 60_000;
        // 10 minutes, not the default 30: a visitor's events 9 minutes apart share a session,
        // 11 minutes apart do not.
        let ten = settings::tests::settings(&[("PATHLIGHT_SESSION_TIMEOUT_SECS", "600")]);
        let mut s = sessionizer(&ten.unwrap());
        let a = s.assign("shop", 7, 0);
        assert_eq!(s.assign("shop", 7, minutes(9)), a);
        assert_ne!(s.assign("shop", 7, minutes(20)), a);
        // The default: the same events are one session.
        let mut s = sessionizer(&settings::tests::settings(&[]).unwrap());
        let a = s.assign("shop", 7, 0);
        assert_eq!(s.assign("shop", 7, minutes(9)), a);
        assert_eq!(s.assign("shop", 7, minutes(20)), a);
    }
}
