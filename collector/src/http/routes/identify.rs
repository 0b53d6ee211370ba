//! `POST /v1/identify`: a site names one of its users and their traits, from a page of one of
//! its origins (the tracker's `pathlight.identify`) or from its server with an ingest key. The
//! body is read under the shared limits (`body.rs`) and handed to the pipeline; `204` once the
//! traits are stored (or, without traits, once the request is found valid), else the
//! refusal's status and JSON reason.

use crate::dates::now_ms;
use crate::error::IngestError;
use crate::http::body::checked_body;
use crate::http::error::ApiError;
use crate::http::response::empty;
use crate::http::{App, ReqBody, Resp, client_ip, header_str};
use crate::pipeline::IdentifyRequest;
use http::{Request, StatusCode, header};
use pathlight_ingest::{identify, rules};
use std::net::SocketAddr;

/// Answers an identify.
pub async fn identify<B: ReqBody>(app: &App, peer: SocketAddr, req: Request<B>) -> Resp {
    match read_and_identify(app, peer, req).await {
        Ok(()) => empty(StatusCode::NO_CONTENT),
        Err(e) => ApiError::from(e).response(),
    }
}

async fn read_and_identify<B: ReqBody>(
    app: &App,
    peer: SocketAddr,
    req: Request<B>,
) -> Result<(), IngestError> {
    let received_at = now_ms();
    // Refusals before the pipeline runs are counted as the pipeline counts its own.
    let early = |e: IngestError| {
        app.pipeline
            .metrics()
            .identify_requests
            .get_or_create(&crate::metrics::ReasonLabel { reason: e.reason() })
            .inc();
        e
    };
    let (parts, body) = req.into_parts();
    let max = identify::MAX_BYTES;
    let (body, _held) = checked_body(app, peer.ip(), &parts.headers, body, max, false)
        .await
        .map_err(early)?;
    let h = &parts.headers;
    let site = rules::site_param(parts.uri.query());
    app.pipeline
        .identify(IdentifyRequest {
            body: &body,
            content_type: header_str(h, header::CONTENT_TYPE),
            site: site.as_deref(),
            origin: header_str(h, header::ORIGIN),
            ip: Some(client_ip(&app.opts, peer, h)),
            key: pathlight_ingest::keys::presented(
                header_str(h, "x-api-key"),
                header_str(h, header::AUTHORIZATION),
            ),
            received_at,
        })
        .await
}
