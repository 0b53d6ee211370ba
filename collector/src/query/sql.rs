//! The analytics queries. Written for ClickHouse 18.16 and current servers alike (no window
//! functions, no server-side parameters): values are bound with the client's `?` escaping,
//! every result column is cast to the exact type its row field reads.

use super::{Count, QueryError};
use crate::dates::{civil, days_from_civil, unix_day};
use crate::sinks::clickhouse::marts::{PX, PY, RX, RY};
use clickhouse::Client;
use serde::{Deserialize, Serialize};

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
    /// Rage clicks: three clicks within `rage_ms` (default 1000) and `rage_px` (default 30).
    pub rage_ms: u32,
    /// See `rage_ms`.
    pub rage_px: u32,
    /// `exact=true`: read `events FINAL` even where a mart could answer (marts may count an
    /// event a client re-sent twice; see `sinks/clickhouse/marts.rs`).
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
    /// The sessions a page of `sessions` lists, whose summaries and anomalies are read (not a
    /// parameter: found by the query itself).
    pub listed: Vec<String>,
}

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

/// `HAVING` of a query over the `sessions` mart: sessions that started in the date range.
const STARTED: &str = "toDate(toDateTime(intDiv(t0, 1000))) BETWEEN toDate(?) AND toDate(?)";

fn bad(param: &'static str, detail: impl Into<String>) -> QueryError {
    QueryError::BadParam {
        param,
        detail: detail.into(),
    }
}

impl Filters {
    /// Parses a query string.
    pub fn parse(query: &str) -> Result<Filters, QueryError> {
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
            limit: 100,
            offset: 0,
            exact: false,
            ended: None,
            layers: None,
            rolled: Vec::new(),
            listed: Vec::new(),
        };
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let v = v.into_owned();
            match k.as_ref() {
                "site" if !v.is_empty() && v.len() <= 256 => f.site = v,
                "site" => return Err(bad("site", "must be 1 to 256 bytes")),
                "from" => f.from = date(&v).ok_or_else(|| bad("from", "expected YYYY-MM-DD"))?,
                "to" => f.to = date(&v).ok_or_else(|| bad("to", "expected YYYY-MM-DD"))?,
                "path" if v.starts_with('/') && v.len() <= 2048 => f.path = Some(v),
                "path" => return Err(bad("path", "must start with / and be at most 2048 bytes")),
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
                "session" if !v.is_empty() && v.len() <= 256 => f.session = Some(v),
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
                "exact" if v == "true" || v == "false" => f.exact = v == "true",
                "exact" => return Err(bad("exact", "expected true or false")),
                "ended" if matches!(v.as_str(), "closed" | "timed_out" | "active") => {
                    f.ended = Some(v)
                }
                "ended" => return Err(bad("ended", "expected closed, timed_out or active")),
                "layers" => {
                    let layers: Vec<String> = v.split(',').map(|l| l.trim().to_owned()).collect();
                    if layers
                        .iter()
                        .any(|l| !matches!(l.as_str(), "clicks" | "scroll" | "frustration"))
                    {
                        return Err(bad("layers", "comma-separated clicks, scroll, frustration"));
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
                "steps" => {
                    f.steps = v
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                    if !(2..=10).contains(&f.steps.len()) || f.steps.iter().any(|s| s.len() > 2048)
                    {
                        return Err(bad(
                            "steps",
                            "2 to 10 comma-separated page paths or event names",
                        ));
                    }
                }
                _ => {}
            }
        }
        if f.site.is_empty() {
            return Err(bad("site", "required"));
        }
        if f.to.is_empty() {
            f.to = civil(unix_day(crate::pipeline::now_ms()));
        }
        if f.from.is_empty() {
            f.from = civil(days_of(&f.to) - 29);
        }
        if days_of(&f.from) > days_of(&f.to) {
            return Err(bad("from", "must not be after to"));
        }
        Ok(f)
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
            let mut sql = self.site_and("day BETWEEN toDate(?) - 1 AND toDate(?) + 1", binds);
            Self::equal(&mut sql, binds, &[("device", self.device.as_ref())]);
            return sql;
        }
        let mut range = self.site_and("day BETWEEN toDate(?) AND toDate(?) + 1", binds);
        Self::equal(&mut range, binds, &[("device", self.device.as_ref())]);
        binds.extend([Bind::S(self.site.clone()), Bind::S(self.from.clone())]);
        let mut before = "site_id = ? AND day = toDate(?) - 1".to_owned();
        Self::equal(&mut before, binds, &[("device", self.device.as_ref())]);
        let mut inner = self.site_and("day BETWEEN toDate(?) AND toDate(?) + 1", binds);
        Self::equal(&mut inner, binds, &[("device", self.device.as_ref())]);
        format!(
            "(({range}) OR ({before} AND session_id GLOBAL IN \
            (SELECT session_id FROM sessions WHERE {inner})))"
        )
    }

    /// `WHERE` over `traffic_daily`: the site, the days, the device.
    fn traffic_condition(&self, binds: &mut Vec<Bind>) -> String {
        let mut sql = self.site_and("day BETWEEN toDate(?) AND toDate(?)", binds);
        Self::equal(&mut sql, binds, &[("device", self.device.as_ref())]);
        sql
    }

    /// Whether the site's traffic figures may come from `traffic_daily`, which has per-day,
    /// per-device rows and none per page or width (a page's own figures come from
    /// `page_daily`).
    fn traffic_mart(&self) -> bool {
        !self.exact && self.path.is_none() && self.width.is_none()
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
        !self.exact && (self.rage_ms, self.rage_px) == (RAGE_MS, RAGE_PX)
    }

    /// Whether session behaviour (`anomalies`, `patterns`) may come from its rollup
    /// (`behaviour.rs`), which keeps the site's sessions whole at the default thresholds.
    pub(super) fn behaviour_rollup(&self) -> bool {
        !self.exact
            && self.path.is_none()
            && self.width.is_none()
            && self.device.is_none()
            && (self.rage_ms, self.rage_px) == (RAGE_MS, RAGE_PX)
    }

    /// Whether page figures may come from the page marts.
    fn page_marts(&self) -> bool {
        !self.exact
    }

    /// Whether session figures may come from the `sessions` mart, which has no per-page or
    /// per-width rows (a session spans pages and layouts).
    fn session_mart(&self) -> bool {
        !self.exact && self.path.is_none() && self.width.is_none()
    }
}

/// Clicks by page position, from raw events; the bins are the `heatmap_clicks` mart's.
fn heatmap_points_sql() -> String {
    format!(
        "SELECT toFloat64({PX}) / 1000 AS fx, {PY} AS py, toUInt64(count()) AS n, fixed \
         FROM events FINAL WHERE {{where}} AND document_w > 0 GROUP BY fixed, fx, py ORDER BY n DESC, fixed, fx, py LIMIT 20000"
    )
}
const HEATMAP_POINTS_MART: &str = "SELECT toFloat64(px) / 1000 AS fx, py, toUInt64(sum(clicks)) AS n, fixed \
     FROM heatmap_clicks WHERE {mart} GROUP BY fixed, fx, py ORDER BY n DESC, fixed, fx, py LIMIT 20000";
/// Clicks by position inside their element, from raw events; the bins are `heatmap_anchors`'.
fn heatmap_anchored_sql() -> String {
    format!(
        "SELECT selector, toFloat64({RX}) / 100 AS fx, toFloat64({RY}) / 100 AS fy, toUInt64(count()) AS n \
         FROM events FINAL WHERE {{where}} AND selector != '' GROUP BY selector, fx, fy ORDER BY n DESC, selector, fx, fy LIMIT 20000"
    )
}
const HEATMAP_ANCHORED_MART: &str = "SELECT selector, toFloat64(rx) / 100 AS fx, toFloat64(ry) / 100 AS fy, toUInt64(sum(clicks)) AS n \
     FROM heatmap_anchors WHERE {mart} GROUP BY selector, fx, fy ORDER BY n DESC, selector, fx, fy LIMIT 20000";
/// Each session's deepest scroll on the page. Without `FINAL`: a re-sent copy of an event
/// leaves a maximum as it is, and `FINAL` over unmerged parts is most of the cost.
const SCROLL_DEPTHS: &str = "SELECT toUInt8(d) AS depth, toUInt64(count()) AS n FROM \
     (SELECT session_id, max(scroll_depth) AS d FROM events WHERE {where} GROUP BY session_id) \
     GROUP BY depth ORDER BY depth";
const PAGE_VIEWS: &str = "SELECT toUInt64(count()) AS n FROM events FINAL WHERE {where}";
const PAGE_VIEWS_MART: &str =
    "SELECT toUInt64(countMerge(views)) AS n FROM page_daily WHERE {mart}";
const ELEMENTS: &str = "SELECT selector, any(element_id), any(tag), any(text), toUInt64(count()) AS clicks, \
     toUInt64(uniqExact(visitor_id)), toFloat64(avg(rel_x)), toFloat64(avg(rel_y)), toFloat64(0) \
     FROM events FINAL WHERE {where} AND selector != '' GROUP BY selector ORDER BY clicks DESC, selector LIMIT 500";
const ELEMENTS_MART: &str = "SELECT selector, anyMerge(element_id), anyMerge(tag), anyMerge(text), toUInt64(countMerge(clicks)) AS n, \
     toUInt64(uniqExactMerge(clickers)), toFloat64(avgMerge(rel_x)), toFloat64(avgMerge(rel_y)), toFloat64(0) \
     FROM element_days WHERE {mart} GROUP BY selector ORDER BY n DESC, selector LIMIT 500";
const TOP_PAGES_MART: &str = "SELECT path AS key, toUInt64(countMerge(views)) AS count FROM page_daily \
     WHERE {mart} AND path != '' GROUP BY key ORDER BY count DESC, key LIMIT 10";
const TOTALS: &str = "SELECT toUInt64(uniqExact(visitor_id)), toUInt64(uniqExact(session_id)), \
     toUInt64(countIf(event_type = 'pageview')), toUInt64(count()), \
     toUInt64(sumIf(visitParamExtractUInt(props, 'failed'), event_type = 'custom' AND name = '$undelivered')), \
     toUInt64(sumIf(visitParamExtractUInt(props, 'dropped'), event_type = 'custom' AND name = '$undelivered')) \
     FROM events FINAL WHERE {where}";
/// Session figures by entry and by exit page, in one pass over the sessions: per session its
/// duration, page views and first and last page viewed, then one row per (`side`, page), `side`
/// 0 by entry page (`''`: none viewed), 1 by exit page. Side 0's rows add up to the totals.
/// `{sessions_of}` is the per-session subquery ([`SESSIONS_OF`] or [`SESSIONS_OF_MART`]).
const SESSION_ENDS: &str = "SELECT e.1 AS side, e.2 AS key, toUInt64(count()), toFloat64(sum(t1 - t0)), \
     toUInt64(countIf(pv <= 1)) FROM ({sessions_of}) \
     ARRAY JOIN [(toUInt8(0), en), (toUInt8(1), ex)] AS e GROUP BY side, key ORDER BY side, key";
const SESSIONS_OF: &str = "SELECT session_id, min(toUInt64(timestamp) * 1000 + timestamp_ms) AS t0, \
     max(toUInt64(timestamp) * 1000 + timestamp_ms) AS t1, countIf(event_type = 'pageview') AS pv, \
     argMinIf(path, toUInt64(timestamp) * 1000 + timestamp_ms, event_type = 'pageview') AS en, \
     argMaxIf(path, toUInt64(timestamp) * 1000 + timestamp_ms, event_type = 'pageview') AS ex \
     FROM events FINAL WHERE {where} GROUP BY session_id";
const SESSIONS_OF_MART: &str = "SELECT session_id, minMerge(start_ms) AS t0, maxMerge(end_ms) AS t1, \
     countIfMerge(pageviews) AS pv, argMinIfMerge(entry) AS en, argMaxIfMerge(exit) AS ex \
     FROM sessions WHERE {sessions} GROUP BY session_id HAVING {started} AND {unrolled}";

fn session_ends_sql(mart: bool) -> String {
    SESSION_ENDS.replace(
        "{sessions_of}",
        if mart { SESSIONS_OF_MART } else { SESSIONS_OF },
    )
}

/// `HAVING` (with [`STARTED`]) of the `sessions` mart's queries in `stats`: sessions that
/// started on a day the rollup (`session_days`) does not have for the site. Its value: the
/// rolled days, `YYYY-MM-DD`.
const UNROLLED: &str = "NOT has(?, toString(toDate(toDateTime(intDiv(t0, 1000)))))";

