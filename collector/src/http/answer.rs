//! Which handler answers a listener's requests: the demo site's on the demo site's own
//! listener (`demo_site.rs`), the collector's (`http::handle`) everywhere else. Both
//! listeners (`listener.rs`, `quic.rs`) call it; it sits above the two handlers so that
//! neither imports the other.

use crate::http::{App, ReqBody, Resp, handle};
use http::Request;
use std::net::SocketAddr;

/// Answers one request of any transport.
pub async fn answer<B: ReqBody>(app: &App, peer: SocketAddr, req: Request<B>) -> Resp {
    if app.opts.demo_site {
        crate::http::demo_site::handle(app, req).await
    } else {
        handle(app, peer, req).await
    }
}
