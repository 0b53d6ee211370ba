//! `stats`: a site's traffic, sessions and active users over a range, from `traffic_daily`,
//! the session rollup and the `sessions` mart, or (`exact=true`) the events.

use super::*;

pub(super) const TOP_PAGES_MART: &str = "SELECT path AS key, toUInt64(countMerge(views)) AS count FROM page_daily \
     WHERE {mart} AND path != '' GROUP BY key ORDER BY count DESC, key LIMIT 10";
pub(super) const TOTALS: &str = "SELECT toUInt64(uniqExact(visitor_id)), toUInt64(uniqExact(session_id)), \
     toUInt64(countIf(event_type = 'pageview')), toUInt64(count()), \
     toUInt64(sumIf(visitParamExtractUInt(props, 'failed'), event_type = 'custom' AND name = '$undelivered')), \
     toUInt64(sumIf(visitParamExtractUInt(props, 'dropped'), event_type = 'custom' AND name = '$undelivered')) \
     FROM events FINAL WHERE {where}";
/// Session figures by entry and by exit page, in one pass over the sessions: per session its
/// duration, page views and first and last page viewed, then one row per (`side`, page), `side`
/// 0 by entry page (`''`: none viewed), 1 by exit page. Side 0's rows add up to the totals.
/// `{sessions_of}` is the per-session subquery ([`SESSIONS_OF`] or [`SESSIONS_OF_MART`]).
pub(super) const SESSION_ENDS: &str = "SELECT e.1 AS side, e.2 AS key, toUInt64(count()), toFloat64(sum(t1 - t0)), \
     toUInt64(countIf(pv <= 1)) FROM ({sessions_of}) \
     ARRAY JOIN [(toUInt8(0), en), (toUInt8(1), ex)] AS e GROUP BY side, key ORDER BY side, key";
pub(super) const SESSIONS_OF: &str = "SELECT session_id, min(toUInt64(timestamp) * 1000 + timestamp_ms) AS t0, \
     max(toUInt64(timestamp) * 1000 + timestamp_ms) AS t1, countIf(event_type = 'pageview') AS pv, \
     argMinIf(path, toUInt64(timestamp) * 1000 + timestamp_ms, event_type = 'pageview') AS en, \
     argMaxIf(path, toUInt64(timestamp) * 1000 + timestamp_ms, event_type = 'pageview') AS ex \
     FROM events FINAL WHERE {where} GROUP BY session_id";
pub(super) const SESSIONS_OF_MART: &str = "SELECT session_id, minMerge(start_ms) AS t0, maxMerge(end_ms) AS t1, \
     countIfMerge(pageviews) AS pv, argMinIfMerge(entry) AS en, argMaxIfMerge(exit) AS ex \
     FROM sessions WHERE {sessions} GROUP BY session_id HAVING {started} AND {unrolled}";

pub(super) fn session_ends_sql(mart: bool) -> String {
    SESSION_ENDS.replace(
        "{sessions_of}",
        if mart { SESSIONS_OF_MART } else { SESSIONS_OF },
    )
}

/// `HAVING` (with [`STARTED`]) of the `sessions` mart's queries in `stats`: sessions that
/// started on a day the rollup (`session_days`) does not have for the site. Its value: the
/// rolled days, `YYYY-MM-DD`.
pub(super) const UNROLLED: &str = "NOT has(?, toString(toDate(toDateTime(intDiv(t0, 1000)))))";

/// The days of the range the rollup has for the site (see `query::rollup`).
/// A day is rolled once every shard has rolled it (each writes a marker row, `site_id` '',
/// after the day's rows): in cluster mode a day one shard has rolled and another not yet
/// would otherwise lose that shard's sessions from both the rollup and the mart's read.
pub(super) const ROLLED_DAYS: &str = "SELECT toString(day) AS d FROM session_days \
     WHERE site_id = '' AND day BETWEEN toDate(?) AND toDate(?) GROUP BY d \
     HAVING uniqExact(shard) = (SELECT uniqExact(shard) FROM session_days WHERE site_id = '') ORDER BY d";
/// Each (site, day, shard)'s latest roll, of the range: `{rolled}` below.
pub(super) const LATEST_ROLL: &str = "(site_id, day, shard, version) GLOBAL IN (SELECT site_id, day, shard, max(version) \
     FROM session_days WHERE site_id = ? AND day BETWEEN toDate(?) AND toDate(?) GROUP BY site_id, day, shard)";