/// The days of the range the rollup has for the site (see `sinks::clickhouse::rollup`).
/// A day is rolled once every shard has rolled it (each writes a marker row, `site_id` '',
/// after the day's rows): in cluster mode a day one shard has rolled and another not yet
/// would otherwise lose that shard's sessions from both the rollup and the mart's read.
const ROLLED_DAYS: &str = "SELECT toString(day) AS d FROM session_days \
     WHERE site_id = '' AND day BETWEEN toDate(?) AND toDate(?) GROUP BY d \
     HAVING uniqExact(shard) = (SELECT uniqExact(shard) FROM session_days WHERE site_id = '') ORDER BY d";
/// Each (site, day, shard)'s latest roll, of the range: `{rolled}` below.
const LATEST_ROLL: &str = "(site_id, day, shard, version) GLOBAL IN (SELECT site_id, day, shard, max(version) \
     FROM session_days WHERE site_id = ? AND day BETWEEN toDate(?) AND toDate(?) GROUP BY site_id, day, shard)";
/// [`SESSION_ENDS`] from the rollup. `FINAL` (a table of thousands of rows): two rolls of a day
/// with the same version (two collectors in the same second) fold into one.
const SESSION_ENDS_ROLLED: &str = "SELECT e.1 AS side, e.2 AS key, toUInt64(sum(sessions)), \
     toFloat64(sum(duration_ms)), toUInt64(sum(bounced)) FROM session_days FINAL \
     ARRAY JOIN [(toUInt8(0), entry), (toUInt8(1), exit)] AS e WHERE {rolled} GROUP BY side, key ORDER BY side, key";
const SERIES: &str = "SELECT toString({bucket}) AS day, toUInt64(uniqExact(visitor_id)), \
     toUInt64(countIf(event_type = 'pageview')) FROM events FINAL WHERE {where} GROUP BY day ORDER BY day";

/// [`TOTALS`] from `traffic_daily` (dim 0: the site's total).
const TOTALS_MART: &str = "SELECT toUInt64(uniqHLL12Merge(visitors)), toUInt64(uniqHLL12IfMerge(sessions)), \
     toUInt64(countIfMerge(pageviews)), toUInt64(countIfMerge(events)), \
     toUInt64(sumIfMerge(failed)), toUInt64(sumIfMerge(dropped)) \
     FROM traffic_daily WHERE {traffic} AND dim = 0";
/// [`SERIES`] by day from `traffic_daily`.
const SERIES_MART: &str = "SELECT toString(day) AS d, toUInt64(uniqHLL12Merge(visitors)), \
     toUInt64(countIfMerge(pageviews)) FROM traffic_daily WHERE {traffic} AND dim = 0 \
     GROUP BY d HAVING countIfMerge(events) > 0 ORDER BY d";
/// [`SERIES`] per hour from `traffic_hourly`.
const SERIES_HOURLY_MART: &str = "SELECT toString(hour) AS d, toUInt64(uniqHLL12Merge(visitors)), \
     toUInt64(countIfMerge(pageviews)) FROM traffic_hourly WHERE {traffic} \
     GROUP BY d HAVING countMerge(events) > 0 ORDER BY d";

/// A breakdown's top values by page views from `traffic_daily` (`{dim}`: its code).
fn top_mart_sql(dim: usize) -> String {
    format!(
        "SELECT value AS key, toUInt64(countIfMerge(pageviews)) AS count FROM traffic_daily \
         WHERE {{traffic}} AND dim = {dim} AND value != '' GROUP BY key HAVING count > 0 \
         ORDER BY count DESC, key LIMIT 10"
    )
}

/// The series' time bucket for the `interval` parameter.
fn series_sql(hourly: bool) -> String {
    SERIES.replace(
        "{bucket}",
        if hourly {
            "toStartOfHour(timestamp)"
        } else {
            "toDate(timestamp)"
        },
    )
}

/// Active users per day: on that day (DAU), in the 7 days ending with it (WAU) and in the 30
/// days ending with it (MAU). A known user counts by `user_id`; anonymous visitors by their
/// visitor id, which rotates daily by design (no cross-day tracking without consent), so for
/// them WAU and MAU count visitor-days: an upper bound. Each (who, day seen) pair is spread
/// over the 30 days whose windows it falls in (`seen + i`), so no window function is needed
/// (ClickHouse 18.16 has none). `{where}` covers the 29 days before the range too, and the
/// days are those of the range up to today.
const ACTIVE: &str = "SELECT toString(seen + i) AS day, toUInt64(uniqExactIf(who, i = 0)), \
     toUInt64(uniqExactIf(who, i < 7)), toUInt64(uniqExact(who)) FROM \
     (SELECT toDate(timestamp) AS seen, if(user_id != '', cityHash64(user_id), visitor_id) AS who \
      FROM events FINAL WHERE {where} GROUP BY seen, who) \
     ARRAY JOIN range(30) AS i WHERE seen + i BETWEEN toDate(?) AND toDate(?) GROUP BY day ORDER BY day";

/// [`ACTIVE`] from `traffic_daily`: each day's state of who was active, merged over the 1, 7
/// and 30 days ending with each day of the range (HyperLogLog: approximate past 16 a window).
const ACTIVE_MART: &str = "SELECT toString(seen + i) AS day, toUInt64(uniqHLL12IfMergeIf(a, i = 0)), \
     toUInt64(uniqHLL12IfMergeIf(a, i < 7)), toUInt64(uniqHLL12IfMerge(a)) FROM \
     (SELECT day AS seen, uniqHLL12IfMergeState(actives) AS a FROM traffic_daily \
      WHERE {traffic} AND dim = 0 GROUP BY seen) \
     ARRAY JOIN range(30) AS i WHERE seen + i BETWEEN toDate(?) AND toDate(?) GROUP BY day ORDER BY day";

/// Active users over the date range: the averages of the daily figures over its complete
/// days, today so far, and the series.
#[derive(Debug, Serialize)]
pub struct Active {
    /// Average daily actives: the mean, over the range's complete days (today, under way, is
    /// not one), of the users active on each day; days without any count as 0, except those
    /// before the first day with anyone in its 30-day window. `null` without such a day.
    pub dau: Option<f64>,
    /// Average weekly actives: the same mean of the users active in the 7 days ending each day.
    pub wau: Option<f64>,
    /// Average monthly actives: the same mean of the users active in the 30 days ending each day.
    pub mau: Option<f64>,
    /// The complete days averaged.
    pub days: u32,
    /// Today so far (UTC), when the range includes today: active today until now, and in the
    /// 7 and 30 days ending now.
    pub today: Option<ActiveDay>,
    /// Every day of the range up to today, today last (`complete: false`).
    pub series: Vec<ActiveDay>,
}

/// The active users of one day.
#[derive(Clone, Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct ActiveDay {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Active on the day.
    pub dau: u64,
    /// Active in the 7 days ending with it.
    pub wau: u64,
    /// Active in the 30 days ending with it.
    pub mau: u64,
    /// Whether the day is over (before today, UTC).
    #[serde(skip_deserializing)]
    pub complete: bool,
}

/// The range of [`ACTIVE`]'s days for `f` on `today`: from `from` to `to` or today, whichever
/// is first; `None` when it starts after today.
fn active_days(f: &Filters, today: i64) -> Option<(i64, i64)> {
    let (lo, hi) = (days_of(&f.from), days_of(&f.to).min(today));
    (lo <= hi).then_some((lo, hi))
}

fn active_query(client: &Client, f: &Filters, today: i64) -> clickhouse::query::Query {
    let (lo, hi) = active_days(f, today).unwrap_or((days_of(&f.from), days_of(&f.from) - 1));
    // Events from the 29 days before the first day count towards its WAU and MAU.
    let read = Filters {
        from: civil(lo - 29),
        to: civil(hi),
        ..f.clone()
    };
    prepare_with(
        client,
        if f.traffic_mart() {
            ACTIVE_MART
        } else {
            ACTIVE
        },
        &read,
        None,
        Vec::new(),
        vec![Bind::S(civil(lo)), Bind::S(civil(hi))],
    )
}

/// Active users for `f`, as of `today` (days since the epoch, UTC).
async fn active(
    client: &Client,
    f: &Filters,
    today: i64,
) -> Result<Active, clickhouse::error::Error> {
    let Some((lo, hi)) = active_days(f, today) else {
        return Ok(active_of(Vec::new(), today));
    };
    let rows = active_query(client, f, today)
        .fetch_all::<ActiveDay>()
        .await?;
    // Days nobody was active in, in the window either, have no row: they are zeros.
    let mut rows = rows.into_iter().peekable();
    let series = (lo..=hi)
        .map(|d| {
            let day = civil(d);
            match rows.next_if(|r| r.day == day) {
                Some(r) => r,
                None => ActiveDay {
                    day,
                    dau: 0,
                    wau: 0,
                    mau: 0,
                    complete: false,
                },
            }
        })
        .collect();
    Ok(active_of(series, today))
}

/// The averages over the complete days of `series` from the first with anyone in its 30-day
/// window, and today's figures.
fn active_of(mut series: Vec<ActiveDay>, today: i64) -> Active {
    let today_s = civil(today);
    for d in &mut series {
        d.complete = d.day < today_s;
    }
    // Days before the site had anyone (no user in their 30-day window) would pull the means
    // of a site younger than the range towards 0: they are not averaged.
    let complete: Vec<&ActiveDay> = series
        .iter()
        .skip_while(|d| d.mau == 0)
        .filter(|d| d.complete)
        .collect();
    let days = complete.len() as u32;
    let mean = |pick: fn(&ActiveDay) -> u64| {
        (days > 0).then(|| complete.iter().map(|d| pick(d) as f64).sum::<f64>() / f64::from(days))
    };
    Active {
        dau: mean(|d| d.dau),
        wau: mean(|d| d.wau),
        mau: mean(|d| d.mau),
        days,
        today: series.iter().find(|d| d.day == today_s).cloned(),
        series,
    }
}

/// Deepest page of any paged list (`offset`).
const MAX_OFFSET: u32 = 100_000;

/// Columns ranked by page views in `stats`: `traffic_daily`'s breakdowns, in their order.
const TOP_COLUMNS: [&str; 7] = crate::sinks::clickhouse::marts::TRAFFIC_DIMS;

fn top_sql(column: &str) -> String {
    format!(
        "SELECT toString({column}) AS key, toUInt64(count()) AS count FROM events FINAL \
         WHERE {{where}} AND toString({column}) != '' GROUP BY key ORDER BY count DESC, key LIMIT 10"
    )
}

