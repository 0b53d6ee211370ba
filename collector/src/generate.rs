//! `pathlight gen`: realistic synthetic traffic for the demo, tests and load.
//!
//! # The path of a generated event
//!
//! 1. A visitor is drawn (one device, browser, country and address across their sessions),
//!    with a first session over the last `days` (busier in the afternoon) and returns after
//!    heavy-tailed pauses (`return_gap_ms`). Each session gets a length in pages
//!    (`session_pages`: the "law of surfing", so about half are one page), an entry page and
//!    a referrer.
//! 2. It walks the demo site's funnel (home → catalog → product → checkout, the account app
//!    on the side), one page view at a time: a page view, clicks on the elements the demo
//!    pages really have at that screen width (`demo-site/layout.json`, measured in Chromium by
//!    `scripts/demo-layout.mjs`; a link is clicked when the next page is the one it leads
//!    to), a scroll depth, the visible time (`dwell_ms`). Some sessions are bots (the
//!    collector flags and drops them), some go back and forth between two pages (stuck), some
//!    rage-click, click on text that does nothing, retry a button or click faster than a hand
//!    (automation): each page view says what was put into it ([`Visit::injected`]), the truth
//!    `--labels` writes for measuring the anomaly rules.
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
use std::collections::{BTreeMap, BTreeSet, VecDeque};
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
    /// What the generator put into these events for the anomaly rules to find.
    pub injected: Vec<Injected>,
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

/// Where a session goes after each page: the next page, drawn in proportion to the weights.
/// Whether there is a next page at all is the session's length ([`session_pages`]), so a
/// visitor can leave from any page, the first included.
fn next_pages(page: &str) -> &'static [(&'static str, u32)] {
    match page {
        "index.html" => &[
            ("catalog.html", 50),
            ("product.html", 20),
            ("app.html", 5),
            ("checkout.html", 5),
        ],
        "catalog.html" => &[
            ("product.html", 55),
            ("checkout.html", 15),
            ("index.html", 10),
            ("app.html", 5),
        ],
        "product.html" => &[
            ("checkout.html", 35),
            ("catalog.html", 25),
            ("index.html", 10),
        ],
        "checkout.html" => &[("app.html", 30), ("product.html", 10), ("catalog.html", 10)],
        _ => &[
            ("catalog.html", 30),
            ("index.html", 10),
            ("checkout.html", 10),
        ],
    }
}

/// How popular each of the demo's four products is (`product.html?id=N`).
const PRODUCTS: [(u32, u32); 4] = [(1, 40), (2, 30), (3, 20), (4, 10)];

/// The most pages a session views; the inverse Gaussian's tail goes on, visits do not.
const MAX_PAGES: u32 = 50;

/// Session length in pages, heavy-tailed. Huberman, Pirolli, Pitkow and Lukose ("Strong
/// regularities in World Wide Web surfing", Science 280:95, 1998) found that the pages a
/// visitor views on a site follow an inverse Gaussian distribution (their "law of surfing").
/// Its parameters here are set from published benchmarks of shops: a bounce rate (sessions of
/// one page) of 40–60 % (CXL's bounce rate benchmarks: 45.7 % for shopping sites) and a median
/// session of 2–3 pages. Mean 3 and shape 0.82 give P(1 page) = 47 %, P(≤ 2) = 66 %, a median
/// of 2 pages, 7 % of sessions past 10 pages; drawn as the next whole page up.
fn session_pages(rng: &mut Rng) -> u32 {
    (rng.inverse_gaussian(3.0, 0.82).ceil() as u32).clamp(1, MAX_PAGES)
}

/// Seconds on a page, heavy-tailed: Liu, White and Dumais ("Understanding web browsing
/// behaviors through Weibull analysis of dwell time", SIGIR 2010) fit dwell times with a
/// Weibull distribution whose shape is below 1 ("negative aging": most leave early, those who
/// stay read on). Shape 0.7 here; scale 34 s puts the median at 20 s and the mean at 43 s.
/// Kept between 1 s and 10 minutes (the tracker's session times out after 30).
fn dwell_ms(rng: &mut Rng) -> i64 {
    ((rng.weibull(34.0, 0.7) * 1000.0) as i64).clamp(1_000, 600_000)
}

/// A visitor comes back after each session with this chance (about 1.8 sessions each).
const RETURN_CHANCE: f64 = 0.45;

