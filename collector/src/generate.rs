//! `pathlight gen`: realistic synthetic traffic for the demo, tests and load.
//!
//! # The path of a generated event
//!
//! 1. A session is drawn: a visitor from a pool (each visitor keeps one device, browser,
//!    country and address across sessions, so returning visitors exist), a start time over the
//!    last `days` (busier in the afternoon), an entry page and a referrer.
//! 2. It walks the demo site's funnel (home → catalog → product → checkout, the account app
//!    on the side), one page view at a time: a page view, clicks on the elements the demo
//!    pages really have at that screen width (`demo-site/layout.json`, measured in Chromium by
//!    `scripts/demo-layout.mjs`; a link is clicked when the next page is the one it leads
//!    to), a scroll depth, the visible time. Some sessions are bots (the collector flags and
//!    drops them), some rage-click, some click on text that does nothing, some go back and
//!    forth between two pages (stuck).
//! 3. Each page view is one [`Visit`] — what one tracker batch would carry, with the sender's
//!    address and country beside it — written to a file in the simple array form
//!    (NDJSON/CSV, for `pathlight import`) or CBOR batches, or sent live ([`send`]): to a
//!    collector over HTTP, or through a pipeline in this process to the JetStream stream of
//!    scale-out mode (`--to nats://…`), as a collector would publish it.
//!
//! Everything follows from `--seed`: the same options write the same file, event ids included,
//! so importing it twice stores it once.

use pathlight_wire::{
    Click, EventKind, FORMAT_VERSION, Id, PropValue, RawBatch, RawEvent, Size, cbor, json,
};
use serde::Deserialize;
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenOptions {
    /// Events in all (the last session is cut to fit).
    pub events: u64,
    /// Sessions start over this many days before `end_ms`; 0: all start at `end_ms`.
    pub days: u32,
    /// Seed of every random choice.
    pub seed: u64,
    /// The demo site's address, prefixed to page names (`http://127.0.0.1:8080/demo/`).
    pub base_url: String,
    /// End of the time range, ms since the epoch.
    pub end_ms: i64,
}

/// One page view's events and who sent them.
#[derive(Clone, Debug)]
pub struct Visit {
    /// Sender address (198.18.0.0/15, the range set aside for benchmarks).
    pub ip: IpAddr,
    /// ISO country code, as a CDN's header would give it.
    pub country: &'static str,
    /// Device class, for the CSV's `device_type` column.
    pub device: &'static str,
    /// The page view's events, oldest first.
    pub events: Vec<RawEvent>,
}

impl Visit {
    /// The page view as the tracker would send it: one batch, named after its first event.
    fn batch(self, site: &str, sent_at: i64) -> RawBatch {
        RawBatch {
            version: FORMAT_VERSION,
            site_id: site.to_owned(),
            sent_at,
            batch_id: self.events.first().map(|e| e.id).unwrap_or_default(),
            events: self.events,
        }
    }
}

#[derive(Deserialize)]
struct Layout {
    pages: BTreeMap<String, Vec<Screen>>,
}

#[derive(Deserialize)]
struct Screen {
    viewport: [u32; 2],
    document: [u32; 2],
    title: String,
    elements: Vec<Element>,
}

#[derive(Deserialize)]
struct Element {
    selector: String,
    id: Option<String>,
    tag: String,
    text: Option<String>,
    href: Option<String>,
    interactive: bool,
    #[serde(rename = "box")]
    bounds: [i32; 4],
}

/// A device class: its screen (index into each page's measured screens), share of sessions,
/// and the User-Agents seen on it.
struct Device {
    name: &'static str,
    screen: usize,
    share: u32,
    agents: &'static [&'static str],
}

const DEVICES: [Device; 4] = [
    Device {
        name: "mobile",
        screen: 0,
        share: 38,
        agents: &[
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
            "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Mobile Safari/537.36",
        ],
    },
    Device {
        name: "tablet",
        screen: 1,
        share: 8,
        agents: &[
            "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        ],
    },
    Device {
        name: "desktop",
        screen: 2,
        share: 34,
        agents: &[
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0",
        ],
    },
    Device {
        name: "desktop",
        screen: 3,
        share: 20,
        agents: &[
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        ],
    },
];

const BOTS: [&str; 3] = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
];

