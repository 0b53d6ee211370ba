//! Files: the tracker (`Route::Tracker`), for every site's pages, and `www/`, the dashboards
//! (`Route::Static`). The demo site's listener serves its pages through [`dir_file`] too.

use crate::http::response::{Resp, empty, full};
use crate::http::router::TrackerFile;
use crate::http::{HttpOptions, header_str};
use http::{HeaderValue, Request, Response, StatusCode, header};
use sha2::{Digest, Sha256};
use std::path::{Component, Path};

/// A tracker file, for pages of any origin: CORS and `Cross-Origin-Resource-Policy` open, so
/// a site's page may load it from here whatever its own policies. Content-hashed files are
/// cached for a year; the loader and the manifest for five minutes, then revalidated by ETag,
/// so a release reaches every site within minutes.
pub async fn tracker<B>(
    opts: &HttpOptions,
    TrackerFile { name, hashed }: TrackerFile<'_>,
    req: &Request<B>,
) -> Option<Resp> {
    let dir = opts.tracker_dir.as_ref()?;
    let name = match name {
        "pathlight.js" => "p.js".to_owned(),
        "pathlight_bg.wasm" => {
            let manifest = tokio::fs::read(dir.join("manifest.json")).await.ok()?;
            let m: serde_json::Value = serde_json::from_slice(&manifest).ok()?;
            m["wasm"].as_str()?.to_owned()
        }
        n => n.to_owned(),
    };
    let file = dir.join(&name);
    let bytes = tokio::fs::read(&file).await.ok()?;
    let etag = format!("\"{}\"", crate::hex::encode(&Sha256::digest(&bytes)[..12]));
    let fresh = header_str(req.headers(), header::IF_NONE_MATCH)
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut r = if fresh {
        empty(StatusCode::NOT_MODIFIED)
    } else {
        Response::new(full(bytes))
    };
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&file)),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if hashed {
            "public, max-age=31536000, immutable"
        } else {
            "public, max-age=300"
        }),
    );
    h.insert(header::ETAG, HeaderValue::from_str(&etag).ok()?);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Some(r)
}

/// A file of `www/`. The demo site has a listener of its own (`demo_site.rs`).
pub async fn www(opts: &HttpOptions, path: &str) -> Option<Resp> {
    dir_file(opts.www_dir.as_ref()?, path, path, None).await
}

/// What a static directory serves: pages and what they load. Never config, data or notes
/// (`pathlight.toml`, `layout.json`, `*.csv`) that may lie beside them.
const STATIC_EXTENSIONS: [&str; 12] = [
    "html", "css", "js", "mjs", "wasm", "svg", "png", "jpg", "gif", "webp", "ico", "woff2",
];

/// The file `rest` (`/…` or empty) names in `dir`, requested as `path`. Refused (none): `..`
/// and other non-normal components, hidden names, `\\` and `//` (a redirect to `//x/` would
/// leave the origin), and extensions not in [`STATIC_EXTENSIONS`]. A directory redirects to
/// its path with a `/` (so relative links in its index resolve), then serves its index. In an
/// HTML file, `replace` (what, with) is applied to the text.
pub async fn dir_file(
    dir: &Path,
    rest: &str,
    path: &str,
    replace: Option<(&str, &str)>,
) -> Option<Resp> {
    if !(rest.is_empty() || rest.starts_with('/')) || rest.contains('\\') || path.contains("//") {
        return None;
    }
    let rel = Path::new(rest.trim_start_matches('/'));
    let normal = |c: Component<'_>| match c {
        Component::Normal(name) => !name.as_encoded_bytes().starts_with(b"."),
        _ => false,
    };
    if !rel.components().all(normal) {
        return None;
    }
    let mut file = dir.join(rel);
    if rest.is_empty() || rest.ends_with('/') || tokio::fs::metadata(&file).await.ok()?.is_dir() {
        if !rest.ends_with('/') {
            // `path` starts with one `/` and has no `//`: the target stays on this origin.
            let mut r = empty(StatusCode::MOVED_PERMANENTLY);
            r.headers_mut().insert(
                header::LOCATION,
                HeaderValue::from_str(&format!("{path}/")).ok()?,
            );
            return Some(r);
        }
        file = file.join("index.html");
    }
    let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
    if !STATIC_EXTENSIONS.contains(&ext) {
        return None;
    }
    let mut bytes = tokio::fs::read(&file).await.ok()?;
    if let Some((what, with)) = replace.filter(|_| ext == "html") {
        bytes = String::from_utf8(bytes)
            .ok()?
            .replace(what, with)
            .into_bytes();
    }
    let mut r = Response::new(full(bytes));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&file)),
    );
    // Small files that change with every deploy: always revalidate.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(r)
}

/// The `Content-Type` of a file, by its extension.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        // Needed by WebAssembly.instantiateStreaming.
        "wasm" => "application/wasm",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