/// Every analytics query as ClickHouse receives it for `f` (values bound; a session timeout of
/// `timeout_ms`): what `pathlight sql` prints, and what the modern-dialect test runs in an
/// embedded ClickHouse.
pub fn catalogue(f: &Filters, timeout_ms: u64) -> Vec<(String, String)> {
    let mut list: Vec<(String, String, Option<&str>)> = vec![
        ("heatmap points".into(), heatmap_points_sql(), Some("click")),
        (
            "heatmap points mart".into(),
            HEATMAP_POINTS_MART.into(),
            None,
        ),
        (
            "heatmap anchored".into(),
            heatmap_anchored_sql(),
            Some("click"),
        ),
        (
            "heatmap anchored mart".into(),
            HEATMAP_ANCHORED_MART.into(),
            None,
        ),
        (
            "heatmap scroll".into(),
            SCROLL_DEPTHS.into(),
            Some("scroll"),
        ),
        ("elements views".into(), PAGE_VIEWS.into(), Some("pageview")),
        ("elements views mart".into(), PAGE_VIEWS_MART.into(), None),
        ("elements".into(), ELEMENTS.into(), Some("click")),
        ("elements mart".into(), ELEMENTS_MART.into(), None),
        ("stats top path mart".into(), TOP_PAGES_MART.into(), None),
        ("stats totals".into(), TOTALS.into(), None),
        ("stats sessions".into(), session_ends_sql(false), None),
        ("stats sessions mart".into(), session_ends_sql(true), None),
        ("stats series".into(), series_sql(f.hourly), None),
    ];
    list.extend(
        TOP_COLUMNS
            .iter()
            .map(|c| (format!("stats top {c}"), top_sql(c), Some("pageview"))),
    );
    list.push(("stats totals traffic".into(), TOTALS_MART.into(), None));
    list.push(("stats series traffic".into(), SERIES_MART.into(), None));
    list.push((
        "stats series hourly traffic".into(),
        SERIES_HOURLY_MART.into(),
        None,
    ));
    list.extend(
        TOP_COLUMNS
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("stats top {c} traffic"), top_mart_sql(i + 1), None)),
    );
    let client = Client::default();
    let shown = |q: clickhouse::query::Query| q.sql_display().to_string();
    let mut out: Vec<(String, String)> = list
        .into_iter()
        .map(|(name, sql, kind)| (name, shown(prepare(&client, &sql, f, kind))))
        .collect();
    // The rollup's figures as read when every day of the range is rolled.
    let rolled = Filters {
        rolled: (days_of(&f.from)..=days_of(&f.to)).map(civil).collect(),
        ..f.clone()
    };
    for (name, sql) in [
        ("stats sessions rolled", SESSION_ENDS_ROLLED),
        ("stats today rolled", TODAY_ROLLED),
    ] {
        out.push((name.into(), shown(prepare(&client, sql, &rolled, None))));
    }
    if !f.steps.is_empty() {
        out.push(("funnel".into(), shown(funnel_query(&client, f))));
    }
    // The rollup of the range's first day (`sinks::clickhouse::rollup`), and the days rolled.
    let cfg = crate::sinks::clickhouse::ClickHouseConfig::default();
    let version = u32::try_from(crate::pipeline::now_ms() / 1000).unwrap_or(0);
    out.push((
        "session rollup".into(),
        shown(crate::sinks::clickhouse::rollup::insert(
            &client, &cfg, &f.from, 0, version,
        )),
    ));
    out.push((
        "session rollup marker".into(),
        shown(crate::sinks::clickhouse::rollup::marker(
            &client, &cfg, &f.from, 0, version,
        )),
    ));
    // The behaviour rollup of the range's first day, then its figures read back.
    for (i, (name, q)) in super::behaviour::roll_queries(&client, &cfg, &f.from, 0, version)
        .into_iter()
        .enumerate()
    {
        out.push((format!("behaviour rollup {} {name}", i + 1), shown(q)));
    }
    for (name, sql) in [
        ("behaviour rolled days", super::behaviour::ROLLED_DAYS),
        ("anomalies rolled", super::behaviour::ANOMALIES_ROLLED),
        ("frustration rolled", super::behaviour::FRUSTRATION_ROLLED),
        ("patterns rolled", super::behaviour::PATTERNS_ROLLED),
    ] {
        out.push((
            name.into(),
            shown(super::behaviour::rolled_query(&client, sql, f)),
        ));
    }
    out.push((
        "stats rolled days".into(),
        shown(client.query(ROLLED_DAYS).bind(&f.from).bind(&f.to)),
    ));
    // Both: which one `stats` runs depends on the filters.
    let today = unix_day(crate::pipeline::now_ms());
    let (exact, traffic) = (
        Filters {
            exact: true,
            ..f.clone()
        },
        Filters {
            exact: false,
            path: None,
            width: None,
            ..f.clone()
        },
    );
    out.push((
        "stats active".into(),
        shown(active_query(&client, &exact, today)),
    ));
    out.push((
        "stats active traffic".into(),
        shown(active_query(&client, &traffic, today)),
    ));
    out.push(("actions".into(), shown(prepare(&client, ACTIONS, f, None))));
    out.push((
        "patterns".into(),
        shown(prepare(&client, &patterns_sql(), f, None)),
    ));
    out.push((
        "search queries".into(),
        shown(prepare(&client, SEARCH_QUERIES, f, Some("custom"))),
    ));
    out.push((
        "search items".into(),
        shown(prepare(&client, SEARCH_ITEMS, f, Some("custom"))),
    ));
    out.push((
        "user events".into(),
        shown(user_events_query(&client, f, "u7")),
    ));
    out.push(("rage clicks".into(), shown(rage_query(&client, f))));
    out.push(("dead clicks".into(), shown(dead_query(&client, f))));
    out.push((
        "anomalies".into(),
        shown(prepare(&client, &anomalies_sql(false), f, None)),
    ));
    let now = crate::pipeline::now_ms().max(0) as u64;
    out.push((
        "sessions page".into(),
        shown(session_page_query(
            &client,
            f,
            Started::FromDay(&f.from),
            now,
            timeout_ms,
        )),
    ));
    // On the range's last day, since the earliest time it may be used.
    let day = days_of(&f.to);
    let since = day.max(0) as u64 * 86_400_000 + timeout_ms;
    out.push((
        "sessions page recent".into(),
        shown(session_page_query(
            &client,
            f,
            Started::DaySince { day, since },
            now,
            timeout_ms,
        )),
    ));
    // The summaries of `session` (of "s1" without one), as the list shows them.
    let listed = f.session.clone().unwrap_or_else(|| "s1".to_owned());
    let (list, of) = session_list_queries(&client, f, &f.from, &[listed]);
    out.push(("sessions list".into(), shown(list)));
    out.push(("sessions anomalies".into(), shown(of)));
    out.push(("export".into(), shown(export(&client, f))));
    out.push((
        "realtime".into(),
        shown(client.query(REALTIME).bind(&f.site)),
    ));
    if let Some(id) = &f.session {
        out.push((
            "session days".into(),
            shown(
                client
                    .query(SESSION_DAYS)
                    .bind(&f.site)
                    .bind(&f.from)
                    .bind(&f.to)
                    .bind(id),
            ),
        ));
        out.push((
            "session events".into(),
            shown(session_query(&client, f, id)),
        ));
    }
    out
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
            "{around}" => {
                let mut sql = f.site_and("day BETWEEN toDate(?) - 1 AND toDate(?) + 1", &mut binds);
                Filters::equal(&mut sql, &mut binds, &[("device", f.device.as_ref())]);
                text.push_str(&sql);
            }
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

/// `YYYY-MM-DD`, checked as a real date.
fn date(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let ok = b.len() == 10 && b[4] == b'-' && b[7] == b'-';
    let (y, m, d) = (
        s.get(0..4)?.parse::<i64>().ok()?,
        s.get(5..7)?.parse::<u32>().ok()?,
        s.get(8..10)?.parse::<u32>().ok()?,
    );
    (ok && (1970..=2100).contains(&y) && civil(days_from_civil(y, m, d)) == s).then(|| s.to_owned())
}

fn days_of(s: &str) -> i64 {
    days_from_civil(
        s[0..4].parse().unwrap_or(1970),
        s[5..7].parse().unwrap_or(1),
        s[8..10].parse().unwrap_or(1),
    )
}

/// `heatmap`: where a page was clicked.
#[derive(Debug, Serialize)]
pub struct Heatmap {
    /// Clicks counted.
    pub clicks: u64,
    /// Clicks by position: `x` as a fraction of the document width (so the viewer scales it to
    /// the width it renders at), `y` in page px (2 px bins); for clicks in a fixed or sticky
    /// context (`fixed` > 0: a menu bar, a chat button) a fraction of the viewport width and
    /// viewport px, where the element was on screen.
    pub points: Vec<Point>,
    /// Clicks by element and position inside it (1 % bins): the viewer places these on the
    /// element it finds by selector, so they stay right after reflow.
    pub anchored: Vec<Anchored>,
    /// Share of sessions whose deepest scroll on the page reached 0 %, 10 %, ... 100 %.
    pub scroll_reach: Vec<f64>,
    /// Rage clicks by element.
    pub rage: Vec<Frustration>,
    /// Dead clicks by element.
    pub dead: Vec<Frustration>,
}

/// A heatmap bin.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct Point {
    /// Fraction of the document width.
    pub x: f64,
    /// Page px (viewport px when `fixed` > 0).
    pub y: i32,
    /// Clicks.
    pub n: u64,
    /// 0: in the page's flow; 1: in a `position: fixed` context; 2: `sticky`.
    pub fixed: u8,
}

/// An element-anchored bin.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct Anchored {
    /// The element's selector.
    pub selector: String,
    /// Position inside the element, fractions.
    pub rel_x: f64,
    /// Position inside the element, fractions.
    pub rel_y: f64,
    /// Clicks.
    pub n: u64,
}

#[derive(Deserialize, clickhouse::Row)]
struct DepthCount {
    depth: u8,
    n: u64,
}

/// Builds the heatmap of one page.
pub async fn heatmap(client: &Client, f: &Filters) -> Result<Heatmap, clickhouse::error::Error> {
    let (points, anchored) = (heatmap_points_sql(), heatmap_anchored_sql());
    let layer = |name: &str| {
        f.layers
            .as_ref()
            .is_none_or(|l| l.iter().any(|x| x == name))
    };
    let clicks = async {
        if !layer("clicks") {
            return Ok((Vec::new(), Vec::new()));
        }
        let mart = f.page_marts();
        tokio::try_join!(
            pick(client, f, mart, HEATMAP_POINTS_MART, &points, "click"),
            pick(client, f, mart, HEATMAP_ANCHORED_MART, &anchored, "click"),
        )
    };
    let scroll = async {
        if layer("scroll") {
            rows(client, SCROLL_DEPTHS, f, Some("scroll")).await
        } else {
            Ok(Vec::new())
        }
    };
    let frustrated = async {
        if layer("frustration") {
            super::behaviour::frustration(client, f).await
        } else {
            Ok((Vec::new(), Vec::new()))
        }
    };
    // Independent queries: run together, so the answer takes the slowest, not the sum.
    let ((points, anchored), depths, (rage, dead)): (
        (Vec<Point>, Vec<Anchored>),
        Vec<DepthCount>,
        _,
    ) = tokio::try_join!(clicks, scroll, frustrated)?;
    let sessions: u64 = depths.iter().map(|d| d.n).sum();
    let scroll_reach = (0..=10u8)
        .map(|step| {
            let reached: u64 = depths
                .iter()
                .filter(|d| d.depth >= step * 10)
                .map(|d| d.n)
                .sum();
            if sessions == 0 {
                0.0
            } else {
                reached as f64 / sessions as f64
            }
        })
        .collect();
    Ok(Heatmap {
        clicks: points.iter().map(|p| p.n).sum(),
        points,
        anchored,
        scroll_reach,
        rage,
        dead,
    })
}

/// `elements`: per element of a page.
#[derive(Debug, Serialize)]
pub struct Elements {
    /// Page views of the page.
    pub views: u64,
    /// Clicked elements, most clicked first.
    pub elements: Vec<Element>,
}

/// One element's figures.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct Element {
    /// Selector.
    pub selector: String,
    /// `id` attribute.
    pub element_id: String,
    /// Tag.
    pub tag: String,
    /// Short text.
    pub text: String,
    /// Clicks.
    pub clicks: u64,
    /// Distinct visitors who clicked.
    pub clickers: u64,
    /// Average click position inside the element.
    pub avg_rel_x: f64,
    /// Average click position inside the element.
    pub avg_rel_y: f64,
    /// Clicks per page view (click-to-view conversion); set after the query.
    #[serde(default)]
    pub ctr: f64,
}

#[derive(Deserialize, clickhouse::Row)]
struct One {
    n: u64,
}

/// Per-element clicks and click-to-view conversion on one page.
pub async fn elements(client: &Client, f: &Filters) -> Result<Elements, clickhouse::error::Error> {
    let (views, mut elements): (Vec<One>, Vec<Element>) = tokio::try_join!(
        pick(
            client,
            f,
            f.page_marts(),
            PAGE_VIEWS_MART,
            PAGE_VIEWS,
            "pageview"
        ),
        pick(client, f, f.page_marts(), ELEMENTS_MART, ELEMENTS, "click"),
    )?;
    let views = views.first().map_or(0, |o| o.n);
    for e in &mut elements {
        e.ctr = if views == 0 {
            0.0
        } else {
            e.clicks as f64 / views as f64
        };
    }
    Ok(Elements { views, elements })
}

/// `stats`: a site's traffic over the date range.
#[derive(Debug, Serialize)]
pub struct Stats {
    /// Distinct visitors.
    pub visitors: u64,
    /// Sessions.
    pub sessions: u64,
    /// Page views.
    pub pageviews: u64,
    /// Events of every kind.
    pub events: u64,
    /// Whether the distinct counts (visitors, sessions, active users) are approximate: read
    /// from `traffic_daily`'s HyperLogLog states (standard error 1.6 %, exact up to 16).
    /// `exact=true` (and `path` or `width`) count exactly.
    pub approximate: bool,
    /// What the site's trackers could not deliver, as their later sends reported it
    /// (`$undelivered` events: pathlight_ingest::delivery).
    pub undelivered: Undelivered,
    /// Average session duration, seconds (first to last event).
    pub avg_session_secs: f64,
    /// Share of sessions with one page view at most.
    pub bounce_rate: f64,
    /// When today's average session, bounce rate, entries and exits were rolled up (ms since
    /// the epoch), if they were read from the rollup (a site with many sessions today, at
    /// most a rollup period old); none when they are live.
    pub session_figures_as_of_ms: Option<u64>,
    /// Per day (or per hour with `interval=hour`).
    pub series: Vec<Day>,
    /// Active users (DAU, WAU, MAU) over the range: averages over its complete days, today so
    /// far, and the series.
    pub active: Active,
    /// Top pages sessions started on.
    pub entries: Vec<Count>,
    /// Top pages sessions ended on.
    pub exits: Vec<Count>,
    /// Top pages by page views.
    pub pages: Vec<Count>,
    /// Top referrer hosts.
    pub referrers: Vec<Count>,
    /// Page views by device type.
    pub devices: Vec<Count>,
    /// Page views by browser.
    pub browsers: Vec<Count>,
    /// Page views by OS.
    pub os: Vec<Count>,
    /// Page views by country.
    pub countries: Vec<Count>,
    /// Page views by UTM campaign.
    pub campaigns: Vec<Count>,
}