const COUNTRIES: [(&str, u32); 13] = [
    ("US", 30),
    ("DE", 12),
    ("GB", 10),
    ("FR", 8),
    ("IN", 8),
    ("BR", 6),
    ("JP", 5),
    ("CA", 5),
    ("NL", 4),
    ("ES", 4),
    ("PL", 3),
    ("AU", 3),
    ("SE", 2),
];

const REFERRERS: [(Option<&str>, u32); 5] = [
    (None, 40),
    (Some("https://www.google.com/"), 35),
    (Some("https://news.ycombinator.com/"), 10),
    (Some("https://twitter.com/"), 8),
    (Some("https://newsletter.example.com/issue-42"), 7),
];

/// Where a session goes after each page: (page, share) of the next page; what is left of 100
/// is leaving the site.
fn next_pages(page: &str) -> &'static [(&'static str, u32)] {
    match page {
        "index.html" => &[("catalog.html", 50), ("product.html", 15), ("app.html", 5)],
        "catalog.html" => &[
            ("product.html", 50),
            ("checkout.html", 10),
            ("index.html", 5),
        ],
        "product.html" => &[("checkout.html", 30), ("catalog.html", 25)],
        "checkout.html" => &[("app.html", 25), ("product.html", 5)],
        _ => &[("catalog.html", 15), ("app.html", 30)],
    }
}

/// SplitMix64: small, fast and good enough to draw traffic from; no dependency for it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// A normal draw (Box–Muller).
    fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let (u, v) = (self.unit().max(1e-12), self.unit());
        mean + sd * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    fn pick<'a, T>(&mut self, weighted: &'a [(T, u32)]) -> Option<&'a T> {
        let total: u32 = weighted.iter().map(|(_, w)| w).sum();
        let mut at = self.below(u64::from(total.max(1))) as u32;
        for (item, w) in weighted {
            if at < *w {
                return Some(item);
            }
            at -= w;
        }
        None
    }
    fn id(&mut self) -> Id {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next().to_le_bytes());
        b[8..].copy_from_slice(&self.next().to_le_bytes());
        Id(b)
    }
}

/// A visitor: the same device, browser, country and address in every session.
struct Visitor {
    n: u64,
    device: &'static Device,
    agent: &'static str,
    country: &'static str,
    ip: IpAddr,
    bot: bool,
}

/// The generator: an iterator of page views, in session order.
pub struct Generator {
    opts: GenOptions,
    rng: Rng,
    layout: Layout,
    made: u64,
    visitors: u64,
    queue: VecDeque<Visit>,
}

impl Generator {
    /// A generator for `opts`, over the demo site's measured layout.
    pub fn new(opts: GenOptions) -> Generator {
        let layout: Layout = serde_json::from_str(include_str!("../../demo-site/layout.json"))
            .expect("demo-site/layout.json is valid (a unit test reads it)");
        Generator {
            rng: Rng(opts.seed ^ 0x7061_7468_6c69_6768),
            // About two sessions per visitor.
            visitors: (opts.events / 30).max(50),
            opts,
            layout,
            made: 0,
            queue: VecDeque::new(),
        }
    }

