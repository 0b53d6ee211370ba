//! What sessions did, rolled up per day: the anomalies, rage and dead clicks and action
//! sequences behind `anomalies` and `patterns`, which are read from each session's events in
//! time order and so cannot come from a materialized view.
//!
//! # Why
//! A month of a site (10 M events, 2.5 M sessions) takes 30 s and more to scan that way
//! (issue 27). Each day's sessions are scanned once instead, by the rollup
//! (`query::rollup`), into three small tables, and the API reads those.
//!
//! # The path of a day
//! 1. Every few minutes, the rollup rolls each day (today included) whose `sessions` mart parts
//!    changed since it last rolled it: [`roll_statements`] over the events of the sessions that
//!    *started* that day (their events of that day and the next), under a new `version`, then
//!    a marker row (`site_id = ''` in `anomaly_days`) saying the day is rolled at that version.
//!    A session belongs to the day it started on, as in `session_days`.
//! 2. `anomalies` and `patterns` ([`anomalies`], [`patterns`]) read, for the days of their range
//!    with a marker, the rows of each day's latest marked version, and compute each run of
//!    other days (none once the rollup has run, or days before the site had events) from the
//!    events as before; the two are added up.
//! 3. Filters the rollup has no rows for read the events: for `anomalies` and `patterns` a
//!    page, a width or a device (sessions span pages); everywhere other rage thresholds and
//!    `exact=true`. Rage and dead clicks are also kept per page, layout and device, for the
//!    heatmap's frustration layer (`heatmap` with `layers=frustration`).
//!
//! The rolled figures are as of the last roll (at most [`PERIOD`] old for today).
//! `patterns` from the rollup is approximate: each day keeps its [`GRAMS_PER_DAY`] most
//! widespread sequences, and the answer says `approximate`.
//!
//! [`PERIOD`]: super::rollup::PERIOD

use super::sql::{
    self, Anomalies, Anomaly, DEAD_CLICKS, Filters, Frustration, PATTERN_GRAMS, Pattern, Patterns,
};
use crate::dates::civil;
use crate::storage::clickhouse::ClickHouseConfig;
use clickhouse::Client;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Sequences kept per site and day.
pub const GRAMS_PER_DAY: usize = 1000;

/// The events of the sessions that started on a day, of every site, bots' excluded: the
/// `{where}` of a roll. Binds: the day, five times.
fn started_on(cfg: &ClickHouseConfig) -> String {
    format!(
        "toDate(timestamp) BETWEEN toDate(?) AND toDate(?) + 1 AND is_bot = 0 \
         AND (site_id, session_id) IN (SELECT site_id, session_id FROM {} \
         WHERE day BETWEEN toDate(?) - 1 AND toDate(?) + 1 GROUP BY site_id, session_id \
         HAVING toDate(toDateTime(intDiv(minMerge(start_ms), 1000))) = toDate(?))",
        cfg.local_table("sessions")
    )
}

/// Each site's `repeated` rule (min, gap ms; [`super::analysis::Rules::repeat`]) as a roll
/// applies it, and the rule of the sites it does not name (the global one: sites added later,
/// or through the API). A day keeps the figures of the rules it was rolled by.
#[derive(Clone, Debug, PartialEq)]
pub struct Repeats {
    /// Sites with their own rule.
    pub sites: Vec<(String, (u32, u32))>,
    /// Every other site's.
    pub other: (u32, u32),
}

impl Default for Repeats {
    fn default() -> Repeats {
        Repeats {
            sites: Vec::new(),
            other: super::analysis::Rules::default().repeat(),
        }
    }
}

impl Repeats {
    /// The rules of `sites` over `global`'s.
    pub fn new(
        sites: &[crate::config::SiteConfig],
        global: &super::analysis::AnomalyRules,
    ) -> Repeats {
        let of = |site: &super::analysis::AnomalyRules| {
            super::analysis::AnomalyRules::resolve(site, global).repeat()
        };
        let other = of(&super::analysis::AnomalyRules::default());
        Repeats {
            sites: sites
                .iter()
                .map(|s| (s.id.clone(), of(&s.anomalies)))
                .filter(|(_, r)| *r != other)
                .collect(),
            other,
        }
    }

