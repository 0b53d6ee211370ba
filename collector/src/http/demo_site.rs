//! The demo site's listener (`demo_listen`): an origin of its own, as a customer's site is, so
//! that nothing its pages run can reach the dashboards' origin — their token in session
//! storage, their DOM, the query API with the browser's credentials. It serves the demo's pages
//! and assets at `/demo/` and nothing else.
//!
//! The pages embed the tracker as a site on another host does, from the collector:
//! `<script async src="http://127.0.0.1:8080/p.js" …>`, the collector as `make demo` runs it.
//! Served for a collector elsewhere (another port, `localhost`, TLS), that origin is replaced
//! in each page by the collector's own, the host the page was asked for with the collector's
//! port, and the page's CSP names it.

use crate::http::error::ApiError;
use crate::http::response::empty;
use crate::http::routes::files::dir_file;
use crate::http::{App, ReqBody, Resp};
use http::{HeaderValue, Method, Request, StatusCode, header};

/// The collector's origin as the demo's pages are written.
const WRITTEN: &str = "http://127.0.0.1:8080";

/// Answers one request on the demo site's listener.
pub async fn handle<B: ReqBody>(app: &App, req: Request<B>) -> Resp {
    let path = req.uri().path();
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let mut r = if read && path == "/" {
        let mut r = empty(StatusCode::FOUND);
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/demo/"));
        r
    } else if let (Some(rest), Some(dir), true) = (
        path.strip_prefix("/demo")
            .filter(|rest| rest.is_empty() || rest.starts_with('/')),
        &app.opts.demo_dir,
        read,
    ) {
        let collector = collector_origin(app, &req);
        let csp = format!(
            "default-src 'self'; script-src 'self' {collector} 'wasm-unsafe-eval'; \
             style-src 'self'; img-src 'self' data:; connect-src 'self' {collector}; \
             object-src 'none'; base-uri 'none'; form-action 'self'"
        );
        let mut r = dir_file(dir, rest, path, Some((WRITTEN, &collector)))
            .await
            .unwrap_or_else(|| ApiError::NotFound.response());
        if let Ok(v) = HeaderValue::from_str(&csp) {
            r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
        }
        r
    } else {
        ApiError::NotFound.response()
    };
    crate::http::security::common(r.headers_mut());
    r
}

/// The collector's origin for a page asked for at the request's host: that host (a name or
/// address, checked to be one) with the collector's own port.
fn collector_origin<B>(app: &App, req: &Request<B>) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .unwrap_or("127.0.0.1");
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().map(|a| format!("[{a}]")),
        None => host.split(':').next().map(str::to_owned),
    }
    .filter(|n| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    })
    .unwrap_or_else(|| "127.0.0.1".to_owned());
    let scheme = if app.opts.tls.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{name}:{}", app.opts.collector_port)
}
