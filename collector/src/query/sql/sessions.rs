//! `sessions` (the session explorer's list) and `sessions/{id}` (one session's timeline).

use super::*;

/// `sessions`, step 1: the page of sessions that started in the (narrowed) range, newest
/// first, from the three cheap states only (merging every state of every session of a month
/// costs seconds and GBs on a busy site).
pub(super) const SESSION_PAGE: &str = "SELECT session_id, minMerge(start_ms) AS t0, maxMerge(end_ms) AS t1, maxIfMerge(left_ms) AS tl \
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
pub(super) const SESSION_PAGE_RECENT: &str = "SELECT session_id, minMerge(start_ms) AS t0, maxMerge(end_ms) AS t1, maxIfMerge(left_ms) AS tl \
     FROM sessions WHERE {day} AND session_id GLOBAL IN (SELECT session_id FROM events \
       WHERE site_id = ? AND toDate(timestamp) = toDate(?) AND timestamp >= toDateTime(toUInt32(?))) \
     GROUP BY session_id HAVING t0 >= ?{ended} ORDER BY t0 DESC, session_id LIMIT ?";
/// `sessions`, step 2: the summaries of the page's sessions, from their rows of the range
/// and the days around it. The sessions in PREWHERE, so that only their rows' states are read
/// (18.16 read every state of the range's rows first: 0.9 s for a page of 100 on a day of
/// 365 k sessions, 0.15 s so).
pub(super) const SESSION_LIST: &str = "SELECT session_id, any(visitor_id), toString(any(device)), toString(any(browser)), \
     toString(any(os)), toString(any(country)), maxMerge(user_id), minMerge(start_ms) AS t0, maxMerge(end_ms) AS t1, \
     maxIfMerge(left_ms) AS tl, toUInt64(countMerge(events)), toUInt64(countIfMerge(pageviews)), \
     toUInt64(countIfMerge(clicks)), toUInt64(countIfMerge(scrolls)), toUInt64(countIfMerge(customs)), \
     toUInt64(uniqExactIfMerge(pages)), argMinIfMerge(entry), argMaxIfMerge(exit), topKIfMerge(3)(actions) \
     FROM sessions PREWHERE {listed} WHERE {around} \
     GROUP BY session_id ORDER BY t0 DESC, session_id";

/// Ended cleanly: the last thing the session did was hide or leave its page.
pub(super) const CLOSED: &str = "(tl > 0 AND tl >= t1)";

#[derive(Deserialize, clickhouse::Row)]
pub(super) struct SessionRow {
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
    /// The latest traits of its user (`identify`), an object; null without a user or traits.
    pub traits: Option<serde_json::Value>,
}

#[derive(Deserialize, clickhouse::Row)]
pub(super) struct PageRow {
    session_id: String,
    _start: u64,
    _end: u64,
    _left: u64,
}

/// `f` over the sessions that started from `lo` (a day of `f`'s range) to `f.to`.
pub(super) fn from_day(f: &Filters, lo: &str) -> Filters {
    Filters {
        from: lo.to_owned(),
        ..f.clone()
    }
}

/// Where step 1 of `sessions` looks: the sessions that started from a day of `f`'s range
/// (`lo`) to `f.to`, or those that started on a day (`day`, days since the epoch) since a time
/// (`since`, ms).
pub(super) enum Started<'a> {
    FromDay(&'a str),
    DaySince { day: i64, since: u64 },
}

/// Step 1 of `sessions`: the first `offset + limit` sessions that started where `started`
/// says. A session with no event for `timeout_ms` is over.
pub(super) fn session_page_query(
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
            let on_day = Filters {
                from: date.clone(),
                to: date.clone(),
                ..f.clone()
            };
            let mut binds = Vec::new();
            let rows = on_day.site_days_device(THROUGH_NEXT, &mut binds);
            binds.extend([
                Bind::S(f.site.clone()),
                Bind::S(date),
                Bind::N(since / 1000),
                Bind::N(since),
            ]);
            let sql = SESSION_PAGE_RECENT
                .replace("{day}", &rows)
                .replace("{ended}", &ended);
            prepare_with(client, &sql, &on_day, None, binds, post)
        }
    }
}

