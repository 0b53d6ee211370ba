//! `funnel`: how many sessions went through the steps in order, and how long each took.

use super::*;

/// A step's condition, with one `?`.
pub(super) fn step_condition(step: &str) -> &'static str {
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
pub(super) fn funnel_sql(steps: &[String]) -> String {
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
pub(super) fn funnel_query(client: &Client, f: &Filters) -> clickhouse::query::Query {
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
