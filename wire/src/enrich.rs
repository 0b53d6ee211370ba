//! Pure enrichment: everything the collector and the edge worker add to an event from the
//! request and from the event itself. No I/O here: geo data comes in through
//! [`RequestContext`], already looked up by the caller (MaxMind file, proxy header, or
//! Cloudflare's `request.cf`).

pub mod bots;

use crate::model::{Id, RawEvent};
use serde::Serialize;
use siphasher::sip::SipHasher13;
use std::hash::Hasher;
use std::net::IpAddr;

/// What the receiver knows about the request a batch came in.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    /// Server clock at receipt, ms since the epoch.
    pub received_at: i64,
    /// The client's address; hashed into the visitor id, never stored.
    pub ip: Option<IpAddr>,
    /// The request's `User-Agent` header.
    pub user_agent: Option<String>,
    /// Location, as far as the receiver could tell.
    pub geo: Geo,
}

/// Location and network of a client. Empty strings and 0 mean unknown.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Geo {
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: String,
    /// Region (ISO 3166-2 subdivision code or name).
    pub region: String,
    /// City name.
    pub city: String,
    /// Autonomous system number.
    pub asn: u32,
    /// Edge location that received the request (Cloudflare colo), if any.
    pub colo: String,
}

/// The kind of device, from the User-Agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    /// Not determinable.
    Unknown = 0,
    /// Desktop or laptop.
    Desktop = 1,
    /// Phone.
    Mobile = 2,
    /// Tablet.
    Tablet = 3,
    /// Crawler, headless browser, HTTP library.
    Bot = 4,
}

impl Device {
    /// Name as stored.
    pub fn name(self) -> &'static str {
        match self {
            Device::Unknown => "unknown",
            Device::Desktop => "desktop",
            Device::Mobile => "mobile",
            Device::Tablet => "tablet",
            Device::Bot => "bot",
        }
    }
}

/// What the User-Agent says about the client.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UserAgentInfo {
    /// Browser name (`Chrome`, `Firefox`, `Safari`, ...), empty when unknown.
    pub browser: String,
    /// Browser version as reported.
    pub browser_version: String,
    /// Operating system (`Windows 10`, `Mac OSX`, `Android`, `iPhone`, ...).
    pub os: String,
    /// Operating system version.
    pub os_version: String,
    /// Device kind.
    pub device: Device,
    /// Automated client (crawler, monitoring, headless browser, HTTP library).
    pub is_bot: bool,
}

/// Parses a User-Agent with woothee, plus tablet rules woothee lacks and the bot rules of
/// [`bots`]: an empty User-Agent, woothee's crawler category, or a match of the compiled
/// crawler list and markers.
pub fn parse_user_agent(ua: &str) -> UserAgentInfo {
    let lower = ua.to_ascii_lowercase();
    let parsed = woothee::parser::Parser::new().parse(ua);
    let (browser, browser_version, os, os_version, category) = match &parsed {
        Some(r) => (
            known(r.name),
            known(r.version),
            known(r.os),
            known(&r.os_version),
            r.category,
        ),
        None => (
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            "",
        ),
    };
    let is_bot = ua.is_empty() || category == "crawler" || bots::is_automated(ua);
    let tablet = lower.contains("ipad")
        || lower.contains("tablet")
        || (lower.contains("android") && !lower.contains("mobile"));
    let device = if is_bot {
        Device::Bot
    } else if tablet {
        Device::Tablet
    } else {
        match category {
            "pc" => Device::Desktop,
            "smartphone" | "mobilephone" => Device::Mobile,
            _ => Device::Unknown,
        }
    };
    UserAgentInfo {
        browser,
        browser_version,
        os,
        os_version,
        device,
        is_bot,
    }
}

fn known(s: &str) -> String {
    if s == "UNKNOWN" {
        String::new()
    } else {
        s.to_owned()
    }
}

/// The parts of a page URL that queries group by.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UrlParts {
    /// Lower-case host without port; empty for relative URLs.
    pub host: String,
    /// Path, `/` when empty.
    pub path: String,
    /// Query string without `?`.
    pub query: String,
    /// Fragment without `#` (hash-routed SPAs put their route there).
    pub fragment: String,
    /// `utm_source`.
    pub utm_source: String,
    /// `utm_medium`.
    pub utm_medium: String,
    /// `utm_campaign`.
    pub utm_campaign: String,
    /// `utm_term`.
    pub utm_term: String,
    /// `utm_content`.
    pub utm_content: String,
}

