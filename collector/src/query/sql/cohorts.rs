//! `retention`: cohorts of known users by the ISO week of their first event, and how many of
//! each came back in each later week; beside them, what can honestly be counted of anonymous
//! visitors, whose ids change every UTC day.
//!
//! Known users are followed by `user_id` across days, devices and visitor ids. Weeks run from
//! Monday to Sunday in the site's time zone (`UTC` for the sites of the config file), and the
//! range is widened to whole weeks. A user's cohort is the week of their first stored event
//! carrying their id, whenever that was (not the first in the range), so the query reads the
//! site's known users' events from the start. No window functions (ClickHouse 18.16 has none):
//! each user's first event and the set of weeks they were active in are one aggregation, and
//! `ARRAY JOIN` turns the sets into the triangle's cells.
//!
//! An anonymous visitor's id is a hash keyed by a salt of the UTC day (`wire::enrich`), so the
//! same person has another id every day and a return on a later day cannot be told from a new
//! visitor. What can be counted is within a visitor-day: whether the visitor came back in a new
//! session after one had ended, and how many sessions a visitor-day has. Those are read from
//! the `sessions` mart, whose rows (per session and UTC day) hold the start, the end and the
//! user id: figures a re-sent event cannot change, so the mart answers them exactly.

use super::*;

/// The most weeks an answer covers: a longer range keeps its last ones (`truncated`). 104
/// cohorts make at most 5,460 cells.
pub const MAX_WEEKS: i64 = 104;

/// The first Monday events can have (1970-01-01 was a Thursday): `Date` starts at the epoch.
const FIRST_MONDAY: i64 = 4;

/// Today in the site's time zone. Binds: the time zone.
pub(super) const LOCAL_TODAY: &str = "SELECT toString(toDate(toTimeZone(now(), ?)))";

/// Per cohort (the Monday of its users' first week) and week after it (`k`, 0 the cohort's own),
/// the cohort's users active in that week. `weeks` keeps only weeks from the day before the
/// first Monday (UTC), the earliest a local day of the range can start; events after the last
/// Sunday are not read (the day after it, UTC, the latest a local day of the range can end).
///
/// Binds: the time zone (twice), the first Monday, the site, the last Sunday, the first and the
/// last Monday, the last Monday.
pub(super) const COHORTS: &str = "SELECT toString(cohort) AS week, toUInt32(intDiv(toUInt32(w) - toUInt32(cohort), 7)) AS k, \
     toUInt64(count()) AS users FROM \
     (SELECT user_id, toMonday(toDate(toTimeZone(min(timestamp), ?))) AS cohort, \
        groupUniqArrayIf(toMonday(toDate(toTimeZone(timestamp, ?))), toDate(timestamp) >= toDate(?) - 1) AS weeks \
      FROM events WHERE site_id = ? AND user_id != '' AND is_bot = 0 AND toDate(timestamp) <= toDate(?) + 1 \
      GROUP BY user_id HAVING cohort BETWEEN toDate(?) AND toDate(?)) \
     ARRAY JOIN weeks AS w WHERE w <= toDate(?) GROUP BY week, k ORDER BY week, k";

/// Anonymous visitor-days per week (UTC days, weeks from Monday): a visitor-day is a visitor id
/// on a UTC day whose sessions carry no user id. It came back (`back`) when one of its sessions
/// started after another had ended: two tabs open at once are not a return. A session across
/// midnight has a row on each day, each its own visitor id (the salt changed).
///
/// Binds: the site, the first Monday, the last Sunday.
pub(super) const ANONYMOUS: &str = "SELECT toString(toMonday(day)) AS week, toUInt64(count()) AS visitor_days, \
     toUInt64(countIf(back)) AS returning, toUInt64(sum(n)) AS sessions FROM \
     (SELECT day, visitor_id, count() AS n, max(t0) > min(t1) AS back FROM \
       (SELECT day, visitor_id, session_id, minMerge(start_ms) AS t0, maxMerge(end_ms) AS t1, maxMerge(user_id) AS u \
        FROM sessions WHERE site_id = ? AND day BETWEEN toDate(?) AND toDate(?) GROUP BY day, visitor_id, session_id) \
      GROUP BY day, visitor_id HAVING max(u) = '') \
     GROUP BY week ORDER BY week";

