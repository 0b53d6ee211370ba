//! The query API, `GET /api/v1/{heatmap,elements,stats}`: JSON over the `events` table, per
//! site, behind the site's bearer token. Parameters are validated into [`Filters`] (clear 400s
//! naming the parameter) and reach ClickHouse only as bound values, never spliced into SQL.
//! Answers to the same question within a few seconds come from [`cache`].

pub(crate) mod behaviour;
mod cache;
pub mod rollup;
mod sql;

use crate::config::SiteConfig;
use crate::pipeline::LiveEvent;
use bytes::Bytes;
use clickhouse::Client;
use http_body_util::channel::Channel;
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::broadcast;

pub use cache::{CacheOutcome, QueryCache};
pub use sql::{Filters, RuleFlags, TODAY_LIVE_MAX, catalogue, rule_flags};

/// Why a query request was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// A parameter is missing or malformed.
    #[error("{param}: {detail}")]
    BadParam {
        /// The parameter.
        param: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// No or a wrong bearer token for the site.
    #[error("a valid bearer token for site {0:?} is required")]
    Unauthorized(String),
    /// No such endpoint.
    #[error("no such endpoint")]
    NotFound,
    /// An overlay token used from a page on an origin the site does not list.
    #[error("origin {0:?} is not one of the site's origins")]
    OriginNotAllowed(String),
    /// ClickHouse failed.
    #[error("storage query failed: {0}")]
    Storage(#[from] clickhouse::error::Error),
}

/// The OpenAPI 3.1 document of these endpoints, served at `/api/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// A streamed answer: content type and body.
pub type Streamed = (&'static str, Channel<Bytes>);

/// A JSON answer, serialized, and whether it came from the cache.
#[derive(Debug)]
pub struct Answer {
    /// The JSON.
    pub body: Bytes,
    /// Where it came from.
    pub cache: CacheOutcome,
}

impl Answer {
    fn bypass(v: serde_json::Value) -> Answer {
        Answer {
            body: to_bytes(&v),
            cache: CacheOutcome::Bypass,
        }
    }
}

/// Every JSON endpoint of `/api/v1/`, decided once from the path (by `http::router`), so that
/// [`QueryApi::handle`] matches on a type rather than on strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint<'a> {
    /// `heatmap`.
    Heatmap,
    /// `elements`.
    Elements,
    /// `stats`.
    Stats,
    /// `realtime`.
    Realtime,
    /// `anomalies`.
    Anomalies,
    /// `funnel`.
    Funnel,
    /// `actions`.
    Actions,
    /// `sessions`.
    Sessions,
    /// `patterns`.
    Patterns,
    /// `search`.
    Search,
    /// `overlay-token`.
    OverlayToken,
    /// `viewer-token`.
    ViewerToken,
    /// `viewer-check`.
    ViewerCheck,
    /// `site`.
    Site,
    /// `live-token`.
    LiveToken,
    /// `sessions/{id}`.
    Session(&'a str),
    /// `users/{id}/events`.
    UserEvents(&'a str),
    /// Anything else: refused as not found once the token is checked.
    Unknown,
}

/// The named endpoints and their paths.
const NAMED: [(&str, Endpoint<'static>); 15] = [
    ("heatmap", Endpoint::Heatmap),
    ("elements", Endpoint::Elements),
    ("stats", Endpoint::Stats),
    ("realtime", Endpoint::Realtime),
    ("anomalies", Endpoint::Anomalies),
    ("funnel", Endpoint::Funnel),
    ("actions", Endpoint::Actions),
    ("sessions", Endpoint::Sessions),
    ("patterns", Endpoint::Patterns),
    ("search", Endpoint::Search),
    ("overlay-token", Endpoint::OverlayToken),
    ("viewer-token", Endpoint::ViewerToken),
    ("viewer-check", Endpoint::ViewerCheck),
    ("site", Endpoint::Site),
    ("live-token", Endpoint::LiveToken),
];

impl<'a> Endpoint<'a> {
    /// The endpoint `path` (after `/api/v1/`) names.
    pub fn of(path: &'a str) -> Endpoint<'a> {
        if let Some((_, e)) = NAMED.iter().find(|(name, _)| *name == path) {
            *e
        } else if let Some(id) = path.strip_prefix("sessions/").filter(|p| segment(p)) {
            Endpoint::Session(id)
        } else if let Some(user) = path
            .strip_prefix("users/")
            .and_then(|p| p.strip_suffix("/events"))
            .filter(|p| segment(p))
        {
            Endpoint::UserEvents(user)
        } else {
            Endpoint::Unknown
        }
    }

    /// Its label in the metrics: a bounded set, whatever paths clients ask for (`session` for
    /// every `sessions/{id}`, `user_events` for every `users/{id}/events`, `other`).
    pub fn label(&self) -> &'static str {
        match self {
            Endpoint::Session(_) => "session",
            Endpoint::UserEvents(_) => "user_events",
            Endpoint::Unknown => "other",
            e => NAMED
                .iter()
                .find(|(_, n)| n == e)
                .map_or("other", |(name, _)| name),
        }
    }
}

/// Whether `p` can be the id in a path (`sessions/{id}`, `users/{id}/events`).
fn segment(p: &str) -> bool {
    !p.is_empty() && p.len() <= 256 && !p.contains('/')
}

/// A site the request has proved it may read. The cache's keys start with it, so a token
/// reaches only its own site's answers.
struct Authorized(String);

pub mod auth;

/// The API's state: a reading client and who may read what.
pub struct QueryApi {
    client: Client,
    auth: auth::Auth,
    /// Each site's origins and the base URL its pages live under, for the live overlay and
    /// the viewer (`site`).
    sites: std::collections::HashMap<String, (Vec<String>, String)>,
    cache: QueryCache,
    /// `session_timeout_secs`, in ms: a session with no event for this long is over
    /// (`sessions`' `ended`).
    session_timeout_ms: u64,
}

impl QueryApi {
    /// An API reading through `client` (database selected) for `sites`, answering repeated
    /// questions from `cache`; live tokens are signed with a key derived from `hash_secret`.
    /// Sessions end after `session_timeout_secs` without an event.
    pub fn new(
        client: Client,
        sites: &[SiteConfig],
        hash_secret: &str,
        session_timeout_secs: u64,
        cache: QueryCache,
    ) -> QueryApi {
        QueryApi {
            client,
            auth: auth::Auth::new(sites, hash_secret),
            sites: sites
                .iter()
                .map(|s| (s.id.clone(), (s.origins.clone(), s.base_url())))
                .collect(),
            cache,
            session_timeout_ms: session_timeout_secs.saturating_mul(1000),
        }
    }

    /// The answer of `run` for `filters` at `endpoint`, from the cache when it has it (see
    /// `cache.rs`); `exact=true` always asks ClickHouse.
    async fn cached<T: Serialize>(
        &self,
        site: &Authorized,
        endpoint: Endpoint<'_>,
        filters: &Filters,
        run: impl std::future::Future<Output = Result<T, clickhouse::error::Error>>,
    ) -> Result<Answer, QueryError> {
        let body = async { json(run.await).map(|v| to_bytes(&v)) };
        if filters.exact {
            return Ok(Answer {
                body: body.await?,
                cache: CacheOutcome::Bypass,
            });
        }
        // `Filters` holds every parameter an answer depends on, parsed (defaults filled in);
        // `endpoint` carries the ids of `sessions/{id}` and `users/{id}/events`. Their Debug
        // forms name each field, so one added later is in the key too.
        let key = format!("{}\n{endpoint:?}\n{filters:?}", site.0);
        let (body, cache) = self.cache.get_or_run(endpoint.label(), key, body).await?;
        Ok(Answer { body, cache })
    }

    /// `heatmap` and `elements` for the live overlay (`?token=` an overlay token), drawn on the
    /// site's own pages: refused from a page whose origin the site does not list.
    pub async fn overlay(
        &self,
        endpoint: Endpoint<'_>,
        query: &str,
        origin: Option<&str>,
    ) -> Result<Answer, QueryError> {
        let filters = Filters::parse(query)?;
        let valid = token_param(query).is_some_and(|t| match endpoint {
            Endpoint::ViewerCheck => param(query, "viewer")
                .is_some_and(|v| self.auth.viewer(&filters.site, &v, &t, now_secs())),
            _ => self.auth.overlay(&filters.site, &t, now_secs()),
        });
        if !valid {
            return Err(QueryError::Unauthorized(filters.site));
        }
        let origins = self
            .sites
            .get(&filters.site)
            .map(|s| &s.0[..])
            .unwrap_or(&[]);
        if let Some(o) = origin
            && !pathlight_ingest::origin_matches(origins, o)
        {
            return Err(QueryError::OriginNotAllowed(o.to_owned()));
        }
        if endpoint == Endpoint::ViewerCheck {
            return Ok(Answer::bypass(serde_json::json!({ "ok": true })));
        }
        filters.path()?;
        // The same answers as with the API token: the overlay token proved this site.
        let site = Authorized(filters.site.clone());
        let f = &filters;
        match endpoint {
            Endpoint::Heatmap => {
                self.cached(&site, endpoint, f, sql::heatmap(&self.client, f))
                    .await
            }
            Endpoint::Elements => {
                self.cached(&site, endpoint, f, sql::elements(&self.client, f))
                    .await
            }
            _ => Err(QueryError::NotFound),
        }
    }

    /// `overlay-token`: a token for the live overlay and, with `path`, the page's address on
    /// the site with the token in its fragment (never sent to the site's server).
    fn overlay_token(&self, filters: &Filters) -> serde_json::Value {
        let site = &filters.site;
        let (token, expires_at) = self.auth.issue_overlay(site, now_secs());
        // `Filters` checked that it starts with `/`; it must also stay on the site's origin.
        let path = filters
            .path
            .as_deref()
            .filter(|p| !p.starts_with("//") && !p.contains('\\'));
        let base = self.sites.get(site).map(|s| s.1.as_str()).unwrap_or("");
        let url = match path {
            Some(p) if !base.is_empty() => {
                serde_json::Value::String(format!("{base}{p}#pathlight-overlay={token}"))
            }
            _ => serde_json::Value::Null,
        };
        serde_json::json!({ "token": token, "expires_at": expires_at, "url": url })
    }

    /// Answers `GET /api/v1/<endpoint>?<query>` with the `Authorization` header value. The
    /// token is checked first, always: the cache serves only those who may read the site.
    pub async fn handle(
        &self,
        endpoint: Endpoint<'_>,
        query: &str,
        authorization: Option<&str>,
    ) -> Result<Answer, QueryError> {
        let mut filters = Filters::parse(query)?;
        let site = self.authorize(&filters.site, authorization)?;
        let c = &self.client;
        match endpoint {
            Endpoint::Heatmap => {
                filters.path()?;
                let f = &filters;
                self.cached(&site, endpoint, f, sql::heatmap(c, f)).await
            }
            Endpoint::Elements => {
                filters.path()?;
                let f = &filters;
                self.cached(&site, endpoint, f, sql::elements(c, f)).await
            }
            Endpoint::Stats => {
                let f = &filters;
                self.cached(&site, endpoint, f, sql::stats(c, f)).await
            }
            // The last five minutes, and cheap: always asked.
            Endpoint::Realtime => json(sql::realtime(c, &filters).await).map(Answer::bypass),
            Endpoint::Anomalies => {
                let f = &filters;
                self.cached(&site, endpoint, f, behaviour::anomalies(c, f))
                    .await
            }
            Endpoint::Funnel => {
                filters.steps()?;
                let f = &filters;
                self.cached(&site, endpoint, f, sql::funnel(c, f)).await
            }
            Endpoint::Actions => {
                let f = &filters;
                self.cached(&site, endpoint, f, sql::actions(c, f)).await
            }
            Endpoint::Sessions => {
                let f = &filters;
                let sessions = sql::sessions(c, f, self.session_timeout_ms);
                self.cached(&site, endpoint, f, sessions).await
            }
            Endpoint::Patterns => {
                let f = &filters;
                self.cached(&site, endpoint, f, behaviour::patterns(c, f))
                    .await
            }
            Endpoint::Search => {
                let f = &filters;
                self.cached(&site, endpoint, f, sql::search(c, f)).await
            }
            // Tokens are issued anew each time; never kept.
            Endpoint::OverlayToken => Ok(Answer::bypass(self.overlay_token(&filters))),
            Endpoint::ViewerToken => {
                let viewer = param(query, "viewer")
                    .filter(|v| is_origin(v))
                    .ok_or_else(|| QueryError::BadParam {
                        param: "viewer",
                        detail: "the viewer's origin, scheme://host[:port]".into(),
                    })?;
                let (token, expires_at) =
                    self.auth.issue_viewer(&filters.site, &viewer, now_secs());
                Ok(Answer::bypass(
                    serde_json::json!({ "token": token, "expires_at": expires_at }),
                ))
            }
            Endpoint::Site => {
                let (origins, base_url) =
                    self.sites.get(&filters.site).cloned().unwrap_or_default();
                Ok(Answer::bypass(serde_json::json!({
                    "site": filters.site,
                    "origins": origins,
                    "base_url": base_url,
                })))
            }
            Endpoint::LiveToken => {
                let (token, expires_at) = self.auth.issue_live(&filters.site, now_secs());
                Ok(Answer::bypass(
                    serde_json::json!({ "token": token, "expires_at": expires_at }),
                ))
            }
            Endpoint::Session(id) => {
                filters.session = Some(id.to_owned());
                let f = &filters;
                self.cached(&site, endpoint, f, sql::session(c, f, id))
                    .await
            }
            Endpoint::UserEvents(user) => {
                let f = &filters;
                self.cached(&site, endpoint, f, sql::user_events(c, f, user))
                    .await
            }
            Endpoint::ViewerCheck | Endpoint::Unknown => Err(QueryError::NotFound),
        }
    }

    /// `export`: the site's raw events for the date range as NDJSON (`format=ndjson`, the
    /// default) or CSV with a header (`format=csv`), streamed from ClickHouse as it answers,
    /// never held in memory whole.
    pub async fn export(
        &self,
        query: &str,
        authorization: Option<&str>,
    ) -> Result<Streamed, QueryError> {
        let filters = Filters::parse(query)?;
        self.authorize(&filters.site, authorization)?;
        let format = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "format")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let (content_type, ch_format) = match format.as_str() {
            "" | "ndjson" => ("application/x-ndjson", "JSONEachRow"),
            "csv" => ("text/csv; charset=utf-8", "CSVWithNames"),
            _ => {
                return Err(QueryError::BadParam {
                    param: "format",
                    detail: "expected ndjson or csv".into(),
                });
            }
        };
        let mut cursor = sql::export(&self.client, &filters).fetch_bytes(ch_format)?;
        // The first chunk is awaited here, so a failing query is an error status, not a
        // truncated 200.
        let first = cursor.next().await?;
        let (mut tx, body) = Channel::new(4);
        tokio::spawn(async move {
            let mut chunk = first;
            while let Some(bytes) = chunk {
                if tx.send_data(bytes).await.is_err() {
                    return; // The client went away.
                }
                chunk = match cursor.next().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "export interrupted");
                        return;
                    }
                };
            }
        });
        Ok((content_type, body))
    }

    /// `realtime/stream`: Server-Sent Events, one `data:` line per event of the site as it is
    /// stored; a comment every 15 s keeps proxies from closing the stream.
    pub fn live(
        &self,
        query: &str,
        authorization: Option<&str>,
        mut feed: broadcast::Receiver<Arc<LiveEvent>>,
        mut stopping: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Streamed, QueryError> {
        let filters = Filters::parse(query)?;
        self.authorize_live(&filters.site, query, authorization)?;
        let (mut tx, body) = Channel::new(16);
        tokio::spawn(async move {
            if tx
                .send_data(Bytes::from_static(b": connected\n\n"))
                .await
                .is_err()
            {
                return;
            }
            loop {
                let frame = tokio::select! {
                    event = feed.recv() => match event {
                        Ok(e) if e.site == filters.site => {
                            format!("data: {}\n\n", serde_json::to_string(&*e).unwrap_or_default())
                        }
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(n)) => format!("event: lagged\ndata: {n}\n\n"),
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    () = tokio::time::sleep(std::time::Duration::from_secs(15)) => ": ping\n\n".to_owned(),
                    // Shutdown: end the stream, so the connection can close.
                    _ = stopping.wait_for(|s| *s) => return,
                };
                if tx.send_data(Bytes::from(frame)).await.is_err() {
                    return;
                }
            }
        });
        Ok(("text/event-stream", body))
    }

    /// The site of a live feed (`realtime/stream`, `realtime/ws`) the request may read.
    pub fn live_site(
        &self,
        query: &str,
        authorization: Option<&str>,
    ) -> Result<String, QueryError> {
        let filters = Filters::parse(query)?;
        self.authorize_live(&filters.site, query, authorization)?;
        Ok(filters.site)
    }

    /// A live token (`?token=`) is enough for a live feed: it is what the overlay embeds, and
    /// all a browser's WebSocket can carry.
    fn authorize_live(
        &self,
        site: &str,
        query: &str,
        authorization: Option<&str>,
    ) -> Result<(), QueryError> {
        let live = token_param(query).is_some_and(|t| self.auth.live(site, &t, now_secs()));
        if live {
            Ok(())
        } else {
            self.authorize(site, authorization).map(drop)
        }
    }

    fn authorize(&self, site: &str, authorization: Option<&str>) -> Result<Authorized, QueryError> {
        if self.auth.bearer(site, authorization) {
            Ok(Authorized(site.to_owned()))
        } else {
            Err(QueryError::Unauthorized(site.to_owned()))
        }
    }
}

/// The `token` parameter of a query string (a signed token given instead of a bearer).
pub fn token_param(query: &str) -> Option<String> {
    param(query, "token")
}

fn param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `scheme://host[:port]` and nothing more, as a browser's `location.origin` is.
fn is_origin(v: &str) -> bool {
    v.len() <= 255
        && v.split_once("://").is_some_and(|(scheme, host)| {
            matches!(scheme, "http" | "https")
                && !host.is_empty()
                && host.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                })
        })
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn json<T: Serialize>(
    v: Result<T, clickhouse::error::Error>,
) -> Result<serde_json::Value, QueryError> {
    Ok(serde_json::to_value(v?).unwrap_or_default())
}

/// The JSON text of `v` (through [`serde_json::Value`], whose objects keep their keys sorted,
/// as answers always had them).
fn to_bytes(v: &serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_else(|_| b"null".to_vec()))
}

/// A count of something, by name.
#[derive(Debug, Serialize, serde::Deserialize, clickhouse::Row)]
pub struct Count {
    /// What is counted (page path, device, country, ...).
    pub key: String,
    /// How many.
    pub count: u64,
}