/// The host of an absolute (`https://host/…`) or scheme-relative (`//host/…`) URL, without
/// user info and port, as written (compare it ignoring case); empty for a path.
pub fn url_host(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    split_host(&url[..end]).0
}

/// `url` without query and fragment as host and path. The host ends at the first `/` or `\`
/// (browsers read a backslash as a slash in http(s) URLs, so `https://evil\@shop/` is on
/// `evil`).
fn split_host(url: &str) -> (&str, &str) {
    let authority = match url.split_once("://") {
        Some((_, after)) => after,
        None => match url.strip_prefix("//") {
            Some(after) => after,
            None => return ("", url),
        },
    };
    let (host, path) = authority.split_at(authority.find(['/', '\\']).unwrap_or(authority.len()));
    let host = host.rsplit('@').next().unwrap_or(host);
    let host = match host.rfind(':') {
        Some(i) if !host.ends_with(']') => &host[..i],
        _ => host,
    };
    (host, path)
}

/// Splits an absolute or relative URL. Lenient by design: analytics URLs come from the wild,
/// and a URL the WHATWG parser would refuse is still worth its path.
pub fn parse_url(url: &str) -> UrlParts {
    let (rest, fragment) = url.split_once('#').unwrap_or((url, ""));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (host, path) = split_host(rest);
    let mut parts = UrlParts {
        host: host.to_ascii_lowercase(),
        path: if path.is_empty() {
            "/".into()
        } else {
            path.into()
        },
        query: query.into(),
        fragment: fragment.into(),
        ..UrlParts::default()
    };
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match k.as_ref() {
            "utm_source" => &mut parts.utm_source,
            "utm_medium" => &mut parts.utm_medium,
            "utm_campaign" => &mut parts.utm_campaign,
            "utm_term" => &mut parts.utm_term,
            "utm_content" => &mut parts.utm_content,
            _ => continue,
        };
        *slot = v.chars().take(256).collect();
    }
    parts
}

/// Keys the visitor-id hash with a random salt per UTC day. Salts are short-lived: the
/// collector keeps today's and yesterday's (shared by every collector through storage) and
/// forgets older ones, so once a day's salt is gone nobody — the operator included — can link
/// that day's visitor ids to other days or reverse them (guessing an IPv4 address and a
/// User-Agent is otherwise cheap). A day without a salt (an import of last year) is hashed
/// with `fallback`, random per process: those ids link to nothing.
#[derive(Clone)]
pub struct VisitorHasher {
    salts: Vec<(i64, (u64, u64))>,
    fallback: (u64, u64),
}

fn key(salt: &[u8; 16]) -> (u64, u64) {
    let (a, b) = salt.split_at(8);
    let word = |s: &[u8]| s.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
    (word(a), word(b))
}

impl VisitorHasher {
    /// A hasher with `salts` by day (days since the Unix epoch, UTC) and a `fallback` salt.
    pub fn new(salts: &[(i64, [u8; 16])], fallback: [u8; 16]) -> Self {
        VisitorHasher {
            salts: salts.iter().map(|(day, salt)| (*day, key(salt))).collect(),
            fallback: key(&fallback),
        }
    }

    /// `hash(site, ip, user agent)` under the key of the UTC day of `at_ms`.
    pub fn visitor_id(&self, site: &str, ip: Option<IpAddr>, ua: &str, at_ms: i64) -> u64 {
        let day = at_ms.div_euclid(86_400_000);
        let (k0, k1) = self
            .salts
            .iter()
            .find(|(d, _)| *d == day)
            .map_or(self.fallback, |(_, k)| *k);
        let mut h = SipHasher13::new_with_keys(k0, k1);
        h.write(site.as_bytes());
        h.write_u8(0xff);
        match ip {
            Some(IpAddr::V4(a)) => h.write(&a.octets()),
            Some(IpAddr::V6(a)) => h.write(&a.octets()),
            None => h.write_u8(0),
        }
        h.write_u8(0xff);
        h.write(ua.as_bytes());
        h.finish()
    }
}

