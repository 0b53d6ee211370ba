//! `POST /v1/batch` and its CORS preflight: a tracker's batch, from a site's pages on any
//! origin the site lists. The body is read under the shared limits (`body.rs`), described as
//! an [`IngestRequest`] and handed to the pipeline, whose acknowledgement is the answer:
//! `204`, `208` for a batch already stored, `200` listing the events refused beside stored
//! ones, or the refusal's status.

use crate::dates::now_ms;
use crate::error::IngestError;
use crate::http::body::checked_body;
use crate::http::error::ApiError;
use crate::http::response::{empty, json};
use crate::http::{App, ReqBody, Resp, client_ip, header_str};
use crate::pipeline::IngestRequest;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use pathlight_ingest::rules;
use std::net::SocketAddr;

/// Answers a batch.
pub async fn batch<B: ReqBody>(app: &App, peer: SocketAddr, req: Request<B>) -> Resp {
    match read_and_ingest(app, peer, req).await {
        Ok(ack) if ack.duplicate => empty(StatusCode::ALREADY_REPORTED),
        Ok(ack) if ack.rejected.is_empty() => empty(StatusCode::NO_CONTENT),
        Ok(ack) => json(StatusCode::OK, &ack),
        Err(e) => ApiError::from(e).response(),
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
    let (parts, body) = req.into_parts();
    // Gzip bodies are inflated by the pipeline (`pathlight_ingest::gzip`), under the same cap.
    let (body, _held) = checked_body(app, peer.ip(), &parts.headers, body, max, true)
        .await
        .map_err(early)?;
    let h = &parts.headers;
    let site = rules::site_param(parts.uri.query());
    let opts = &app.opts;
    let request = IngestRequest {
        body: &body,
        content_type: header_str(h, header::CONTENT_TYPE),
        content_encoding: header_str(h, header::CONTENT_ENCODING),
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
        key: pathlight_ingest::keys::presented(
            header_str(h, "x-api-key"),
            header_str(h, header::AUTHORIZATION),
        ),
    };
    app.pipeline.ingest(request).await
}

/// The CORS preflight of a batch.
pub fn preflight() -> Resp {
    let mut r = empty(StatusCode::NO_CONTENT);
    for (name, value) in rules::PREFLIGHT_HEADERS {
        r.headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    r
}

/// CORS headers of a batch's answer: the page's origin when the site lists it.
pub fn cors(app: &App, origin: Option<&str>, h: &mut HeaderMap) {
    for (name, value) in rules::cors_headers(origin, |o| app.pipeline.origin_allowed(o)) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
}