/// [`SESSION_ENDS`] from the rollup. `FINAL` (a table of thousands of rows): two rolls of a day
/// with the same version (two collectors in the same second) fold into one.
pub(super) const SESSION_ENDS_ROLLED: &str = "SELECT e.1 AS side, e.2 AS key, toUInt64(sum(sessions)), \
     toFloat64(sum(duration_ms)), toUInt64(sum(bounced)) FROM session_days FINAL \
     ARRAY JOIN [(toUInt8(0), entry), (toUInt8(1), exit)] AS e WHERE {rolled} GROUP BY side, key ORDER BY side, key";
pub(super) const SERIES: &str = "SELECT toString({bucket}) AS day, toUInt64(uniqExact(visitor_id)), \
     toUInt64(countIf(event_type = 'pageview')) FROM events FINAL WHERE {where} GROUP BY day ORDER BY day";

/// [`TOTALS`] from `traffic_daily` (dim 0: the site's total).
pub(super) const TOTALS_MART: &str = "SELECT toUInt64(uniqHLL12Merge(visitors)), toUInt64(uniqHLL12IfMerge(sessions)), \
     toUInt64(countIfMerge(pageviews)), toUInt64(countIfMerge(events)), \
     toUInt64(sumIfMerge(failed)), toUInt64(sumIfMerge(dropped)) \
     FROM traffic_daily WHERE {traffic} AND dim = 0";
/// [`SERIES`] by day (or by `{bucket}` of days: weeks, months) from `traffic_daily`.
pub(super) const SERIES_MART: &str = "SELECT toString({bucket}) AS d, toUInt64(uniqHLL12Merge(visitors)), \
     toUInt64(countIfMerge(pageviews)) FROM traffic_daily WHERE {traffic} AND dim = 0 \
     GROUP BY d HAVING countIfMerge(events) > 0 ORDER BY d";
/// [`SERIES`] per hour from `traffic_hourly`.
pub(super) const SERIES_HOURLY_MART: &str = "SELECT toString(hour) AS d, toUInt64(uniqHLL12Merge(visitors)), \
     toUInt64(countIfMerge(pageviews)) FROM traffic_hourly WHERE {traffic} \
     GROUP BY d HAVING countMerge(events) > 0 ORDER BY d";

/// A breakdown's top values by page views from `traffic_daily` (`{dim}`: its code).
pub(super) fn top_mart_sql(dim: usize) -> String {
    format!(
        "SELECT value AS key, toUInt64(countIfMerge(pageviews)) AS count FROM traffic_daily \
         WHERE {{traffic}} AND dim = {dim} AND value != '' GROUP BY key HAVING count > 0 \
         ORDER BY count DESC, key LIMIT 10"
    )
}

/// The series' time bucket for the `interval` and `period` parameters, from the events.
pub(super) fn series_sql(hourly: bool, period: Period) -> String {
    let bucket = if hourly {
        "toStartOfHour(timestamp)".to_owned()
    } else {
        period.bucket("toDate(timestamp)")
    };
    SERIES.replace("{bucket}", &bucket)
}

/// [`SERIES_MART`] in buckets of `period`.
pub(super) fn series_mart_sql(period: Period) -> String {
    SERIES_MART.replace("{bucket}", &period.bucket("day"))
}

/// Active users per day: on that day (DAU), in the 7 days ending with it (WAU) and in the 30
/// days ending with it (MAU). A known user counts by `user_id`; anonymous visitors by their
/// visitor id, which rotates daily by design (no cross-day tracking without consent), so for
/// them WAU and MAU count visitor-days: an upper bound. Each (who, day seen) pair is spread
/// over the 30 days whose windows it falls in (`seen + i`), so no window function is needed
/// (ClickHouse 18.16 has none). `{where}` covers the 29 days before the range too, and the
/// days are those of the range up to today.
pub(super) const ACTIVE: &str = "SELECT toString(seen + i) AS day, toUInt64(uniqExactIf(who, i = 0)), \
     toUInt64(uniqExactIf(who, i < 7)), toUInt64(uniqExact(who)) FROM \
     (SELECT toDate(timestamp) AS seen, if(user_id != '', cityHash64(user_id), visitor_id) AS who \
      FROM events FINAL WHERE {where} GROUP BY seen, who) \
     ARRAY JOIN range(30) AS i WHERE seen + i BETWEEN toDate(?) AND toDate(?) GROUP BY day ORDER BY day";