/// The second tier: an event with everything the receiver adds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EnrichedEvent {
    /// The site.
    pub site_id: String,
    /// The batch it came in.
    pub batch_id: Id,
    /// The event as sent, but for its session id, moved to `session_id`.
    pub raw: RawEvent,
    /// Event time on the server's clock: the client time shifted by the client's clock offset
    /// (`received_at - sent_at`), ms since the epoch.
    pub timestamp: i64,
    /// Server clock at receipt, ms.
    pub received_at: i64,
    /// Session id: the client's, or one assigned by the receiver when the client sent none.
    pub session_id: String,
    /// Keyed hash of (site, IP, User-Agent, day).
    pub visitor_id: u64,
    /// Page URL parts.
    pub url: UrlParts,
    /// Host of the referrer, if any.
    pub referrer_host: String,
    /// User-Agent facts.
    pub user_agent: UserAgentInfo,
    /// Location.
    pub geo: Geo,
}

/// Enriches the events of one batch. The User-Agent is parsed once per distinct string (a
/// tracker batch has one), since parsing dominates enrichment cost.
pub struct Enricher<'a> {
    hasher: &'a VisitorHasher,
    ctx: &'a RequestContext,
    header_ua: UserAgentInfo,
    last_override: Option<(String, UserAgentInfo)>,
    // The events of one batch mostly share a page, a day and a User-Agent: the last result of
    // each costly step is kept and reused when its input repeats.
    last_url: Option<(String, UrlParts)>,
    last_referrer: Option<(String, String)>,
    /// (day, visitor id) for the header's User-Agent.
    last_visitor: Option<(i64, u64)>,
}

impl<'a> Enricher<'a> {
    /// An enricher for one request.
    pub fn new(hasher: &'a VisitorHasher, ctx: &'a RequestContext) -> Self {
        Enricher {
            hasher,
            ctx,
            header_ua: parse_user_agent(ctx.user_agent.as_deref().unwrap_or("")),
            last_override: None,
            last_url: None,
            last_referrer: None,
            last_visitor: None,
        }
    }

    /// Enriches one event of a batch for `site_id` sent at `sent_at` (0: unknown).
    /// `session_id` is filled later by the caller's sessionizer when the client sent none.
    pub fn enrich(
        &mut self,
        site_id: &str,
        batch_id: Id,
        sent_at: i64,
        mut raw: RawEvent,
    ) -> EnrichedEvent {
        let ua_str = raw
            .user_agent
            .as_deref()
            .or(self.ctx.user_agent.as_deref())
            .unwrap_or("");
        let user_agent = match raw.user_agent.as_deref() {
            None => self.header_ua.clone(),
            Some(ua) => match &self.last_override {
                Some((s, info)) if s == ua => info.clone(),
                _ => {
                    let info = parse_user_agent(ua);
                    self.last_override = Some((ua.to_owned(), info.clone()));
                    info
                }
            },
        };
        let timestamp =
            crate::validate::corrected_time(raw.timestamp, sent_at, self.ctx.received_at);
        // Cached only for the request's own User-Agent: then (site, ip, ua) are the batch's,
        // and the day alone can change the id.
        let day = timestamp.div_euclid(86_400_000);
        let visitor_id = match (raw.user_agent.is_none(), self.last_visitor) {
            (true, Some((d, id))) if d == day => id,
            (header_ua, _) => {
                let id = self
                    .hasher
                    .visitor_id(site_id, self.ctx.ip, ua_str, timestamp);
                if header_ua {
                    self.last_visitor = Some((day, id));
                }
                id
            }
        };
        let referrer_host = match (raw.referrer.as_deref(), &self.last_referrer) {
            (None, _) => String::new(),
            (Some(r), Some((last, host))) if r == last => host.clone(),
            (Some(r), _) => {
                let host = parse_url(r).host;
                self.last_referrer = Some((r.to_owned(), host.clone()));
                host
            }
        };
        let url = match &self.last_url {
            Some((last, parts)) if *last == raw.url => parts.clone(),
            _ => {
                let parts = parse_url(&raw.url);
                self.last_url = Some((raw.url.clone(), parts.clone()));
                parts
            }
        };
        EnrichedEvent {
            site_id: site_id.to_owned(),
            batch_id,
            timestamp,
            received_at: self.ctx.received_at,
            // Moved, not copied: one allocation less per event, and nothing reads it twice.
            session_id: std::mem::take(&mut raw.session_id),
            visitor_id,
            url,
            referrer_host,
            user_agent,
            geo: self.ctx.geo.clone(),
            raw,
        }
    }
}