/// Time from one session's end to the visitor's next, heavy-tailed: Dezső et al. ("Dynamics
/// of information access on the Web", Phys. Rev. E 73, 066132, 2006) found that the time
/// between a user's visits to a site follows a power law. Pareto from 30 minutes (a shorter
/// pause is the same session) with tail index 0.5: median 2 hours, 14 % past a day, 5 % past
/// a week.
fn return_gap_ms(rng: &mut Rng) -> i64 {
    (rng.pareto(1_800_000.0, 0.5) as i64).min(365 * 86_400_000)
}

/// Shares of the anomalies put into sessions of people (bots are a share of visitors).
const STUCK_CHANCE: f64 = 0.03;
const RAPID_CHANCE: f64 = 0.01;
const RAGE_CHANCE: f64 = 0.02;
const DEAD_CHANCE: f64 = 0.05;
const REPEATED_CHANCE: f64 = 0.02;
/// Of ordinary clicks, the share made as a double click (a habit on links and buttons).
const DOUBLE_CLICK_CHANCE: f64 = 0.03;

/// What the generator put into a session that an anomaly rule should find: the truth the
/// rules are measured against (`pathlight gen --labels`, `pathlight score-anomalies`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Injected {
    /// A crawler that says so in its User-Agent: the collector's bot flag.
    Bot,
    /// Back and forth between the catalog and one product page, in a hurry, at least three
    /// round trips: the `loops` rule.
    Stuck,
    /// A burst of 3–6 clicks on one element, 80–250 ms apart, a few pixels from each other:
    /// rage clicks.
    Rage,
    /// One or two clicks on text that does nothing: dead clicks.
    Dead,
    /// One button clicked 3–4 times in a row, seconds apart (retrying): `repeated`.
    Repeated,
    /// Automation with a browser's User-Agent: clicks on different elements 15–80 ms apart,
    /// faster than a hand moves: `rapid`.
    Rapid,
}

impl Injected {
    /// Every kind, in the order tables list them.
    pub const ALL: [Injected; 6] = [
        Injected::Bot,
        Injected::Stuck,
        Injected::Rage,
        Injected::Dead,
        Injected::Repeated,
        Injected::Rapid,
    ];