/// Step 1 of `sessions` over the last hours of the range's last day (up to now if that is
/// today): the newest sessions of a busy site started in them. None if they hold no full page
/// (or the day is too young for [`SESSION_PAGE_RECENT`]); the caller then looks at whole days.
/// Returns the day with the page.
pub(super) async fn recent_page(
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
pub(super) fn session_list_queries(
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
    let now = crate::dates::now_ms().max(0) as u64;
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
    let mut users: Vec<String> = found
        .iter()
        .filter(|r| !r.user_id.is_empty())
        .map(|r| r.user_id.clone())
        .collect();
    users.sort_unstable();
    users.dedup();
    let traits = latest_traits(client, &f.site, &users).await?;
    Ok(found
        .into_iter()
        .map(|r| {
            let ended = ended(r.left_ms, r.end_ms, now, timeout_ms);
            let anomalies = anomalies
                .iter()
                .position(|a| a.session_id == r.session_id)
                .map(|i| anomalies.swap_remove(i));
            SessionSummary {
                traits: traits.get(&r.user_id).map(|(t, _)| t.clone()),
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
pub(super) fn ended(left_ms: u64, end_ms: u64, now: u64, timeout_ms: u64) -> &'static str {
    if left_ms > 0 && left_ms >= end_ms {
        "closed"
    } else if end_ms + timeout_ms <= now {
        "timed_out"
    } else {
        "active"
    }
}

/// The events of a session, in the days it has rows in the `sessions` mart (`{where}`'s range,
/// narrowed by [`SESSION_DAYS`]): `session_id` is not in the events' key, so each day of the
/// range is read whole. A stored duplicate drops out by `LIMIT 1 BY event_id`, not `FINAL`,
/// which merged every unmerged part of the range (3.9 s for a month of 10 M events; 0.1 s so).
pub(super) const SESSION_EVENTS: &str = "SELECT toString(event_type), toUInt64(timestamp) * 1000 + timestamp_ms AS ts, path, selector, \
     toInt32(x), toInt32(y), toString(name), toUInt8(scroll_depth), toUInt32(visible_ms) \
     FROM events WHERE {where} AND session_id = ? ORDER BY ts, event_id LIMIT 1 BY event_id LIMIT 10000";
/// The first and last day of the range on which a session has events: the `sessions` mart's
/// key is (site, day, session), so this reads a granule a day.
pub(super) const SESSION_DAYS: &str = "SELECT toString(min(day)), toString(max(day)), toUInt64(count()) FROM sessions \
     WHERE site_id = ? AND day BETWEEN toDate(?) AND toDate(?) AND session_id = ?";

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

pub(super) fn session_query(client: &Client, f: &Filters, id: &str) -> clickhouse::query::Query {
    prepare_with(
        client,
        SESSION_EVENTS,
        f,
        None,
        Vec::new(),
        vec![Bind::S(id.to_owned())],
    )
}

/// The events of a session as `sessions/{id}/analysis` reads them (`query::analysis`), over
/// the days it has rows in (as [`SESSION_EVENTS`]).
pub(super) const SESSION_ANALYSIS_EVENTS: &str = "SELECT toString(event_type), toUInt64(timestamp) * 1000 + timestamp_ms AS ts, path, selector, tag, \
     x, y, toString(name) FROM events WHERE {where} AND session_id = ? ORDER BY ts, event_id LIMIT 1 BY event_id LIMIT 10000";

pub(super) fn session_analysis_query(
    client: &Client,
    f: &Filters,
    id: &str,
) -> clickhouse::query::Query {
    prepare_with(
        client,
        SESSION_ANALYSIS_EVENTS,
        f,
        None,
        Vec::new(),
        vec![Bind::S(id.to_owned())],
    )
}

/// `sessions/{id}/analysis`: the session's summary and its anomalies by `rules`; a session
/// with no event for `timeout_ms` is over.
pub async fn session_analysis(
    client: &Client,
    f: &Filters,
    id: &str,
    rules: &crate::query::analysis::Rules,
    timeout_ms: u64,
) -> Result<crate::query::analysis::Analysis, clickhouse::error::Error> {
    use crate::query::analysis::{Analysis, anomalies, summary};
    let (lo, hi, rows): (String, String, u64) = client
        .query(SESSION_DAYS)
        .bind(&f.site)
        .bind(&f.from)
        .bind(&f.to)
        .bind(id)
        .fetch_one()
        .await?;
    let steps: Vec<crate::query::analysis::Step> = if rows == 0 {
        Vec::new()
    } else {
        let days = Filters {
            from: lo,
            to: hi,
            ..f.clone()
        };
        session_analysis_query(client, &days, id)
            .fetch_all()
            .await?
    };
    let now = crate::dates::now_ms().max(0) as u64;
    let summary =
        (!steps.is_empty()).then(|| summary(&steps, |left, end| ended(left, end, now, timeout_ms)));
    let found = summary
        .as_ref()
        .map(|s| anomalies(&steps, s.ended, rules))
        .unwrap_or_default();
    Ok(Analysis {
        session_id: id.to_owned(),
        severity: found.iter().map(|a| a.severity).max(),
        summary,
        anomalies: found,
    })
}