    /// `sql` with `{repeat_min}` and `{repeat_gap}` as literals, chosen by `site_id` where
    /// sites differ (site ids are checked at config load, and quoted anyway).
    fn apply(&self, sql: &str) -> String {
        let pick = |part: fn(&(u32, u32)) -> u32| {
            if self.sites.is_empty() {
                return format!("toUInt32({})", part(&self.other));
            }
            let ids: Vec<String> = self
                .sites
                .iter()
                .map(|(id, _)| format!("'{}'", id.replace('\\', "\\\\").replace('\'', "\\'")))
                .collect();
            let values: Vec<String> = self
                .sites
                .iter()
                .map(|(_, r)| format!("toUInt32({})", part(r)))
                .collect();
            format!(
                "transform(site_id, [{}], [{}], toUInt32({}))",
                ids.join(", "),
                values.join(", "),
                part(&self.other)
            )
        };
        sql.replace("{repeat_min}", &pick(|r| r.0))
            .replace("{repeat_gap}", &pick(|r| r.1))
    }
}

/// A per-session query of the API made per site and over a roll's events.
fn per_site(sql: &str, cfg: &ClickHouseConfig, kind: Option<&str>) -> String {
    let mut wher = started_on(cfg);
    if let Some(k) = kind {
        wher.push_str(&format!(" AND event_type = '{k}'"));
    }
    sql.replace("{page}", "")
        .replace("SELECT session_id,", "SELECT site_id, session_id,")
        .replace("GROUP BY session_id", "GROUP BY site_id, session_id")
        .replace(
            "FROM events ",
            &format!("FROM {} ", cfg.local_table("events")),
        )
        .replace("{where}", &wher)
}

/// One statement of a roll, and the values it binds after its leading day, shard and version
/// and the day five times: rage thresholds.
pub struct RollStatement {
    /// What it rolls (`pathlight sql` names it so).
    pub name: &'static str,
    /// The `INSERT … SELECT`.
    pub sql: String,
    /// Bound after the day (×5).
    pub post: Vec<u32>,
}

/// The statements that roll a day (binds: the day, the shard, the version, then the day five
/// times, then `post`), the marker last.
pub fn roll_statements(cfg: &ClickHouseConfig, repeats: &Repeats) -> Vec<RollStatement> {
    let lead = "site_id, toDate(?) AS day, toUInt16(?) AS shard";
    let anomalies = per_site(
        &repeats.apply(
            &sql::anomalies_sql(false)
                .replace("{listed}", "")
                .replace(" LIMIT 100", ""),
        ),
        cfg,
        None,
    );
    // Rage (kind 0) or dead (1) clicks from the per-session arrays `of` (`c` or `e`), whose
    // tuples hold x, y, path, viewport width and device at `at`; per page, layout and device
    // (`page`), or for the whole site.
    let frustration = |kind: u8, from: &str, of: &str, at: [usize; 5], page: bool| {
        let [x, y, path, width, device] = at;
        let (dims, group) = if page {
            (
                format!(
                    "tupleElement({of}[i], {path}) AS p, \
                     {} AS l, tupleElement({of}[i], {device}) AS dv",
                    crate::storage::clickhouse::marts::LAYOUT
                        .replace("viewport_w", &format!("tupleElement({of}[i], {width})"))
                ),
                ", p, l, dv",
            )
        } else {
            ("'' AS p, toUInt8(255) AS l, '' AS dv".to_owned(), "")
        };
        format!(
            "INSERT INTO {} (site_id, day, shard, kind, path, layout, device, selector, count, sessions, \
             sum_x, sum_y, version) \
             SELECT {lead}, toUInt8({kind}), {dims}, tupleElement({of}[i], 4) AS selector, toUInt64(count()), \
             toUInt64(uniqExact(session_id)), toFloat64(sum(tupleElement({of}[i], {x}))), \
             toFloat64(sum(tupleElement({of}[i], {y}))), toDateTime(?) FROM {from} \
             GROUP BY site_id{group}, selector",
            cfg.local_table("frustration_days")
        )
    };
    let rage = per_site(&sql::rage_bursts_sql(), cfg, Some("click"));
    let dead = per_site(DEAD_CLICKS, cfg, None);
    vec![
        RollStatement {
            name: "anomalies",
            sql: format!(
                "INSERT INTO {} (site_id, day, shard, session_id, events, rapid, repeated, loops, version) \
                 SELECT {lead}, session_id, events, rapid, repeated, loops, toDateTime(?) FROM ({anomalies})",
                cfg.local_table("anomaly_days")
            ),
            post: Vec::new(),
        },
        RollStatement {
            name: "rage clicks",
            sql: frustration(0, &rage, "c", [2, 3, 5, 6, 7], false),
            post: sql::rage_thresholds(sql::RAGE_MS, sql::RAGE_PX),
        },
        RollStatement {
            name: "rage clicks by page",
            sql: frustration(0, &rage, "c", [2, 3, 5, 6, 7], true),
            post: sql::rage_thresholds(sql::RAGE_MS, sql::RAGE_PX),
        },
        RollStatement {
            name: "dead clicks",
            sql: frustration(1, &dead, "e", [5, 6, 7, 8, 9], false),
            post: Vec::new(),
        },
        RollStatement {
            name: "dead clicks by page",
            sql: frustration(1, &dead, "e", [5, 6, 7, 8, 9], true),
            post: Vec::new(),
        },
        RollStatement {
            name: "patterns",
            sql: format!(
                "INSERT INTO {} (site_id, day, shard, gram, occurrences, sessions, version) \
                 SELECT {lead}, gram, toUInt64(count()) AS occurrences, toUInt64(uniqExact(session_id)) AS sessions, \
                 toDateTime(?) FROM {} GROUP BY site_id, gram \
                 ORDER BY sessions DESC, occurrences DESC, gram LIMIT {GRAMS_PER_DAY} BY site_id",
                cfg.local_table("pattern_days"),
                per_site(PATTERN_GRAMS, cfg, None)
            ),
            post: Vec::new(),
        },
        // The marker, last: a day is read from the rollup at this version only once all of it
        // is written. (Binds the same leading values; the day's five go unused: none here.)
        RollStatement {
            name: "marker",
            sql: format!(
                "INSERT INTO {} (site_id, day, shard, session_id, version) \
                 SELECT '', toDate(?), toUInt16(?), '', toDateTime(?)",
                cfg.local_table("anomaly_days")
            ),
            post: Vec::new(),
        },
    ]
}