    fn visitor(&self, n: u64) -> Visitor {
        // Drawn from the visitor's number alone, so every session of it agrees.
        let mut r = Rng(n.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ self.opts.seed);
        let devices: Vec<(&'static Device, u32)> = DEVICES.iter().map(|d| (d, d.share)).collect();
        let device = *r.pick(&devices).unwrap_or(&&DEVICES[0]);
        let bot = r.chance(0.03);
        let agent = if bot {
            BOTS[r.below(BOTS.len() as u64) as usize]
        } else {
            device.agents[r.below(device.agents.len() as u64) as usize]
        };
        let country = *r.pick(&COUNTRIES).unwrap_or(&"US");
        let host = (n % (1 << 17)) as u32;
        Visitor {
            n,
            device,
            agent,
            country,
            ip: IpAddr::V4(Ipv4Addr::from(
                u32::from(Ipv4Addr::new(198, 18, 0, 0)) + host,
            )),
            bot,
        }
    }

    /// Session start: uniform over the days, thinned at night (a day's shape, not flat).
    fn start_ms(&mut self) -> i64 {
        let span = i64::from(self.opts.days) * 86_400_000;
        if span == 0 {
            return self.opts.end_ms;
        }
        loop {
            // Leave an hour at the end for the session itself.
            let t = self.opts.end_ms - 3_600_000 - self.rng.below(span as u64) as i64;
            let hour = (t / 3_600_000).rem_euclid(24) as f64;
            let busy = 0.55 + 0.45 * ((hour - 15.0) / 24.0 * std::f64::consts::TAU).cos();
            if self.rng.chance(busy) {
                return t;
            }
        }
    }

    fn session(&mut self) {
        let n = self.rng.below(self.visitors);
        let visitor = self.visitor(n);
        let session_id = format!("{:016x}", self.rng.next());
        let mut t = self.start_ms();
        let entries = [
            ("index.html", 50),
            ("catalog.html", 25),
            ("product.html", 20),
            ("app.html", 5),
        ];
        let mut page = *self.rng.pick(&entries).unwrap_or(&"index.html");
        let mut referrer = self
            .rng
            .pick(&REFERRERS)
            .copied()
            .flatten()
            .map(str::to_owned);
        let stuck = !visitor.bot && self.rng.chance(0.03);
        let user = (!visitor.bot && self.rng.chance(0.3)).then(|| format!("u{}", visitor.n));
        let mut pages = 0;
        loop {
            pages += 1;
            let next = if stuck && pages < 10 {
                Some(if page == "catalog.html" {
                    "product.html"
                } else {
                    "catalog.html"
                })
            } else if pages >= 12 {
                None
            } else {
                self.rng.pick(next_pages(page)).copied()
            };
            let url = format!("{}{page}", self.opts.base_url);
            let logged_in = page == "app.html" || page == "checkout.html";
            let (events, dwell) = self.page_view(
                &visitor,
                &session_id,
                page,
                &url,
                referrer.take(),
                next,
                t,
                stuck,
                user.as_ref().filter(|_| logged_in),
            );
            self.queue.push_back(Visit {
                ip: visitor.ip,
                country: visitor.country,
                device: visitor.device.name,
                events,
            });
            let Some(next) = next else { break };
            referrer = Some(url);
            t += dwell + 300 + self.rng.below(1_500) as i64;
            page = next;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn page_view(
        &mut self,
        visitor: &Visitor,
        session: &str,
        page: &str,
        url: &str,
        referrer: Option<String>,
        next: Option<&str>,
        t: i64,
        stuck: bool,
        user: Option<&String>,
    ) -> (Vec<RawEvent>, i64) {
        let screen = &self.layout.pages[page][visitor.device.screen];
        let viewport = Size {
            w: screen.viewport[0],
            h: screen.viewport[1],
        };
        let document = Size {
            w: screen.document[0],
            h: screen.document[1],
        };
        let base = RawEvent {
            id: Id::default(),
            timestamp: t,
            session_id: session.to_owned(),
            url: url.to_owned(),
            referrer,
            title: Some(screen.title.clone()),
            viewport,
            document,
            user_id: user.cloned(),
            user_agent: Some(visitor.agent.to_owned()),
            kind: EventKind::Pageview,
        };
        let mut events = vec![RawEvent {
            id: self.rng.id(),
            ..base.clone()
        }];
        // Seconds on the page: log-normal, median ~15 s; a stuck visitor hurries.
        let dwell = if stuck {
            1_500 + self.rng.below(2_000) as i64
        } else {
            (self.rng.normal(9.6, 0.9).exp() as i64).clamp(2_000, 600_000)
        };
        if visitor.bot {
            return (events, dwell);
        }
        // How far down they read: most see the top, fewer reach the end.
        let fold = f64::from(viewport.h) / f64::from(document.h.max(1));
        let depth = if fold >= 1.0 {
            1.0
        } else {
            (fold + (1.0 - fold) * self.rng.unit().powf(1.6)).min(1.0)
        };
        let seen_to = (depth * f64::from(document.h)) as i32;
        let visible: Vec<&Element> = screen
            .elements
            .iter()
            .filter(|e| e.bounds[1] + e.bounds[3] / 2 <= seen_to)
            .collect();
        let mut clicks: Vec<(&Element, i64)> = Vec::new();
        let weighted: Vec<(&Element, u32)> = visible.iter().map(|e| (*e, weight(e))).collect();
        let n = [0, 1, 1, 2, 3][self.rng.below(5) as usize];
        for _ in 0..n {
            if let Some(e) = self.rng.pick(&weighted) {
                clicks.push((
                    e,
                    1_000 + self.rng.below(dwell.max(1_001) as u64 - 1_000) as i64,
                ));
            }
        }
        // The link that leads where the session goes next is the last thing clicked.
        if let Some(next) = next
            && let Some(link) = visible
                .iter()
                .find(|e| e.href.as_deref().is_some_and(|h| h.starts_with(next)))
        {
            clicks.push((link, dwell - 200));
        }
        clicks.sort_by_key(|(_, at)| *at);
        let rage = self.rng.chance(0.02);
        for (i, (e, at)) in clicks.iter().enumerate() {
            let repeat = if rage && i == 0 && e.interactive {
                5
            } else {
                1
            };
            let (rx, ry) = (
                self.rng.normal(0.5, 0.17).clamp(0.02, 0.98),
                self.rng.normal(0.5, 0.2).clamp(0.05, 0.95),
            );
            for k in 0..repeat {
                let jitter = if k > 0 {
                    self.rng.normal(0.0, 0.02)
                } else {
                    0.0
                };
                let (rx, ry) = ((rx + jitter).clamp(0.0, 1.0), (ry + jitter).clamp(0.0, 1.0));
                let [bx, by, bw, bh] = e.bounds;
                events.push(RawEvent {
                    id: self.rng.id(),
                    timestamp: t + at + k * 120,
                    kind: EventKind::Click(Click {
                        x: bx + (rx * f64::from(bw)) as i32,
                        y: by + (ry * f64::from(bh)) as i32,
                        element_id: e.id.clone(),
                        selector: e.selector.clone(),
                        tag: e.tag.clone(),
                        text: e.text.clone(),
                        href: e.href.clone(),
                        rel_x: rx as f32,
                        rel_y: ry as f32,
                        element_box: e.bounds,
                        fixed: 0,
                    }),
                    ..base.clone()
                });
            }
            if let Some((name, props)) = custom_for(e, &mut self.rng) {
                events.push(RawEvent {
                    id: self.rng.id(),
                    timestamp: t + at + 5,
                    kind: EventKind::Custom {
                        name: name.into(),
                        props: props.into_iter().collect(),
                    },
                    ..base.clone()
                });
            }
        }
        if depth > fold {
            events.push(RawEvent {
                id: self.rng.id(),
                timestamp: t + dwell - 100,
                kind: EventKind::Scroll {
                    max_depth_pct: (depth * 100.0).round() as u8,
                },
                ..base.clone()
            });
        }
        events.push(RawEvent {
            id: self.rng.id(),
            timestamp: t + dwell,
            kind: EventKind::Engagement {
                visible_ms: dwell as u32,
            },
            ..base
        });
        events.sort_by_key(|e| e.timestamp);
        (events, dwell)
    }
}

/// How often an element is clicked, relative to the others on its page. Text and images get
/// a few clicks too: the dead clicks a heatmap should show.
fn weight(e: &Element) -> u32 {
    let id = e.id.as_deref().unwrap_or("");
    match (e.interactive, e.tag.as_str()) {
        _ if ["hero-cta", "buy-now", "place-order", "add-1", "load-more"].contains(&id) => 30,
        (true, "button") => 12,
        (true, "input" | "select") => 10,
        (true, _) => 6,
        (false, "img") => 3,
        (false, _) => 1,
    }
}

/// The custom event the demo site sends for a click on `e`, if any.
fn custom_for(e: &Element, rng: &mut Rng) -> Option<(&'static str, Vec<(String, PropValue)>)> {
    let id = e.id.as_deref().unwrap_or("");
    // `#add-1`, `[data-track="add-chair"]`: the catalog's add-to-cart buttons.
    if id == "buy-now" || e.selector.contains("add-") {
        return Some((
            "add_to_cart",
            vec![(
                "product".into(),
                PropValue::Text(format!("p{}", 1 + rng.below(4))),
            )],
        ));
    }
    (id == "place-order").then(|| {
        (
            "purchase",
            vec![(
                "value".into(),
                PropValue::Number((20 + rng.below(180)) as f64),
            )],
        )
    })
}

impl Iterator for Generator {
    type Item = Visit;

    fn next(&mut self) -> Option<Visit> {
        if self.made >= self.opts.events {
            return None;
        }
        while self.queue.is_empty() {
            self.session();
        }
        let mut visit = self.queue.pop_front()?;
        let left = self.opts.events - self.made;
        visit
            .events
            .truncate(usize::try_from(left).unwrap_or(usize::MAX));
        self.made += visit.events.len() as u64;
        Some(visit)
    }
}

/// The output file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// The simple array form, one event per line, with `ip` and `country`.
    Ndjson,
    /// The same columns as `pathlight import` reads, `payload` as JSON.
    Csv,
    /// Each page view as a CBOR batch (the tracker's request body), one after the other (an
    /// RFC 8742 CBOR sequence). Batches carry no address: for replaying, not importing.
    Cbor,
}

impl FileFormat {
    /// From the file name's extension.
    pub fn of(path: &std::path::Path) -> anyhow::Result<FileFormat> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("ndjson" | "jsonl" | "json") => Ok(FileFormat::Ndjson),
            Some("csv") => Ok(FileFormat::Csv),
            Some("cbor") => Ok(FileFormat::Cbor),
            _ => anyhow::bail!(
                "{}: the extension says the format: .ndjson, .csv or .cbor",
                path.display()
            ),
        }
    }
}

