//! The analytics queries. Written for ClickHouse 18.16 and current servers alike (no window
//! functions, no server-side parameters): values are bound with the client's `?` escaping,
//! every result column is cast to the exact type its row field reads.
//!
//! Each endpoint's SQL, row types and assembly live in one file: `page` (heatmap, elements),
//! `stats`, `sessions` (the list and a session's timeline), `funnel`, `frustration` (rage and
//! dead clicks, anomalies), `search`, `cohorts` (retention), `explore` (actions, patterns, user
//! events, export, realtime); `catalogue` prints them all. This file holds what they share: the parameters
//! ([`Filters`]), the conditions they become, and the binding of a statement's placeholders.

use super::{Count, QueryError};
use crate::dates::{civil, days_from_civil, unix_day};
use crate::storage::clickhouse::marts::{PX, PY, RX, RY};
use clickhouse::Client;
use serde::{Deserialize, Serialize};

mod catalogue;
mod cohorts;
mod explore;
mod frustration;
mod funnel;
mod page;
mod search;
mod sessions;
mod stats;

pub use catalogue::catalogue;
pub use cohorts::*;
pub use explore::*;
pub use frustration::*;
pub use funnel::*;
pub use page::*;
pub use search::*;
pub use sessions::*;
pub use stats::*;

/// Validated query parameters shared by every endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Filters {
    /// `site` (required).
    pub site: String,
    /// `from`, `YYYY-MM-DD` (UTC); default: 29 days before `to`.
    pub from: String,
    /// `to`, `YYYY-MM-DD` (UTC), inclusive; default: today.
    pub to: String,
    /// `path`: one page (`/catalog`); required by `heatmap` and `elements`.
    pub path: Option<String>,
    /// `device`: `desktop`, `mobile` or `tablet`.
    pub device: Option<String>,
    /// `width`: the width the viewer renders at; clicks are taken from the same layout class
    /// (phone < 600 px ≤ tablet < 1000 px ≤ desktop), since layouts differ between them.
    pub width: Option<(u32, u32)>,
    /// `steps`: funnel steps, comma-separated: a page path (`/pricing`) or a custom event name
    /// (`signup`).
    pub steps: Vec<String>,
    /// The session of `sessions/{id}`.
    pub session: Option<String>,
    /// `limit` (1–1000, default 100) and `offset` (default 0) for paged lists.
    pub limit: u32,
    /// See `limit`.
    pub offset: u32,
    /// `interval=hour`: the stats series per hour instead of per day.
    pub hourly: bool,
    /// `period`: the buckets of the stats series, `day` (default), `week` or `month`.
    pub period: Period,
    /// `from` and `to` given with a time (`2026-11-10T14:00:00Z`, the heatmap's hours window):
    /// the window's first second and the second after its last, seconds since the epoch. The
    /// days of `from` and `to` then hold the window's days.
    pub window: Option<(u64, u64)>,
    /// `event_type`: events of one kind only (`timeline`, `top`, `export`).
    pub event_type: Option<String>,
    /// `property`: the custom property `top` ranks the values of.
    pub property: Option<String>,
    /// `until` of `timeline`: events stored at or before this time (ms since the epoch) only,
    /// so that pages asked one after another stay the same while new events arrive.
    pub until: Option<u64>,
    /// The site's goal events (`goals` in `[[sites]]`), whose visitors `stats` counts as
    /// converted (not a parameter: the site's config).
    pub goals: Vec<String>,
    /// The site's `repeated` rule (not a parameter: the site's config): an action done `.0`
    /// times in a row, each more than `.1` ms after the one before; `.0` = `u32::MAX` when
    /// the rule is off.
    pub repeat: (u32, u32),
    /// Rage clicks: three clicks within `rage_ms` (default 1000) and `rage_px` (default 30).
    pub rage_ms: u32,
    /// See `rage_ms`.
    pub rage_px: u32,
    /// `exact=true`: read `events FINAL` even where a mart could answer (marts may count an
    /// event a client re-sent twice; see `storage/clickhouse/marts.rs`).
    pub exact: bool,
    /// `ended` for the session list: `closed`, `timed_out` or `active`.
    pub ended: Option<String>,
    /// `layers` of `heatmap`, comma-separated: `clicks` (points and anchored points), `scroll`,
    /// `frustration` (rage and dead clicks, read from per-session sequences, so the slowest);
    /// default all. A viewer draws the click map first and asks for the rest beside it.
    pub layers: Option<Vec<String>>,
    /// The days of the range whose session figures `stats` reads from the rollup (not a
    /// parameter: found by the query itself).
    pub rolled: Vec<String>,
    /// The site's names for search analytics (`[sites.search]`; not a parameter: from the
    /// site's config).
    pub search: crate::config::SearchConfig,
    /// The sessions a page of `sessions` lists, whose summaries and anomalies are read (not a
    /// parameter: found by the query itself).
    pub listed: Vec<String>,
    /// The site's time zone, whose weeks `retention` counts in (not a parameter: the site's;
    /// `UTC` for the sites of the config file).
    pub timezone: String,
}

