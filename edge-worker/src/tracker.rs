//! The tracker's files, served first-party: with the worker on a route of the site's own zone
//! (`shop.example.com/_pl/*`), the page loads `{prefix}/p.js` from its own host, the loader
//! fetches the wasm beside it and posts to `{prefix}/v1/batch`, so no request leaves for a
//! host a block list could name.
//!
//! The files are the tracker build's (`target/tracker`), uploaded as the worker's static
//! assets (`scripts/build-worker.sh` lays them out, `[assets]` in `wrangler.toml`). Every
//! request comes to the worker first, which fetches the file from the `ASSETS` binding (that
//! answers `If-None-Match` with `304` from the content's ETag) and sets the caching and
//! cross-origin headers itself, so they do not depend on where the prefix is.

use crate::settings::ASSETS;
use worker::{Env, Headers, Method, Request, RequestInit, Response, Result};

/// The loader's name under the prefix; it names the content-hashed files it loads.
pub const LOADER: &str = "p.js";

/// How long a browser may keep a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caching {
    /// The loader: its URL is the one the site embeds, so a new build must reach browsers
    /// within minutes; revalidated by ETag after that.
    Loader,
    /// A content-hashed file (`p.1a2b3c4d.wasm`): a new build has a new name, so it never
    /// changes.
    Immutable,
}

impl Caching {
    fn header(self) -> &'static str {
        match self {
            Caching::Loader => "public, max-age=300",
            Caching::Immutable => "public, max-age=31536000, immutable",
        }
    }
}

/// The tracker file `name` (a path under the prefix, without its `/`) is, if any: the loader,
/// or a content-hashed file of the build, `^[a-z]+\.[0-9a-f]{8,}\.(js|wasm)$`. Everything else
/// (the build's manifest among them) is not served.
pub fn caching(name: &str) -> Option<Caching> {
    if name == LOADER {
        return Some(Caching::Loader);
    }
    let mut parts = name.split('.');
    let (Some(stem), Some(hash), Some(ext), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let hashed = !stem.is_empty()
        && stem.bytes().all(|b| b.is_ascii_lowercase())
        && hash.len() >= 8
        && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && matches!(ext, "js" | "wasm");
    hashed.then_some(Caching::Immutable)
}

/// Answers a GET or HEAD of the tracker file `name` from the `ASSETS` binding.
pub async fn serve(req: &Request, env: &Env, name: &str, caching: Caching) -> Result<Response> {
    let Ok(assets) = env.assets(ASSETS) else {
        return Ok(Response::from_json(&serde_json::json!({
            "error": format!("the {ASSETS} binding is missing ([assets] in wrangler.toml)"),
            "reason": "misconfigured",
        }))?
        .with_status(500));
    };
    let conditional = Headers::new();
    if let Some(tag) = req.headers().get("If-None-Match")? {
        conditional.set("If-None-Match", &tag)?;
    }
    let mut init = RequestInit::new();
    init.with_method(req.method()).with_headers(conditional);
    // The assets binding looks only at the path.
    let found = assets
        .fetch(format!("https://assets.invalid/{name}"), Some(init))
        .await?;
    let status = found.status_code();
    if status == 404 {
        return Ok(Response::from_json(&serde_json::json!({
            "error": format!("{name} is not in this deployment's tracker build"),
            "reason": "not_found",
        }))?
        .with_status(404));
    }
    // A fetched response's headers are immutable: the answer gets its own.
    let headers = Headers::new();
    for (k, v) in found.headers().entries() {
        headers.append(&k, &v)?;
    }
    headers.set("Cache-Control", caching.header())?;
    if status == 200 {
        let content_type = if name.ends_with(".wasm") {
            // What WebAssembly.compileStreaming insists on.
            "application/wasm"
        } else {
            "text/javascript; charset=utf-8"
        };
        headers.set("Content-Type", content_type)?;
    }
    // Any page may load the tracker (a script or a fetch of the wasm, from another origin
    // too, as the npm package's users do), and a page isolated with COEP may embed it.
    headers.set("Access-Control-Allow-Origin", "*")?;
    headers.set("Cross-Origin-Resource-Policy", "cross-origin")?;
    headers.set("X-Content-Type-Options", "nosniff")?;
    let (_, body) = found.into_parts();
    let body = if req.method() == Method::Head || status == 304 {
        worker::ResponseBody::Empty
    } else {
        body
    };
    Ok(Response::builder()
        .with_status(status)
        .with_headers(headers)
        .body(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_loader_and_hashed_files_are_served() {
        assert_eq!(caching("p.js"), Some(Caching::Loader));
        for name in [
            "p.1a2b3c4d.wasm",
            "p.5e6f7a8b.js",
            "chunk.0123456789abcdef.js",
        ] {
            assert_eq!(caching(name), Some(Caching::Immutable), "{name}");
        }
        for name in [
            "manifest.json",
            "p.1a2b3c4.wasm",
            "p.1A2B3C4D.wasm",
            "P.1a2b3c4d.wasm",
            "p.1a2b3c4d.css",
            "p.1a2b3c4d.wasm.map",
            ".1a2b3c4d.js",
            "sub/p.1a2b3c4d.js",
            "p2.1a2b3c4d.js",
            "pathlight_bg.wasm",
            "",
        ] {
            assert_eq!(caching(name), None, "{name}");
        }
    }
}
