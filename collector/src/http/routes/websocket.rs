//! `GET /api/v1/realtime/ws`: the handshake of the live feed over a WebSocket. Authorized as
//! the other live feed is; once hyper has written the `101` and handed the connection over, the
//! session is `http/ws.rs`'s.

use super::query::{refused, throttled};
use crate::http::error::ApiError;
use crate::http::response::empty;
use crate::http::{App, Resp, client_ip, header_str};
use crate::query::QueryError;
use http::{HeaderValue, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;

/// `realtime/ws`: the live feed over a WebSocket (`ws.rs`). Only HTTP/1.1 upgrades: HTTP/2
/// and HTTP/3 clients read `realtime/stream`.
pub fn open<B>(app: &App, peer: SocketAddr, mut req: Request<B>) -> Resp {
    let ip = client_ip(&app.opts, peer, req.headers());
    if let Some(e) = throttled(app, ip) {
        return e.response();
    }
    let h = req.headers();
    let has = |name: header::HeaderName, token: &str| {
        h.get_all(name).iter().any(|v| {
            v.to_str()
                .unwrap_or("")
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    };
    let key = header_str(h, header::SEC_WEBSOCKET_KEY).map(str::to_owned);
    let handshake = req.version() == http::Version::HTTP_11
        && has(header::UPGRADE, "websocket")
        && has(header::CONNECTION, "upgrade")
        && header_str(h, header::SEC_WEBSOCKET_VERSION) == Some("13");
    let Some(key) = key.filter(|_| handshake) else {
        let e = QueryError::BadParam {
            param: "upgrade",
            detail: "expected a WebSocket handshake (HTTP/1.1, Upgrade: websocket, Sec-WebSocket-Version: 13, Sec-WebSocket-Key)".into(),
        };
        return ApiError::from(e).response();
    };
    let auth = header_str(h, header::AUTHORIZATION);
    let site = match app.query.live_site(req.uri().query().unwrap_or(""), auth) {
        Ok(site) => site,
        Err(e) => return refused(app, ip, e),
    };
    let (feed, stopping) = (app.pipeline.subscribe(), app.pipeline.stopping());
    // Resolves once hyper has written the 101 below and handed the connection over.
    let upgrade = hyper::upgrade::on(&mut req);
    let open = WebSocketOpen::new(&app.websockets);
    tokio::spawn(async move {
        let _open = open;
        match upgrade.await {
            Ok(upgraded) => {
                crate::http::ws::run(TokioIo::new(upgraded), site, feed, stopping).await
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    let mut r = empty(StatusCode::SWITCHING_PROTOCOLS);
    let headers = r.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(v) = HeaderValue::from_str(&crate::http::ws::accept_key(&key)) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

/// Counts one WebSocket session in [`App::websockets`] from the 101 until its task ends.
struct WebSocketOpen(tokio::sync::watch::Sender<usize>);

impl WebSocketOpen {
    fn new(count: &tokio::sync::watch::Sender<usize>) -> Self {
        count.send_modify(|n| *n += 1);
        Self(count.clone())
    }
}

impl Drop for WebSocketOpen {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}
