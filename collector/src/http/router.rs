//! The route table: what a request asks for, decided once from its method and path, before
//! any handler runs. Handlers receive the [`Route`] and never look at the path's prefix again.

use crate::query::Endpoint;
use http::Method;

/// Every route the collector's listener answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// `POST /v1/batch`: a tracker's batch (also under `prefix`).
    Batch,
    /// `OPTIONS /v1/batch` or `/v1/identify`: the CORS preflight (also under `prefix`).
    BatchPreflight,
    /// `POST /v1/identify`: a site's user and their traits, from its pages or its servers
    /// (also under `prefix`).
    Identify,
    /// `GET|HEAD` of a tracker file (also under `prefix`).
    Tracker(TrackerFile<'a>),
    /// `POST /v1/relay`: rows an edge worker validated and enriched.
    Relay,
    /// `POST /v1/relay/users`: users' rows an edge worker took from identifies.
    RelayUsers,
    /// `GET /v1/relay/salts`: the visitor-id salts, for relay workers.
    RelaySalts,
    /// `GET /healthz`: liveness.
    Health,
    /// `GET /readyz`: readiness, with each component's state.
    Ready,
    /// `GET /metrics`: OpenMetrics text.
    Metrics,
    /// `GET /api/v1/openapi.json`.
    OpenApi,
    /// `GET /api/v1/realtime/ws`: the live feed over a WebSocket.
    RealtimeWs,
    /// `GET /api/v1/export`: raw events, streamed.
    Export,
    /// `GET /api/v1/realtime/stream`: the live feed as Server-Sent Events.
    RealtimeStream,
    /// `/api/v1/auth/{action}` and `/api/v1/setup` (action `setup`): signing in and the
    /// account's settings; the handler checks the method.
    Auth(&'a str),
    /// `/api/v1/sites…`, `/api/v1/invitations…`, `/api/v1/shares…`: what is managed in the
    /// product (the path after `/api/v1/`); the handler checks the method.
    Manage(&'a str),
    /// `GET /api/v1/{endpoint}`: a JSON answer of the query API.
    Query(Endpoint<'a>),
    /// `GET|HEAD` of anything else: a file of `www/`, the dashboards.
    Static(&'a str),
    /// A path of the routes above asked with a method it does not take: 405, with the
    /// methods it takes in `Allow` (RFC 9110 §15.5.6).
    MethodNotAllowed(&'static str),
    /// Anything else, and anything under `prefix` but the tracker's routes.
    NotFound,
}

/// A tracker file a path names: its name, and whether the name carries its content's hash
/// (cached for a year) or not (the loader and the manifest, revalidated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackerFile<'a> {
    /// The file's name in `tracker_dir` (the earlier names as asked).
    pub name: &'a str,
    /// `NAME.HASH.js|wasm`.
    pub hashed: bool,
}

impl<'a> Route<'a> {
    /// The route of `method` on `path`. What a site's pages ask for (the tracker and the batch
    /// endpoint) is served at the root and under `prefix` (`/_pl`, for a first-party path on
    /// the site's own host), and so is `identify`, which the tracker posts beside its
    /// batches; nothing else is under the prefix.
    pub fn of(method: &Method, path: &'a str, prefix: &str) -> Route<'a> {
        let (public, under_prefix) = match path.strip_prefix(prefix) {
            Some(rest) if !prefix.is_empty() && rest.starts_with('/') => (rest, true),
            _ => (path, false),
        };
        let read = matches!(*method, Method::GET | Method::HEAD);
        match (method, public) {
            (&Method::POST, "/v1/batch") => return Route::Batch,
            (&Method::POST, "/v1/identify") => return Route::Identify,
            (&Method::OPTIONS, "/v1/batch" | "/v1/identify") => return Route::BatchPreflight,
            _ => {}
        }
        if let Some(file) = TrackerFile::named(public).filter(|_| read) {
            return Route::Tracker(file);
        }
        if matches!(public, "/v1/batch" | "/v1/identify") {
            return Route::MethodNotAllowed("OPTIONS, POST");
        }
        if under_prefix {
            return Route::NotFound;
        }
        match (method, path) {
            (_, "/api/v1/setup") => Route::Auth("setup"),
            (_, p) if p.starts_with("/api/v1/auth/") => Route::Auth(&p["/api/v1/auth/".len()..]),
            (_, p) if p.strip_prefix("/api/v1/").is_some_and(managed) => {
                Route::Manage(&p["/api/v1/".len()..])
            }
            (&Method::POST, "/v1/relay") => Route::Relay,
            (&Method::POST, "/v1/relay/users") => Route::RelayUsers,
            (&Method::GET, "/v1/relay/salts") => Route::RelaySalts,
            (&Method::GET, "/healthz") => Route::Health,
            (&Method::GET, "/readyz") => Route::Ready,
            (&Method::GET, "/metrics") => Route::Metrics,
            (&Method::GET, "/api/v1/openapi.json") => Route::OpenApi,
            (&Method::GET, "/api/v1/realtime/ws") => Route::RealtimeWs,
            (&Method::GET, "/api/v1/export") => Route::Export,
            (&Method::GET, "/api/v1/realtime/stream") => Route::RealtimeStream,
            (&Method::GET, p) if p.starts_with("/api/v1/") => {
                Route::Query(Endpoint::of(&p["/api/v1/".len()..]))
            }
            (_, "/v1/relay" | "/v1/relay/users") => Route::MethodNotAllowed("POST"),
            (_, "/v1/relay/salts" | "/healthz" | "/readyz" | "/metrics") => {
                Route::MethodNotAllowed("GET")
            }
            // The query API's paths take GET only, and refuse HEAD too: its answers are computed,
            // and nothing would be gained by computing one to send its headers alone.
            (_, p) if p.starts_with("/api/v1/") => match &p["/api/v1/".len()..] {
                "openapi.json" | "realtime/ws" | "export" | "realtime/stream" => {
                    Route::MethodNotAllowed("GET")
                }
                e if Endpoint::of(e) != Endpoint::Unknown => Route::MethodNotAllowed("GET"),
                _ => Route::NotFound,
            },
            (_, p) if read => Route::Static(p),
            _ => Route::NotFound,
        }
    }

    /// The route's label in the metrics (`route`) and in the security headers' choice.
    pub fn label(&self) -> &'static str {
        match self {
            Route::Batch => "batch",
            Route::BatchPreflight => "preflight",
            Route::Identify => "identify",
            Route::Tracker(_) => "tracker",
            Route::Relay | Route::RelayUsers | Route::RelaySalts => "relay",
            Route::Health => "healthz",
            Route::Ready => "readyz",
            Route::Metrics => "metrics",
            Route::OpenApi | Route::Query(_) => "api",
            Route::Auth(_) => "auth",
            // `api…`: answers that are never stored by a cache (a key is shown once).
            Route::Manage(_) => "api_manage",
            Route::RealtimeWs => "api_ws",
            Route::Export | Route::RealtimeStream => "api_stream",
            Route::Static(_) => "static",
            Route::MethodNotAllowed(_) => "method_not_allowed",
            Route::NotFound => "not_found",
        }
    }
}

/// Whether `rest` (a path after `/api/v1/`) is a resource managed in the product: a whole first
/// segment `sites`, `invitations` or `shares`.
fn managed(rest: &str) -> bool {
    let first = rest.split('/').next().unwrap_or_default();
    matches!(first, "sites" | "invitations" | "shares")
}

impl<'a> TrackerFile<'a> {
    /// The tracker file `path` names: the loader `p.js` (which sites' tags name, so its
    /// address never changes), content-hashed files `NAME.HASH.js|wasm` (the wasm, the pinned
    /// loader, modules loaded later) and the build's `manifest.json`; `pathlight.js` and
    /// `pathlight_bg.wasm` are the earlier names.
    pub fn named(path: &'a str) -> Option<TrackerFile<'a>> {
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
            "p.js" | "manifest.json" | "pathlight.js" | "pathlight_bg.wasm" => Some(TrackerFile {
                name,
                hashed: false,
            }),
            n if hashed(n) => Some(TrackerFile {
                name: n,
                hashed: true,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route<'a>(method: &str, path: &'a str) -> Route<'a> {
        Route::of(&method.parse().unwrap(), path, "/_pl")
    }

    #[test]
    fn the_tracker_and_the_batch_endpoint_are_also_under_the_prefix_and_nothing_else() {
        for path in ["/v1/batch", "/_pl/v1/batch"] {
            assert_eq!(route("POST", path), Route::Batch);
            assert_eq!(route("OPTIONS", path), Route::BatchPreflight);
        }
        for path in ["/v1/identify", "/_pl/v1/identify"] {
            assert_eq!(route("POST", path), Route::Identify);
            assert_eq!(route("OPTIONS", path), Route::BatchPreflight);
        }
        for path in ["/v1/identify", "/_pl/v1/batch"] {
            assert_eq!(
                route("GET", path),
                Route::MethodNotAllowed("OPTIONS, POST"),
                "{path}"
            );
        }
        let loader = Route::Tracker(TrackerFile {
            name: "p.js",
            hashed: false,
        });
        assert_eq!(route("GET", "/_pl/p.js"), loader);
        assert_eq!(route("HEAD", "/p.js"), loader);
        assert_eq!(
            route("GET", "/_pl/p.0123abcd.wasm"),
            Route::Tracker(TrackerFile {
                name: "p.0123abcd.wasm",
                hashed: true,
            })
        );
        for path in [
            "/_pl/metrics",
            "/_pl/api/v1/stats",
            "/_pl/index.html",
            "/_pl/v1/relay",
        ] {
            assert_eq!(route("GET", path), Route::NotFound, "{path}");
        }
        // A prefix is a whole path segment.
        assert_eq!(route("GET", "/_plx/p.js"), Route::Static("/_plx/p.js"));
        assert_eq!(route("POST", "/p.js"), Route::NotFound);
    }

    #[test]
    fn api_routes_are_typed_and_the_rest_reads_www() {
        assert_eq!(
            route("GET", "/api/v1/heatmap"),
            Route::Query(Endpoint::Heatmap)
        );
        assert_eq!(
            route("GET", "/api/v1/sessions/s1"),
            Route::Query(Endpoint::Session("s1"))
        );
        assert_eq!(
            route("GET", "/api/v1/users/u1/events"),
            Route::Query(Endpoint::UserEvents("u1"))
        );
        for path in ["/api/v1/nope", "/api/v1/sessions/", "/api/v1/sessions/a/b"] {
            assert_eq!(
                route("GET", path),
                Route::Query(Endpoint::Unknown),
                "{path}"
            );
        }
        assert_eq!(Endpoint::of("users/u1/events").label(), "user_events");
        assert_eq!(Endpoint::of("live-token").label(), "live-token");
        assert_eq!(route("GET", "/api/v1/openapi.json"), Route::OpenApi);
        for (method, path) in [
            ("GET", "/api/v1/sites"),
            ("POST", "/api/v1/sites"),
            ("PATCH", "/api/v1/sites/shop"),
            ("DELETE", "/api/v1/sites/shop/keys/k1"),
            ("POST", "/api/v1/invitations/accept"),
        ] {
            assert_eq!(
                route(method, path),
                Route::Manage(&path["/api/v1/".len()..]),
                "{method} {path}"
            );
        }
        assert_eq!(route("GET", "/api/v1/site"), Route::Query(Endpoint::Site));
        assert_eq!(
            route("GET", "/api/v1/sitesx"),
            Route::Query(Endpoint::Unknown)
        );
        assert_eq!(route("GET", "/api/v1/export"), Route::Export);
        assert_eq!(
            route("GET", "/api/v1/realtime/stream"),
            Route::RealtimeStream
        );
        assert_eq!(route("GET", "/api/v1/realtime/ws"), Route::RealtimeWs);
        for (method, path) in [
            ("HEAD", "/api/v1/stats"),
            ("TRACE", "/api/v1/sessions/s1"),
            ("DELETE", "/api/v1/users/u1/events"),
            ("PUT", "/api/v1/openapi.json"),
            ("POST", "/api/v1/export"),
            ("QUERY", "/api/v1/realtime/ws"),
            ("PATCH", "/healthz"),
            ("POST", "/readyz"),
            ("HEAD", "/metrics"),
        ] {
            assert_eq!(
                route(method, path),
                Route::MethodNotAllowed("GET"),
                "{method} {path}"
            );
        }
        assert_eq!(route("GET", "/api/v1/site"), Route::Query(Endpoint::Site));
        for (method, path, rest) in [
            ("GET", "/api/v1/sites", "sites"),
            (
                "PATCH",
                "/api/v1/sites/shop/members/a1",
                "sites/shop/members/a1",
            ),
            ("POST", "/api/v1/invitations/accept", "invitations/accept"),
            ("HEAD", "/api/v1/shares/open", "shares/open"),
        ] {
            assert_eq!(route(method, path), Route::Manage(rest), "{method} {path}");
        }
        assert_eq!(route("GET", "/_pl/api/v1/sites"), Route::NotFound);
        assert_eq!(route("GET", "/v1/relay"), Route::MethodNotAllowed("POST"));
        assert_eq!(
            route("GET", "/v1/relay/users"),
            Route::MethodNotAllowed("POST")
        );
        assert_eq!(route("POST", "/api/v1/nope"), Route::NotFound);
        assert_eq!(route("POST", "/v1/relay"), Route::Relay);
        assert_eq!(route("POST", "/v1/relay/users"), Route::RelayUsers);
        assert_eq!(route("GET", "/v1/relay/salts"), Route::RelaySalts);
        assert_eq!(route("GET", "/healthz"), Route::Health);
        assert_eq!(route("GET", "/readyz"), Route::Ready);
        assert_eq!(route("GET", "/metrics"), Route::Metrics);
        assert_eq!(
            route("GET", "/heatmap.html"),
            Route::Static("/heatmap.html")
        );
        assert_eq!(route("DELETE", "/heatmap.html"), Route::NotFound);
    }

    #[test]
    fn tracker_names_are_the_loader_the_manifest_and_hashed_files() {
        let named = |p| TrackerFile::named(p).map(|f| (f.name, f.hashed));
        assert_eq!(named("/manifest.json"), Some(("manifest.json", false)));
        assert_eq!(named("/pathlight.js"), Some(("pathlight.js", false)));
        assert_eq!(
            named("/loader.0123abcd.js"),
            Some(("loader.0123abcd.js", true))
        );
        for path in [
            "/loader.0123ABCD.js",
            "/loader.0123abc.js",
            "/Loader.0123abcd.js",
            "/loader.0123abcd.css",
            "/a.0123abcd.b.js",
            "/x/p.js",
            "p.js",
        ] {
            assert_eq!(named(path), None, "{path}");
        }
    }
}
