//! `GET /api/v1/…`: the query API's answers, JSON (`Route::Query`) or streamed (`export`, the
//! live feed as Server-Sent Events). The query API checks the token and reads ClickHouse; this
//! file finds who asks (the session cookie's account, a shared link's share) and adds what is
//! HTTP's: the throttle on addresses that send wrong tokens, CORS for the
//! live overlay's reads from a site's own pages, and the streamed bodies' content types.

use crate::http::error::ApiError;
use crate::http::response::{Resp, json_bytes};
use crate::http::router::Route;
use crate::http::{App, client_ip, header_str};
use crate::query::auth::share_token_id;
use crate::query::{Caller, Endpoint, QueryError};
use crate::storage::clickhouse::access::ShareRow;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use std::net::{IpAddr, SocketAddr};

/// A JSON answer of `endpoint`.
pub async fn answer<B>(
    app: &App,
    peer: SocketAddr,
    endpoint: Endpoint<'_>,
    req: &Request<B>,
) -> Resp {
    let ip = client_ip(&app.opts, peer, req.headers());
    if let Some(e) = throttled(app, ip) {
        return e.response();
    }
    let signed_in = super::auth::signed_in(app, req);
    let query = req.uri().query().unwrap_or("");
    let share = shared(app, req, query);
    let auth = Caller {
        authorization: header_str(req.headers(), header::AUTHORIZATION),
        account: signed_in.as_ref(),
        share: share.as_ref().map(|(token, row)| (token.as_str(), row)),
    };
    // `viewer-check` takes a viewer token only; `heatmap` and `elements` an overlay token, a
    // shared link's read token or the API token.
    let token = crate::query::token_param(query);
    let overlay = token.is_some_and(|t| share_token_id(&t).is_none());
    if endpoint == Endpoint::ViewerCheck
        || matches!(endpoint, Endpoint::Heatmap | Endpoint::Elements) && overlay
    {
        return overlay_answer(app, ip, endpoint, query, req).await;
    }
    match app.query.handle(endpoint, query, auth).await {
        Ok(answer) => answered(answer),
        Err(e) => {
            if matches!(e, QueryError::Storage(_)) {
                tracing::warn!(error = %e, endpoint = endpoint.label(), "query failed");
            }
            refused(app, ip, e)
        }
    }
}

/// A shared link's read token the request carries (`Authorization: Bearer`, or `?token=`) and
/// its share, when the share still stands; the query API checks the token's signature and the
/// share's scope.
fn shared<B>(app: &App, req: &Request<B>, query: &str) -> Option<(String, ShareRow)> {
    let accounts = app.opts.accounts.as_deref()?;
    let bearer = header_str(req.headers(), header::AUTHORIZATION)
        .map(str::trim)
        .and_then(|a| a.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim_start().to_owned());
    let token = bearer
        .filter(|t| share_token_id(t).is_some())
        .or_else(|| crate::query::token_param(query))?;
    let share = accounts.live_share(share_token_id(&token)?)?;
    Some((token, share))
}

/// Streamed answers: raw events (`export`) and the live event feed (`realtime/stream`).
pub async fn stream<B>(app: &App, peer: SocketAddr, route: Route<'_>, req: &Request<B>) -> Resp {
    let ip = client_ip(&app.opts, peer, req.headers());
    if let Some(e) = throttled(app, ip) {
        return e.response();
    }
    let signed_in = super::auth::signed_in(app, req);
    let auth = Caller {
        authorization: header_str(req.headers(), header::AUTHORIZATION),
        account: signed_in.as_ref(),
        share: None,
    };
    let query = req.uri().query().unwrap_or("");
    let answer = if route == Route::Export {
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
        Err(e) => refused(app, ip, e),
    }
}

/// The refusal of a query-API request from an address that sent too many wrong tokens lately:
/// 429 until its window ends, whatever token it sends now, so guessing stops there.
pub(crate) fn throttled(app: &App, ip: IpAddr) -> Option<ApiError> {
    let wait = app
        .opts
        .security
        .throttle
        .blocked(ip, std::time::Instant::now())?;
    app.metrics().api_throttled.inc();
    Some(ApiError::Throttled(wait))
}

/// The answer to a refused query-API request; a missing or wrong token is counted against
/// the address (see [`throttled`]), logged and counted per site.
pub(crate) fn refused(app: &App, ip: IpAddr, e: QueryError) -> Resp {
    if let QueryError::Unauthorized(site) = &e {
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
    ApiError::from(e).response()
}

/// A query's JSON answer, carrying where it came from for the latency histogram
/// (`http::handle`).
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
    endpoint: Endpoint<'_>,
    query: &str,
    req: &Request<B>,
) -> Resp {
    let origin = header_str(req.headers(), header::ORIGIN);
    let mut r = match app.query.overlay(endpoint, query, origin).await {
        Ok(answer) => answered(answer),
        Err(e) => refused(app, ip, e),
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
