//! What keeps a browser from being turned against the dashboards: the response headers every
//! answer gets ([`Security::headers`]) and the throttle on wrong API tokens ([`Throttle`]).
//!
//! - Dashboards (`www/*.html`): a CSP without inline script, no `eval` and no WebAssembly (none
//!   runs there), connections and frames only where they need to go — `frame-src` on the
//!   heatmap viewer lists the sites' origins (those of the registry's latest snapshot, sites
//!   made in the product included), every other page frames nothing — and
//!   `frame-ancestors` from `frame_ancestors` (`'self'` by default, with `X-Frame-Options` for
//!   browsers that only know that).
//! - The demo site, on an origin of its own, gets the CSP a site with the tracker needs
//!   (`'wasm-unsafe-eval'`, the only place WebAssembly runs): `demo_site.rs`.
//! - Everything else (JSON, metrics, errors) may not be framed or run anything; query-API data
//!   is never stored by a cache (`Cache-Control: no-store`).
//! - Everywhere: `X-Content-Type-Options: nosniff` and
//!   `Referrer-Policy: strict-origin-when-cross-origin`.
//!
//! The tracker files keep their own cross-origin headers (`http::routes::files::tracker`): any page may
//! load them.

use crate::config::Config;
use crate::sites::Registry;
use http::{HeaderMap, HeaderValue, header};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The CSP of answers that are not pages: nothing in them may run or be framed.
const DATA_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The headers policy and the wrong-token throttle of one collector.
#[derive(Debug)]
pub struct Security {
    /// CSP of the dashboards but the viewer.
    dashboard_csp: HeaderValue,
    /// `frame_ancestors`, joined: the CSP's `frame-ancestors`.
    ancestors: String,
    /// `X-Frame-Options`, when `frame_ancestors` says what it can say too.
    frame_options: Option<HeaderValue>,
    /// The sites: the viewer's `frame-src`, and the `site` label of the metrics (a bounded
    /// set: the sites' ids).
    sites: Arc<Registry>,
    /// Wrong API tokens per client address.
    pub throttle: Throttle,
}

impl Default for Security {
    fn default() -> Self {
        let config = Config::default();
        Security::new(&config, Registry::file_only(&config))
    }
}

/// The dashboards' CSP with `frame_src` and `ancestors`. `config.validate` and the sites'
/// checks (`crate::sites`) let only origins and keywords into these, so they are header text.
fn csp(frame_src: &str, ancestors: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; frame-src {frame_src}; frame-ancestors {ancestors}; \
         object-src 'none'; base-uri 'none'; form-action 'self'"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(DATA_CSP))
}

impl Security {
    /// The policy `config` asks for, over the sites of `sites`.
    pub fn new(config: &Config, sites: Arc<Registry>) -> Security {
        let ancestors = config.frame_ancestors.join(" ");
        Security {
            dashboard_csp: csp("'none'", &ancestors),
            frame_options: match ancestors.as_str() {
                "'self'" => Some(HeaderValue::from_static("SAMEORIGIN")),
                "'none'" => Some(HeaderValue::from_static("DENY")),
                _ => None,
            },
            ancestors,
            sites,
            throttle: Throttle::new(config.api_auth_failures_per_minute, Duration::from_secs(60)),
        }
    }

    /// The viewer's CSP: `frame-src` every site's origins now (made for each viewer page, a
    /// rare answer, so a site made a moment ago is framed at once).
    fn viewer_csp(&self) -> HeaderValue {
        let origins = self.sites.snapshot().origins().join(" ");
        let frames = if origins.is_empty() {
            "'none'"
        } else {
            &origins
        };
        csp(frames, &self.ancestors)
    }

    /// Adds the headers of an answer of `route` (`http::router::Route::label`) to `path`.
    pub fn headers(&self, route: &str, path: &str, h: &mut HeaderMap) {
        common(h);
        let html = h
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
        match route {
            // Any page may load the tracker; its headers are its own.
            "tracker" => {}
            "static" if html => {
                let csp = if path.ends_with("/heatmap.html") {
                    self.viewer_csp()
                } else {
                    self.dashboard_csp.clone()
                };
                h.insert(header::CONTENT_SECURITY_POLICY, csp);
                if let Some(v) = &self.frame_options {
                    h.insert(header::X_FRAME_OPTIONS, v.clone());
                }
            }
            _ => {
                h.insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(DATA_CSP),
                );
                if route.starts_with("api") {
                    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                }
            }
        }
    }

    /// The `site` label for a query that named `site`: the site when served, else `other`
    /// (a label per name a client made up would grow the metrics without bound).
    pub fn site_label(&self, site: &str) -> String {
        if self.sites.snapshot().get(site).is_some() {
            site.to_owned()
        } else {
            "other".to_owned()
        }
    }
}

/// The headers every answer gets.
pub fn common(h: &mut HeaderMap) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
}

/// Addresses remembered at most; past it, new addresses are not throttled until old entries
/// expire (bounded memory beats throttling an attacker who holds that many addresses).
const MAX_TRACKED: usize = 65_536;