/// Each rolled day's latest version, of the range (`?`: from, to), as a condition on a
/// table of the rollup.
const LATEST: &str = "(day, shard, version) GLOBAL IN (SELECT day, shard, max(version) FROM anomaly_days \
     WHERE site_id = '' AND day BETWEEN toDate(?) AND toDate(?) GROUP BY day, shard)";

/// The rolled days of the range (`YYYY-MM-DD`).
/// Rolled on every shard (see `sql`'s `ROLLED_DAYS`).
pub(super) const ROLLED_DAYS: &str = "SELECT toString(day) FROM anomaly_days \
     WHERE site_id = '' AND day BETWEEN toDate(?) AND toDate(?) GROUP BY day \
     HAVING uniqExact(shard) = (SELECT uniqExact(shard) FROM anomaly_days WHERE site_id = '') ORDER BY day";

/// The range's most anomalous sessions from the rollup.
///
/// The rows of each day's latest complete roll (`{latest}`), and of those one per key:
/// `LIMIT 1 BY`, not `FINAL`, folds two rolls of one version (two collectors in one second).
/// `FINAL` would keep a key's newest row, and a roll still being written has newer rows than
/// the marker the query reads: the key would be lost from both.
pub(super) const ANOMALIES_ROLLED: &str = "SELECT session_id, events, rapid, repeated, loops FROM anomaly_days \
     WHERE site_id = ? AND day BETWEEN toDate(?) AND toDate(?) AND {latest} \
     ORDER BY rapid + repeated + loops DESC, session_id LIMIT 1 BY session_id LIMIT 100";

/// Rage (`kind` 0) and dead (1) clicks by element from the rollup, of the whole site (`{page}`:
/// `path = ''`) or of a page (`path = ?`, and its layout and device if asked).
pub(super) const FRUSTRATION_ROLLED: &str = "SELECT kind, selector, toUInt64(sum(count)), toUInt64(sum(sessions)), \
     toFloat64(sum(sum_x)), toFloat64(sum(sum_y)) FROM \
     (SELECT kind, selector, count, sessions, sum_x, sum_y FROM frustration_days \
      WHERE site_id = ? AND day BETWEEN toDate(?) AND toDate(?) AND {page} AND {latest} \
      LIMIT 1 BY day, shard, kind, path, layout, device, selector) GROUP BY kind, selector";

/// Sequences from the rollup (every one kept; the top are taken with the unrolled days').
pub(super) const PATTERNS_ROLLED: &str = "SELECT gram, toUInt8(length(gram)), toUInt64(sum(occurrences)), toUInt64(sum(sessions)) \
     FROM (SELECT gram, occurrences, sessions FROM pattern_days \
      WHERE site_id = ? AND day BETWEEN toDate(?) AND toDate(?) AND {latest} LIMIT 1 BY day, shard, gram) GROUP BY gram";