/// [`ACTIVE`] from `traffic_daily`: each day's state of who was active, merged over the 1, 7
/// and 30 days ending with each day of the range (HyperLogLog: approximate past 16 a window).
pub(super) const ACTIVE_MART: &str = "SELECT toString(seen + i) AS day, toUInt64(uniqHLL12IfMergeIf(a, i = 0)), \
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
pub(super) fn active_days(f: &Filters, today: i64) -> Option<(i64, i64)> {
    let (lo, hi) = (days_of(&f.from), days_of(&f.to).min(today));
    (lo <= hi).then_some((lo, hi))
}

pub(super) fn active_query(client: &Client, f: &Filters, today: i64) -> clickhouse::query::Query {
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
pub(super) async fn active(
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
pub(super) fn active_of(mut series: Vec<ActiveDay>, today: i64) -> Active {
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
pub(super) const MAX_OFFSET: u32 = 100_000;

/// Columns ranked by page views in `stats`: `traffic_daily`'s breakdowns, in their order.
pub(super) const TOP_COLUMNS: [&str; 7] = crate::storage::clickhouse::marts::TRAFFIC_DIMS;

pub(super) fn top_sql(column: &str) -> String {
    format!(
        "SELECT toString({column}) AS key, toUInt64(count()) AS count FROM events FINAL \
         WHERE {{where}} AND toString({column}) != '' GROUP BY key ORDER BY count DESC, key LIMIT 10"
    )
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
    /// Per day (per hour with `interval=hour`, per week or month with `period`).
    pub series: Vec<Day>,
    /// The share of visitors who sent one of the site's goal events (`goals` in its
    /// `[[sites]]`); null when the site names none.
    pub conversion: Option<Conversion>,
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

/// One day (or hour, week, month) of the series.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct Day {
    /// `YYYY-MM-DD`, or `YYYY-MM-DD HH:00:00` per hour; a week or month by its first day.
    pub day: String,
    /// Distinct visitors.
    pub visitors: u64,
    /// Page views.
    pub pageviews: u64,
    /// Whether the day (or hour) is over; the current one is still counting.
    #[serde(skip_deserializing)]
    pub complete: bool,
}

/// The site's conversion: visitors who sent a goal event (a custom event named in the site's
/// `goals`) in the range, per visitors. A visitor is a visitor id, as `visitors` counts them
/// (ids rotate daily, so over several days an anonymous visitor counts once a day in both).
#[derive(Debug, Serialize)]
pub struct Conversion {
    /// The goal events, as configured.
    pub goals: Vec<String>,
    /// Visitors with at least one goal event.
    pub converted: u64,
    /// `converted / visitors` (0 without visitors; at most 1, `visitors` being approximate
    /// where `approximate` says so).
    pub rate: f64,
    /// Each goal's visitors and rate, in the configured order.
    pub by_goal: Vec<GoalFigure>,
}

/// One goal's conversion.
#[derive(Debug, Serialize)]
pub struct GoalFigure {
    /// The goal event's name.
    pub goal: String,
    /// Visitors who sent it.
    pub visitors: u64,
    /// `visitors` per the range's visitors.
    pub rate: f64,
}

/// Visitors with goal events: one row per goal sent (its name) and one (`''`) for any of
/// them. Custom events only, a range of the events' key; no `FINAL` (a re-sent event leaves
/// a distinct count as it is). The goals are bound after `{where}`.
pub(super) const CONVERSION: &str = "SELECT g AS goal, toUInt64(uniqExact(visitor_id)) AS visitors FROM events \
     ARRAY JOIN ['', toString(name)] AS g WHERE {where} AND has(?, toString(name)) GROUP BY goal ORDER BY goal";

pub(super) fn conversion_query(client: &Client, f: &Filters) -> clickhouse::query::Query {
    prepare_with(
        client,
        CONVERSION,
        f,
        Some("custom"),
        Vec::new(),
        vec![Bind::L(f.goals.clone())],
    )
}

#[derive(Deserialize, clickhouse::Row)]
pub(super) struct GoalRow {
    goal: String,
    visitors: u64,
}

/// The conversion of `visitors` from the rows of [`CONVERSION`]; none without goals.
pub(super) fn conversion_of(
    goals: &[String],
    rows: Vec<GoalRow>,
    visitors: u64,
) -> Option<Conversion> {
    if goals.is_empty() {
        return None;
    }
    let rate = |n: u64| {
        if visitors == 0 {
            0.0
        } else {
            (n as f64 / visitors as f64).min(1.0)
        }
    };
    let of = |g: &str| rows.iter().find(|r| r.goal == g).map_or(0, |r| r.visitors);
    let converted = of("");
    Some(Conversion {
        goals: goals.to_vec(),
        converted,
        rate: rate(converted),
        by_goal: goals
            .iter()
            .map(|g| GoalFigure {
                goal: g.clone(),
                visitors: of(g),
                rate: rate(of(g)),
            })
            .collect(),
    })
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
pub(super) struct Totals {
    visitors: u64,
    sessions: u64,
    pageviews: u64,
    events: u64,
    failed: u64,
    dropped: u64,
}

/// A row of [`SESSION_ENDS`].
#[derive(Deserialize, clickhouse::Row)]
pub(super) struct SessionEnd {
    side: u8,
    key: String,
    sessions: u64,
    /// Total duration, ms.
    sum_ms: f64,
    bounced: u64,
}

#[derive(Default)]
pub(super) struct SessionFigures {
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
pub(super) const TODAY_ROLLED: &str =
    "SELECT toUInt64(sum(sessions)), toUInt64(max(version)) FROM session_days FINAL WHERE {rolled}";

/// The session figures of `stats`: sums, top entry and top exit pages. From `events FINAL`
/// unless `marts`; then the days the rollup has (`session_days`: up to yesterday, and today
/// once the site has [`TODAY_LIVE_MAX`] sessions in it) from it, and the others (today on a
/// smaller site, and any not rolled yet) from the `sessions` mart, added up.
pub(super) async fn session_figures(
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
    let today = civil(unix_day(crate::dates::now_ms()));
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
pub(super) fn session_sums(rows: Vec<SessionEnd>) -> (SessionFigures, Vec<Count>, Vec<Count>) {
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
pub(in crate::query) fn unrolled_days(f: &Filters, rolled: &[String]) -> Vec<i64> {
    (days_of(&f.from)..=days_of(&f.to))
        .filter(|d| !rolled.contains(&civil(*d)))
        .collect()
}

/// The 10 largest counts, those of a key added up (ties by key, as the queries order).
pub(super) fn top(counts: Vec<Count>) -> Vec<Count> {
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
    let marts = f.session_mart();
    let series_sql = match (traffic, f.hourly) {
        (true, false) => series_mart_sql(f.period),
        (true, true) => SERIES_HOURLY_MART.to_owned(),
        (false, _) => series_sql(f.hourly, f.period),
    };
    let goals = async {
        if f.goals.is_empty() {
            Ok(Vec::new())
        } else {
            conversion_query(client, f).fetch_all::<GoalRow>().await
        }
    };
    let (totals, (s, entries, exits), series, active, tops, goals) = tokio::try_join!(
        rows::<Totals>(client, if traffic { TOTALS_MART } else { TOTALS }, f, None),
        session_figures(client, f, marts),
        rows::<Day>(client, &series_sql, f, None),
        active(client, f, unix_day(crate::dates::now_ms())),
        futures_util::future::try_join_all(TOP_COLUMNS.into_iter().enumerate().map(top)),
        goals,
    )?;
    let mut series = series;
    mark_complete(&mut series, f.hourly, f.period, crate::dates::now_ms());
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
        conversion: conversion_of(&f.goals, goals, totals.visitors),
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
/// before the current one, a week or month before the one today is in (UTC; the series'
/// labels sort as their times do).
pub(super) fn mark_complete(series: &mut [Day], hourly: bool, period: Period, now_ms: i64) {
    let today = unix_day(now_ms);
    let day = civil(today);
    let current = if hourly {
        let hour = now_ms.rem_euclid(86_400_000) / 3_600_000;
        format!("{day} {hour:02}:00:00")
    } else {
        civil(period.start_of(today))
    };
    for d in series {
        d.complete = d.day < current;
    }
}
