//! What operators and clients read about the collector itself: `/healthz` (liveness: the
//! process answers), `/readyz` (readiness: it can take writes, and each component's state),
//! `/metrics` (OpenMetrics text) and the query API's OpenAPI document.

use crate::http::App;
use crate::http::response::{Resp, full, json};
use http::{HeaderValue, Response, StatusCode, header};

/// `GET /healthz`: the process answers. Nothing else is checked: a liveness probe that
/// failed while ClickHouse is away would restart every collector for an outage a restart
/// cannot fix.
pub fn health() -> Resp {
    json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: 200 while the collector can take writes, 503 while the component they need
/// is unreachable or it is shutting down; the body names each component's state either way
/// (`pipeline/readiness.rs`).
pub fn ready(app: &App) -> Resp {
    let readiness = app.pipeline.readiness();
    let status = if readiness.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, &readiness)
}

/// `GET /metrics`.
pub fn metrics(app: &App) -> Resp {
    app.pipeline.refresh_gauges();
    app.metrics()
        .websocket_connections
        .set(*app.websockets.borrow() as i64);
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