/// `sql` for `f`'s site and range (and page, layout and device, for `{page}`), bound.
pub(super) fn rolled_query(client: &Client, sql: &str, f: &Filters) -> clickhouse::query::Query {
    let mut page = Vec::new();
    let mut cond = String::from("path = ?");
    match &f.path {
        Some(p) => {
            page.push(p.clone());
            if let Some(layout) = f.layout() {
                cond.push_str(&format!(" AND layout = {layout}"));
            }
            if let Some(d) = &f.device {
                cond.push_str(" AND device = ?");
                page.push(d.clone());
            }
        }
        None => page.push(String::new()),
    }
    let sql = sql.replace("{latest}", LATEST).replace("{page}", &cond);
    let mut q = client.query(&sql);
    if sql.contains("site_id = ?") {
        q = q.bind(&f.site);
    }
    q = q.bind(&f.from).bind(&f.to);
    if sql.contains("path = ?") {
        for v in page {
            q = q.bind(v);
        }
    }
    if sql.contains(LATEST) {
        q = q.bind(&f.from).bind(&f.to);
    }
    q
}

#[derive(Deserialize, clickhouse::Row)]
struct FrustrationRow {
    kind: u8,
    selector: String,
    count: u64,
    sessions: u64,
    sum_x: f64,
    sum_y: f64,
}

/// The range split into what the rollup has and what it lacks: `None` if `f` asks for what it
/// does not keep; else whether any day is rolled, and `f` over each run of consecutive days
/// that are not (read from the events; as a rule none, or the days before a site's first
/// events, which hold nothing).
async fn split(
    client: &Client,
    f: &Filters,
    usable: bool,
) -> Result<Option<(bool, Vec<Filters>)>, clickhouse::error::Error> {
    if !usable {
        return Ok(None);
    }
    let rolled: Vec<String> = rolled_query(client, ROLLED_DAYS, f).fetch_all().await?;
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for d in sql::unrolled_days(f, &rolled) {
        match runs.last_mut() {
            Some(run) if run.1 + 1 == d => run.1 = d,
            _ => runs.push((d, d)),
        }
    }
    let rest = runs
        .into_iter()
        .map(|(lo, hi)| Filters {
            from: civil(lo),
            to: civil(hi),
            ..f.clone()
        })
        .collect();
    Ok(Some((!rolled.is_empty(), rest)))
}

/// `anomalies` from the rollup where it can, else from the events.
pub async fn anomalies(
    client: &Client,
    f: &Filters,
) -> Result<Anomalies, clickhouse::error::Error> {
    let Some((any_rolled, rest)) = split(client, f, f.behaviour_rollup()).await? else {
        return sql::anomalies(client, f).await;
    };
    let (sessions, (rage, dead)) = tokio::try_join!(
        anomalous(client, f, any_rolled, &rest),
        frustration_of(client, f, any_rolled, &rest)
    )?;
    Ok(Anomalies {
        sessions,
        rage,
        dead,
    })
}

/// The range's 100 most anomalous sessions: the rolled days' and those of each run of other
/// days (`rest`, from the events), the most anomalous first.
async fn anomalous(
    client: &Client,
    f: &Filters,
    any_rolled: bool,
    rest: &[Filters],
) -> Result<Vec<Anomaly>, clickhouse::error::Error> {
    let live = futures_util::future::try_join_all(rest.iter().map(|r| sql::anomalous(client, r)));
    let rolled = async {
        if any_rolled {
            rolled_query(client, ANOMALIES_ROLLED, f)
                .fetch_all::<Anomaly>()
                .await
        } else {
            Ok(Vec::new())
        }
    };
    let (live, mut sessions) = tokio::try_join!(live, rolled)?;
    sessions.extend(live.into_iter().flatten());
    sessions.sort_by(|a, b| {
        score(b)
            .cmp(&score(a))
            .then_with(|| a.session_id.cmp(&b.session_id))
    });
    sessions.truncate(100);
    Ok(sessions)
}

/// Rage and dead clicks (position sums) of `f`'s site or page from the rollup.
async fn rolled_frustration(
    client: &Client,
    f: &Filters,
) -> Result<(Vec<Frustration>, Vec<Frustration>), clickhouse::error::Error> {
    let rows = rolled_query(client, FRUSTRATION_ROLLED, f)
        .fetch_all::<FrustrationRow>()
        .await?;
    let (mut rage, mut dead) = (Vec::new(), Vec::new());
    for r in rows {
        let list = if r.kind == 0 { &mut rage } else { &mut dead };
        list.push(Frustration {
            selector: r.selector,
            count: r.count,
            sessions: r.sessions,
            x: r.sum_x,
            y: r.sum_y,
        });
    }
    Ok((rage, dead))
}