    /// Its name in a labels file.
    pub fn name(self) -> &'static str {
        match self {
            Injected::Bot => "bot",
            Injected::Stuck => "stuck",
            Injected::Rage => "rage",
            Injected::Dead => "dead",
            Injected::Repeated => "repeated",
            Injected::Rapid => "rapid",
        }
    }

    /// The kind a labels file names.
    pub fn parse(name: &str) -> Option<Injected> {
        Injected::ALL.into_iter().find(|k| k.name() == name)
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
    /// A whole number in `lo..=hi`.
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1).max(1) as u64) as i64
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// In (0, 1]: safe to take the logarithm of.
    fn open_unit(&mut self) -> f64 {
        1.0 - self.unit()
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// A normal draw (Box–Muller).
    fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let (u, v) = (self.open_unit(), self.unit());
        mean + sd * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    /// Inverse Gaussian with mean `mu` and shape `lambda` (Michael, Schucany and Haas, 1976).
    fn inverse_gaussian(&mut self, mu: f64, lambda: f64) -> f64 {
        let y = self.normal(0.0, 1.0).powi(2);
        let x = mu + mu * mu * y / (2.0 * lambda)
            - mu / (2.0 * lambda) * (4.0 * mu * lambda * y + mu * mu * y * y).sqrt();
        if self.unit() <= mu / (mu + x) {
            x
        } else {
            mu * mu / x
        }
    }
    /// Weibull with `scale` and `shape` (inverse transform).
    fn weibull(&mut self, scale: f64, shape: f64) -> f64 {
        scale * (-self.open_unit().ln()).powf(1.0 / shape)
    }
    /// Pareto from `min` with tail index `alpha` (inverse transform).
    fn pareto(&mut self, min: f64, alpha: f64) -> f64 {
        min / self.open_unit().powf(1.0 / alpha)
    }
    /// One of `weighted`, drawn in proportion to the weights; `None` if there is none.
    fn pick<'a, T>(&mut self, weighted: &'a [(T, u32)]) -> Option<&'a T> {
        let total: u32 = weighted.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return None;
        }
        let mut at = self.below(u64::from(total)) as u32;
        for (item, w) in weighted {
            if at < *w {
                return Some(item);
            }
            at -= w;
        }
        None
    }
    /// Up to `n` different items of `weighted`, each drawn in proportion to the weights of
    /// those left.
    fn pick_distinct<T: Copy>(&mut self, weighted: &[(T, u32)], n: usize) -> Vec<T> {
        let mut left = weighted.to_vec();
        let mut out = Vec::new();
        while out.len() < n && !left.is_empty() {
            let total: u32 = left.iter().map(|(_, w)| w).sum();
            if total == 0 {
                break;
            }
            let mut at = self.below(u64::from(total)) as u32;
            let i = left
                .iter()
                .position(|(_, w)| {
                    let hit = at < *w;
                    at = at.saturating_sub(*w);
                    hit
                })
                .unwrap_or(0);
            out.push(left.swap_remove(i).0);
        }
        out
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

/// How a session behaves, drawn at its start.
#[derive(Clone, Copy, Default)]
struct Plan {
    bot: bool,
    stuck: bool,
    rapid: bool,
    /// The page view (0-based) with a rage burst, dead clicks or a retried button, if any.
    rage_at: Option<u32>,
    dead_at: Option<u32>,
    repeated_at: Option<u32>,
}

/// One thing a visitor does on a page, as clicks.
enum Act<'a> {
    /// One click, or two (a double click).
    Click(&'a Element, bool),
    /// A rage burst of `n` clicks.
    Rage(&'a Element, u32),
    /// The same button `n` times, seconds apart.
    Retry(&'a Element, u32),
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
            visitors: 0,
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

    /// A first session's start: uniform over the days, thinned at night (a day's shape, not
    /// flat).
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

    /// The next visitor's sessions: the first, then returns after heavy-tailed gaps while they
    /// fall before the end of the range.
    fn visitor_sessions(&mut self) {
        let visitor = self.visitor(self.visitors);
        self.visitors += 1;
        let mut start = self.start_ms();
        loop {
            let end = self.session(&visitor, start);
            if !self.rng.chance(RETURN_CHANCE) {
                break;
            }
            start = end + return_gap_ms(&mut self.rng);
            if start > self.opts.end_ms - 3_600_000 {
                break;
            }
        }
    }

    /// How the session behaves; a stuck one gets its length here (7–10 pages: the entry
    /// page, then 6 to 9 back and forth).
    fn plan(&mut self, visitor: &Visitor, pages: &mut u32) -> Plan {
        if visitor.bot {
            return Plan {
                bot: true,
                ..Plan::default()
            };
        }
        let stuck = self.rng.chance(STUCK_CHANCE);
        if stuck {
            *pages = 7 + self.rng.below(4) as u32;
        }
        // Automation does nothing else.
        if !stuck && self.rng.chance(RAPID_CHANCE) {
            return Plan {
                rapid: true,
                ..Plan::default()
            };
        }
        let n = u64::from(*pages);
        let at = |rng: &mut Rng, p: f64| rng.chance(p).then(|| rng.below(n) as u32);
        Plan {
            bot: false,
            stuck,
            rapid: false,
            rage_at: at(&mut self.rng, RAGE_CHANCE),
            dead_at: at(&mut self.rng, DEAD_CHANCE),
            repeated_at: at(&mut self.rng, REPEATED_CHANCE),
        }
    }

    /// One session from `start`; returns its end.
    fn session(&mut self, visitor: &Visitor, start: i64) -> i64 {
        let session_id = format!("{:016x}", self.rng.next());
        let mut t = start;
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
        let mut pages = session_pages(&mut self.rng);
        let plan = self.plan(visitor, &mut pages);
        // A stuck visitor goes back to the same product every time.
        let product = *self.rng.pick(&PRODUCTS).unwrap_or(&1);
        let user = (!visitor.bot && self.rng.chance(0.3)).then(|| format!("u{}", visitor.n));
        let mut url = self.page_url(page, plan.stuck.then_some(product));
        let mut back_and_forth = 0u32;
        // The page before this one, and whether this one was a step back to it.
        let (mut before, mut came_back) = ("", false);
        for i in 0..pages {
            // A session still going at the end of the range stops there (live traffic, which
            // starts at the end, goes on).
            let last = i + 1 == pages || (self.opts.days > 0 && t > self.opts.end_ms - 600_000);
            let next = if last {
                None
            } else if plan.stuck {
                Some(if page == "catalog.html" {
                    "product.html"
                } else {
                    "catalog.html"
                })
            } else if came_back {
                // A person goes back to the page before at most once in a row; only the
                // stuck go back and forth.
                let others: Vec<(&str, u32)> = next_pages(page)
                    .iter()
                    .copied()
                    .filter(|(p, _)| *p != before)
                    .collect();
                self.rng.pick(&others).copied()
            } else {
                self.rng.pick(next_pages(page)).copied()
            };
            let logged_in = page == "app.html" || page == "checkout.html";
            let view = PageView {
                session: &session_id,
                page,
                url: &url,
                next,
                t,
                index: i,
                user: user.as_ref().filter(|_| logged_in),
            };
            let (events, dwell, link, mut injected) =
                self.page_view(visitor, &plan, view, referrer.take());
            // Stuck: labelled on the page view that completes three round trips, the
            // evidence the loops rule needs.
            if plan.stuck && (page == "catalog.html" || page == "product.html") {
                back_and_forth += 1;
                if back_and_forth == 6 {
                    injected.push(Injected::Stuck);
                }
            }
            self.queue.push_back(Visit {
                ip: visitor.ip,
                country: visitor.country,
                device: visitor.device.name,
                events,
                injected,
            });
            t += dwell;
            let Some(next) = next else { break };
            referrer = Some(std::mem::take(&mut url));
            url = match link {
                Some(href) if href.starts_with(next) => format!("{}{href}", self.opts.base_url),
                _ => {
                    let id = if plan.stuck {
                        product
                    } else {
                        *self.rng.pick(&PRODUCTS).unwrap_or(&1)
                    };
                    self.page_url(next, Some(id))
                }
            };
            // The next page loads: a machine does not wait to read.
            t += if plan.rapid {
                self.rng.between(150, 500)
            } else {
                self.rng.between(300, 1_800)
            };
            came_back = next == before;
            before = page;
            page = next;
        }
        t
    }

    /// The address of a demo page; a product page names its product.
    fn page_url(&self, page: &str, product: Option<u32>) -> String {
        match product {
            Some(id) if page == "product.html" => {
                format!("{}{page}?id={id}", self.opts.base_url)
            }
            _ if page == "product.html" => format!("{}{page}?id=1", self.opts.base_url),
            _ => format!("{}{page}", self.opts.base_url),
        }
    }

    /// One page view's events, how long it lasted, the link clicked to leave it and what was
    /// injected into it.
    fn page_view(
        &mut self,
        visitor: &Visitor,
        plan: &Plan,
        view: PageView,
        referrer: Option<String>,
    ) -> (Vec<RawEvent>, i64, Option<String>, Vec<Injected>) {
        let screen = &self.layout.pages[view.page][visitor.device.screen];
        let viewport = Size {
            w: screen.viewport[0],
            h: screen.viewport[1],
        };
        let document = Size {
            w: screen.document[0],
            h: screen.document[1],
        };
        let t = view.t;
        let base = RawEvent {
            id: Id::default(),
            timestamp: t,
            session_id: view.session.to_owned(),
            url: view.url.to_owned(),
            referrer,
            title: Some(screen.title.clone()),
            viewport,
            document,
            user_id: view.user.cloned(),
            user_agent: Some(visitor.agent.to_owned()),
            kind: EventKind::Pageview,
        };
        let mut events = vec![RawEvent {
            id: self.rng.id(),
            ..base.clone()
        }];
        let mut injected = Vec::new();
        // A stuck visitor hurries; automation does not read.
        let mut dwell = if plan.stuck {
            self.rng.between(1_500, 3_500)
        } else if plan.rapid {
            self.rng.between(300, 900)
        } else {
            dwell_ms(&mut self.rng)
        };
        if plan.bot {
            injected.push(Injected::Bot);
            return (events, dwell, None, injected);
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
        // Ordinary clicks: on things that do something without leaving the page (a link
        // elsewhere is clicked only to go where the session goes next), each once.
        let stays =
            |e: &&Element| e.interactive && e.href.as_deref().is_none_or(|h| h.starts_with('#'));
        let weighted: Vec<(&Element, u32)> = visible
            .iter()
            .filter(|e| stays(e))
            .map(|e| (*e, weight(e)))
            .collect();
        let n = if plan.stuck {
            self.rng.below(2) as usize
        } else {
            [0, 1, 1, 2, 3][self.rng.below(5) as usize]
        };
        // Each element takes part in one act of a page view: a button clicked, then rage- or
        // retry-clicked, would be both at once.
        let mut acts: Vec<Act> = Vec::new();
        let mut taken: Vec<&Element> = Vec::new();
        if plan.rage_at == Some(view.index)
            && let Some(e) = self.rng.pick(&weighted).copied()
        {
            acts.push(Act::Rage(e, self.rng.between(3, 6) as u32));
            taken.push(e);
            injected.push(Injected::Rage);
        }
        if plan.repeated_at == Some(view.index) {
            let buttons: Vec<(&Element, u32)> = weighted
                .iter()
                .copied()
                .filter(|(e, _)| e.tag == "button" && !taken.iter().any(|t| std::ptr::eq(*t, *e)))
                .collect();
            if let Some(e) = self.rng.pick(&buttons).copied() {
                acts.push(Act::Retry(e, self.rng.between(3, 4) as u32));
                taken.push(e);
                injected.push(Injected::Repeated);
            }
        }
        let rest: Vec<(&Element, u32)> = weighted
            .iter()
            .copied()
            .filter(|(e, _)| !taken.iter().any(|t| std::ptr::eq(*t, *e)))
            .collect();
        for e in self.rng.pick_distinct(&rest, n) {
            let at = self.rng.below(acts.len() as u64 + 1) as usize;
            acts.insert(at, Act::Click(e, self.rng.chance(DOUBLE_CLICK_CHANCE)));
        }
        if plan.dead_at == Some(view.index) {
            let text: Vec<(&Element, u32)> = visible
                .iter()
                .filter(|e| !e.interactive)
                .map(|e| (*e, weight(e)))
                .collect();
            let n = 1 + self.rng.below(2) as usize;
            let dead = self.rng.pick_distinct(&text, n);
            if !dead.is_empty() {
                injected.push(Injected::Dead);
            }
            for e in dead {
                let at = self.rng.below(acts.len() as u64 + 1) as usize;
                acts.insert(at, Act::Click(e, false));
            }
        }
        // The link that leads where the session goes next is the last thing clicked.
        let links: Vec<(&Element, u32)> = view
            .next
            .map(|next| {
                visible
                    .iter()
                    .filter(|e| e.href.as_deref().is_some_and(|h| h.starts_with(next)))
                    .map(|e| (*e, weight(e)))
                    .collect()
            })
            .unwrap_or_default();
        let link = self.rng.pick(&links).copied();

        // When: automation clicks everything at once, 15–80 ms apart; a person spreads the
        // acts over the visit, each at least a second after the last one ended.
        let mut clicks: Vec<(&Element, i64, bool)> = Vec::new();
        if plan.rapid {
            let all: Vec<(&Element, u32)> = screen
                .elements
                .iter()
                .filter(|e| e.interactive)
                .map(|e| (e, 1))
                .collect();
            let n = self.rng.between(3, 5) as usize;
            let burst = self.rng.pick_distinct(&all, n);
            let mut at = self.rng.between(150, 400);
            for e in &burst {
                clicks.push((e, at, false));
                at += self.rng.between(15, 80);
            }
            if burst.len() + usize::from(link.is_some()) >= 2 {
                injected.push(Injected::Rapid);
            }
            if let Some(l) = link {
                clicks.push((l, at, false));
            }
            dwell = at + 100;
        } else {
            let mut starts: Vec<i64> = (0..acts.len())
                .map(|_| self.rng.between(1_000, (dwell - 300).max(1_000)))
                .collect();
            starts.sort_unstable();
            let mut free = 0;
            for (act, start) in acts.iter().zip(starts) {
                let mut at = start.max(free);
                match *act {
                    Act::Click(e, double) => {
                        clicks.push((e, at, false));
                        if double {
                            at += self.rng.between(60, 180);
                            clicks.push((e, at, true));
                        }
                    }
                    Act::Rage(e, n) => {
                        for k in 0..n {
                            if k > 0 {
                                at += self.rng.between(80, 250);
                            }
                            clicks.push((e, at, k > 0));
                        }
                    }
                    Act::Retry(e, n) => {
                        for k in 0..n {
                            if k > 0 {
                                at += self.rng.between(1_500, 4_000);
                            }
                            clicks.push((e, at, false));
                        }
                    }
                }
                free = at + 1_000;
            }
            if let Some(l) = link {
                let at = (dwell - 200).max(free);
                clicks.push((l, at, false));
                dwell = at + 200;
            } else {
                // Leaving without a link (back button, another tab) takes a moment too: a
                // page view within a second of a click would look like that click's doing.
                dwell = dwell.max(free + 500);
            }
        }

        // Where: near the middle of the element; a click repeated at once (double click,
        // rage) lands a few pixels from the one before.
        let mut last = (0, 0);
        for &(e, at, again) in &clicks {
            let [bx, by, bw, bh] = e.bounds;
            let (x, y) = if again {
                (
                    (last.0 + self.rng.normal(0.0, 3.0) as i32).clamp(bx, bx + bw),
                    (last.1 + self.rng.normal(0.0, 3.0) as i32).clamp(by, by + bh),
                )
            } else {
                (
                    bx + (self.rng.normal(0.5, 0.17).clamp(0.02, 0.98) * f64::from(bw)) as i32,
                    by + (self.rng.normal(0.5, 0.2).clamp(0.05, 0.95) * f64::from(bh)) as i32,
                )
            };
            last = (x, y);
            let rel = |p: i32, b: i32, s: i32| {
                if s > 0 {
                    f64::from(p - b) / f64::from(s)
                } else {
                    0.5
                }
            };
            events.push(RawEvent {
                id: self.rng.id(),
                timestamp: t + at,
                kind: EventKind::Click(Click {
                    x,
                    y,
                    element_id: e.id.clone(),
                    selector: e.selector.clone(),
                    tag: e.tag.clone(),
                    text: e.text.clone(),
                    href: e.href.clone(),
                    rel_x: rel(x, bx, bw) as f32,
                    rel_y: rel(y, by, bh) as f32,
                    element_box: e.bounds,
                    fixed: 0,
                }),
                ..base.clone()
            });
            // The page's own code answers some clicks with an event of its own, at once.
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
        // Scrolled down to what was clicked, at least.
        let clicked_to = clicks
            .iter()
            .map(|(e, _, _)| e.bounds[1] + e.bounds[3])
            .max()
            .unwrap_or(0);
        let depth = depth.max(f64::from(clicked_to) / f64::from(document.h.max(1)));
        if depth > fold {
            events.push(RawEvent {
                id: self.rng.id(),
                timestamp: t + dwell - 100,
                kind: EventKind::Scroll {
                    max_depth_pct: (depth * 100.0).round().min(100.0) as u8,
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
        (events, dwell, link.and_then(|l| l.href.clone()), injected)
    }
}

/// Where one page view is in its session.
struct PageView<'a> {
    session: &'a str,
    page: &'a str,
    url: &'a str,
    next: Option<&'a str>,
    t: i64,
    /// Its place in the session, from 0.
    index: u32,
    user: Option<&'a String>,
}

/// How often an element is clicked, relative to the others on its page.
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
            self.visitor_sessions();
        }
        let mut visit = self.queue.pop_front()?;
        let left = usize::try_from(self.opts.events - self.made).unwrap_or(usize::MAX);
        if visit.events.len() > left {
            // Cut to fit: what was injected into it may be cut too, so it is not claimed.
            visit.events.truncate(left);
            visit.injected.clear();
        }
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

/// What was injected into `visit`, with its session: the labels `--labels` writes.
pub fn labels(visit: &Visit) -> impl Iterator<Item = (String, Injected)> + '_ {
    let session = visit
        .events
        .first()
        .map(|e| e.session_id.clone())
        .unwrap_or_default();
    visit.injected.iter().map(move |k| (session.clone(), *k))
}

/// Writes labels as CSV, `session_id,kind` (kinds as [`Injected::name`]), each pair once.
pub fn write_labels(labels: &BTreeSet<(String, Injected)>, out: impl Write) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(["session_id", "kind"])?;
    for (session, kind) in labels {
        w.write_record([session.as_str(), kind.name()])?;
    }
    w.flush()?;
    Ok(())
}

/// Reads labels written by [`write_labels`].
pub fn read_labels(input: impl std::io::Read) -> anyhow::Result<BTreeSet<(String, Injected)>> {
    let mut out = BTreeSet::new();
    for (i, row) in csv::Reader::from_reader(input).records().enumerate() {
        let row = row?;
        let kind = row.get(1).and_then(Injected::parse).ok_or_else(|| {
            anyhow::anyhow!(
                "labels line {}: the kind is not one of {:?}",
                i + 2,
                Injected::ALL.map(Injected::name)
            )
        })?;
        out.insert((row.get(0).unwrap_or_default().to_owned(), kind));
    }
    Ok(out)
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
        let now = crate::dates::now_ms();
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
        let rage = visits
            .iter()
            .filter(|v| v.injected.contains(&Injected::Rage));
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

    /// Per session of `visits`: its page views' URLs, its clicks (time, selector, tag),
    /// whether a bot sent it, its visitor's address, its first and last event, and its labels.
    #[derive(Default)]
    struct Seen {
        pages: Vec<String>,
        clicks: Vec<(i64, String, String)>,
        bot: bool,
        ip: Option<IpAddr>,
        span: (i64, i64),
        labels: BTreeSet<Injected>,
    }

    fn sessions(visits: &[Visit]) -> BTreeMap<String, Seen> {
        let mut out: BTreeMap<String, Seen> = BTreeMap::new();
        for v in visits {
            let s = out.entry(v.events[0].session_id.clone()).or_default();
            s.ip = Some(v.ip);
            s.labels.extend(v.injected.iter().copied());
            for e in &v.events {
                s.bot |= e.user_agent.as_deref().is_some_and(|u| u.contains("bot"));
                s.span = if s.span == (0, 0) {
                    (e.timestamp, e.timestamp)
                } else {
                    (s.span.0.min(e.timestamp), s.span.1.max(e.timestamp))
                };
                match &e.kind {
                    EventKind::Pageview => s.pages.push(e.url.clone()),
                    EventKind::Click(c) => {
                        s.clicks
                            .push((e.timestamp, c.selector.clone(), c.tag.clone()))
                    }
                    _ => {}
                }
            }
        }
        out
    }

    fn median<T: Ord + Copy>(mut v: Vec<T>) -> T {
        v.sort_unstable();
        v[v.len() / 2]
    }

    #[test]
    fn sessions_dwell_and_returns_follow_the_published_shapes() {
        let visits: Vec<Visit> = Generator::new(GenOptions {
            days: 14,
            ..opts(100_000)
        })
        .collect();
        let all = sessions(&visits);
        let people: Vec<&Seen> = all.values().filter(|s| !s.bot).collect();
        let pages: Vec<usize> = people.iter().map(|s| s.pages.len()).collect();
        let share = |f: &dyn Fn(usize) -> bool| {
            pages.iter().filter(|&&p| f(p)).count() as f64 / pages.len() as f64
        };
        let bounce = share(&|p| p == 1);
        assert!((0.40..=0.60).contains(&bounce), "bounce rate {bounce}");
        let mid = median(pages.clone());
        assert!((2..=3).contains(&mid), "median session {mid} pages");
        // Heavy-tailed: a few sessions go on for many pages.
        let long = share(&|p| p > 10);
        assert!(
            (0.02..=0.15).contains(&long),
            "{long} of sessions past 10 pages"
        );
        assert!(pages.iter().any(|&p| p >= 30));

        let dwell: Vec<u32> = visits
            .iter()
            .flat_map(|v| &v.events)
            .filter_map(|e| match e.kind {
                EventKind::Engagement { visible_ms } => Some(visible_ms),
                _ => None,
            })
            .collect();
        let (mid, p99) = (median(dwell.clone()), {
            let mut d = dwell.clone();
            d.sort_unstable();
            d[d.len() * 99 / 100]
        });
        assert!((10_000..=30_000).contains(&mid), "median dwell {mid} ms");
        assert!(p99 > 10 * mid, "p99 dwell {p99} ms: a heavy tail");

        // Returns: a visitor's next session comes after the 30-minute timeout at least,
        // usually within hours, sometimes days later.
        let mut by_visitor: BTreeMap<IpAddr, Vec<(i64, i64)>> = BTreeMap::new();
        for s in all.values() {
            by_visitor.entry(s.ip.unwrap()).or_default().push(s.span);
        }
        let mut gaps = Vec::new();
        for spans in by_visitor.values_mut() {
            spans.sort_unstable();
            gaps.extend(spans.windows(2).map(|w| w[1].0 - w[0].1));
        }
        let per_visitor = all.len() as f64 / by_visitor.len() as f64;
        assert!(
            (1.3..=2.5).contains(&per_visitor),
            "{per_visitor} sessions per visitor"
        );
        assert!(gaps.iter().all(|&g| g >= 1_800_000));
        let mid = median(gaps.clone());
        assert!(
            (3_600_000..=4 * 3_600_000).contains(&mid),
            "median return after {mid} ms"
        );
        let days = gaps.iter().filter(|&&g| g > 86_400_000).count() as f64 / gaps.len() as f64;
        assert!(days > 0.03, "{days} of returns after a day or more");
    }

    #[test]
    fn labels_name_what_the_events_show() {
        let visits: Vec<Visit> = Generator::new(opts(100_000)).collect();
        let all = sessions(&visits);
        let has = |k: Injected| all.values().filter(move |s| s.labels.contains(&k));
        // Each kind in about the share it is drawn with.
        let n = all.len() as f64;
        for (kind, share) in [
            (Injected::Bot, 0.03),
            (Injected::Stuck, STUCK_CHANCE),
            (Injected::Rage, RAGE_CHANCE),
            (Injected::Dead, DEAD_CHANCE),
            (Injected::Repeated, REPEATED_CHANCE),
            (Injected::Rapid, RAPID_CHANCE),
        ] {
            let got = has(kind).count() as f64 / n;
            assert!(
                got > share * 0.5 && got < share * 1.5,
                "{kind:?}: {got} of sessions, drawn with {share}"
            );
        }
        for s in has(Injected::Bot) {
            assert!(s.bot && s.clicks.is_empty() && s.labels.len() == 1);
        }
        // Stuck: six page views or more, two addresses taking turns.
        for s in has(Injected::Stuck) {
            assert!(
                s.pages.windows(6).any(|w| w[0] != w[1]
                    && w.iter().step_by(2).all(|p| *p == w[0])
                    && w.iter().skip(1).step_by(2).all(|p| *p == w[1])),
                "{:?}",
                s.pages
            );
        }
        // Rage: three clicks on one element within a second.
        for s in has(Injected::Rage) {
            assert!(
                s.clicks
                    .windows(3)
                    .any(|w| w[2].0 - w[0].0 <= 1_000 && w[0].1 == w[1].1 && w[1].1 == w[2].1)
            );
        }
        // Rapid: two elements clicked less than 100 ms apart; never by a person.
        let rapid = |s: &Seen| {
            s.clicks
                .windows(2)
                .any(|w| w[1].0 - w[0].0 < 100 && w[0].1 != w[1].1)
        };
        for s in all.values() {
            assert_eq!(
                rapid(s),
                s.labels.contains(&Injected::Rapid),
                "{:?}",
                s.clicks
            );
        }
        // Repeated: one element three times in a row, seconds apart.
        for s in has(Injected::Repeated) {
            assert!(s.clicks.windows(3).any(|w| w[0].1 == w[1].1
                && w[1].1 == w[2].1
                && w[1].0 - w[0].0 > 1_000
                && w[2].0 - w[1].0 > 1_000));
        }
        // Dead: text clicked; nobody else clicks text.
        for s in all.values() {
            let text = s
                .clicks
                .iter()
                .any(|c| ["p", "h1", "h2"].contains(&c.2.as_str()));
            assert_eq!(text, s.labels.contains(&Injected::Dead), "{:?}", s.clicks);
        }
    }

    #[test]
    fn labels_files_read_back() {
        let visits: Vec<Visit> = Generator::new(opts(20_000)).collect();
        let labels: BTreeSet<(String, Injected)> = visits.iter().flat_map(labels).collect();
        assert!(labels.len() > 50);
        let mut file = Vec::new();
        write_labels(&labels, &mut file).unwrap();
        assert!(file.starts_with(b"session_id,kind\n"));
        assert_eq!(read_labels(&file[..]).unwrap(), labels);
        let bad = read_labels(&b"session_id,kind\nabc,slow\n"[..]).unwrap_err();
        assert!(bad.to_string().contains("line 2"), "{bad}");
    }
}
