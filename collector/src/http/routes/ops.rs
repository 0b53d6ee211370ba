//! What operators and clients read about the collector itself: `/healthz`, `/metrics`
//! (OpenMetrics text) and the query API's OpenAPI document.

use crate::http::App;
use crate::http::response::{Resp, full, json};
use http::{HeaderValue, Response, StatusCode, header};

/// `GET /healthz`: the process answers.
pub fn health() -> Resp {
    json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

/// `GET /metrics`.
pub fn metrics(app: &App) -> Resp {
    let mut r = Response::new(full(app.pipeline.metrics().encode()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

/// The OpenAPI document of `/api/v1`.
pub fn openapi() -> Resp {
    let mut r = Response::new(full(crate::query::OPENAPI));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