/// One day (or hour) of the series.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct Day {
    /// `YYYY-MM-DD`, or `YYYY-MM-DD HH:00:00` per hour.
    pub day: String,
    /// Distinct visitors.
    pub visitors: u64,
    /// Page views.
    pub pageviews: u64,
    /// Whether the day (or hour) is over; the current one is still counting.
    #[serde(skip_deserializing)]
    pub complete: bool,
}

/// Batches the site's trackers could not deliver.
#[derive(Debug, Default, Serialize)]
pub struct Undelivered {
    /// Batches whose first send was lost (failed, or blocked, or the page left before an
    /// answer) and that arrived when sent again.
    pub failed: u64,
    /// Batches a tracker dropped for good from its full queue.
    pub dropped: u64,
}

#[derive(Deserialize, clickhouse::Row)]
struct Totals {
    visitors: u64,
    sessions: u64,
    pageviews: u64,
    events: u64,
    failed: u64,
    dropped: u64,
}

/// A row of [`SESSION_ENDS`].
#[derive(Deserialize, clickhouse::Row)]
struct SessionEnd {
    side: u8,
    key: String,
    sessions: u64,
    /// Total duration, ms.
    sum_ms: f64,
    bounced: u64,
}

#[derive(Default)]
struct SessionFigures {
    /// Total duration, ms.
    sum_ms: f64,
    bounced: u64,
    sessions: u64,
    /// When today's figures were rolled up, ms, if they were read from the rollup.
    as_of_ms: Option<u64>,
}

/// Sessions a site's today may have at its last roll and still be merged live from the
/// `sessions` mart by `stats`; from this many, today is read from the rollup (at most a
/// rollup period old). Merging a day of 365 k sessions took 0.4-0.9 s at 100 M events a month
/// (bench/results/queries.md); under this many it is tens of ms.
pub const TODAY_LIVE_MAX: u64 = 100_000;

/// Today's latest roll for the site: its sessions and its version.
const TODAY_ROLLED: &str =
    "SELECT toUInt64(sum(sessions)), toUInt64(max(version)) FROM session_days FINAL WHERE {rolled}";

/// The session figures of `stats`: sums, top entry and top exit pages. From `events FINAL`
/// unless `marts`; then the days the rollup has (`session_days`: up to yesterday, and today
/// once the site has [`TODAY_LIVE_MAX`] sessions in it) from it, and the others (today on a
/// smaller site, and any not rolled yet) from the `sessions` mart, added up.
async fn session_figures(
    client: &Client,
    f: &Filters,
    marts: bool,
) -> Result<(SessionFigures, Vec<Count>, Vec<Count>), clickhouse::error::Error> {
    if !marts {
        return Ok(session_sums(
            rows(client, &session_ends_sql(false), f, None).await?,
        ));
    }
    let mut rolled: Vec<String> = client
        .query(ROLLED_DAYS)
        .bind(&f.from)
        .bind(&f.to)
        .fetch_all()
        .await?;
    let today = civil(unix_day(crate::pipeline::now_ms()));
    let mut as_of_ms = None;
    if rolled.contains(&today) {
        let today_only = Filters {
            from: today.clone(),
            to: today.clone(),
            rolled: vec![today.clone()],
            ..f.clone()
        };
        let (sessions, version): (u64, u64) = prepare(client, TODAY_ROLLED, &today_only, None)
            .fetch_one()
            .await?;
        if sessions >= TODAY_LIVE_MAX {
            as_of_ms = Some(version * 1000);
        } else {
            rolled.retain(|d| *d != today);
        }
    }
    // The mart is read only over the days the rollup lacks (today, as a rule): its
    // `{sessions}` range is theirs, not the whole range's millions of sessions.
    let unrolled = unrolled_days(f, &rolled);
    let (lo, hi) = match (unrolled.first(), unrolled.last()) {
        (Some(lo), Some(hi)) => (civil(*lo), civil(*hi)),
        // Nothing left for the mart: an empty range (from after to) reads nothing.
        _ => (civil(days_of(&f.to) + 1), f.to.clone()),
    };
    let rolled_f = &Filters {
        rolled: rolled.clone(),
        ..f.clone()
    };
    let f = &Filters {
        rolled,
        from: lo,
        to: hi,
        ..f.clone()
    };
    let sql = session_ends_sql(true);
    let (mut mart, rolled) = tokio::try_join!(
        rows::<SessionEnd>(client, &sql, f, None),
        rows::<SessionEnd>(client, SESSION_ENDS_ROLLED, rolled_f, None),
    )?;
    mart.extend(rolled);
    let (mut sums, entries, exits) = session_sums(mart);
    sums.as_of_ms = as_of_ms;
    Ok((sums, entries, exits))
}

/// The sums (of side 0) and the top 10 entry and exit pages of [`SESSION_ENDS`] rows.
fn session_sums(rows: Vec<SessionEnd>) -> (SessionFigures, Vec<Count>, Vec<Count>) {
    let mut sums = SessionFigures::default();
    let (mut entries, mut exits) = (Vec::new(), Vec::new());
    for r in rows {
        if r.side == 0 {
            sums.sum_ms += r.sum_ms;
            sums.bounced += r.bounced;
            sums.sessions += r.sessions;
        }
        if !r.key.is_empty() {
            let count = Count {
                key: r.key,
                count: r.sessions,
            };
            if r.side == 0 {
                &mut entries
            } else {
                &mut exits
            }
            .push(count);
        }
    }
    (sums, top(entries), top(exits))
}

/// The days of `f`'s range not among `rolled` (`YYYY-MM-DD`), as days since the epoch.
pub(super) fn unrolled_days(f: &Filters, rolled: &[String]) -> Vec<i64> {
    (days_of(&f.from)..=days_of(&f.to))
        .filter(|d| !rolled.contains(&civil(*d)))
        .collect()
}

/// The 10 largest counts, those of a key added up (ties by key, as the queries order).
fn top(counts: Vec<Count>) -> Vec<Count> {
    let mut by: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for c in counts {
        *by.entry(c.key).or_default() += c.count;
    }
    let mut all: Vec<Count> = by
        .into_iter()
        .map(|(key, count)| Count { key, count })
        .collect();
    all.sort_by(|x, y| y.count.cmp(&x.count).then_with(|| x.key.cmp(&y.key)));
    all.truncate(10);
    all
}

/// The traffic figures of a site.
pub async fn stats(client: &Client, f: &Filters) -> Result<Stats, clickhouse::error::Error> {
    let traffic = f.traffic_mart();
    let top = |(i, column): (usize, &'static str)| {
        let (mart_sql, use_mart) = if traffic {
            (top_mart_sql(i + 1), true)
        } else {
            (
                TOP_PAGES_MART.to_owned(),
                column == "path" && f.page_marts(),
            )
        };
        let sql = top_sql(column);
        async move { pick::<Count>(client, f, use_mart, &mart_sql, &sql, "pageview").await }
    };
    // Independent queries, run together (ClickHouse serves them in parallel).
    let series_sql = series_sql(f.hourly);
    let marts = f.session_mart();
    let series_sql = match (traffic, f.hourly) {
        (true, false) => SERIES_MART.to_owned(),
        (true, true) => SERIES_HOURLY_MART.to_owned(),
        (false, _) => series_sql,
    };
    let (totals, (s, entries, exits), series, active, tops) = tokio::try_join!(
        rows::<Totals>(client, if traffic { TOTALS_MART } else { TOTALS }, f, None),
        session_figures(client, f, marts),
        rows::<Day>(client, &series_sql, f, None),
        active(client, f, unix_day(crate::pipeline::now_ms())),
        futures_util::future::try_join_all(TOP_COLUMNS.into_iter().enumerate().map(top)),
    )?;
    let mut series = series;
    mark_complete(&mut series, f.hourly, crate::pipeline::now_ms());
    let totals = totals.into_iter().next().unwrap_or(Totals {
        visitors: 0,
        sessions: 0,
        pageviews: 0,
        events: 0,
        failed: 0,
        dropped: 0,
    });

    let [
        pages,
        referrers,
        devices,
        browsers,
        os,
        countries,
        campaigns,
    ]: [Vec<Count>; 7] = tops.try_into().unwrap_or_default();
    Ok(Stats {
        visitors: totals.visitors,
        sessions: totals.sessions,
        pageviews: totals.pageviews,
        events: totals.events,
        approximate: traffic,
        undelivered: Undelivered {
            failed: totals.failed,
            dropped: totals.dropped,
        },
        avg_session_secs: if s.sessions == 0 {
            0.0
        } else {
            s.sum_ms / s.sessions as f64 / 1000.0
        },
        bounce_rate: if s.sessions == 0 {
            0.0
        } else {
            s.bounced as f64 / s.sessions as f64
        },
        session_figures_as_of_ms: s.as_of_ms,
        series,
        active,
        entries,
        exits,
        pages,
        referrers,
        devices,
        browsers,
        os,
        countries,
        campaigns,
    })
}

/// Marks the periods of `series` that ended before `now_ms`: a day before today, an hour
/// before the current one (UTC; the series' labels sort as their times do).
fn mark_complete(series: &mut [Day], hourly: bool, now_ms: i64) {
    let day = civil(unix_day(now_ms));
    let current = if hourly {
        let hour = now_ms.rem_euclid(86_400_000) / 3_600_000;
        format!("{day} {hour:02}:00:00")
    } else {
        day
    };
    for d in series {
        d.complete = d.day < current;
    }
}

const EXPORT: &str = "SELECT toString(event_id) AS event_id, toString(event_type) AS event_type, \
     toUInt64(timestamp) * 1000 + timestamp_ms AS timestamp_ms, session_id, toString(visitor_id) AS visitor_id, user_id, \
     url, path, referrer, title, viewport_w, viewport_h, document_w, document_h, x, y, element_id, selector, tag, text, \
     href, rel_x, rel_y, scroll_depth, visible_ms, name, props, browser, os, toString(device) AS device, country \
     FROM events FINAL WHERE {where} ORDER BY timestamp, timestamp_ms, event_id";

/// The export query (all kinds, bots excluded) for `f`.
pub fn export(client: &Client, f: &Filters) -> clickhouse::query::Query {
    prepare(client, EXPORT, f, None)
}

const REALTIME: &str = "SELECT toUInt64(uniqExact(visitor_id)), toUInt64(countIf(event_type = 'pageview')), toUInt64(count()) \
     FROM events WHERE site_id = ? AND timestamp >= now() - 300 AND is_bot = 0";

/// `realtime`: the last five minutes.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct Realtime {
    /// Distinct visitors.
    pub visitors: u64,
    /// Page views.
    pub pageviews: u64,
    /// Events.
    pub events: u64,
}

/// Visitors and events of the last five minutes (server clock), whatever the date filters.
pub async fn realtime(client: &Client, f: &Filters) -> Result<Realtime, clickhouse::error::Error> {
    client.query(REALTIME).bind(&f.site).fetch_one().await
}

/// Within one session's clicks `c` (sorted by time; tuples of time ms, x, y, selector, path),
/// whether the click at 1-based index `{i}` ends three clicks on one page within `?` ms and
/// `?` px of the first. On one page: three clicks near the same spot of consecutive pages
/// (a menu, clicked through at a machine's pace) are not one thing clicked in vain.
fn rage_at(i: &str) -> String {
    let a = format!("c[{i} - 2]");
    let m = format!("c[{i} - 1]");
    let z = format!("c[{i}]");
    format!(
        "({z}.1 - {a}.1 <= ? AND abs({z}.2 - {a}.2) <= ? AND abs({z}.3 - {a}.3) <= ? \
         AND abs({m}.2 - {a}.2) <= ? AND abs({m}.3 - {a}.3) <= ? AND {z}.5 = {a}.5 AND {m}.5 = {a}.5)"
    )
}

