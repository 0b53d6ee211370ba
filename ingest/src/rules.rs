//! The HTTP rules of `/v1/batch` that come before the body is decoded, shared so the collector
//! and the edge worker answer browsers and bad requests alike: refusals from the headers alone,
//! the `?site=` parameter, and the CORS headers.

use crate::error::IngestError;
use pathlight_wire::WireError;

/// Refusals the headers alone decide, before any of the body is read: a declared length over
/// `max_bytes` (so a client cannot make us buffer more than the limit), or a compressed body
/// other than gzip on a route that inflates it (`gzip`: batches, under a cap,
/// [`crate::gzip`]); other routes take uncompressed bodies only.
pub fn precheck(
    content_length: Option<&str>,
    content_encoding: Option<&str>,
    max_bytes: usize,
    gzip: bool,
) -> Result<(), IngestError> {
    if let Some(size) = content_length
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > max_bytes)
    {
        return Err(too_large(size, max_bytes));
    }
    let accepted = |e: &&str| {
        e.trim().eq_ignore_ascii_case("identity") || gzip && crate::gzip::is_gzip_encoding(e)
    };
    if let Some(enc) = content_encoding.filter(|e| !accepted(e)) {
        return Err(IngestError::UnsupportedEncoding(enc.to_owned()));
    }
    Ok(())
}

/// A body of `size` bytes over the `max_bytes` limit.
pub fn too_large(size: usize, max_bytes: usize) -> IngestError {
    IngestError::Wire(WireError::TooLarge {
        size,
        max: max_bytes,
    })
}

/// An ISO 3166-1 alpha-2 country code as a proxy or CDN reports it (`CF-IPCountry`,
/// `request.cf.country`), upper case; none for `XX` (unknown), `T1` (Tor) and anything else
/// that is not two letters.
pub fn country_code(v: &str) -> Option<String> {
    let v = v.trim();
    (v.len() == 2 && v.bytes().all(|b| b.is_ascii_alphabetic()) && !v.eq_ignore_ascii_case("xx"))
        .then(|| v.to_ascii_uppercase())
}

/// `?site=` of a query string.
pub fn site_param(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "site")
        .map(|(_, v)| v.into_owned())
}

/// Headers of the answer to a preflight. Browsers send one only for JSON posts; the tracker's
/// raw-bytes beacon needs none.
pub const PREFLIGHT_HEADERS: [(&str, &str); 3] = [
    ("access-control-allow-methods", "POST, OPTIONS"),
    ("access-control-allow-headers", "content-type"),
    ("access-control-max-age", "86400"),
];

/// CORS headers for an answer to `origin`: an allowed origin is echoed with credentials
/// allowed, because `sendBeacon` always sends in credentials mode "include" and the browser
/// discards answers without these headers. `Vary: Origin` always, for caches.
pub fn cors_headers(
    origin: Option<&str>,
    allowed: impl Fn(&str) -> bool,
) -> Vec<(&'static str, String)> {
    let mut h = vec![("vary", "Origin".to_owned())];
    if let Some(origin) = origin.filter(|o| allowed(o)) {
        h.push(("access-control-allow-origin", origin.to_owned()));
        h.push(("access-control-allow-credentials", "true".to_owned()));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_refuse_before_the_body() {
        assert_eq!(
            precheck(Some("11"), None, 10, true).unwrap_err().status(),
            413
        );
        assert_eq!(
            precheck(Some("10"), Some("gzip"), 10, false)
                .unwrap_err()
                .status(),
            415
        );
        assert!(precheck(Some("10"), Some(" GZip"), 10, true).is_ok());
        assert!(precheck(Some("10"), Some("x-gzip"), 10, true).is_ok());
        let br = precheck(Some("10"), Some("br"), 10, true).unwrap_err();
        assert_eq!(
            (br.status().as_u16(), br.reason()),
            (415, "unsupported_encoding")
        );
        assert!(precheck(Some("x"), Some("Identity"), 10, false).is_ok());
        assert_eq!(
            site_param(Some("a=1&site=sh%20op")).as_deref(),
            Some("sh op")
        );
        assert_eq!(country_code(" de ").as_deref(), Some("DE"));
        assert_eq!(
            [country_code("XX"), country_code("T1"), country_code("DEU")],
            [None, None, None]
        );
        assert_eq!(cors_headers(Some("https://a"), |_| false).len(), 1);
        assert_eq!(cors_headers(Some("https://a"), |_| true)[1].1, "https://a");
    }
}