/// The buckets of the `stats` series (`period`). A bucket is named by its first day; weeks
/// start on Monday (ISO 8601), and the first and last buckets hold only the range's days.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Period {
    /// One bucket per day.
    #[default]
    Day,
    /// Per week, Monday to Sunday.
    Week,
    /// Per calendar month.
    Month,
}

impl Period {
    /// The bucket of the `Date` expression `day`.
    pub(super) fn bucket(self, day: &str) -> String {
        match self {
            Period::Day => day.to_owned(),
            Period::Week => format!("toMonday({day})"),
            Period::Month => format!("toStartOfMonth({day})"),
        }
    }

    /// The first day of the bucket holding `day` (days since the epoch).
    pub(super) fn start_of(self, day: i64) -> i64 {
        match self {
            Period::Day => day,
            // 1970-01-01 was a Thursday, 3 days after a Monday.
            Period::Week => day - (day + 3).rem_euclid(7),
            Period::Month => {
                let c = civil(day);
                days_of(&format!("{}-01", &c[..7]))
            }
        }
    }
}

/// The kinds of event (`event_type`).
pub const EVENT_TYPES: [&str; 5] = ["pageview", "click", "scroll", "engagement", "custom"];

/// The default rage-click thresholds (the rollup's).
pub(super) const RAGE_MS: u32 = 1000;
/// See [`RAGE_MS`].
pub(super) const RAGE_PX: u32 = 30;

enum Bind {
    S(String),
    U(u32),
    N(u64),
    L(Vec<String>),
}

impl Bind {
    fn bind(self, q: clickhouse::query::Query) -> clickhouse::query::Query {
        match self {
            Bind::S(s) => q.bind(s),
            Bind::U(u) => q.bind(u),
            Bind::N(n) => q.bind(n),
            Bind::L(l) => q.bind(l),
        }
    }
}

/// The days of a session's rows around a range: the day before (a session that started then
/// and went on past midnight) to the day after.
const AROUND: &str = "day BETWEEN toDate(?) - 1 AND toDate(?) + 1";
/// The days of a range and the day after (a session going on past midnight).
const THROUGH_NEXT: &str = "day BETWEEN toDate(?) AND toDate(?) + 1";

/// `HAVING` of a query over the `sessions` mart: sessions that started in the date range.
const STARTED: &str = "toDate(toDateTime(intDiv(t0, 1000))) BETWEEN toDate(?) AND toDate(?)";

/// The first day an event can have: stored timestamps start at the Unix epoch.
pub const FIRST_DAY: &str = "1970-01-01";
/// The last day a range reads: ClickHouse 18.16's `Date` ends in 2105, and a day after this
/// one must still be a `Date` (queries read the day after a range, for sessions going on past
/// midnight).
pub const LAST_DAY: &str = "2100-12-31";
/// `from` and `to` of a range without days: the day after [`LAST_DAY`] to it.
const EMPTY_RANGE: (&str, &str) = ("2101-01-01", LAST_DAY);

fn bad(param: &'static str, detail: impl Into<String>) -> QueryError {
    QueryError::BadParam {
        param,
        detail: detail.into(),
    }
}