/// Wrong API tokens per client address, in fixed windows: the first failure opens a window;
/// `limit` failures within it block the address until the window ends. IPv6 addresses count
/// by their /64, which one client typically holds whole.
#[derive(Debug)]
pub struct Throttle {
    limit: u32,
    window: Duration,
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Throttle {
    /// `limit` failures per `window`; 0: none counted, none blocked.
    pub fn new(limit: u32, window: Duration) -> Throttle {
        Throttle {
            limit,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// How long `ip` must wait, if it is blocked at `now`.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let (opened, failures) = *seen.get(&key(ip))?;
        let left = (opened + self.window).checked_duration_since(now)?;
        (failures >= self.limit && !left.is_zero()).then_some(left)
    }

    /// Counts a wrong token from `ip` at `now`; returns the failures in its window.
    pub fn failed(&self, ip: IpAddr, now: Instant) -> u32 {
        if self.limit == 0 {
            return 0;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let window = self.window;
        if seen.len() >= MAX_TRACKED && !seen.contains_key(&key(ip)) {
            seen.retain(|_, (opened, _)| now < *opened + window);
            if seen.len() >= MAX_TRACKED {
                return 0;
            }
        }
        let entry = seen.entry(key(ip)).or_insert((now, 0));
        if now >= entry.0 + window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1
    }
}

/// The throttle's key for `ip`: itself, or its /64 for IPv6.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SiteConfig;

    #[test]
    fn wrong_tokens_block_an_address_until_its_window_ends() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let start = Instant::now();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for n in 1..=3 {
            assert_eq!(t.blocked(a, start), None, "before failure {n}");
            assert_eq!(t.failed(a, start), n);
        }
        let wait = t.blocked(a, start + Duration::from_secs(20)).unwrap();
        assert_eq!(wait, Duration::from_secs(40));
        assert_eq!(t.blocked(b, start), None, "another address");
        let later = start + Duration::from_secs(60);
        assert_eq!(t.blocked(a, later), None, "the window is over");
        assert_eq!(t.failed(a, later), 1, "a new window");
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        for _ in 0..3 {
            t.failed(v6("2001:db8::1"), start);
        }
        assert!(t.blocked(v6("2001:db8::ffff"), start).is_some(), "same /64");
        assert!(t.blocked(v6("2001:db8:0:1::1"), start).is_none());
        assert_eq!(
            Throttle::new(0, Duration::from_secs(60)).failed(a, start),
            0
        );
    }

    #[test]
    fn the_viewer_may_frame_the_sites_and_nothing_else_may_frame_anything() {
        let sites = ["https://b.example", "*", "https://a.example"]
            .into_iter()
            .enumerate()
            .map(|(i, o)| SiteConfig {
                id: format!("s{i}"),
                origins: vec![o.into()],
                max_events_per_sec: 0,
                api_token: String::new(),
                api_token_sha256: String::new(),
                ingest_keys_sha256: Vec::new(),
                search: Default::default(),
                require_key: false,
                base_url: String::new(),
                goals: Vec::new(),
                metric_paths: Vec::new(),
                anomalies: Default::default(),
            })
            .collect();
        let mut config = Config {
            sites,
            ..Config::default()
        };
        let s = Security::new(&config, Registry::file_only(&config));
        let csp = |route: &str, path: &str, content_type: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            s.headers(route, path, &mut h);
            h
        };
        let viewer = csp("static", "/heatmap.html", "text/html; charset=utf-8");
        let policy = viewer[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            policy.contains("frame-src https://a.example https://b.example;"),
            "{policy}"
        );
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(policy.contains("frame-ancestors 'self'"), "{policy}");
        assert!(
            !policy.contains("unsafe") && !policy.contains("wasm"),
            "{policy}"
        );
        assert_eq!(viewer[header::X_FRAME_OPTIONS], "SAMEORIGIN");
        let index = csp("static", "/index.html", "text/html; charset=utf-8");
        let policy = index[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(policy.contains("frame-src 'none'"), "{policy}");
        let api = csp("api", "/api/v1/stats", "application/json");
        assert_eq!(api[header::CACHE_CONTROL], "no-store");
        assert_eq!(api[header::CONTENT_SECURITY_POLICY], DATA_CSP);
        assert_eq!(api[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(
            api[header::REFERRER_POLICY],
            "strict-origin-when-cross-origin"
        );
        let tracker = csp("tracker", "/p.js", "text/javascript");
        assert!(!tracker.contains_key(header::CONTENT_SECURITY_POLICY));
        assert_eq!(s.site_label("s1"), "s1");
        assert_eq!(s.site_label("made-up"), "other");
        config.frame_ancestors = vec!["'self'".into(), "https://intranet.example".into()];
        let embedded = Security::new(&config, Registry::file_only(&config));
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        embedded.headers("static", "/index.html", &mut h);
        assert!(!h.contains_key(header::X_FRAME_OPTIONS));
    }
}
