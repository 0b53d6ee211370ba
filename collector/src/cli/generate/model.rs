//! The demo site and its visitors as the generator draws them: the pages' measured layout,
//! devices, countries, referrers, the funnel's links, the published shapes of sessions, dwell
//! times and returns, the chances of each anomaly, and the random numbers behind every draw.

use pathlight_wire::Id;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
pub(super) struct Layout {
    pub(super) pages: BTreeMap<String, Vec<Screen>>,
}

#[derive(Deserialize)]
pub(super) struct Screen {
    pub(super) viewport: [u32; 2],
    pub(super) document: [u32; 2],
    pub(super) title: String,
    pub(super) elements: Vec<Element>,
}

#[derive(Deserialize)]
pub(super) struct Element {
    pub(super) selector: String,
    pub(super) id: Option<String>,
    pub(super) tag: String,
    pub(super) text: Option<String>,
    pub(super) href: Option<String>,
    pub(super) interactive: bool,
    #[serde(rename = "box")]
    pub(super) bounds: [i32; 4],
}

/// A device class: its screen (index into each page's measured screens), share of sessions,
/// and the User-Agents seen on it.
pub(super) struct Device {
    pub(super) name: &'static str,
    pub(super) screen: usize,
    pub(super) share: u32,
    pub(super) agents: &'static [&'static str],
}

pub(super) const DEVICES: [Device; 4] = [
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

pub(super) const BOTS: [&str; 3] = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
];

pub(super) const COUNTRIES: [(&str, u32); 13] = [
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

pub(super) const REFERRERS: [(Option<&str>, u32); 5] = [
    (None, 40),
    (Some("https://www.google.com/"), 35),
    (Some("https://news.ycombinator.com/"), 10),
    (Some("https://twitter.com/"), 8),
    (Some("https://newsletter.example.com/issue-42"), 7),
];

/// Where a session goes after each page: the next page, drawn in proportion to the weights.
/// Whether there is a next page at all is the session's length ([`session_pages`]), so a
/// visitor can leave from any page, the first included.
pub(super) fn next_pages(page: &str) -> &'static [(&'static str, u32)] {
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
pub(super) const PRODUCTS: [(u32, u32); 4] = [(1, 40), (2, 30), (3, 20), (4, 10)];

/// The most pages a session views; the inverse Gaussian's tail goes on, visits do not.
pub(super) const MAX_PAGES: u32 = 50;

/// Session length in pages, heavy-tailed. Huberman, Pirolli, Pitkow and Lukose ("Strong
/// regularities in World Wide Web surfing", Science 280:95, 1998) found that the pages a
/// visitor views on a site follow an inverse Gaussian distribution (their "law of surfing").
/// Its parameters here are set from published benchmarks of shops: a bounce rate (sessions of
/// one page) of 40–60 % (CXL's bounce rate benchmarks: 45.7 % for shopping sites) and a median
/// session of 2–3 pages. Mean 3 and shape 0.82 give P(1 page) = 47 %, P(≤ 2) = 66 %, a median
/// of 2 pages, 7 % of sessions past 10 pages; drawn as the next whole page up.
pub(super) fn session_pages(rng: &mut Rng) -> u32 {
    (rng.inverse_gaussian(3.0, 0.82).ceil() as u32).clamp(1, MAX_PAGES)
}

/// Seconds on a page, heavy-tailed: Liu, White and Dumais ("Understanding web browsing
/// behaviors through Weibull analysis of dwell time", SIGIR 2010) fit dwell times with a
/// Weibull distribution whose shape is below 1 ("negative aging": most leave early, those who
/// stay read on). Shape 0.7 here; scale 34 s puts the median at 20 s and the mean at 43 s.
/// Kept between 1 s and 10 minutes (the tracker's session times out after 30).
pub(super) fn dwell_ms(rng: &mut Rng) -> i64 {
    ((rng.weibull(34.0, 0.7) * 1000.0) as i64).clamp(1_000, 600_000)
}

/// A visitor comes back after each session with this chance (about 1.8 sessions each).
pub(super) const RETURN_CHANCE: f64 = 0.45;

/// Time from one session's end to the visitor's next, heavy-tailed: Dezső et al. ("Dynamics
/// of information access on the Web", Phys. Rev. E 73, 066132, 2006) found that the time
/// between a user's visits to a site follows a power law. Pareto from 30 minutes (a shorter
/// pause is the same session) with tail index 0.5: median 2 hours, 14 % past a day, 5 % past
/// a week.
pub(super) fn return_gap_ms(rng: &mut Rng) -> i64 {
    (rng.pareto(1_800_000.0, 0.5) as i64).min(365 * 86_400_000)
}

/// Shares of the anomalies put into sessions of people (bots are a share of visitors).
pub(super) const STUCK_CHANCE: f64 = 0.03;
pub(super) const RAPID_CHANCE: f64 = 0.01;
pub(super) const RAGE_CHANCE: f64 = 0.02;
pub(super) const DEAD_CHANCE: f64 = 0.05;
pub(super) const REPEATED_CHANCE: f64 = 0.02;
/// Of ordinary clicks, the share made as a double click (a habit on links and buttons).
pub(super) const DOUBLE_CLICK_CHANCE: f64 = 0.03;

/// SplitMix64: small, fast and good enough to draw traffic from; no dependency for it.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// A whole number in `lo..=hi`.
    pub(super) fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1).max(1) as u64) as i64
    }
    pub(super) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// In (0, 1]: safe to take the logarithm of.
    pub(super) fn open_unit(&mut self) -> f64 {
        1.0 - self.unit()
    }
    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// A normal draw (Box–Muller).
    pub(super) fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let (u, v) = (self.open_unit(), self.unit());
        mean + sd * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    /// Inverse Gaussian with mean `mu` and shape `lambda` (Michael, Schucany and Haas, 1976).
    pub(super) fn inverse_gaussian(&mut self, mu: f64, lambda: f64) -> f64 {
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
    pub(super) fn weibull(&mut self, scale: f64, shape: f64) -> f64 {
        scale * (-self.open_unit().ln()).powf(1.0 / shape)
    }
    /// Pareto from `min` with tail index `alpha` (inverse transform).
    pub(super) fn pareto(&mut self, min: f64, alpha: f64) -> f64 {
        min / self.open_unit().powf(1.0 / alpha)
    }
    /// One of `weighted`, drawn in proportion to the weights; `None` if there is none.
    pub(super) fn pick<'a, T>(&mut self, weighted: &'a [(T, u32)]) -> Option<&'a T> {
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
    pub(super) fn pick_distinct<T: Copy>(&mut self, weighted: &[(T, u32)], n: usize) -> Vec<T> {
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
    pub(super) fn id(&mut self) -> Id {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next().to_le_bytes());
        b[8..].copy_from_slice(&self.next().to_le_bytes());
        Id(b)
    }
}
