//! Rage and dead clicks, anomalous sessions and the rules that flag them (`anomalies`,
//! `heatmap?layers=frustration`, `score-anomalies`), read from the events.

use super::*;

/// Within one session's clicks `c` (sorted by time; tuples of time ms, x, y, selector, path),
/// whether the click at 1-based index `{i}` ends three clicks on one page within `?` ms and
/// `?` px of the first. On one page: three clicks near the same spot of consecutive pages
/// (a menu, clicked through at a machine's pace) are not one thing clicked in vain.
pub(super) fn rage_at(i: &str) -> String {
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
pub(in crate::query) fn rage_bursts_sql() -> String {
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
pub(super) fn page_of(f: &Filters, at: (&str, usize, usize)) -> (String, Vec<Bind>, Filters) {
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
pub(super) fn rage_sql() -> String {
    format!(
        "SELECT tupleElement(c[i], 4) AS selector, toUInt64(count()) AS bursts, toUInt64(uniqExact(session_id)) AS sessions, \
         toFloat64(avg(tupleElement(c[i], 2))) AS x, toFloat64(avg(tupleElement(c[i], 3))) AS y FROM {} \
         GROUP BY selector ORDER BY bursts DESC, selector LIMIT 100",
        rage_bursts_sql()
    )
}

/// The rage-burst query `sql` for `f`, its thresholds bound (twice: `rage_at` is used twice).
pub(super) fn rage_query_of(client: &Client, sql: &str, f: &Filters) -> clickhouse::query::Query {
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
pub(super) fn dead_query(client: &Client, f: &Filters) -> clickhouse::query::Query {
    let (page, binds, whole) = page_of(f, ("e", 7, 8));
    let sql = dead_sql().replace("{page}", &page);
    prepare_with(client, &sql, &whole, None, Vec::new(), binds)
}

/// The values [`rage_bursts_sql`] binds after its `{where}`.
pub(in crate::query) fn rage_thresholds(ms: u32, px: u32) -> Vec<u32> {
    let one = [ms, px, px, px, px];
    one.iter().chain(one.iter()).copied().collect()
}

/// The rage-burst query for `f`.
pub(super) fn rage_query(client: &Client, f: &Filters) -> clickhouse::query::Query {
    rage_query_of(client, &rage_sql(), f)
}

/// Dead clicks: clicks on elements that are not interactive and were not followed by a page
/// view within a second (the tracker reports no DOM changes, so navigation is the signal);
/// per session, the index of each in `e`.
pub(in crate::query) const DEAD_CLICKS: &str = "(SELECT session_id, arraySort(v -> v.1, groupUniqArray((toUInt64(timestamp) * 1000 + timestamp_ms, toString(event_type), tag, selector, x, y, path, viewport_w, toString(device)))) AS e \
      FROM events WHERE {where} AND event_type IN ('click', 'pageview') GROUP BY session_id) \
     ARRAY JOIN arrayFilter(i -> e[i].2 = 'click' AND e[i].4 != '' \
       AND NOT has(['a', 'button', 'input', 'select', 'textarea', 'label', 'summary', 'option'], e[i].3) \
       AND NOT (i < length(e) AND e[i + 1].2 = 'pageview' AND e[i + 1].1 - e[i].1 <= 1000){page}, arrayEnumerate(e)) AS i";

/// Dead clicks by element.
pub(super) fn dead_sql() -> String {
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
pub(in crate::query) async fn frustration(
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
pub(super) fn loops_of(x: &str) -> String {
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
/// - `repeated`: an action done `repeat_min` times in a row (the site's `repeated` rule, 3 by
///   default), each time more than `repeat_gap` ms after the one before; a repeat faster than
///   that (a double click, a rage burst) is folded into the one before, as the session
///   analysis does. `g` numbers the runs of one action, `q` counts the actions that are not
///   folded; each unfolded action from the `repeat_min`th of its run on counts. Actions
///   (`a`, with times `t`) are page views (by URL), clicks (by element) and custom events (by
///   name), but for custom events sent less than 100 ms after the event before them: the
///   page's own answer to a click or load, not an action.
/// - `loops`: a sequence of 2 or 3 actions, or of 2 or 3 pages (`p`, by URL: the same product
///   again, not another one), done a third time in a row; the more of the two counts, as a
///   loop of page views alone is both.
///
/// ClickHouse 18.16 reads from a subquery only the columns named outside lambdas, so every
/// array a lambda reads is also one of its function's arguments (`t` of `q`, `q` of
/// `repeated`).
pub(super) fn anomalies_query_sql() -> String {
    format!(
        "SELECT session_id, toUInt64(n) AS events, \
         toUInt64(arrayCount(i -> i > 1 AND c[i].1 - c[i - 1].1 >= 10 AND c[i].1 - c[i - 1].1 < 100 \
           AND c[i].2 != c[i - 1].2 AND c[i - 1].3 != 'label', arrayEnumerate(c))) AS rapid, \
         toUInt64(arrayCount((i, r, k) -> (i = 1 OR k != q[i - 1]) AND k - q[indexOf(g, r)] + 1 >= {{repeat_min}}, \
           arrayEnumerate(g), g, q)) AS repeated, \
         toUInt64(greatest({}, {})) AS loops \
         FROM (SELECT session_id, n, c, p, a, \
                 arrayCumSum(arrayMap(i -> toUInt32(i = 1 OR a[i] != a[i - 1]), arrayEnumerate(a))) AS g, \
                 arrayCumSum(arrayMap((i, ti) -> toUInt32(i = 1 OR a[i] != a[i - 1] OR ti - t[i - 1] > {{repeat_gap}}), \
                   arrayEnumerate(a), t)) AS q FROM \
         (SELECT session_id, n, c, p, arrayMap(v -> v.1, k) AS t, \
                 arrayMap(v -> concat(v.2, ':', if(v.2 = 'pageview', v.7, v.3), ':', v.4, v.5), k) AS a FROM \
           (SELECT session_id, length(e) AS n, \
              arrayFilter((v, i) -> NOT (v.2 = 'custom' AND i > 1 AND v.1 - e[i - 1].1 < 100), e, arrayEnumerate(e)) AS k, \
              arrayMap(v -> (v.1, v.4, v.6), arrayFilter(v -> v.2 = 'click', e)) AS c, \
              arrayMap(v -> v.7, arrayFilter(v -> v.2 = 'pageview', e)) AS p FROM \
             (SELECT session_id, arraySort(v -> v.1, groupUniqArray((toUInt64(timestamp) * 1000 + timestamp_ms, \
                toString(event_type), path, selector, toString(name), toString(tag), url))) AS e \
              FROM events{{listed}} WHERE {{where}} AND event_type IN ('pageview', 'click', 'custom') GROUP BY session_id)))) \
         WHERE rapid + repeated + loops > 0 ORDER BY rapid + repeated + loops DESC, session_id{{limit}}",
        loops_of("a"),
        loops_of("p")
    )
}

/// The anomalies of the site's 100 most anomalous sessions, or (`listed`) of the sessions in
/// a bound array.
pub(in crate::query) fn anomalies_sql(listed: bool) -> String {
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
    /// Actions done a third (the site's `repeated.min`th) time or more in a row, each more
    /// than `repeated.gap_ms` after the one before (retrying).
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

/// The site's 100 most anomalous sessions, from the events.
pub(in crate::query) async fn anomalous(
    client: &Client,
    f: &Filters,
) -> Result<Vec<Anomaly>, clickhouse::error::Error> {
    rows::<Anomaly>(client, &anomalies_sql(false), f, None).await
}

/// Finds anomalies.
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
pub(super) struct Flagged {
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