/// Rage bursts: per session, the index where each burst of three or more close, quick clicks
/// starts being one (`c[i]`). ClickHouse 18.x has no window functions, so each session's
/// clicks are an array.
///
/// The per-session arrays here, of dead clicks and of anomalies are `groupUniqArray`s over
/// `events` without `FINAL`: a stored duplicate (a retried batch not yet merged away) is the
/// same tuple to the millisecond, and drops out of the set, as `FINAL` would drop its row.
/// `FINAL` on a table of unmerged parts merges them in one stream: a page's month of clicks
/// took 1.2 s with it and 0.16 s without (10 M events, bench/results/queries.md).
pub(super) fn rage_bursts_sql() -> String {
    format!(
        "(SELECT session_id, arraySort(e -> e.1, groupUniqArray((toUInt64(timestamp) * 1000 + timestamp_ms, x, y, selector, path, viewport_w, toString(device)))) AS c \
          FROM events WHERE {{where}} GROUP BY session_id) \
         ARRAY JOIN arrayFilter(i -> i >= 3 AND {} AND (i = 3 OR NOT {}){{page}}, arrayEnumerate(c)) AS i",
        rage_at("i"),
        rage_at("(i - 1)")
    )
}

/// `{page}` of [`rage_bursts_sql`] (`at`: `c`, path 5, width 6) and [`DEAD_CLICKS`] (`e`, 7, 8)
/// for `f`, and the filters of their `{where}`. A session's sequence is of all its pages, and
/// the page and width pick the clicks in it afterwards: a click that led to another page is
/// not dead, and the rollup (`behaviour.rs`), which keeps every page, finds the same.
fn page_of(f: &Filters, at: (&str, usize, usize)) -> (String, Vec<Bind>, Filters) {
    let (of, path, width) = at;
    let (mut sql, mut binds) = (String::new(), Vec::new());
    if let Some(p) = &f.path {
        sql.push_str(&format!(" AND {of}[i].{path} = ?"));
        binds.push(Bind::S(p.clone()));
    }
    if let Some((lo, hi)) = f.width {
        sql.push_str(&format!(
            " AND {of}[i].{width} >= ? AND {of}[i].{width} < ?"
        ));
        binds.extend([Bind::U(lo), Bind::U(hi.min(u32::from(u16::MAX) + 1))]);
    }
    let whole = Filters {
        path: None,
        width: None,
        ..f.clone()
    };
    (sql, binds, whole)
}

/// Rage bursts by element.
fn rage_sql() -> String {
    format!(
        "SELECT tupleElement(c[i], 4) AS selector, toUInt64(count()) AS bursts, toUInt64(uniqExact(session_id)) AS sessions, \
         toFloat64(avg(tupleElement(c[i], 2))) AS x, toFloat64(avg(tupleElement(c[i], 3))) AS y FROM {} \
         GROUP BY selector ORDER BY bursts DESC, selector LIMIT 100",
        rage_bursts_sql()
    )
}

/// The rage-burst query `sql` for `f`, its thresholds bound (twice: `rage_at` is used twice).
fn rage_query_of(client: &Client, sql: &str, f: &Filters) -> clickhouse::query::Query {
    let (page, page_binds, whole) = page_of(f, ("c", 5, 6));
    let mut binds: Vec<Bind> = rage_thresholds(f.rage_ms, f.rage_px)
        .into_iter()
        .map(Bind::U)
        .collect();
    binds.extend(page_binds);
    let sql = sql.replace("{page}", &page);
    prepare_with(client, &sql, &whole, Some("click"), Vec::new(), binds)
}

/// The dead-click query for `f`.
fn dead_query(client: &Client, f: &Filters) -> clickhouse::query::Query {
    let (page, binds, whole) = page_of(f, ("e", 7, 8));
    let sql = dead_sql().replace("{page}", &page);
    prepare_with(client, &sql, &whole, None, Vec::new(), binds)
}

/// The values [`rage_bursts_sql`] binds after its `{where}`.
pub(super) fn rage_thresholds(ms: u32, px: u32) -> Vec<u32> {
    let one = [ms, px, px, px, px];
    one.iter().chain(one.iter()).copied().collect()
}

/// The rage-burst query for `f`.
fn rage_query(client: &Client, f: &Filters) -> clickhouse::query::Query {
    rage_query_of(client, &rage_sql(), f)
}

/// Dead clicks: clicks on elements that are not interactive and were not followed by a page
/// view within a second (the tracker reports no DOM changes, so navigation is the signal);
/// per session, the index of each in `e`.
pub(super) const DEAD_CLICKS: &str = "(SELECT session_id, arraySort(v -> v.1, groupUniqArray((toUInt64(timestamp) * 1000 + timestamp_ms, toString(event_type), tag, selector, x, y, path, viewport_w, toString(device)))) AS e \
      FROM events WHERE {where} AND event_type IN ('click', 'pageview') GROUP BY session_id) \
     ARRAY JOIN arrayFilter(i -> e[i].2 = 'click' AND e[i].4 != '' \
       AND NOT has(['a', 'button', 'input', 'select', 'textarea', 'label', 'summary', 'option'], e[i].3) \
       AND NOT (i < length(e) AND e[i + 1].2 = 'pageview' AND e[i + 1].1 - e[i].1 <= 1000){page}, arrayEnumerate(e)) AS i";

/// Dead clicks by element.
fn dead_sql() -> String {
    format!(
        "SELECT tupleElement(e[i], 4) AS selector, toUInt64(count()) AS clicks, toUInt64(uniqExact(session_id)) AS sessions, \
         toFloat64(avg(tupleElement(e[i], 5))) AS x, toFloat64(avg(tupleElement(e[i], 6))) AS y FROM {DEAD_CLICKS} \
         GROUP BY selector ORDER BY clicks DESC, selector LIMIT 100"
    )
}

/// A problem spot on a page: rage or dead clicks on an element.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct Frustration {
    /// The element.
    pub selector: String,
    /// Rage bursts, or dead clicks.
    pub count: u64,
    /// Sessions it happened in.
    pub sessions: u64,
    /// Average page x of the clicks.
    pub x: f64,
    /// Average page y of the clicks.
    pub y: f64,
}

/// Rage and dead clicks of one page, from the events.
pub(super) async fn frustration(
    client: &Client,
    f: &Filters,
) -> Result<(Vec<Frustration>, Vec<Frustration>), clickhouse::error::Error> {
    tokio::try_join!(
        rage_query(client, f).fetch_all(),
        dead_query(client, f).fetch_all()
    )
}

/// `loops` over the array `x` of a session's steps: a sequence of 2 steps (ABABAB), or of 3
/// (ABCABCABC), done a third time in a row; counted where each such repeat ends.
fn loops_of(x: &str) -> String {
    format!(
        "arrayCount(i -> i > 5 AND {x}[i] != {x}[i - 1] AND {x}[i] = {x}[i - 2] AND {x}[i] = {x}[i - 4] \
           AND {x}[i - 1] = {x}[i - 3] AND {x}[i - 1] = {x}[i - 5], arrayEnumerate({x})) \
         + arrayCount(i -> i > 8 AND NOT ({x}[i] = {x}[i - 1] AND {x}[i] = {x}[i - 2]) AND {x}[i] = {x}[i - 3] AND {x}[i] = {x}[i - 6] \
           AND {x}[i - 1] = {x}[i - 4] AND {x}[i - 1] = {x}[i - 7] AND {x}[i - 2] = {x}[i - 5] AND {x}[i - 2] = {x}[i - 8], arrayEnumerate({x}))"
    )
}

/// Per-session anomaly counts, from each session's page views, clicks and custom events
/// (`e`, in time order), measured against generated traffic with known anomalies
/// (bench/results/anomalies.md):
/// - `rapid`: clicks on another element than the click before, 10 to 99 ms after it. A hand
///   moving between two targets takes longer; a double or rage click stays on one element;
///   what the browser or the page's code clicks in answer to a click (a label's click passed
///   to its control) comes within the same few ms. Page views and custom events never count:
///   they answer a click or a load.
/// - `repeated`: an action done a third time in a row, each time more than `rage_ms` after
///   the one before (faster is a double click or a rage burst). Actions (`a`, with times
///   `t`) are page views (by URL), clicks (by element) and custom events (by name), but for
///   custom events sent less than 100 ms after the event before them: the page's own answer
///   to a click or load, not an action.
/// - `loops`: a sequence of 2 or 3 actions, or of 2 or 3 pages (`p`, by URL: the same product
///   again, not another one), done a third time in a row; the more of the two counts, as a
///   loop of page views alone is both.
///
/// ClickHouse 18.16 reads from a subquery only the columns named outside lambdas, so every
/// array a lambda reads is also one of its function's arguments (`t` of `repeated`).
fn anomalies_query_sql() -> String {
    format!(
        "SELECT session_id, toUInt64(n) AS events, \
         toUInt64(arrayCount(i -> i > 1 AND c[i].1 - c[i - 1].1 >= 10 AND c[i].1 - c[i - 1].1 < 100 \
           AND c[i].2 != c[i - 1].2 AND c[i - 1].3 != 'label', arrayEnumerate(c))) AS rapid, \
         toUInt64(arrayCount((i, ti) -> i > 2 AND a[i] = a[i - 1] AND a[i] = a[i - 2] \
           AND ti - t[i - 1] > {{rage_ms}} AND t[i - 1] - t[i - 2] > {{rage_ms}}, arrayEnumerate(a), t)) AS repeated, \
         toUInt64(greatest({}, {})) AS loops \
         FROM (SELECT session_id, n, c, p, arrayMap(v -> v.1, k) AS t, \
                 arrayMap(v -> concat(v.2, ':', if(v.2 = 'pageview', v.7, v.3), ':', v.4, v.5), k) AS a FROM \
           (SELECT session_id, length(e) AS n, \
              arrayFilter((v, i) -> NOT (v.2 = 'custom' AND i > 1 AND v.1 - e[i - 1].1 < 100), e, arrayEnumerate(e)) AS k, \
              arrayMap(v -> (v.1, v.4, v.6), arrayFilter(v -> v.2 = 'click', e)) AS c, \
              arrayMap(v -> v.7, arrayFilter(v -> v.2 = 'pageview', e)) AS p FROM \
             (SELECT session_id, arraySort(v -> v.1, groupUniqArray((toUInt64(timestamp) * 1000 + timestamp_ms, \
                toString(event_type), path, selector, toString(name), toString(tag), url))) AS e \
              FROM events{{listed}} WHERE {{where}} AND event_type IN ('pageview', 'click', 'custom') GROUP BY session_id))) \
         WHERE rapid + repeated + loops > 0 ORDER BY rapid + repeated + loops DESC, session_id{{limit}}",
        loops_of("a"),
        loops_of("p")
    )
}

/// The anomalies of the site's 100 most anomalous sessions, or (`listed`) of the sessions in
/// a bound array.
pub(super) fn anomalies_sql(listed: bool) -> String {
    let (only, limit) = if listed {
        // A set, not `has(?, session_id)`: a page of 100 sessions scanned each of a day's
        // events against the whole array (180 ms for one day of 10 M a month; 50 ms so). In
        // PREWHERE, so that only their events' other columns are read (0.3 s to 0.12 s for a
        // day of 100 M a month): 18.16 does not move it there itself.
        (" PREWHERE {listed}", "")
    } else {
        ("", " LIMIT 100")
    };
    anomalies_query_sql()
        .replace("{listed}", only)
        .replace("{limit}", limit)
}

/// A session with unusual behaviour.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct Anomaly {
    /// The session.
    pub session_id: String,
    /// Page views, clicks and custom events in it.
    pub events: u64,
    /// Clicks on another element 10–99 ms after the click before: faster than a hand.
    pub rapid: u64,
    /// Actions done a third time in a row, each more than `rage_ms` after the one before
    /// (retrying).
    pub repeated: u64,
    /// Stuck loops: a sequence of 2 or 3 actions, or of 2 or 3 pages, done a third time in a
    /// row.
    pub loops: u64,
}

/// `anomalies`: sessions with unusual behaviour, and the pages' rage and dead clicks.
#[derive(Debug, Serialize)]
pub struct Anomalies {
    /// Sessions, most anomalous first.
    pub sessions: Vec<Anomaly>,
    /// Rage bursts by element (of `path` if given, else of the site).
    pub rage: Vec<Frustration>,
    /// Dead clicks by element.
    pub dead: Vec<Frustration>,
}