/// What the anonymous figures cannot count, said in every answer.
pub const NOT_COUNTED: &str = "Returns on another day: an anonymous visitor's id is a hash keyed by a salt \
     that changes every UTC day and is forgotten after two, so a visitor who comes back on a later day \
     cannot be told from a new one. Neither a cross-day returning share nor the retention of anonymous \
     visitors can be counted; known users (events with a user id) are followed across days in the cohorts.";

/// `retention`: the cohorts of known users, and the anonymous visitors' same-day returns.
#[derive(Debug, Serialize)]
pub struct Retention {
    /// The time zone whose weeks the cohorts are (the site's).
    pub timezone: String,
    /// The first day read: the Monday of the first week.
    pub from: String,
    /// The last day read: the Sunday of the last week (this week's when the range reaches
    /// today or later).
    pub to: String,
    /// Whether the range had more than [`MAX_WEEKS`] weeks, of which the last are answered.
    pub truncated: bool,
    /// The week under way (its Monday), when the range reaches it: its cells count so far.
    pub partial_week: Option<String>,
    /// One per week of the range, oldest first, each with a cell per week from its own to the
    /// last: a triangle.
    pub cohorts: Vec<Cohort>,
    /// Anonymous visitors within each day.
    pub anonymous: Anonymous,
}

/// The known users first seen in one week.
#[derive(Debug, Serialize, PartialEq)]
pub struct Cohort {
    /// Its Monday.
    pub week: String,
    /// Its users: those whose first event with their user id fell in the week.
    pub users: u64,
    /// Per week from the cohort's own (`active[0]`, all of them) to the range's last: its users
    /// with an event in that week.
    pub active: Vec<u64>,
    /// `active` per `users`, per week; null in a cohort without users.
    pub share: Vec<Option<f64>>,
}

/// Anonymous visitor-days (a visitor id on a UTC day, no event of its sessions carrying a user
/// id) of the range's weeks, in all and per week.
#[derive(Debug, Serialize, PartialEq)]
pub struct Anonymous {
    /// Visitor-days.
    pub visitor_days: u64,
    /// Visitor-days that came back the same day in a new session: one of their sessions
    /// started after another of theirs had ended.
    pub returning: u64,
    /// `returning` per `visitor_days` (0 without any).
    pub returning_share: f64,
    /// Their sessions (a session across midnight counts on each of its days).
    pub sessions: u64,
    /// `sessions` per `visitor_days` (0 without any).
    pub sessions_per_visitor_day: f64,
    /// Per week of the range (UTC days), oldest first.
    pub weeks: Vec<AnonymousWeek>,
    /// What cannot be counted: [`NOT_COUNTED`].
    pub not_counted: &'static str,
}

/// One week of [`Anonymous`].
#[derive(Debug, Serialize, Deserialize, PartialEq, clickhouse::Row)]
pub struct AnonymousWeek {
    /// Its Monday.
    pub week: String,
    /// Visitor-days.
    pub visitor_days: u64,
    /// Of them, those that came back the same day.
    pub returning: u64,
    /// Their sessions.
    pub sessions: u64,
}

/// A row of [`COHORTS`].
#[derive(Debug, Deserialize, clickhouse::Row)]
pub(super) struct CohortCell {
    /// The cohort's Monday.
    pub(super) week: String,
    /// Weeks after it.
    pub(super) k: u32,
    /// Its users active then.
    pub(super) users: u64,
}

/// The weeks an answer reads for `f` when today is `today` in the site's time zone: the
/// Monday of the first and of the last, and whether weeks were left out. `to` after today is
/// today; none when no week is left (`from` after both).
pub(super) fn weeks_of(f: &Filters, today: i64) -> (i64, i64, bool) {
    let monday = |d: i64| Period::Week.start_of(d);
    let last = monday(days_of(&f.to).min(today));
    let first = monday(days_of(&f.from)).max(FIRST_MONDAY);
    let earliest = last - (MAX_WEEKS - 1) * 7;
    if first < earliest {
        (earliest, last, true)
    } else {
        (first, last, false)
    }
}

