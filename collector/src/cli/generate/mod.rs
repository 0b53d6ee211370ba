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

use pathlight_wire::{FORMAT_VERSION, RawBatch, RawEvent};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

pub mod command;
mod files;
mod labels;
mod model;
mod page;
use page::PageView;
mod send;
#[cfg(test)]
mod tests;

pub use files::{FileFormat, write};
pub use labels::{Injected, labels, read_labels, write_labels};
use model::*;
pub use send::{Destination, SendOptions, SendReport, send};

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
        let layout: Layout =
            serde_json::from_str(include_str!("../../../../demo-site/layout.json"))
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