/// Finds anomalies.
/// The site's 100 most anomalous sessions, from the events.
pub(super) async fn anomalous(
    client: &Client,
    f: &Filters,
) -> Result<Vec<Anomaly>, clickhouse::error::Error> {
    rows::<Anomaly>(client, &anomalies_sql(false), f, None).await
}

pub async fn anomalies(
    client: &Client,
    f: &Filters,
) -> Result<Anomalies, clickhouse::error::Error> {
    let (sessions, (rage, dead)) = tokio::try_join!(anomalous(client, f), frustration(client, f))?;
    Ok(Anomalies {
        sessions,
        rage,
        dead,
    })
}

/// Which sessions each rule flags, over every session of a date range rather than the 100 the
/// API lists: what `pathlight score-anomalies` measures against generated traffic's labels.
#[derive(Debug, Default)]
pub struct RuleFlags {
    /// Sessions in the range, bots' included.
    pub sessions: u64,
    /// Sessions of bots (the collector's flag, from the User-Agent).
    pub bot: std::collections::BTreeSet<String>,
    /// Sessions with `rapid` clicks.
    pub rapid: std::collections::BTreeSet<String>,
    /// Sessions with `repeated` actions.
    pub repeated: std::collections::BTreeSet<String>,
    /// Sessions with `loops`.
    pub loops: std::collections::BTreeSet<String>,
    /// Sessions with a rage burst.
    pub rage: std::collections::BTreeSet<String>,
    /// Sessions with a dead click.
    pub dead: std::collections::BTreeSet<String>,
}

#[derive(Deserialize, clickhouse::Row)]
struct Flagged {
    session_id: String,
    _n: u64,
}

/// Every session's flags in `f`'s site and dates, by the same rules the API applies.
pub async fn rule_flags(
    client: &Client,
    f: &Filters,
) -> Result<RuleFlags, clickhouse::error::Error> {
    let all = anomalies_query_sql()
        .replace("{listed}", "")
        .replace("{limit}", "");
    let rage = format!(
        "SELECT session_id, toUInt64(count()) FROM {} GROUP BY session_id",
        rage_bursts_sql().replace("{page}", "")
    );
    let dead = format!(
        "SELECT session_id, toUInt64(count()) FROM {} GROUP BY session_id",
        DEAD_CLICKS.replace("{page}", "")
    );
    let range = "site_id = ? AND toDate(timestamp) BETWEEN toDate(?) AND toDate(?)";
    let bots = format!(
        "SELECT session_id, toUInt64(count()) FROM events FINAL WHERE {range} AND is_bot = 1 GROUP BY session_id"
    );
    let sessions = format!("SELECT toUInt64(uniqExact(session_id)) FROM events WHERE {range}");
    let in_range = |sql: &str| client.query(sql).bind(&f.site).bind(&f.from).bind(&f.to);
    let (anomalies, rage, dead, bots, sessions) = tokio::try_join!(
        rows::<Anomaly>(client, &all, f, None),
        rage_query_of(client, &rage, f).fetch_all::<Flagged>(),
        prepare(client, &dead, f, None).fetch_all::<Flagged>(),
        in_range(&bots).fetch_all::<Flagged>(),
        in_range(&sessions).fetch_one::<u64>(),
    )?;
    let ids = |v: Vec<Flagged>| v.into_iter().map(|r| r.session_id).collect();
    let with = |n: fn(&Anomaly) -> u64| {
        anomalies
            .iter()
            .filter(|a| n(a) > 0)
            .map(|a| a.session_id.clone())
            .collect()
    };
    Ok(RuleFlags {
        sessions,
        bot: ids(bots),
        rapid: with(|a| a.rapid),
        repeated: with(|a| a.repeated),
        loops: with(|a| a.loops),
        rage: ids(rage),
        dead: ids(dead),
    })
}

/// `sessions`, step 1: the page of sessions that started in the (narrowed) range, newest
/// first, from the three cheap states only (merging every state of every session of a month
/// costs seconds and GBs on a busy site).
const SESSION_PAGE: &str = "SELECT session_id, minMerge(start_ms) AS t0, maxMerge(end_ms) AS t1, maxIfMerge(left_ms) AS tl \
     FROM sessions WHERE {sessions} GROUP BY session_id HAVING {started}{ended} \
     ORDER BY t0 DESC, session_id LIMIT ?";
/// `sessions`, step 1 on the range's last day: the page of sessions that started on it since
/// `?` (ms), found through the events since then, so only those sessions' states are merged,
/// not the day's (0.13 s instead of 0.4-0.6 s for the last hours of a day of 365 k sessions,
/// at 100 M events a month). Every session that started since then has its first event in
/// the rest of the day, so the newest are all there; one that started before it is dropped by
/// `t0 >= ?`. None of them started the day before: `?` is at least a session timeout after
/// midnight, and a session idle that long has ended. Their rows of the next day are merged
/// too (a session going on past midnight).
const SESSION_PAGE_RECENT: &str = "SELECT session_id, minMerge(start_ms) AS t0, maxMerge(end_ms) AS t1, maxIfMerge(left_ms) AS tl \
     FROM sessions WHERE {day} AND session_id GLOBAL IN (SELECT session_id FROM events \
       WHERE site_id = ? AND toDate(timestamp) = toDate(?) AND timestamp >= toDateTime(toUInt32(?))) \
     GROUP BY session_id HAVING t0 >= ?{ended} ORDER BY t0 DESC, session_id LIMIT ?";
/// `sessions`, step 2: the summaries of the page's sessions, from their rows of the range
/// and the days around it. The sessions in PREWHERE, so that only their rows' states are read
/// (18.16 read every state of the range's rows first: 0.9 s for a page of 100 on a day of
/// 365 k sessions, 0.15 s so).
const SESSION_LIST: &str = "SELECT session_id, any(visitor_id), toString(any(device)), toString(any(browser)), \
     toString(any(os)), toString(any(country)), maxMerge(user_id), minMerge(start_ms) AS t0, maxMerge(end_ms) AS t1, \
     maxIfMerge(left_ms) AS tl, toUInt64(countMerge(events)), toUInt64(countIfMerge(pageviews)), \
     toUInt64(countIfMerge(clicks)), toUInt64(countIfMerge(scrolls)), toUInt64(countIfMerge(customs)), \
     toUInt64(uniqExactIfMerge(pages)), argMinIfMerge(entry), argMaxIfMerge(exit), topKIfMerge(3)(actions) \
     FROM sessions PREWHERE {listed} WHERE {around} \
     GROUP BY session_id ORDER BY t0 DESC, session_id";

/// Ended cleanly: the last thing the session did was hide or leave its page.
const CLOSED: &str = "(tl > 0 AND tl >= t1)";

#[derive(Deserialize, clickhouse::Row)]
struct SessionRow {
    session_id: String,
    visitor_id: u64,
    device: String,
    browser: String,
    os: String,
    country: String,
    user_id: String,
    start_ms: u64,
    end_ms: u64,
    left_ms: u64,
    events: u64,
    pageviews: u64,
    clicks: u64,
    scrolls: u64,
    customs: u64,
    pages: u64,
    entry: String,
    exit: String,
    actions: Vec<String>,
}

/// One session's summary.
#[derive(Debug, Serialize)]
pub struct SessionSummary {
    /// The session.
    pub session_id: String,
    /// Its visitor id (daily hash).
    pub visitor_id: u64,
    /// The site's user id, if the session identified one.
    pub user_id: String,
    /// Device type, browser, OS and country.
    pub device: String,
    /// See `device`.
    pub browser: String,
    /// See `device`.
    pub os: String,
    /// See `device`.
    pub country: String,
    /// First and last event, ms since the epoch.
    pub start_ms: u64,
    /// See `start_ms`.
    pub end_ms: u64,
    /// `end_ms - start_ms`, seconds.
    pub duration_secs: f64,
    /// `closed` (its last event was the page being hidden or left), `timed_out` (no such
    /// event, and none at all for the session timeout, `session_timeout_secs`) or `active`.
    pub ended: &'static str,
    /// Events of each kind, and all.
    pub events: u64,
    /// See `events`.
    pub pageviews: u64,
    /// See `events`.
    pub clicks: u64,
    /// See `events`.
    pub scrolls: u64,
    /// See `events`.
    pub customs: u64,
    /// Distinct pages viewed.
    pub pages: u64,
    /// First and last page viewed.
    pub entry: String,
    /// See `entry`.
    pub exit: String,
    /// Its most used actions (`click <selector>`, `custom <name>`), most used first.
    pub actions: Vec<String>,
    /// Anomalies found in it (rapid, repeated actions, stuck loops); none if none.
    pub anomalies: Option<Anomaly>,
}

#[derive(Deserialize, clickhouse::Row)]
struct PageRow {
    session_id: String,
    _start: u64,
    _end: u64,
    _left: u64,
}

/// `f` over the sessions that started from `lo` (a day of `f`'s range) to `f.to`.
fn from_day(f: &Filters, lo: &str) -> Filters {
    Filters {
        from: lo.to_owned(),
        ..f.clone()
    }
}

/// Where step 1 of `sessions` looks: the sessions that started from a day of `f`'s range
/// (`lo`) to `f.to`, or those that started on a day (`day`, days since the epoch) since a time
/// (`since`, ms).
enum Started<'a> {
    FromDay(&'a str),
    DaySince { day: i64, since: u64 },
}

/// Step 1 of `sessions`: the first `offset + limit` sessions that started where `started`
/// says. A session with no event for `timeout_ms` is over.
fn session_page_query(
    client: &Client,
    f: &Filters,
    started: Started,
    now_ms: u64,
    timeout_ms: u64,
) -> clickhouse::query::Query {
    let cutoff = Bind::N(now_ms.saturating_sub(timeout_ms));
    let (ended, mut post) = match f.ended.as_deref() {
        Some("closed") => (format!(" AND {CLOSED}"), Vec::new()),
        Some("timed_out") => (format!(" AND NOT {CLOSED} AND t1 < ?"), vec![cutoff]),
        Some(_) => (format!(" AND NOT {CLOSED} AND t1 >= ?"), vec![cutoff]),
        None => (String::new(), Vec::new()),
    };
    post.push(Bind::N(u64::from(f.offset) + u64::from(f.limit)));
    match started {
        Started::FromDay(lo) => {
            let sql = SESSION_PAGE.replace("{ended}", &ended);
            prepare_with(client, &sql, &from_day(f, lo), None, Vec::new(), post)
        }
        Started::DaySince { day, since } => {
            let date = civil(day);
            let mut binds = vec![Bind::S(f.site.clone()), Bind::S(date.clone())];
            let mut rows = "site_id = ? AND day BETWEEN toDate(?) AND toDate(?) + 1".to_owned();
            binds.push(Bind::S(date.clone()));
            Filters::equal(&mut rows, &mut binds, &[("device", f.device.as_ref())]);
            binds.extend([
                Bind::S(f.site.clone()),
                Bind::S(date),
                Bind::N(since / 1000),
                Bind::N(since),
            ]);
            binds.extend(post);
            let sql = SESSION_PAGE_RECENT
                .replace("{day}", &rows)
                .replace("{ended}", &ended);
            binds.into_iter().fold(client.query(&sql), |q, b| b.bind(q))
        }
    }
}

/// Step 1 of `sessions` over the last hours of the range's last day (up to now if that is
/// today): the newest sessions of a busy site started in them. None if they hold no full page
/// (or the day is too young for [`SESSION_PAGE_RECENT`]); the caller then looks at whole days.
/// Returns the day with the page.
async fn recent_page(
    client: &Client,
    f: &Filters,
    now_ms: u64,
    timeout_ms: u64,
) -> Result<Option<(i64, Vec<PageRow>)>, clickhouse::error::Error> {
    let day = days_of(&f.to).min((now_ms / 86_400_000) as i64);
    if days_of(&f.from) > day || day < 0 {
        return Ok(None);
    }
    let start = day as u64 * 86_400_000;
    let end = (start + 86_400_000).min(now_ms);
    let wanted = f.offset as usize + f.limit as usize;
    for hours in [1, 6] {
        let since = end.saturating_sub(hours * 3_600_000);
        if since < start + timeout_ms {
            break;
        }
        let started = Started::DaySince { day, since };
        let page: Vec<PageRow> = session_page_query(client, f, started, now_ms, timeout_ms)
            .fetch_all()
            .await?;
        if page.len() >= wanted {
            return Ok(Some((day, page)));
        }
    }
    Ok(None)
}