impl Filters {
    /// Parses a query string.
    pub fn parse(query: &str) -> Result<Filters, QueryError> {
        let (mut from_at, mut to_at) = (None, None);
        let mut f = Filters {
            site: String::new(),
            from: String::new(),
            to: String::new(),
            path: None,
            device: None,
            width: None,
            steps: Vec::new(),
            session: None,
            rage_ms: RAGE_MS,
            rage_px: RAGE_PX,
            hourly: false,
            period: Period::Day,
            window: None,
            event_type: None,
            property: None,
            until: None,
            goals: Vec::new(),
            repeat: crate::query::analysis::Rules::default().repeat(),
            limit: 100,
            offset: 0,
            exact: false,
            ended: None,
            layers: None,
            rolled: Vec::new(),
            search: Default::default(),
            listed: Vec::new(),
            timezone: "UTC".into(),
        };
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let v = v.into_owned();
            match k.as_ref() {
                // Lengths are in characters, as the OpenAPI document's JSON Schema counts.
                "site" if (1..=256).contains(&v.chars().count()) => f.site = v,
                "site" => return Err(bad("site", "must be 1 to 256 characters")),
                "from" | "to" => {
                    let (name, at) = if k == "from" {
                        ("from", &mut from_at)
                    } else {
                        ("to", &mut to_at)
                    };
                    let day = if let Some(secs) = datetime(&v) {
                        *at = Some(secs);
                        civil(secs.div_euclid(86_400))
                    } else {
                        date(&v).ok_or_else(|| {
                            bad(name, "expected YYYY-MM-DD or an RFC 3339 date-time")
                        })?
                    };
                    if name == "from" {
                        f.from = day;
                    } else {
                        f.to = day;
                    }
                }
                "path" if v.starts_with('/') && v.chars().count() <= 2048 => f.path = Some(v),
                "path" => {
                    return Err(bad(
                        "path",
                        "must start with / and be at most 2048 characters",
                    ));
                }
                "device" if matches!(v.as_str(), "desktop" | "mobile" | "tablet") => {
                    f.device = Some(v)
                }
                "device" => return Err(bad("device", "expected desktop, mobile or tablet")),
                "width" => {
                    let w: u32 = v
                        .parse()
                        .map_err(|_| bad("width", "expected a width in CSS px"))?;
                    f.width = Some(match w {
                        0..600 => (0, 600),
                        600..1000 => (600, 1000),
                        _ => (1000, u32::MAX),
                    });
                }
                "session" if (1..=256).contains(&v.chars().count()) => f.session = Some(v),
                "limit" => {
                    f.limit = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=1000).contains(n))
                        .ok_or_else(|| bad("limit", "1 to 1000"))?
                }
                "offset" => {
                    f.offset = v
                        .parse()
                        .ok()
                        // The sessions list reads `offset + limit` rows into memory to page
                        // newest first: 100 k of them are a few MB, 10 M were most of a GB.
                        .filter(|n| *n <= MAX_OFFSET)
                        .ok_or_else(|| bad("offset", "0 to 100000"))?
                }
                "interval" if v == "day" || v == "hour" => f.hourly = v == "hour",
                "period" => {
                    f.period = match v.as_str() {
                        "day" => Period::Day,
                        "week" => Period::Week,
                        "month" => Period::Month,
                        _ => return Err(bad("period", "expected day, week or month")),
                    }
                }
                "event_type" if EVENT_TYPES.contains(&v.as_str()) => f.event_type = Some(v),
                "event_type" => {
                    return Err(bad(
                        "event_type",
                        "expected pageview, click, scroll, engagement or custom",
                    ));
                }
                "property" if (1..=256).contains(&v.chars().count()) => f.property = Some(v),
                "property" => return Err(bad("property", "must be 1 to 256 characters")),
                "until" => {
                    f.until = Some(
                        v.parse()
                            .ok()
                            .filter(|&n: &u64| n <= MAX_MS)
                            .ok_or_else(|| bad("until", "ms since the epoch"))?,
                    )
                }
                "exact" if v == "true" || v == "false" => f.exact = v == "true",
                "exact" => return Err(bad("exact", "expected true or false")),
                "ended" if matches!(v.as_str(), "closed" | "timed_out" | "active") => {
                    f.ended = Some(v)
                }
                "ended" => return Err(bad("ended", "expected closed, timed_out or active")),
                "layers" => {
                    let layers: Vec<String> = v.split(',').map(str::to_owned).collect();
                    let known =
                        |l: &String| matches!(l.as_str(), "clicks" | "scroll" | "frustration");
                    let twice = layers
                        .iter()
                        .enumerate()
                        .any(|(i, l)| layers[..i].contains(l));
                    if !layers.iter().all(known) || twice {
                        return Err(bad(
                            "layers",
                            "comma-separated clicks, scroll, frustration, each at most once",
                        ));
                    }
                    f.layers = Some(layers);
                }
                "interval" => return Err(bad("interval", "expected day or hour")),
                "rage_ms" => {
                    f.rage_ms = v
                        .parse()
                        .ok()
                        .filter(|&n| (1..=60_000).contains(&n))
                        .ok_or_else(|| bad("rage_ms", "1 to 60000"))?
                }
                "rage_px" => {
                    f.rage_px = v
                        .parse()
                        .ok()
                        .filter(|&n| (1..=10_000).contains(&n))
                        .ok_or_else(|| bad("rage_px", "1 to 10000"))?
                }
                // Taken as sent, each step 1 to 2048 characters: a step padded with spaces is
                // another event name, and a lenient reading would accept lists the API's
                // document calls invalid.
                "steps" => {
                    f.steps = v.split(',').map(str::to_owned).collect();
                    let fits = |s: &String| (1..=2048).contains(&s.chars().count());
                    if !(2..=10).contains(&f.steps.len()) || !f.steps.iter().all(fits) {
                        return Err(bad(
                            "steps",
                            "2 to 10 comma-separated page paths or event names, each 1 to 2048 characters",
                        ));
                    }
                }
                _ => {}
            }
        }
        if f.site.is_empty() {
            return Err(bad("site", "required"));
        }
        if f.hourly {
            // An hourly series has hours for buckets, whatever `period` says.
            f.period = Period::Day;
        }
        if f.to.is_empty() {
            f.to = civil(unix_day(crate::dates::now_ms()));
        }
        if f.from.is_empty() {
            f.from = civil(days_of(&f.to) - 29);
        }
        if from_at.is_some() || to_at.is_some() {
            // A side given as a date is its day's start (`from`) or the next day's (`to`).
            let (first, end) = (
                days_of(FIRST_DAY) * 86_400,
                (days_of(LAST_DAY) + 1) * 86_400,
            );
            let lo = from_at
                .unwrap_or(days_of(&f.from) * 86_400)
                .clamp(first, end);
            let hi = to_at
                .unwrap_or((days_of(&f.to) + 1) * 86_400)
                .clamp(first, end);
            // `to` is exclusive: the window's last day is that of its last second.
            f.to = civil((hi - 1).div_euclid(86_400));
            // An empty window (`to` not after `from`) reads nothing, as an empty range.
            f.window = Some((lo as u64, hi.max(lo) as u64));
        }
        f.clamp_range();
        Ok(f)
    }

    /// Limits the range to the days events can have ([`FIRST_DAY`] to [`LAST_DAY`]): a range
    /// reaching outside them has no events there, and ClickHouse's `Date` cannot hold their
    /// days. A range holding none of them (`from` after `to`, or wholly outside) becomes
    /// [`EMPTY_RANGE`], which every query reads as no days.
    fn clamp_range(&mut self) {
        let (first, last) = (days_of(FIRST_DAY), days_of(LAST_DAY));
        let (from, to) = (days_of(&self.from).max(first), days_of(&self.to).min(last));
        (self.from, self.to) = if from > to {
            (EMPTY_RANGE.0.into(), EMPTY_RANGE.1.into())
        } else {
            (civil(from), civil(to))
        };
    }

    /// The funnel steps, for `funnel`.
    pub fn steps(&self) -> Result<&[String], QueryError> {
        if self.steps.is_empty() {
            Err(bad("steps", "required for this endpoint"))
        } else {
            Ok(&self.steps)
        }
    }

    /// The `path`, for endpoints that need one.
    pub fn path(&self) -> Result<&str, QueryError> {
        self.path
            .as_deref()
            .ok_or_else(|| bad("path", "required for this endpoint"))
    }

    /// `site_id = ? AND <range>`, `range` holding the `from` and `to` placeholders in order;
    /// binds the three.
    fn site_and(&self, range: &str, binds: &mut Vec<Bind>) -> String {
        binds.extend([
            Bind::S(self.site.clone()),
            Bind::S(self.from.clone()),
            Bind::S(self.to.clone()),
        ]);
        format!("site_id = ? AND {range}")
    }

    /// ` AND <column> = ?` for each of `pairs` whose value is set, bound.
    fn equal(sql: &mut String, binds: &mut Vec<Bind>, pairs: &[(&str, Option<&String>)]) {
        for &(column, value) in pairs {
            if let Some(v) = value {
                sql.push_str(&format!(" AND {column} = ?"));
                binds.push(Bind::S(v.clone()));
            }
        }
    }

    /// `WHERE` for events of `kind` (or all kinds), bots excluded, with its bound values.
    fn condition(&self, kind: Option<&str>, binds: &mut Vec<Bind>) -> String {
        let mut sql = self.site_and(
            "toDate(timestamp) BETWEEN toDate(?) AND toDate(?) AND is_bot = 0",
            binds,
        );
        let kind = kind.map(str::to_owned);
        Self::equal(
            &mut sql,
            binds,
            &[
                ("event_type", kind.as_ref()),
                ("path", self.path.as_ref()),
                ("device", self.device.as_ref()),
            ],
        );
        if let Some((lo, hi)) = self.width {
            sql.push_str(" AND viewport_w >= ? AND viewport_w < ?");
            binds.extend([Bind::U(lo), Bind::U(hi.min(u32::from(u16::MAX) + 1))]);
        }
        if let Some((lo, hi)) = self.window {
            sql.push_str(
                " AND timestamp >= toDateTime(toUInt32(?)) AND timestamp < toDateTime(toUInt32(?))",
            );
            binds.extend([Bind::N(lo), Bind::N(hi)]);
        }
        sql
    }

    /// `WHERE` over a page mart (`heatmap_*`, `*_daily`): the same filters by their columns
    /// (the width's layout class is the mart's `layout`).
    fn mart_condition(&self, binds: &mut Vec<Bind>) -> String {
        let mut sql = self.site_and("day BETWEEN toDate(?) AND toDate(?)", binds);
        Self::equal(
            &mut sql,
            binds,
            &[
                ("path", self.path.as_ref()),
                ("device", self.device.as_ref()),
            ],
        );
        if let Some(layout) = self.layout() {
            sql.push_str(" AND layout = ?");
            binds.push(Bind::U(u32::from(layout)));
        }
        sql
    }

    /// `WHERE` over the `sessions` mart. A session's rows are per day, so the day after the
    /// range is read too, and of the day before it the rows of sessions that also have one in
    /// the range (one that started before midnight: [`STARTED`] then leaves it out). Only
    /// those, for a range of a day or two: merging every session of the day before to learn
    /// the few that went on past midnight cost as much as the range itself when the range is
    /// today. Over longer ranges the set of the range's sessions costs more than that day.
    fn sessions_condition(&self, binds: &mut Vec<Bind>) -> String {
        if days_of(&self.to) - days_of(&self.from) >= 2 {
            return self.site_days_device(AROUND, binds);
        }
        let range = self.site_days_device(THROUGH_NEXT, binds);
        binds.extend([Bind::S(self.site.clone()), Bind::S(self.from.clone())]);
        let mut before = "site_id = ? AND day = toDate(?) - 1".to_owned();
        Self::equal(&mut before, binds, &[("device", self.device.as_ref())]);
        let inner = self.site_days_device(THROUGH_NEXT, binds);
        format!(
            "(({range}) OR ({before} AND session_id GLOBAL IN \
            (SELECT session_id FROM sessions WHERE {inner})))"
        )
    }

    /// `WHERE` over `traffic_daily`: the site, the days, the device.
    fn traffic_condition(&self, binds: &mut Vec<Bind>) -> String {
        self.site_days_device("day BETWEEN toDate(?) AND toDate(?)", binds)
    }

    /// The site, the days (`range`, with `?` for `from` and `to`) and the device, bound: the
    /// `WHERE` of the tables keyed by site, day and device (the marts of traffic and sessions).
    fn site_days_device(&self, range: &str, binds: &mut Vec<Bind>) -> String {
        let mut sql = self.site_and(range, binds);
        Self::equal(&mut sql, binds, &[("device", self.device.as_ref())]);
        sql
    }

    /// Whether the site's traffic figures may come from `traffic_daily`, which has per-day,
    /// per-device rows and none per page or width (a page's own figures come from
    /// `page_daily`).
    fn traffic_mart(&self) -> bool {
        !self.exact && self.path.is_none() && self.width.is_none() && self.window.is_none()
    }

    /// The layout class of `width` (0 phone, 1 tablet, 2 desktop), as the marts key it.
    pub(super) fn layout(&self) -> Option<u8> {
        self.width.map(|(lo, _)| match lo {
            0 => 0,
            600 => 1,
            _ => 2,
        })
    }

    /// Whether a page's rage and dead clicks may come from the behaviour rollup, which keeps
    /// them per page, layout and device at the default thresholds.
    pub(super) fn frustration_rollup(&self) -> bool {
        self.page_marts() && (self.rage_ms, self.rage_px) == (RAGE_MS, RAGE_PX)
    }

    /// Whether session behaviour (`anomalies`, `patterns`) may come from its rollup
    /// (`behaviour.rs`), which keeps the site's sessions whole at the default thresholds.
    pub(super) fn behaviour_rollup(&self) -> bool {
        !self.exact
            && self.path.is_none()
            && self.width.is_none()
            && self.window.is_none()
            && self.device.is_none()
            && (self.rage_ms, self.rage_px) == (RAGE_MS, RAGE_PX)
    }

    /// Whether page figures may come from the page marts, which are per day: not for an
    /// hours window.
    fn page_marts(&self) -> bool {
        !self.exact && self.window.is_none()
    }

    /// Whether session figures may come from the `sessions` mart, which has no per-page or
    /// per-width rows (a session spans pages and layouts).
    fn session_mart(&self) -> bool {
        !self.exact && self.path.is_none() && self.width.is_none() && self.window.is_none()
    }
}