/// [`COHORTS`] over the weeks from Monday `first` to the week of Monday `last`.
pub(super) fn cohorts_query(
    client: &Client,
    f: &Filters,
    first: i64,
    last: i64,
) -> clickhouse::query::Query {
    client
        .query(COHORTS)
        .bind(&f.timezone)
        .bind(&f.timezone)
        .bind(civil(first))
        .bind(&f.site)
        .bind(civil(last + 6))
        .bind(civil(first))
        .bind(civil(last))
        .bind(civil(last))
}

/// [`ANONYMOUS`] over the weeks from Monday `first` to the week of Monday `last`.
pub(super) fn anonymous_query(
    client: &Client,
    f: &Filters,
    first: i64,
    last: i64,
) -> clickhouse::query::Query {
    client
        .query(ANONYMOUS)
        .bind(&f.site)
        .bind(civil(first))
        .bind(civil(last + 6))
}

/// The triangle of the weeks from Monday `first` to Monday `last`, from [`COHORTS`]' rows
/// (cells without users have none).
pub(super) fn triangle(first: i64, last: i64, cells: &[CohortCell]) -> Vec<Cohort> {
    let mut week = first;
    let mut out = Vec::new();
    while week <= last {
        let name = civil(week);
        let n = ((last - week) / 7 + 1) as usize;
        let mut active = vec![0u64; n];
        for c in cells.iter().filter(|c| c.week == name) {
            if let Some(slot) = active.get_mut(c.k as usize) {
                *slot = c.users;
            }
        }
        let users = active[0];
        let share = active
            .iter()
            .map(|&a| (users > 0).then(|| a as f64 / users as f64))
            .collect();
        out.push(Cohort {
            week: name,
            users,
            active,
            share,
        });
        week += 7;
    }
    out
}

/// The anonymous figures of the weeks from Monday `first` to Monday `last`, from
/// [`ANONYMOUS`]' rows (weeks without visitors have none).
pub(super) fn anonymous_of(first: i64, last: i64, rows: Vec<AnonymousWeek>) -> Anonymous {
    let mut weeks = Vec::new();
    let mut rows = rows.into_iter().peekable();
    let mut week = first;
    while week <= last {
        let name = civil(week);
        weeks.push(rows.next_if(|r| r.week == name).unwrap_or(AnonymousWeek {
            week: name,
            visitor_days: 0,
            returning: 0,
            sessions: 0,
        }));
        week += 7;
    }
    let (visitor_days, returning, sessions) = weeks.iter().fold((0, 0, 0), |(v, r, s), w| {
        (v + w.visitor_days, r + w.returning, s + w.sessions)
    });
    let per = |n: u64| {
        if visitor_days == 0 {
            0.0
        } else {
            n as f64 / visitor_days as f64
        }
    };
    Anonymous {
        visitor_days,
        returning,
        returning_share: per(returning),
        sessions,
        sessions_per_visitor_day: per(sessions),
        weeks,
        not_counted: NOT_COUNTED,
    }
}

/// The retention of the site of `f`, in its time zone (`f.timezone`).
pub async fn retention(
    client: &Client,
    f: &Filters,
) -> Result<Retention, clickhouse::error::Error> {
    let today: String = client
        .query(LOCAL_TODAY)
        .bind(&f.timezone)
        .fetch_one()
        .await?;
    let today = days_of(&today);
    let (first, last, truncated) = weeks_of(f, today);
    let (cells, anonymous) = if first <= last {
        tokio::try_join!(
            cohorts_query(client, f, first, last).fetch_all::<CohortCell>(),
            anonymous_query(client, f, first, last).fetch_all::<AnonymousWeek>(),
        )?
    } else {
        (Vec::new(), Vec::new())
    };
    let this_week = Period::Week.start_of(today);
    Ok(Retention {
        timezone: f.timezone.clone(),
        from: civil(first),
        to: civil(last + 6),
        truncated,
        partial_week: (first..=last)
            .contains(&this_week)
            .then(|| civil(this_week)),
        cohorts: triangle(first, last, &cells),
        anonymous: anonymous_of(first, last, anonymous),
    })
}