/// Step 2 of `sessions`, and the anomalies of the same sessions: both read only the days from
/// `lo`.
fn session_list_queries(
    client: &Client,
    f: &Filters,
    lo: &str,
    ids: &[String],
) -> (clickhouse::query::Query, clickhouse::query::Query) {
    let from_lo = Filters {
        listed: ids.to_vec(),
        ..from_day(f, lo)
    };
    let list = prepare(client, SESSION_LIST, &from_lo, None);
    // A session spans pages and widths: its anomalies are over all of them, and over the day
    // after the range (a session that started in it may go on past midnight).
    let whole = Filters {
        path: None,
        width: None,
        to: civil(days_of(&f.to) + 1),
        ..from_lo
    };
    let of = prepare(client, &anomalies_sql(true), &whole, None);
    (list, of)
}

/// Session summaries, newest first (`ended`, `device`, `limit`, `offset` apply); a session
/// with no event for `timeout_ms` (the configured session timeout) is over.
///
/// The newest sessions are on the last days, so step 1 looks at the last day of the range
/// first and doubles the window until it has a full page or reaches `from`: a busy site's
/// first page reads a couple of days of the mart (the window and the day before it, whose rows
/// give a session that crossed midnight its true start), not the month.
pub async fn sessions(
    client: &Client,
    f: &Filters,
    timeout_ms: u64,
) -> Result<Vec<SessionSummary>, clickhouse::error::Error> {
    let now = crate::pipeline::now_ms().max(0) as u64;
    let (from, to) = (days_of(&f.from), days_of(&f.to));
    let wanted = f.offset as usize + f.limit as usize;
    let mut span = 0;
    let (lo, page) = match recent_page(client, f, now, timeout_ms).await? {
        Some((day, page)) => (civil(day), page),
        None => loop {
            let lo = civil((to - span).max(from));
            let started = Started::FromDay(&lo);
            let page: Vec<PageRow> = session_page_query(client, f, started, now, timeout_ms)
                .fetch_all()
                .await?;
            if page.len() >= wanted || to - span <= from {
                break (lo, page);
            }
            span = span * 2 + 1;
        },
    };
    let ids: Vec<String> = page
        .into_iter()
        .skip(f.offset as usize)
        .map(|p| p.session_id)
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let (list, of) = session_list_queries(client, f, &lo, &ids);
    let (found, mut anomalies): (Vec<SessionRow>, Vec<Anomaly>) =
        tokio::try_join!(list.fetch_all(), of.fetch_all())?;
    Ok(found
        .into_iter()
        .map(|r| {
            let ended = ended(r.left_ms, r.end_ms, now, timeout_ms);
            let anomalies = anomalies
                .iter()
                .position(|a| a.session_id == r.session_id)
                .map(|i| anomalies.swap_remove(i));
            SessionSummary {
                duration_secs: r.end_ms.saturating_sub(r.start_ms) as f64 / 1000.0,
                session_id: r.session_id,
                visitor_id: r.visitor_id,
                user_id: r.user_id,
                device: r.device,
                browser: r.browser,
                os: r.os,
                country: r.country,
                start_ms: r.start_ms,
                end_ms: r.end_ms,
                ended,
                events: r.events,
                pageviews: r.pageviews,
                clicks: r.clicks,
                scrolls: r.scrolls,
                customs: r.customs,
                pages: r.pages,
                entry: r.entry,
                exit: r.exit,
                actions: r.actions,
                anomalies,
            }
        })
        .collect())
}

/// How a session whose last event was at `end_ms` (and whose page was last left or hidden at
/// `left_ms`, 0 if never) ended, as of `now`: `closed`, `timed_out` after `timeout_ms` without
/// an event, else `active`.
fn ended(left_ms: u64, end_ms: u64, now: u64, timeout_ms: u64) -> &'static str {
    if left_ms > 0 && left_ms >= end_ms {
        "closed"
    } else if end_ms + timeout_ms <= now {
        "timed_out"
    } else {
        "active"
    }
}

/// `actions`: the most used actions (clicked elements and custom events) per page.
const ACTIONS: &str = "SELECT concat(toString(event_type), ' ', if(event_type = 'custom', toString(name), selector)) AS action, path, \
     toUInt64(count()) AS count, toUInt64(uniqExact(session_id)) AS sessions \
     FROM events FINAL WHERE {where} AND event_type IN ('click', 'custom') \
     GROUP BY action, path ORDER BY count DESC, action, path LIMIT 100";

/// An action and how often it was done.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct Action {
    /// `click <selector>` or `custom <name>`.
    pub action: String,
    /// Page.
    pub path: String,
    /// Times done.
    pub count: u64,
    /// Sessions it was done in.
    pub sessions: u64,
}

/// Most used actions.
pub async fn actions(
    client: &Client,
    f: &Filters,
) -> Result<Vec<Action>, clickhouse::error::Error> {
    rows(client, ACTIONS, f, None).await
}

/// `patterns`: the most frequent sequences of 2 to 5 consecutive actions within sessions
/// (an action is `kind:path:element-or-name`), by the number of sessions they occur in.
const PATTERNS: &str = "SELECT gram, toUInt8(length(gram)) AS n, toUInt64(count()) AS occurrences, toUInt64(uniqExact(session_id)) AS sessions FROM \
     {grams} GROUP BY gram HAVING sessions >= 2 ORDER BY sessions DESC, occurrences DESC, n DESC, gram LIMIT 50";
/// Every session's sequences of 2 to 5 consecutive actions (`gram`), one row each time one
/// occurs. `groupUniqArray` over `events` (not `FINAL`): see [`rage_bursts_sql`].
pub(super) const PATTERN_GRAMS: &str = "(SELECT session_id, arraySlice(a, i, k) AS gram FROM \
       (SELECT session_id, a, arrayJoin([2, 3, 4, 5]) AS k FROM \
         (SELECT session_id, arrayMap(v -> v.2, arraySort(v -> v.1, groupUniqArray((toUInt64(timestamp) * 1000 + timestamp_ms, \
            concat(toString(event_type), ':', path, ':', if(event_type = 'custom', toString(name), selector)))))) AS a \
          FROM events WHERE {where} AND event_type IN ('pageview', 'click', 'custom') GROUP BY session_id)) \
      ARRAY JOIN arrayFilter(i -> i + k - 1 <= length(a), arrayEnumerate(a)) AS i)";

fn patterns_sql() -> String {
    PATTERNS.replace("{grams}", PATTERN_GRAMS)
}

/// A frequent action sequence.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct Pattern {
    /// The actions, in order.
    pub actions: Vec<String>,
    /// Its length (2–5).
    pub n: u8,
    /// Times it occurred.
    pub occurrences: u64,
    /// Sessions it occurred in (at least 2).
    pub sessions: u64,
}

/// Frequent sequences, and the sessions that repeat one (stuck loops, from `anomalies`).
#[derive(Debug, Serialize)]
pub struct Patterns {
    /// Sequences shared by at least two sessions, most widespread first.
    pub frequent: Vec<Pattern>,
    /// Sessions stuck in a loop, with its severity (loops found).
    pub loops: Vec<Anomaly>,
    /// Whether `frequent` was summed from each day's most widespread sequences (the rollup,
    /// `behaviour.rs`) rather than counted over every session.
    pub approximate: bool,
}

/// Sequences shared by at least two sessions, from the events.
pub(super) async fn frequent(
    client: &Client,
    f: &Filters,
) -> Result<Vec<Pattern>, clickhouse::error::Error> {
    rows::<Pattern>(client, &patterns_sql(), f, None).await
}

/// Finds patterns.
pub async fn patterns(client: &Client, f: &Filters) -> Result<Patterns, clickhouse::error::Error> {
    let (frequent, sessions) = tokio::try_join!(frequent(client, f), anomalous(client, f))?;
    let loops = sessions.into_iter().filter(|s| s.loops > 0).collect();
    Ok(Patterns {
        frequent,
        loops,
        approximate: false,
    })
}

/// `search`, per query: from custom events `search` {query, results} and
/// `search_result_click` {query, position, item_id}.
const SEARCH_QUERIES: &str = "SELECT q, toUInt64(countIf(n = 'search')) AS searches, toUInt64(countIf(n = 'search_result_click')) AS clicks, \
     toFloat64(if(searches = 0, 0, clicks / searches)), toFloat64(avgIf(pos, n = 'search_result_click')), \
     toFloat64(if(searches = 0, 0, countIf(n = 'search' AND results = 0) / searches)) FROM \
     (SELECT toString(name) AS n, visitParamExtractString(props, 'query') AS q, visitParamExtractFloat(props, 'results') AS results, \
        visitParamExtractFloat(props, 'position') AS pos \
      FROM events FINAL WHERE {where} AND name IN ('search', 'search_result_click')) \
     WHERE q != '' GROUP BY q ORDER BY searches DESC, q LIMIT 100";

/// `search`, per item: clicks from search, then `view_item`, `add_to_cart` and `purchase`
/// custom events carrying the same `item_id`.
const SEARCH_ITEMS: &str = "SELECT item, toUInt64(countIf(n = 'search_result_click')) AS from_search, toUInt64(countIf(n = 'view_item')) AS views, \
     toUInt64(countIf(n = 'add_to_cart')) AS carts, toUInt64(countIf(n = 'purchase')) AS purchases, \
     toFloat64(if(views = 0, 0, carts / views)), toFloat64(if(views = 0, 0, purchases / views)) FROM \
     (SELECT toString(name) AS n, visitParamExtractString(props, 'item_id') AS item \
      FROM events FINAL WHERE {where} AND name IN ('search_result_click', 'view_item', 'add_to_cart', 'purchase')) \
     WHERE item != '' GROUP BY item ORDER BY from_search DESC, views DESC, item LIMIT 100";

/// A search query's figures.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct SearchQuery {
    /// The query as sent.
    pub query: String,
    /// `search` events.
    pub searches: u64,
    /// `search_result_click` events.
    pub clicks: u64,
    /// Clicks per search.
    pub ctr: f64,
    /// Average position clicked (1 = first); null without clicks.
    pub avg_position: f64,
    /// Share of searches with `results` = 0.
    pub zero_result_rate: f64,
}

/// An item's figures.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct SearchItem {
    /// `item_id`.
    pub item: String,
    /// Clicks on it in search results.
    pub from_search: u64,
    /// `view_item` events.
    pub views: u64,
    /// `add_to_cart` events.
    pub add_to_cart: u64,
    /// `purchase` events.
    pub purchases: u64,
    /// Add-to-cart per view.
    pub cart_rate: f64,
    /// Purchases per view.
    pub purchase_rate: f64,
}

/// `search`: search queries and items.
#[derive(Debug, Serialize)]
pub struct Search {
    /// Per query.
    pub queries: Vec<SearchQuery>,
    /// Per item.
    pub items: Vec<SearchItem>,
}

/// Search analytics.
pub async fn search(client: &Client, f: &Filters) -> Result<Search, clickhouse::error::Error> {
    let (queries, items) = tokio::try_join!(
        rows(client, SEARCH_QUERIES, f, Some("custom")),
        rows(client, SEARCH_ITEMS, f, Some("custom"))
    )?;
    Ok(Search { queries, items })
}

/// `users/{id}/events`: a known user's events across sessions, oldest first, paged.
const USER_EVENTS: &str = "SELECT toString(event_type), toUInt64(timestamp) * 1000 + timestamp_ms AS ts, session_id, path, selector, toString(name) \
     FROM events FINAL WHERE {where} AND user_id = ? ORDER BY ts, event_id LIMIT ?, ?";

/// One event of a user's timeline.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct UserEvent {
    /// Kind.
    pub event_type: String,
    /// Time, ms since the epoch.
    pub ts: u64,
    /// Session.
    pub session_id: String,
    /// Page.
    pub path: String,
    /// Clicked element.
    pub selector: String,
    /// Custom event name.
    pub name: String,
}

fn user_events_query(client: &Client, f: &Filters, user: &str) -> clickhouse::query::Query {
    let post = vec![
        Bind::S(user.to_owned()),
        Bind::U(f.offset),
        Bind::U(f.limit),
    ];
    prepare_with(client, USER_EVENTS, f, None, Vec::new(), post)
}

/// A page of a user's events.
pub async fn user_events(
    client: &Client,
    f: &Filters,
    user: &str,
) -> Result<Vec<UserEvent>, clickhouse::error::Error> {
    user_events_query(client, f, user).fetch_all().await
}

/// A step's condition, with one `?`.
fn step_condition(step: &str) -> &'static str {
    if step.starts_with('/') {
        "(event_type = 'pageview' AND path = ?)"
    } else {
        "(event_type = 'custom' AND name = ?)"
    }
}

