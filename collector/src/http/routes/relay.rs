//! `POST /v1/relay`, `POST /v1/relay/users` and `GET /v1/relay/salts`: edge workers in relay
//! mode post the rows they validated and enriched with the same `pathlight_ingest` code (and
//! the users' rows of the identifies they admitted), and fetch the visitor-id salts so that
//! they hash visitors as this collector does. Both need the relay token; without
//! one configured, the routes do not exist.

use crate::http::body::read_body;
use crate::http::error::ApiError;
use crate::http::response::{empty, full};
use crate::http::{App, ReqBody, Resp, header_str};
use http::{HeaderValue, Request, Response, StatusCode, header};
use pathlight_ingest::{IngestError, Layout};

/// Rows are at most a few kilobytes each and a relayed batch holds at most `max_events`.
const MAX_RELAY_BYTES: usize = 16 << 20;

/// The answer to a relay request without the relay token; none when it carries it.
fn relay_refusal<B>(app: &App, req: &Request<B>) -> Option<ApiError> {
    let Some(digest) = &app.opts.relay_token else {
        return Some(ApiError::NotFound);
    };
    let authorization = header_str(req.headers(), header::AUTHORIZATION);
    (!crate::query::auth::bearer_matches(digest, authorization))
        .then_some(ApiError::RelayUnauthorized)
}

/// `POST /v1/relay`: RowBinary rows an edge worker in relay mode validated and enriched, in
/// the layout its `Pathlight-Row-Layout` header names. Workers from before the header sent
/// layout 1: a collector upgraded before its workers reads them still.
pub async fn relay<B: ReqBody>(app: &App, req: Request<B>) -> Resp {
    if let Some(refusal) = relay_refusal(app, &req) {
        return refusal.response();
    }
    let layout = match header_str(req.headers(), pathlight_ingest::LAYOUT_HEADER) {
        None => Some(Layout::FIXED),
        Some(code) => code.trim().parse().ok().and_then(Layout::from_code),
    };
    let stored = match layout {
        None => Err(IngestError::Body(
            "rows of a layout this collector does not know; upgrade it before its edge workers"
                .into(),
        )),
        Some(layout) => match read_body(app, req.into_body(), MAX_RELAY_BYTES).await {
            Ok((body, _held)) => app.pipeline.relay(body.to_vec(), layout).await,
            Err(e) => Err(e),
        },
    };
    match stored {
        Ok(_) => empty(StatusCode::NO_CONTENT),
        Err(e) => {
            app.pipeline.metrics().reject(e.reason(), 1);
            ApiError::from(e).response()
        }
    }
}

/// `POST /v1/relay/users`: users' rows (`pathlight_ingest::write_user_rows`) of identifies an
/// edge worker in relay mode decoded and admitted; stored before the answer, as the
/// collector's own identifies are.
pub async fn users<B: ReqBody>(app: &App, req: Request<B>) -> Resp {
    if let Some(refusal) = relay_refusal(app, &req) {
        return refusal.response();
    }
    let stored = match read_body(app, req.into_body(), MAX_RELAY_BYTES).await {
        Ok((body, _held)) => match pathlight_ingest::read_user_rows(&body) {
            Ok(rows) => app.pipeline.store_users(&rows).await,
            Err(e) => Err(IngestError::Body(e.to_string())),
        },
        Err(e) => Err(e),
    };
    // Counted with the collector's own identifies, by outcome.
    let reason = stored.as_ref().map_or_else(|e| e.reason(), |()| "relayed");
    app.pipeline
        .metrics()
        .identify_requests
        .get_or_create(&crate::metrics::ReasonLabel { reason })
        .inc();
    match stored {
        Ok(()) => empty(StatusCode::NO_CONTENT),
        Err(e) => ApiError::from(e).response(),
    }
}

/// `GET /v1/relay/salts`: today's and yesterday's visitor-id salts (`day<TAB>hex` lines), so
/// relay workers hash visitors exactly as this collector does.
pub fn salts<B>(app: &App, req: &Request<B>) -> Resp {
    if let Some(refusal) = relay_refusal(app, req) {
        return refusal.response();
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
