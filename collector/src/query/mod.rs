//! The query API, `GET /api/v1/{heatmap,elements,stats}`: JSON over the `events` table, per
//! site, behind the site's bearer token. Parameters are validated into [`Filters`] (clear 400s
//! naming the parameter) and reach ClickHouse only as bound values, never spliced into SQL.
//! Answers to the same question within a few seconds come from [`cache`].

pub mod analysis;
pub(crate) mod behaviour;
pub use behaviour::Repeats;
mod cache;
pub mod rollup;
mod sql;

use crate::pipeline::LiveEvent;
use crate::sites::{Access, Registry, Scope};
use bytes::Bytes;
use clickhouse::Client;
use http_body_util::channel::Channel;
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::broadcast;

pub use cache::{CacheOutcome, QueryCache};
pub use sql::{Counts, Filters, LiveSnapshot, RuleFlags, TODAY_LIVE_MAX, catalogue, rule_flags};

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
    /// A valid read key of the site, without the scope the answer needs.
    #[error("this key does not read {scope} of site {site:?}")]
    OutOfScope {
        /// The site.
        site: String,
        /// The scope the answer needs (`stats`, `heatmaps`, `export`).
        scope: &'static str,
    },
    /// No such endpoint.
    #[error("no such endpoint")]
    NotFound,
    /// An overlay token used from a page on an origin the site does not list.
    #[error("origin {0:?} is not one of the site's origins")]
    OriginNotAllowed(String),
    /// Parameters the endpoint does not take (misspelled, or another product's).
    #[error("unknown parameter{} {}: this endpoint takes {}", if .names.len() == 1 { "" } else { "s" }, .names.join(", "), .takes.join(", "))]
    UnknownParams {
        /// The parameters, as sent (the first few).
        names: Vec<String>,
        /// The ones it takes.
        takes: &'static [&'static str],
    },
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
    /// `timeline`.
    Timeline,
    /// `top`.
    Top,
    /// `retention`.
    Retention,
    /// `sessions/{id}`.
    Session(&'a str),
    /// `sessions/{id}/analysis`.
    SessionAnalysis(&'a str),
    /// `users/{id}/events`.
    UserEvents(&'a str),
    /// Anything else: refused as not found once the token is checked.
    Unknown,
}

/// The named endpoints and their paths.
const NAMED: [(&str, Endpoint<'static>); 18] = [
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
    ("timeline", Endpoint::Timeline),
    ("top", Endpoint::Top),
    ("retention", Endpoint::Retention),
];

impl<'a> Endpoint<'a> {
    /// The endpoint `path` (after `/api/v1/`) names.
    pub fn of(path: &'a str) -> Endpoint<'a> {
        if let Some((_, e)) = NAMED.iter().find(|(name, _)| *name == path) {
            *e
        } else if let Some(id) = path.strip_prefix("sessions/").filter(|p| segment(p)) {
            Endpoint::Session(id)
        } else if let Some(id) = path
            .strip_prefix("sessions/")
            .and_then(|p| p.strip_suffix("/analysis"))
            .filter(|p| segment(p))
        {
            Endpoint::SessionAnalysis(id)
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

    /// The query parameters it takes, those its operation in the OpenAPI document declares
    /// (a test holds the two together); none for [`Endpoint::Unknown`], which is not found.
    pub fn params(&self) -> Option<&'static [&'static str]> {
        Some(match self {
            Endpoint::Heatmap => &[
                "site", "path", "from", "to", "device", "width", "exact", "layers", "token",
            ],
            Endpoint::Elements => &[
                "site", "path", "from", "to", "device", "width", "exact", "token",
            ],
            Endpoint::Stats => &[
                "site", "from", "to", "path", "device", "interval", "period", "exact",
            ],
            Endpoint::Funnel => &["site", "from", "to", "steps", "exact"],
            Endpoint::Timeline => &[
                "site",
                "from",
                "to",
                "event_type",
                "limit",
                "offset",
                "until",
            ],
            Endpoint::Top => &["site", "from", "to", "property", "event_type", "limit"],
            Endpoint::Sessions => &[
                "site", "from", "to", "device", "ended", "limit", "offset", "exact",
            ],
            Endpoint::Session(_) | Endpoint::Search => &["site", "from", "to", "exact"],
            Endpoint::SessionAnalysis(_) | Endpoint::Retention => &["site", "from", "to"],
            Endpoint::Anomalies => &["site", "from", "to", "path", "rage_ms", "rage_px", "exact"],
            Endpoint::Actions | Endpoint::Patterns => &["site", "from", "to", "path", "exact"],
            Endpoint::UserEvents(_) => &["site", "from", "to", "limit", "offset", "exact"],
            Endpoint::Realtime | Endpoint::Site | Endpoint::LiveToken => &["site"],
            Endpoint::OverlayToken => &["site", "path"],
            Endpoint::ViewerToken => &["site", "viewer"],
            Endpoint::ViewerCheck => &["site", "viewer", "token"],
            Endpoint::Unknown => return None,
        })
    }

    /// The read scope a key needs for its answers: heatmaps for what the heatmap viewer and
    /// the overlay read, stats for the rest; none for `site` (the site's own description,
    /// which every reader needs).
    pub fn scope(&self) -> Option<Scope> {
        match self {
            Endpoint::Heatmap
            | Endpoint::Elements
            | Endpoint::OverlayToken
            | Endpoint::ViewerToken
            | Endpoint::ViewerCheck => Some(Scope::Heatmaps),
            Endpoint::Site => None,
            _ => Some(Scope::Stats),
        }
    }

    /// Its label in the metrics: a bounded set, whatever paths clients ask for (`session` for
    /// every `sessions/{id}`, `user_events` for every `users/{id}/events`, `other`).
    pub fn label(&self) -> &'static str {
        match self {
            Endpoint::Session(_) => "session",
            Endpoint::SessionAnalysis(_) => "session_analysis",
            Endpoint::UserEvents(_) => "user_events",
            Endpoint::Unknown => "other",
            e => NAMED
                .iter()
                .find(|(_, n)| n == e)
                .map_or("other", |(name, _)| name),
        }
    }
}

/// The query parameters of `export`.
pub const EXPORT_PARAMS: &[&str] = &["site", "from", "to", "path", "event_type", "format"];
/// The query parameters of the live feeds, `realtime/stream` and `realtime/ws`.
pub const LIVE_PARAMS: &[&str] = &["site", "token"];

/// Refuses a query naming a parameter not in `takes`: ignored, a misspelled or unsupported
/// filter (`start_date`, `hours`) would answer as if it had been applied.
pub fn declared(query: &str, takes: &'static [&'static str]) -> Result<(), QueryError> {
    let mut names: Vec<String> = Vec::new();
    for (k, _) in form_urlencoded::parse(query.as_bytes()) {
        if !takes.contains(&k.as_ref()) && !names.iter().any(|n| *n == k) {
            names.push(k.chars().take(64).collect());
        }
    }
    if names.is_empty() {
        return Ok(());
    }
    // The answer stays short whatever was sent.
    names.truncate(5);
    Err(QueryError::UnknownParams { names, takes })
}

/// Whether `p` can be the id in a path (`sessions/{id}`, `users/{id}/events`), still
/// percent-encoded: [`path_id`] decodes and checks it.
fn segment(p: &str) -> bool {
    !p.is_empty() && !p.contains('/')
}

/// The id of `sessions/{id}` or `users/{id}/events`, percent-decoded (a user id may be an
/// e-mail address, which clients encode): 1 to 256 characters of UTF-8.
fn path_id(raw: &str) -> Result<String, QueryError> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .filter(|id| (1..=256).contains(&id.chars().count()))
        .map(|id| id.into_owned())
        .ok_or_else(|| QueryError::BadParam {
            param: "id",
            detail: "1 to 256 characters, UTF-8 percent-encoded".into(),
        })
}

/// A site the request has proved it may read. The cache's keys start with it, so a token
/// reaches only its own site's answers.
struct Authorized(String);

pub mod auth;

/// The API's state: a reading client and who may read what.
pub struct QueryApi {
    client: Client,
    auth: auth::Auth,
    /// The sites and their keys (`crate::sites`): who may read, each site's origins and base
    /// URL (the live overlay, the viewer), goals, search names and anomaly rules.
    sites: Arc<Registry>,
    /// The global anomaly rules, under each site's own (`sessions/{id}/analysis`).
    rules: analysis::AnomalyRules,
    cache: QueryCache,
    /// `session_timeout_secs`, in ms: a session with no event for this long is over
    /// (`sessions`' `ended`).
    session_timeout_ms: u64,
    /// Each site's visitors of the last 5 minutes and when they were counted: every live
    /// feed of a site beats with the same count, asked once per beat for all of them.
    current_visitors:
        std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, u64)>>,
}

impl QueryApi {
    /// An API reading through `client` (database selected) for the sites of `sites`, answering
    /// repeated questions from `cache`; live tokens are signed with a key derived from
    /// `hash_secret`. Sessions end after `session_timeout_secs` without an event.
    pub fn new(
        client: Client,
        sites: Arc<Registry>,
        hash_secret: &str,
        session_timeout_secs: u64,
        cache: QueryCache,
        rules: &analysis::AnomalyRules,
    ) -> QueryApi {
        QueryApi {
            client,
            auth: auth::Auth::new(hash_secret),
            sites,
            rules: rules.clone(),
            cache,
            session_timeout_ms: session_timeout_secs.saturating_mul(1000),
            current_visitors: Default::default(),
        }
    }

    /// `site`'s anomaly rules, its own over the global ones.
    fn rules_of(&self, site: &str) -> analysis::Rules {
        let own = self
            .sites
            .snapshot()
            .get(site)
            .map(|s| s.config.anomalies.clone())
            .unwrap_or_default();
        analysis::AnomalyRules::resolve(&own, &self.rules)
    }

    /// Whether signed tokens of `site` are honoured (`crate::sites::Site::takes_tokens`).
    fn takes_tokens(&self, site: &str) -> bool {
        self.sites
            .snapshot()
            .get(site)
            .is_some_and(|s| s.takes_tokens())
    }

    /// What a live feed of `site` is sent first and on a refresh (`realtime/ws`). The site
    /// was authorized when the feed opened.
    pub async fn live_snapshot(&self, site: &str) -> Result<sql::LiveSnapshot, QueryError> {
        let snapshot = sql::live_snapshot(&self.client, site).await?;
        self.remember_visitors(site, snapshot.visitors);
        Ok(snapshot)
    }

    /// The visitors of the last 5 minutes of `site`, counted at most `max_age` ago: the live
    /// feeds' heartbeat.
    pub async fn current_visitors(
        &self,
        site: &str,
        max_age: std::time::Duration,
    ) -> Result<u64, QueryError> {
        let known = self.visitors_memo().get(site).copied();
        if let Some((_, n)) = known.filter(|(at, _)| at.elapsed() < max_age) {
            return Ok(n);
        }
        let n = sql::current_visitors(&self.client, site).await?;
        self.remember_visitors(site, n);
        Ok(n)
    }

    fn visitors_memo(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (std::time::Instant, u64)>>
    {
        self.current_visitors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn remember_visitors(&self, site: &str, n: u64) {
        self.visitors_memo()
            .insert(site.to_owned(), (std::time::Instant::now(), n));
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
        if let Some(takes) = endpoint.params() {
            declared(query, takes)?;
        }
        let filters = Filters::parse(query)?;
        let required = |name: &'static str| {
            param(query, name).ok_or_else(|| QueryError::BadParam {
                param: name,
                detail: "required for this endpoint".into(),
            })
        };
        let token = required("token")?;
        let valid = match endpoint {
            Endpoint::ViewerCheck => {
                let viewer = required("viewer")?;
                self.auth.viewer(&filters.site, &viewer, &token, now_secs())
            }
            _ => self.auth.overlay(&filters.site, &token, now_secs()),
        };
        if !valid || !self.takes_tokens(&filters.site) {
            return Err(QueryError::Unauthorized(filters.site));
        }
        let sites = self.sites.snapshot();
        let origins = sites
            .get(&filters.site)
            .map(|s| &s.config.origins[..])
            .unwrap_or(&[]);
        if let Some(o) = origin
            && !pathlight_ingest::origin_matches(origins, o)
        {
            return Err(QueryError::OriginNotAllowed(o.to_owned()));
        }
        if endpoint == Endpoint::ViewerCheck {
            return Ok(Answer::bypass(serde_json::json!({ "ok": true })));
        }
        windowed(endpoint, &filters)?;
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
        let base = self
            .sites
            .snapshot()
            .get(site)
            .map(|s| s.config.base_url())
            .unwrap_or_default();
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
        caller: Caller<'_>,
    ) -> Result<Answer, QueryError> {
        if let Some(takes) = endpoint.params() {
            declared(query, takes)?;
        }
        let mut filters = Filters::parse(query)?;
        let site = match (
            self.authorize(&filters.site, caller, endpoint.scope()),
            caller.share,
        ) {
            (Ok(site), _) => site,
            (Err(_), Some((token, share))) => {
                self.authorize_share(endpoint, &filters, token, share)?
            }
            (Err(e), None) => return Err(e),
        };
        let sites = self.sites.snapshot();
        let this = sites.get(&filters.site);
        windowed(endpoint, &filters)?;
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
                filters.goals = this.map(|s| s.config.goals.clone()).unwrap_or_default();
                let f = &filters;
                self.cached(&site, endpoint, f, sql::stats(c, f)).await
            }
            // The last five minutes, and cheap: always asked.
            Endpoint::Realtime => json(sql::realtime(c, &filters).await).map(Answer::bypass),
            Endpoint::Anomalies => {
                filters.repeat = self.rules_of(&filters.site).repeat();
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
                filters.repeat = self.rules_of(&filters.site).repeat();
                let f = &filters;
                let sessions = sql::sessions(c, f, self.session_timeout_ms);
                self.cached(&site, endpoint, f, sessions).await
            }
            Endpoint::Patterns => {
                let f = &filters;
                self.cached(&site, endpoint, f, behaviour::patterns(c, f))
                    .await
            }
            Endpoint::Timeline => {
                let f = &filters;
                self.cached(&site, endpoint, f, sql::timeline(c, f)).await
            }
            Endpoint::Top => {
                let property = filters
                    .property
                    .clone()
                    .ok_or_else(|| QueryError::BadParam {
                        param: "property",
                        detail: "required for this endpoint".into(),
                    })?;
                let f = &filters;
                self.cached(&site, endpoint, f, sql::top_property(c, f, &property))
                    .await
            }
            Endpoint::Search => {
                filters.search = this.map(|s| s.config.search.clone()).unwrap_or_default();
                let f = &filters;
                self.cached(&site, endpoint, f, sql::search(c, f)).await
            }
            Endpoint::Retention => {
                if let Some(s) = this {
                    filters.timezone = s.timezone.clone();
                }
                // Without `to`, today in the site's time zone, which the query knows: the last
                // day events can have stands for it.
                if param(query, "to").is_none() {
                    filters.to = sql::LAST_DAY.to_owned();
                }
                let f = &filters;
                self.cached(&site, endpoint, f, sql::retention(c, f)).await
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
                let (origins, base_url) = this
                    .map(|s| (s.config.origins.clone(), s.config.base_url()))
                    .unwrap_or_default();
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
                let id = path_id(id)?;
                filters.session = Some(id.clone());
                let f = &filters;
                self.cached(&site, endpoint, f, sql::session(c, f, &id))
                    .await
            }
            Endpoint::SessionAnalysis(id) => {
                let id = path_id(id)?;
                filters.session = Some(id.clone());
                let rules = self.rules_of(&filters.site);
                let f = &filters;
                let run = sql::session_analysis(c, f, &id, &rules, self.session_timeout_ms);
                self.cached(&site, endpoint, f, run).await
            }
            Endpoint::UserEvents(user) => {
                let user = path_id(user)?;
                let f = &filters;
                self.cached(&site, endpoint, f, sql::user_events(c, f, &user))
                    .await
            }
            Endpoint::ViewerCheck | Endpoint::Unknown => Err(QueryError::NotFound),
        }
    }

    /// `export`: the site's raw events for the date range as NDJSON (`format=ndjson`, the
    /// default) or CSV with a header (`format=csv`), streamed from ClickHouse as it answers,
    /// never held in memory whole.
    pub async fn export(&self, query: &str, caller: Caller<'_>) -> Result<Streamed, QueryError> {
        declared(query, EXPORT_PARAMS)?;
        let filters = Filters::parse(query)?;
        self.authorize(&filters.site, caller, Some(Scope::Export))?;
        let format = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "format")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let (content_type, ch_format) = match format.as_str() {
            "" | "ndjson" => ("application/x-ndjson", "JSONEachRow"),
            "csv" => ("text/csv; charset=utf-8", "CSVWithNames"),
            // One JSON array, made of the rows as ClickHouse streams them (`JSONEachRow`:
            // 18.16 has no array form).
            "json" => ("application/json", "JSONEachRow"),
            _ => {
                return Err(QueryError::BadParam {
                    param: "format",
                    detail: "expected ndjson, csv or json".into(),
                });
            }
        };
        let mut array = (format == "json").then(JsonArray::default);
        let mut cursor = sql::export(&self.client, &filters).fetch_bytes(ch_format)?;
        // The first chunk is awaited here, so a failing query is an error status, not a
        // truncated 200.
        let first = cursor.next().await?;
        let (mut tx, body) = Channel::new(4);
        tokio::spawn(async move {
            let mut chunk = first;
            while let Some(bytes) = chunk {
                let bytes = match &mut array {
                    Some(a) => a.rows(&bytes),
                    None => bytes,
                };
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
            if let Some(a) = array {
                let _ = tx.send_data(a.end()).await;
            }
        });
        Ok((content_type, body))
    }

    /// `realtime/stream`: Server-Sent Events, one `data:` line per event of the site as it is
    /// stored; a comment every 15 s keeps proxies from closing the stream.
    pub fn live(
        &self,
        query: &str,
        caller: Caller<'_>,
        mut feed: broadcast::Receiver<Arc<LiveEvent>>,
        mut stopping: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Streamed, QueryError> {
        declared(query, LIVE_PARAMS)?;
        let filters = Filters::parse(query)?;
        self.authorize_live(&filters.site, query, caller)?;
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
    pub fn live_site(&self, query: &str, caller: Caller<'_>) -> Result<String, QueryError> {
        declared(query, LIVE_PARAMS)?;
        let filters = Filters::parse(query)?;
        self.authorize_live(&filters.site, query, caller)?;
        Ok(filters.site)
    }

    /// A shared link's read token, for what its share reads: a dashboard share the site's
    /// JSON endpoints but those issuing tokens that read (which would outlive the share);
    /// a heatmap share `heatmap` and `elements` of its page, and the site's description.
    /// Exports and live feeds take no share token. Both may ask for a viewer token: the
    /// heatmap viewer frames the site's page with it, and it reads nothing, only lets the tag
    /// in that page answer the viewer's layout questions (as a key's scopes allow `site` to
    /// every reader).
    fn authorize_share(
        &self,
        endpoint: Endpoint<'_>,
        filters: &Filters,
        token: &str,
        share: &crate::storage::clickhouse::access::ShareRow,
    ) -> Result<Authorized, QueryError> {
        let site = &filters.site;
        let signed = share.site == *site && self.auth.share(site, &share.id, token, now_secs());
        let in_scope = match share.kind.as_str() {
            "dashboard" => !matches!(endpoint, Endpoint::OverlayToken | Endpoint::LiveToken),
            "heatmap" => match endpoint {
                Endpoint::Heatmap | Endpoint::Elements => {
                    filters.path.as_deref() == Some(share.path.as_str())
                }
                Endpoint::Site | Endpoint::ViewerToken => true,
                _ => false,
            },
            _ => false,
        };
        if signed && in_scope && self.sites.snapshot().get(site).is_some() {
            Ok(Authorized(site.clone()))
        } else {
            Err(QueryError::Unauthorized(site.clone()))
        }
    }

    /// A read token of the shared link `share` (`POST /api/v1/shares/open`), and how many
    /// seconds it is valid.
    pub fn share_token(
        &self,
        share: &crate::storage::clickhouse::access::ShareRow,
    ) -> (String, u64) {
        let now = now_secs();
        let until = share.expires_at / 1000;
        let (token, expires) = self.auth.issue_share(&share.site, &share.id, now, until);
        (token, expires.saturating_sub(now))
    }

    /// Whether this collector serves `site` (a site of the config file or made in the
    /// product).
    pub fn serves(&self, site: &str) -> bool {
        self.sites.snapshot().get(site).is_some()
    }

    /// A live token (`?token=`) is enough for a live feed: it is what the overlay embeds, and
    /// all a browser's WebSocket can carry.
    fn authorize_live(
        &self,
        site: &str,
        query: &str,
        caller: Caller<'_>,
    ) -> Result<(), QueryError> {
        let live = token_param(query)
            .is_some_and(|t| self.auth.live(site, &t, now_secs()) && self.takes_tokens(site));
        if live {
            Ok(())
        } else {
            self.authorize(site, caller, Some(Scope::Stats)).map(drop)
        }
    }

    /// A signed-in account with a role on a site this collector serves (an instance admin has
    /// one on every site), or the site's API token, or a read key of the site with `scope`
    /// (none: any).
    fn authorize(
        &self,
        site: &str,
        caller: Caller<'_>,
        scope: Option<Scope>,
    ) -> Result<Authorized, QueryError> {
        let sites = self.sites.snapshot();
        let member = caller
            .account
            .is_some_and(|a| crate::accounts::role(a, site).is_some() && sites.get(site).is_some());
        if member {
            return Ok(Authorized(site.to_owned()));
        }
        let now = crate::dates::now_ms().max(0) as u64;
        match sites.read_access(site, caller.authorization, scope, now) {
            Access::Token => Ok(Authorized(site.to_owned())),
            Access::Key(id) => {
                self.sites.used(&id);
                Ok(Authorized(site.to_owned()))
            }
            Access::OutOfScope(scope) => Err(QueryError::OutOfScope {
                site: site.to_owned(),
                scope: scope.name(),
            }),
            Access::Denied => Err(QueryError::Unauthorized(site.to_owned())),
        }
    }
}

/// Refuses an hours window (`from` and `to` with a time) where it is not taken: the other
/// endpoints read per-day marts and rollups, and would answer for whole days.
fn windowed(endpoint: Endpoint<'_>, f: &Filters) -> Result<(), QueryError> {
    if f.window.is_some() && endpoint != Endpoint::Heatmap {
        return Err(QueryError::BadParam {
            param: "from",
            detail: "a time of day is taken by heatmap only; expected YYYY-MM-DD".into(),
        });
    }
    Ok(())
}

/// `JSONEachRow` (one object a line) streamed as one JSON array: a newline ends a row (JSON
/// escapes those inside strings), so each but the last becomes a comma, whatever chunks the
/// rows arrive in.
#[derive(Debug, Default)]
struct JsonArray {
    started: bool,
    /// A row ended: a comma goes before the next one.
    pending: bool,
}

impl JsonArray {
    fn rows(&mut self, chunk: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(chunk.len() + 2);
        if !self.started {
            self.started = true;
            out.push(b'[');
        }
        for &b in chunk {
            if b == b'\n' {
                self.pending = true;
            } else {
                if self.pending {
                    out.extend_from_slice(b",\n");
                    self.pending = false;
                }
                out.push(b);
            }
        }
        Bytes::from(out)
    }

    fn end(self) -> Bytes {
        Bytes::from_static(if self.started { b"]\n" } else { b"[]\n" })
    }
}

/// Who asks the query API: the `Authorization` header (a site's API token or read key), the account the
/// session cookie signed in, and a shared link's read token with the share it names, both of
/// which the HTTP layer looked up (`accounts/`). An account with any role on a site reads it
/// (an instance admin reads every site).
#[derive(Clone, Copy, Debug, Default)]
pub struct Caller<'a> {
    /// `Authorization: Bearer <the site's API token or a read key>`.
    pub authorization: Option<&'a str>,
    /// The signed-in account, if any.
    pub account: Option<&'a crate::accounts::SignedIn>,
    /// A shared link's read token (`Bearer`, or `?token=` where the endpoint takes one) and
    /// its share, found standing.
    pub share: Option<(&'a str, &'a crate::storage::clickhouse::access::ShareRow)>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The query parameters the document declares for `path`, by name.
    fn documented(doc: &Value, path: &str) -> Vec<String> {
        let op = &doc["paths"][path]["get"];
        let mut names: Vec<String> = op["parameters"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|p| match p["$ref"].as_str() {
                Some(r) => &doc["components"]["parameters"][r.rsplit('/').next().unwrap()],
                None => p,
            })
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn every_endpoint_takes_exactly_the_parameters_the_document_declares() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for path in paths.keys() {
            // Managing sites, members and shared links (`http/routes/manage/`) is no query.
            let top = path[1..].split('/').next().unwrap_or_default();
            if matches!(top, "sites" | "invitations" | "shares") {
                continue;
            }
            let takes: &[&str] = match path.as_str() {
                "/openapi.json" => &[],
                "/export" => EXPORT_PARAMS,
                "/realtime/stream" | "/realtime/ws" => LIVE_PARAMS,
                // Managed in the product (`http/routes/manage/`): no query parameters.
                p if p.starts_with("/sites") => &[],
                p => {
                    let p = p.replace("{id}", "s1").replace("{user_id}", "u1");
                    let e = Endpoint::of(&p[1..]);
                    e.params()
                        .unwrap_or_else(|| panic!("{path} is no endpoint"))
                }
            };
            let mut takes: Vec<String> = takes.iter().map(|s| (*s).to_owned()).collect();
            takes.sort();
            assert_eq!(documented(&doc, path), takes, "{path}");
        }
        for (name, _) in NAMED {
            assert!(
                paths.contains_key(&format!("/{name}")),
                "{name} undocumented"
            );
        }
    }

    #[test]
    fn rows_stream_as_one_json_array_whatever_their_chunks() {
        let rows = b"{\"a\":\"x\\ny\"}\n{\"a\":2}\n{\"a\":3}\n";
        for split in 0..rows.len() {
            let mut a = JsonArray::default();
            let mut out = a.rows(&rows[..split]).to_vec();
            out.extend_from_slice(&a.rows(&rows[split..]));
            out.extend_from_slice(&a.end());
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(
                v,
                serde_json::json!([{"a": "x\ny"}, {"a": 2}, {"a": 3}]),
                "{split}"
            );
        }
        assert_eq!(&JsonArray::default().end()[..], b"[]\n");
    }

    #[test]
    fn unknown_parameters_are_refused_by_name() {
        let takes = Endpoint::Stats.params().unwrap();
        assert!(declared("site=demo&from=2026-01-01&exact=true", takes).is_ok());
        let e = declared("site=demo&start_date=x&hours=3&start_date=y", takes).unwrap_err();
        let QueryError::UnknownParams { names, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(names, &["start_date", "hours"]);
        assert!(
            e.to_string()
                .starts_with("unknown parameters start_date, hours: this endpoint takes site, ")
        );
        let one = declared("site=demo&hours=3", Endpoint::Realtime.params().unwrap());
        assert_eq!(
            one.unwrap_err().to_string(),
            "unknown parameter hours: this endpoint takes site"
        );
    }

    #[test]
    fn path_ids_are_percent_decoded_and_bounded() {
        assert_eq!(path_id("a%40b.example").unwrap(), "a@b.example");
        assert_eq!(path_id("%C3%A9").unwrap(), "é");
        assert_eq!(path_id(&"%C3%A9".repeat(256)).unwrap(), "é".repeat(256));
        for bad in ["", "%FF", &"a".repeat(257)] {
            assert!(path_id(bad).is_err(), "{bad}");
        }
    }
}
