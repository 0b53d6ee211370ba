//! `GET /api/v1/realtime/ws`: the handshake of the live feed over a WebSocket. Authorized as
//! the other live feed is; once hyper has written the `101` and handed the connection over, the
//! session is `http/ws.rs`'s. A site past `live.max_connections_per_site` sessions is refused
//! after the upgrade, not with an HTTP status: a browser's WebSocket reports a refused
//! handshake as a bare failure (1006), but reads an `error` message and a close code.

use super::query::{refused, throttled};
use crate::http::error::ApiError;
use crate::http::response::empty;
use crate::http::ws::TRY_AGAIN_LATER;
use crate::http::{App, Resp, client_ip, header_str};
use crate::query::QueryError;
use http::{HeaderValue, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    let signed_in = super::auth::signed_in(app, &req);
    let auth = crate::query::Caller {
        authorization: header_str(h, header::AUTHORIZATION),
        account: signed_in.as_ref(),
        share: None,
    };
    let site = match app.query.live_site(req.uri().query().unwrap_or(""), auth) {
        Ok(site) => site,
        Err(e) => return refused(app, ip, e),
    };
    let slot = SiteSlot::take(app, &site);
    if slot.is_none() {
        app.metrics().websocket_refused.inc();
    }
    let session = crate::http::ws::Session {
        site,
        stats: app.query.clone(),
        heartbeat: Duration::from_millis(app.opts.live.heartbeat_ms),
        feed: app.pipeline.subscribe(),
        stopping: app.pipeline.stopping(),
        bad_messages: app.metrics().websocket_bad_messages.clone(),
    };
    let cap = app.opts.live.max_connections_per_site;
    // Resolves once hyper has written the 101 below and handed the connection over.
    let upgrade = hyper::upgrade::on(&mut req);
    let open = WebSocketOpen::new(&app.websockets);
    tokio::spawn(async move {
        let _open = open;
        let io = match upgrade.await {
            Ok(upgraded) => TokioIo::new(upgraded),
            Err(e) => return tracing::debug!(error = %e, "WebSocket upgrade failed"),
        };
        match slot {
            Some(_slot) => crate::http::ws::run(io, session).await,
            None => {
                let why = format!("the site has {cap} live sessions open, the most allowed");
                crate::http::ws::refuse(io, "too_many_connections", TRY_AGAIN_LATER, &why).await
            }
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

/// One of a site's `live.max_connections_per_site` sessions, held while its session runs.
struct SiteSlot {
    open: Arc<Mutex<HashMap<String, usize>>>,
    site: String,
}

impl SiteSlot {
    /// A slot of `site`, or none when all are taken.
    fn take(app: &App, site: &str) -> Option<SiteSlot> {
        let mut open = app
            .websockets_per_site
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let n = open.entry(site.to_owned()).or_default();
        if *n >= app.opts.live.max_connections_per_site {
            return None;
        }
        *n += 1;
        Some(SiteSlot {
            open: app.websockets_per_site.clone(),
            site: site.to_owned(),
        })
    }
}

impl Drop for SiteSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.site) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.site);
            }
        }
    }
}