/// The query for `sql` with its placeholders replaced by the filters' conditions, bound:
/// `{where}` over `events` (for events of `kind`), `{mart}` over a page mart, `{sessions}`
/// and `{started}` over the `sessions` mart.
fn prepare(
    client: &Client,
    sql: &str,
    f: &Filters,
    kind: Option<&str>,
) -> clickhouse::query::Query {
    prepare_with(client, sql, f, kind, Vec::new(), Vec::new())
}

/// [`prepare`] with values for `?`s that stand before `{where}` (`pre`) and after it (`post`).
fn prepare_with(
    client: &Client,
    sql: &str,
    f: &Filters,
    kind: Option<&str>,
    pre: Vec<Bind>,
    post: Vec<Bind>,
) -> clickhouse::query::Query {
    let mut binds = pre;
    // Placeholders are filled in the order they appear, so their values are bound in order.
    let mut text = String::with_capacity(sql.len() + 256);
    let mut rest = sql;
    while let Some(at) = rest.find('{') {
        let (head, tail) = rest.split_at(at);
        text.push_str(head);
        let end = tail.find('}').map_or(tail.len(), |e| e + 1);
        match &tail[..end] {
            "{where}" => text.push_str(&f.condition(kind, &mut binds)),
            "{mart}" => text.push_str(&f.mart_condition(&mut binds)),
            "{sessions}" => text.push_str(&f.sessions_condition(&mut binds)),
            "{listed}" => {
                text.push_str("session_id IN (SELECT arrayJoin(?))");
                binds.push(Bind::L(f.listed.clone()));
            }
            "{around}" => text.push_str(&f.site_days_device(AROUND, &mut binds)),
            "{traffic}" => text.push_str(&f.traffic_condition(&mut binds)),
            "{unrolled}" => {
                text.push_str(UNROLLED);
                // Never empty: 18.16 cannot type `has([], …)` (`Array(Nothing)`); no day is ''.
                let mut days = vec![String::new()];
                days.extend(f.rolled.iter().cloned());
                binds.push(Bind::L(days));
            }
            "{rolled}" => {
                text.push_str(&f.traffic_condition(&mut binds));
                text.push_str(" AND ");
                text.push_str(LATEST_ROLL);
                binds.extend([
                    Bind::S(f.site.clone()),
                    Bind::S(f.from.clone()),
                    Bind::S(f.to.clone()),
                ]);
                // Only the days read from here: one read live (today on a small site, a day
                // some shard has not rolled yet) must not count twice.
                text.push_str(" AND has(?, toString(day))");
                let mut days = vec![String::new()];
                days.extend(f.rolled.iter().cloned());
                binds.push(Bind::L(days));
            }
            "{rage_ms}" => {
                text.push('?');
                binds.push(Bind::U(f.rage_ms));
            }
            "{repeat_min}" => {
                text.push('?');
                binds.push(Bind::U(f.repeat.0));
            }
            "{repeat_gap}" => {
                text.push('?');
                binds.push(Bind::U(f.repeat.1));
            }
            "{started}" => {
                text.push_str(STARTED);
                binds.extend([Bind::S(f.from.clone()), Bind::S(f.to.clone())]);
            }
            other => text.push_str(other),
        }
        rest = &tail[end..];
    }
    text.push_str(rest);
    binds.extend(post);
    binds
        .into_iter()
        .fold(client.query(&text), |q, b| b.bind(q))
}