/// Writes every visit of `visits` to `out` as `format`; returns the events written.
pub fn write(
    visits: impl Iterator<Item = Visit>,
    site: &str,
    format: FileFormat,
    out: impl Write,
) -> anyhow::Result<u64> {
    let mut n = 0u64;
    if format == FileFormat::Csv {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(CSV_COLUMNS)?;
        for visit in visits {
            n += visit.events.len() as u64;
            for e in &visit.events {
                let v = json::to_simple(e);
                let text = |k: &str| match &v[k] {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                w.write_record([
                    text("id"),
                    text("type"),
                    text("created_at"),
                    text("session_id"),
                    visit.ip.to_string(),
                    visit.country.to_owned(),
                    text("user_id"),
                    text("url"),
                    text("referrer"),
                    visit.device.to_owned(),
                    text("user_agent"),
                    v["payload"].to_string(),
                ])?;
            }
        }
        w.flush()?;
        return Ok(n);
    }
    let mut out = std::io::BufWriter::new(out);
    for visit in visits {
        n += visit.events.len() as u64;
        if format == FileFormat::Cbor {
            // No send time: the events keep their own (past) times.
            out.write_all(&cbor::encode(&visit.batch(site, 0)))?;
            continue;
        }
        for e in &visit.events {
            let mut v = json::to_simple(e);
            v["ip"] = visit.ip.to_string().into();
            v["country"] = visit.country.into();
            serde_json::to_writer(&mut out, &v)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(n)
}

/// The CSV header: the columns `pathlight import` reads.
const CSV_COLUMNS: [&str; 12] = [
    "id",
    "type",
    "created_at",
    "session_id",
    "ip",
    "country",
    "user_id",
    "url",
    "referrer",
    "device_type",
    "user_agent",
    "payload",
];

/// Live sending: how fast, for how long.
pub struct SendOptions {
    /// Where the batches go.
    pub to: Destination,
    /// Events per second at most; 0: as fast as the collector answers.
    pub rate: u64,
    /// Stop after this long, whatever is left.
    pub duration: std::time::Duration,
}

/// Where live batches go.
#[derive(Clone)]
pub enum Destination {
    /// A collector's batch endpoint (`http://…/v1/batch`).
    Collector(String),
    /// A collector pipeline in this process; with `[broker]` set it publishes to JetStream.
    Pipeline(std::sync::Arc<crate::pipeline::Pipeline>),
}

/// What a live run did.
#[derive(Debug, Default)]
pub struct SendReport {
    /// Events in batches answered 2xx.
    pub events: u64,
    /// Batches sent.
    pub batches: u64,
    /// Batches answered otherwise, by status (0: no answer).
    pub failed: BTreeMap<u16, u64>,
}

/// Sends each visit as a CBOR batch to a collector, with its times moved to now (a session's
/// page views follow each other at once rather than minutes apart), its address in
/// `X-Forwarded-For` and its country in `CF-IPCountry`: a collector configured with
/// `client_ip_header`/`country_header` sees many visitors, one without them sees one.
pub async fn send(
    visits: impl Iterator<Item = Visit>,
    site: &str,
    opts: &SendOptions,
) -> anyhow::Result<SendReport> {
    let client = reqwest::Client::new();
    let start = std::time::Instant::now();
    let mut report = SendReport::default();
    let mut sent_events = 0u64;
    for visit in visits {
        if start.elapsed() >= opts.duration {
            break;
        }
        if opts.rate > 0 {
            // Event n is due at start + n / rate.
            let due =
                start + std::time::Duration::from_secs_f64(sent_events as f64 / opts.rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        let now = crate::pipeline::now_ms();
        let last = visit.events.last().map_or(now, |e| e.timestamp);
        let n = visit.events.len() as u64;
        let (ip, country) = (visit.ip, visit.country);
        let mut visit = visit;
        for e in &mut visit.events {
            // Keep the gaps inside the page view, capped so the first event is at most a
            // minute old.
            e.timestamp = now - (last - e.timestamp).min(60_000);
        }
        let batch = visit.batch(site, now);
        let user_agent = batch.events.first().and_then(|e| e.user_agent.clone());
        let body = cbor::encode(&batch);
        let status = match &opts.to {
            Destination::Collector(url) => client
                .post(url)
                .header("content-type", "application/cbor")
                .header("user-agent", user_agent.unwrap_or_default())
                .header("x-forwarded-for", ip.to_string())
                .header("cf-ipcountry", country)
                .body(body)
                .send()
                .await
                .map_or(0, |r| r.status().as_u16()),
            Destination::Pipeline(pipeline) => pipeline
                .ingest(crate::pipeline::IngestRequest {
                    body: &body,
                    content_type: Some("application/cbor"),
                    ip: Some(ip),
                    user_agent: user_agent.as_deref(),
                    country: Some(country),
                    received_at: now,
                    delivery: Default::default(),
                    ..Default::default()
                })
                .await
                .map_or_else(|e| e.status().as_u16(), |_| 204),
        };
        report.batches += 1;
        sent_events += n;
        match status {
            s if (200..300).contains(&s) => report.events += n,
            s => *report.failed.entry(s).or_default() += 1,
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(events: u64) -> GenOptions {
        GenOptions {
            events,
            days: 7,
            seed: 7,
            base_url: "http://127.0.0.1:8080/demo/".into(),
            end_ms: 1_767_225_600_000,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_events_and_the_count_asked_for() {
        let a: Vec<RawEvent> = Generator::new(opts(5_000)).flat_map(|v| v.events).collect();
        let b: Vec<RawEvent> = Generator::new(opts(5_000)).flat_map(|v| v.events).collect();
        assert_eq!(a.len(), 5_000);
        assert_eq!(a, b);
        let ids: std::collections::HashSet<Id> = a.iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), a.len(), "event ids are unique");
    }

    #[test]
    fn traffic_has_the_shapes_the_dashboards_look_for() {
        let visits: Vec<Visit> = Generator::new(opts(50_000)).collect();
        let events: Vec<&RawEvent> = visits.iter().flat_map(|v| &v.events).collect();
        let count = |f: &dyn Fn(&RawEvent) -> bool| events.iter().filter(|e| f(e)).count();
        let clicks = count(&|e| matches!(e.kind, EventKind::Click(_)));
        let views = count(&|e| e.kind == EventKind::Pageview);
        assert!(
            clicks > views / 2 && views > 5_000,
            "{clicks} clicks, {views} views"
        );
        // Every click is inside its element's box, at its relative position.
        for e in &events {
            if let EventKind::Click(c) = &e.kind {
                let [x, y, w, h] = c.element_box;
                assert!(
                    (x..=x + w).contains(&c.x) && (y..=y + h).contains(&c.y),
                    "{c:?}"
                );
            }
        }
        // Bots, several devices and countries, purchases, rage clicks.
        assert!(count(&|e| e.user_agent.as_deref().is_some_and(|u| u.contains("bot"))) > 100);
        let devices: std::collections::HashSet<u32> = events.iter().map(|e| e.viewport.w).collect();
        assert_eq!(devices.len(), 4);
        let countries: std::collections::HashSet<&str> = visits.iter().map(|v| v.country).collect();
        assert!(countries.len() > 8);
        assert!(
            count(&|e| matches!(&e.kind, EventKind::Custom { name, .. } if name == "purchase"))
                > 20
        );
        let rage = visits.iter().filter(|v| {
            v.events.windows(5).any(|w| {
                w.iter().all(|e| matches!(e.kind, EventKind::Click(_)))
                    && w[4].timestamp - w[0].timestamp < 1_000
            })
        });
        assert!(rage.count() > 20);
        // Times fall in the last 7 days.
        let end = opts(0).end_ms;
        assert!(
            events
                .iter()
                .all(|e| e.timestamp <= end && e.timestamp > end - 8 * 86_400_000)
        );
    }

    #[test]
    fn files_read_back_as_the_same_events() {
        let visits: Vec<Visit> = Generator::new(opts(2_000)).collect();
        let events: Vec<RawEvent> = visits.iter().flat_map(|v| v.events.clone()).collect();
        let limits = pathlight_wire::Limits::default();
        let mut nd = Vec::new();
        write(
            visits.clone().into_iter(),
            "demo",
            FileFormat::Ndjson,
            &mut nd,
        )
        .unwrap();
        let array = format!(
            "[{}]",
            String::from_utf8(nd).unwrap().trim_end().replace('\n', ",")
        );
        let limits_big = pathlight_wire::Limits {
            max_events: 10_000,
            max_batch_bytes: 64 << 20,
            ..limits.clone()
        };
        assert_eq!(
            json::decode(array.as_bytes(), Some("demo"), &limits_big)
                .unwrap()
                .events,
            events
        );
        // CBOR: one batch per page view, back to back.
        let mut seq = Vec::new();
        write(
            visits.clone().into_iter(),
            "demo",
            FileFormat::Cbor,
            &mut seq,
        )
        .unwrap();
        let (mut at, mut back) = (0, Vec::new());
        for v in &visits {
            let one = cbor::encode(&v.clone().batch("demo", 0));
            assert_eq!(&seq[at..at + one.len()], one.as_slice());
            back.extend(cbor::decode(&one, &limits).unwrap().events);
            at += one.len();
        }
        assert_eq!(at, seq.len());
        assert_eq!(back, events);
    }
}