/// A page's rage and dead clicks (the heatmap's frustration layer) from the rollup where it
/// can, else from the events.
pub(super) async fn frustration(
    client: &Client,
    f: &Filters,
) -> Result<(Vec<Frustration>, Vec<Frustration>), clickhouse::error::Error> {
    let Some((any_rolled, rest)) = split(client, f, f.frustration_rollup()).await? else {
        return sql::frustration(client, f).await;
    };
    frustration_of(client, f, any_rolled, &rest).await
}

/// Rage and dead clicks by element: the rolled days' and those of each run of other days
/// (`rest`, from the events), added up.
async fn frustration_of(
    client: &Client,
    f: &Filters,
    any_rolled: bool,
    rest: &[Filters],
) -> Result<(Vec<Frustration>, Vec<Frustration>), clickhouse::error::Error> {
    let live = futures_util::future::try_join_all(rest.iter().map(|r| sql::frustration(client, r)));
    let rolled = async {
        if any_rolled {
            rolled_frustration(client, f).await
        } else {
            Ok((Vec::new(), Vec::new()))
        }
    };
    let (live, (mut rage, mut dead)) = tokio::try_join!(live, rolled)?;
    for (r, d) in live {
        rage.extend(r.into_iter().map(sums));
        dead.extend(d.into_iter().map(sums));
    }
    Ok((by_element(rage), by_element(dead)))
}

fn score(a: &Anomaly) -> u64 {
    a.rapid + a.repeated + a.loops
}

/// An element's average click position as sums (the rollup's form).
fn sums(mut f: Frustration) -> Frustration {
    f.x *= f.count as f64;
    f.y *= f.count as f64;
    f
}

/// Counts and position sums of one element added up, averaged, the 100 largest first (as the
/// events' queries order).
fn by_element(list: Vec<Frustration>) -> Vec<Frustration> {
    let mut by: BTreeMap<String, Frustration> = BTreeMap::new();
    for f in list {
        let e = by.entry(f.selector.clone()).or_insert(Frustration {
            selector: f.selector,
            count: 0,
            sessions: 0,
            x: 0.0,
            y: 0.0,
        });
        e.count += f.count;
        e.sessions += f.sessions;
        e.x += f.x;
        e.y += f.y;
    }
    let mut out: Vec<Frustration> = by
        .into_values()
        .filter(|f| f.count > 0)
        .map(|mut f| {
            f.x /= f.count as f64;
            f.y /= f.count as f64;
            f
        })
        .collect();
    out.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.selector.cmp(&b.selector))
    });
    out.truncate(100);
    out
}

/// `patterns` from the rollup where it can, else from the events.
pub async fn patterns(client: &Client, f: &Filters) -> Result<Patterns, clickhouse::error::Error> {
    let Some((any_rolled, rest)) = split(client, f, f.behaviour_rollup()).await? else {
        return sql::patterns(client, f).await;
    };
    let live = futures_util::future::try_join_all(rest.iter().map(|r| sql::frequent(client, r)));
    let rolled = async {
        if !any_rolled {
            return Ok(Vec::new());
        }
        rolled_query(client, PATTERNS_ROLLED, f)
            .fetch_all::<Pattern>()
            .await
    };
    // Its loops are those of the anomalous sessions (as `sql::patterns` has them), from the
    // same split of the range.
    let (live, rolled, sessions) =
        tokio::try_join!(live, rolled, anomalous(client, f, any_rolled, &rest))?;
    let mut by: BTreeMap<Vec<String>, Pattern> = BTreeMap::new();
    for p in rolled.into_iter().chain(live.into_iter().flatten()) {
        let e = by.entry(p.actions.clone()).or_insert(Pattern {
            n: p.n,
            actions: p.actions,
            occurrences: 0,
            sessions: 0,
        });
        e.occurrences += p.occurrences;
        e.sessions += p.sessions;
    }
    let mut frequent: Vec<Pattern> = by.into_values().filter(|p| p.sessions >= 2).collect();
    frequent.sort_by(|a, b| {
        (b.sessions, b.occurrences, b.n)
            .cmp(&(a.sessions, a.occurrences, a.n))
            .then_with(|| a.actions.cmp(&b.actions))
    });
    frequent.truncate(50);
    Ok(Patterns {
        frequent,
        loops: sessions.into_iter().filter(|s| s.loops > 0).collect(),
        approximate: any_rolled,
    })
}