/// Runs `sql` (whose `{where}` is replaced by the filters' condition for `kind`).
async fn rows<T>(
    client: &Client,
    sql: &str,
    f: &Filters,
    kind: Option<&str>,
) -> Result<Vec<T>, clickhouse::error::Error>
where
    T: clickhouse::RowOwned + clickhouse::RowRead,
{
    prepare(client, sql, f, kind).fetch_all::<T>().await
}

/// Runs `mart` if `use_mart`, else `raw` for events of `kind`: the same figures, from a mart
/// or from `events FINAL`.
async fn pick<T>(
    client: &Client,
    f: &Filters,
    use_mart: bool,
    mart: &str,
    raw: &str,
    kind: &str,
) -> Result<Vec<T>, clickhouse::error::Error>
where
    T: clickhouse::RowOwned + clickhouse::RowRead,
{
    if use_mart {
        rows(client, mart, f, None).await
    } else {
        rows(client, raw, f, Some(kind)).await
    }
}

/// The latest time `until` may name, ms: the end of the last day a `Date` holds here.
const MAX_MS: u64 = 4_133_980_799_999;

/// An RFC 3339 `date-time` (`2026-11-10T14:00:00Z`, `2026-11-10T16:00:00.5+02:00`; the
/// heatmap's hours window) as seconds since the epoch (negative before it), to the second: a
/// fraction is dropped, a leap second is the second before it.
fn datetime(s: &str) -> Option<i64> {
    let (d, t) = s.split_at_checked(10)?;
    let day = days_of(&date(d)?);
    let t = t.strip_prefix(['T', 't'])?;
    let b = t.as_bytes();
    if b.len() < 9 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| {
        let p = t.get(r)?;
        p.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| p.parse::<i64>().ok())?
    };
    let (h, m, sec) = (num(0..2)?, num(3..5)?, num(6..8)?);
    let mut rest = &t[8..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let o = &rest[1..];
            if o.len() != 5 || o.as_bytes()[2] != b':' {
                return None;
            }
            let (oh, om) = (o.get(0..2)?, o.get(3..5)?);
            let digits = |p: &str| p.bytes().all(|c| c.is_ascii_digit());
            let (oh, om): (i64, i64) = if digits(oh) && digits(om) {
                (oh.parse().ok()?, om.parse().ok()?)
            } else {
                return None;
            };
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    (h < 24 && m < 60 && sec <= 60).then(|| day * 86_400 + h * 3600 + m * 60 + sec.min(59) - offset)
}

/// `YYYY-MM-DD`, checked as a real date (RFC 3339's `full-date`, years 0000 to 9999).
fn date(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let ok = b.len() == 10 && b[4] == b'-' && b[7] == b'-';
    let (y, m, d) = (
        s.get(0..4)?.parse::<i64>().ok()?,
        s.get(5..7)?.parse::<u32>().ok()?,
        s.get(8..10)?.parse::<u32>().ok()?,
    );
    let digits = b
        .iter()
        .enumerate()
        .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    (ok && digits && civil(days_from_civil(y, m, d)) == s).then(|| s.to_owned())
}

fn days_of(s: &str) -> i64 {
    days_from_civil(
        s[0..4].parse().unwrap_or(1970),
        s[5..7].parse().unwrap_or(1),
        s[8..10].parse().unwrap_or(1),
    )
}

#[cfg(test)]
mod tests;