/// The funnel in one query: per session how far it got in order (`windowFunnel`) and the
/// first time it did each step; over the sessions, how many got past each step and the
/// median time between steps. One row: n counts, then n-1 medians.
///
/// It reads only the steps' events (`{steps}`: any step's condition): the others change
/// neither a session's level nor its first times, and a page-view step narrows the read to
/// that path's granules (the table is ordered by kind, day, path). Without `FINAL`: a
/// re-sent copy of an event has its time, so it changes neither figure either, and `FINAL`
/// over a month of unmerged parts is most of the cost (issue 27). Grouping those events by
/// session is the rest, so levels and times share one grouping (two queries took 1.2 s at
/// 100 M events, bench/results/queries.md).
fn funnel_sql(steps: &[String]) -> String {
    let conds: Vec<&str> = steps.iter().map(|s| step_condition(s)).collect();
    let any = conds.join(" OR ");
    let firsts: Vec<String> = conds
        .iter()
        .enumerate()
        .map(|(i, c)| format!("minIf(toUInt64(timestamp) * 1000 + timestamp_ms, {c}) AS t{i}"))
        .collect();
    let reached = (0..steps.len()).map(|i| format!("toUInt64(countIf(level > {i}))"));
    // Over the sessions that did every step up to this one in order (first times), not
    // those that only did the previous step and this one.
    let medians = (1..steps.len()).map(|i| {
        let in_order: Vec<String> = (1..=i).map(|j| format!("t{j} > t{}", j - 1)).collect();
        format!(
            "toFloat64(quantileIf(0.5)(t{i} - t{p}, t0 > 0 AND {}))",
            in_order.join(" AND "),
            p = i - 1
        )
    });
    format!(
        "SELECT {} FROM (SELECT session_id, windowFunnel(86400)(timestamp, {}) AS level, {} \
         FROM events WHERE {{where}} AND ({any}) GROUP BY session_id)",
        reached.chain(medians).collect::<Vec<_>>().join(", "),
        conds.join(", "),
        firsts.join(", ")
    )
}

/// The funnel query for `f`, the step values bound.
fn funnel_query(client: &Client, f: &Filters) -> clickhouse::query::Query {
    // The steps' values before `{where}` (the SELECT's conditions: `windowFunnel`'s, then
    // the first times') and after it (the filter).
    let binds = |times: usize| {
        std::iter::repeat_n(&f.steps, times)
            .flatten()
            .map(|s| Bind::S(s.clone()))
            .collect::<Vec<_>>()
    };
    prepare_with(client, &funnel_sql(&f.steps), f, None, binds(2), binds(1))
}

/// The events of a session, in the days it has rows in the `sessions` mart (`{where}`'s range,
/// narrowed by [`SESSION_DAYS`]): `session_id` is not in the events' key, so each day of the
/// range is read whole. A stored duplicate drops out by `LIMIT 1 BY event_id`, not `FINAL`,
/// which merged every unmerged part of the range (3.9 s for a month of 10 M events; 0.1 s so).
const SESSION_EVENTS: &str = "SELECT toString(event_type), toUInt64(timestamp) * 1000 + timestamp_ms AS ts, path, selector, \
     toInt32(x), toInt32(y), toString(name), toUInt8(scroll_depth), toUInt32(visible_ms) \
     FROM events WHERE {where} AND session_id = ? ORDER BY ts, event_id LIMIT 1 BY event_id LIMIT 10000";
/// The first and last day of the range on which a session has events: the `sessions` mart's
/// key is (site, day, session), so this reads a granule a day.
const SESSION_DAYS: &str = "SELECT toString(min(day)), toString(max(day)), toUInt64(count()) FROM sessions \
     WHERE site_id = ? AND day BETWEEN toDate(?) AND toDate(?) AND session_id = ?";

/// `funnel`: how many sessions went through the steps in order.
#[derive(Debug, Serialize)]
pub struct Funnel {
    /// One entry per step.
    pub steps: Vec<FunnelStep>,
}

/// A funnel step's figures.
#[derive(Debug, Serialize)]
pub struct FunnelStep {
    /// The step as given.
    pub step: String,
    /// Sessions that reached it (having done every earlier step before it).
    pub sessions: u64,
    /// Share of the first step's sessions.
    pub conversion: f64,
    /// Share of the previous step's sessions lost here.
    pub drop_off: f64,
    /// Median time from the previous step, seconds, over the sessions that did every step up
    /// to this one in order (none for the first step or no data).
    pub median_secs_from_previous: Option<f64>,
}

/// Runs a funnel.
pub async fn funnel(client: &Client, f: &Filters) -> Result<Funnel, clickhouse::error::Error> {
    // One row of n counts and n-1 medians (a column count no row type fixes): read as
    // TabSeparated, which every server version writes; an empty median is `nan`.
    let row = funnel_query(client, f)
        .fetch_bytes("TabSeparated")?
        .collect()
        .await?;
    let row = String::from_utf8_lossy(&row);
    let fields: Vec<&str> = row.trim_end().split('\t').collect();
    let n = f.steps.len();
    let reached = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let median = |i: usize| {
        fields
            .get(n + i)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|x| x.is_finite())
            .map(|ms| ms / 1000.0)
    };
    let first = reached(0);
    let steps = f
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let n = reached(i);
            let prev = if i == 0 { n } else { reached(i - 1) };
            FunnelStep {
                step: step.clone(),
                sessions: n,
                conversion: if first == 0 {
                    0.0
                } else {
                    n as f64 / first as f64
                },
                drop_off: if prev == 0 {
                    0.0
                } else {
                    1.0 - n as f64 / prev as f64
                },
                median_secs_from_previous: if i == 0 { None } else { median(i - 1) },
            }
        })
        .collect();
    Ok(Funnel { steps })
}

/// One event of a session.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct SessionEvent {
    /// Kind.
    pub event_type: String,
    /// Time, ms since the epoch.
    pub ts: u64,
    /// Page.
    pub path: String,
    /// Clicked element.
    pub selector: String,
    /// Click x.
    pub x: i32,
    /// Click y.
    pub y: i32,
    /// Custom event name.
    pub name: String,
    /// Scroll depth.
    pub scroll_depth: u8,
    /// Visible time.
    pub visible_ms: u32,
}

/// The events of one session, in order.
pub async fn session(
    client: &Client,
    f: &Filters,
    id: &str,
) -> Result<Vec<SessionEvent>, clickhouse::error::Error> {
    let (lo, hi, rows): (String, String, u64) = client
        .query(SESSION_DAYS)
        .bind(&f.site)
        .bind(&f.from)
        .bind(&f.to)
        .bind(id)
        .fetch_one()
        .await?;
    if rows == 0 {
        return Ok(Vec::new());
    }
    let days = Filters {
        from: lo,
        to: hi,
        ..f.clone()
    };
    session_query(client, &days, id).fetch_all().await
}

fn session_query(client: &Client, f: &Filters, id: &str) -> clickhouse::query::Query {
    prepare_with(
        client,
        SESSION_EVENTS,
        f,
        None,
        Vec::new(),
        vec![Bind::S(id.to_owned())],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: i64, dau: u64, wau: u64, mau: u64) -> ActiveDay {
        ActiveDay {
            day: civil(d),
            dau,
            wau,
            mau,
            complete: false,
        }
    }

    #[test]
    fn active_averages_take_complete_days_only() {
        let today = days_from_civil(2026, 11, 10);
        let a = active_of(
            vec![
                day(today - 2, 1, 3, 5),
                day(today - 1, 2, 4, 6),
                day(today, 9, 9, 9),
            ],
            today,
        );
        assert_eq!(
            (a.dau, a.wau, a.mau, a.days),
            (Some(1.5), Some(3.5), Some(5.5), 2)
        );
        let t = a.today.unwrap();
        assert_eq!(
            (t.day.as_str(), t.dau, t.complete),
            ("2026-11-10", 9, false)
        );
        assert_eq!(
            a.series.iter().map(|d| d.complete).collect::<Vec<_>>(),
            [true, true, false]
        );
        // Leading days with nobody in their windows are not averaged; later empty ones are.
        let a = active_of(
            vec![
                day(today - 3, 0, 0, 0),
                day(today - 2, 2, 2, 2),
                day(today - 1, 0, 2, 2),
            ],
            today,
        );
        assert_eq!((a.dau, a.wau, a.days), (Some(1.0), Some(2.0), 2));
        assert_eq!(a.series.len(), 3);
        // Only today: nothing to average, today so far still there.
        let a = active_of(vec![day(today, 4, 4, 4)], today);
        assert_eq!((a.dau, a.days, a.today.map(|t| t.mau)), (None, 0, Some(4)));
        // A range in the past has no today.
        let f = Filters::parse("site=demo&from=2026-11-01&to=2026-11-03").unwrap();
        assert_eq!(
            active_days(&f, today),
            Some((today - 9, today - 7)),
            "the range as it is"
        );
        let f = Filters::parse("site=demo&from=2026-11-08&to=2026-11-20").unwrap();
        assert_eq!(
            active_days(&f, today),
            Some((today - 2, today)),
            "up to today"
        );
        let f = Filters::parse("site=demo&from=2026-11-11&to=2026-11-20").unwrap();
        assert_eq!(active_days(&f, today), None, "all in the future");
    }

    #[test]
    fn the_current_day_or_hour_is_incomplete() {
        let row = |d: &str| Day {
            day: d.into(),
            visitors: 1,
            pageviews: 1,
            complete: false,
        };
        // 2026-11-10 13:30 UTC.
        let now = days_from_civil(2026, 11, 10) * 86_400_000 + 13 * 3_600_000 + 1_800_000;
        let mut days = [row("2026-11-09"), row("2026-11-10")];
        mark_complete(&mut days, false, now);
        assert_eq!(days.map(|d| d.complete), [true, false]);
        let mut hours = [
            row("2026-11-09 23:00:00"),
            row("2026-11-10 12:00:00"),
            row("2026-11-10 13:00:00"),
        ];
        mark_complete(&mut hours, true, now);
        assert_eq!(hours.map(|d| d.complete), [true, true, false]);
    }

    #[test]
    fn sessions_end_after_the_configured_timeout() {
        // A timeout of 10 minutes, not the default 30.
        let (min, now) = (60_000, 1_000 * 60_000);
        let timeout = 10 * min;
        assert_eq!(ended(0, now - 11 * min, now, timeout), "timed_out");
        assert_eq!(ended(0, now - 10 * min, now, timeout), "timed_out");
        assert_eq!(ended(0, now - 9 * min, now, timeout), "active");
        assert_eq!(
            ended(now - 40 * min, now - 40 * min, now, timeout),
            "closed"
        );
        assert_eq!(
            ended(now - 9 * min, now - 8 * min, now, timeout),
            "active",
            "used again"
        );
        // The `ended` filters of the list draw the line at the same instant.
        let client = Client::default();
        for which in ["timed_out", "active"] {
            let f = Filters::parse(&format!("site=demo&ended={which}")).unwrap();
            let sql = session_page_query(&client, &f, Started::FromDay(&f.from), now, timeout)
                .sql_display()
                .to_string();
            assert!(sql.contains(&(now - timeout).to_string()), "{which}: {sql}");
            assert!(
                !sql.contains(&(now - 30 * min).to_string()),
                "{which}: {sql}"
            );
        }
    }

    #[test]
    fn dates_round_trip_and_are_validated() {
        assert_eq!(civil(0), "1970-01-01");
        assert_eq!(civil(days_from_civil(2024, 2, 29)), "2024-02-29");
        assert_eq!(date("2026-11-23").as_deref(), Some("2026-11-23"));
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "26-11-23",
            "2026-11-23'",
            "yesterday",
        ] {
            assert_eq!(date(bad), None, "{bad}");
        }
    }

    #[test]
    fn filters_parse_validate_and_default() {
        let f = Filters::parse(
            "site=demo&path=%2Fcatalog&from=2026-11-01&to=2026-11-23&device=mobile&width=375",
        )
        .unwrap();
        assert_eq!(f.path.as_deref(), Some("/catalog"));
        assert_eq!(f.width, Some((0, 600)));
        let f = Filters::parse("site=demo&to=2026-11-23").unwrap();
        assert_eq!(f.from, "2026-10-25");
        for (q, param) in [
            ("path=/x", "site"),
            ("site=demo&from=2026-11-31", "from"),
            ("site=demo&path=catalog", "path"),
            ("site=demo&device=fridge", "device"),
            ("site=demo&width=wide", "width"),
            ("site=demo&from=2026-11-02&to=2026-11-01", "from"),
        ] {
            match Filters::parse(q) {
                Err(QueryError::BadParam { param: p, .. }) => assert_eq!(p, param, "{q}"),
                other => panic!("{q}: {other:?}"),
            }
        }
    }
}
