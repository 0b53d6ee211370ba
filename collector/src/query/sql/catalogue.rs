//! `pathlight sql`: every analytics query as ClickHouse receives it, for the docs and for the
//! modern-dialect test (chdb), which runs them all.

use super::*;

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
        ("stats series".into(), series_sql(f.hourly, f.period), None),
        (
            "stats series week".into(),
            series_sql(false, Period::Week),
            None,
        ),
        (
            "stats series month".into(),
            series_sql(false, Period::Month),
            None,
        ),
    ];
    list.extend(
        TOP_COLUMNS
            .iter()
            .map(|c| (format!("stats top {c}"), top_sql(c), Some("pageview"))),
    );
    list.push(("stats totals traffic".into(), TOTALS_MART.into(), None));
    list.push((
        "stats series traffic".into(),
        series_mart_sql(Period::Day),
        None,
    ));
    list.push((
        "stats series week traffic".into(),
        series_mart_sql(Period::Week),
        None,
    ));
    list.push((
        "stats series month traffic".into(),
        series_mart_sql(Period::Month),
        None,
    ));
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
    // The site's goals (`goals` of its `[[sites]]`), here two known names.
    let goals = Filters {
        goals: vec!["signup".into(), "purchase".into()],
        ..f.clone()
    };
    out.push((
        "stats conversion".into(),
        shown(conversion_query(&client, &goals)),
    ));
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
    // The rollup of the range's first day (`query::rollup`), and the days rolled.
    let cfg = crate::storage::clickhouse::ClickHouseConfig::default();
    let version = u32::try_from(crate::dates::now_ms() / 1000).unwrap_or(0);
    out.push((
        "session rollup".into(),
        shown(crate::query::rollup::insert(
            &client, &cfg, &f.from, 0, version,
        )),
    ));
    out.push((
        "session rollup marker".into(),
        shown(crate::query::rollup::marker(
            &client, &cfg, &f.from, 0, version,
        )),
    ));
    // The behaviour rollup of the range's first day, then its figures read back; the site
    // with its own `repeated` rule, as a roll over sites with different rules has it.
    let repeats = crate::query::behaviour::Repeats {
        sites: vec![(f.site.clone(), f.repeat)],
        ..Default::default()
    };
    for (i, (name, q)) in
        crate::query::rollup::behaviour_queries(&client, &cfg, &repeats, &f.from, 0, version)
            .into_iter()
            .enumerate()
    {
        out.push((format!("behaviour rollup {} {name}", i + 1), shown(q)));
    }
    for (name, sql) in [
        (
            "behaviour rolled days",
            crate::query::behaviour::ROLLED_DAYS,
        ),
        (
            "anomalies rolled",
            crate::query::behaviour::ANOMALIES_ROLLED,
        ),
        (
            "frustration rolled",
            crate::query::behaviour::FRUSTRATION_ROLLED,
        ),
        ("patterns rolled", crate::query::behaviour::PATTERNS_ROLLED),
    ] {
        out.push((
            name.into(),
            shown(crate::query::behaviour::rolled_query(&client, sql, f)),
        ));
    }
    out.push((
        "stats rolled days".into(),
        shown(client.query(ROLLED_DAYS).bind(&f.from).bind(&f.to)),
    ));
    // Both: which one `stats` runs depends on the filters.
    let today = unix_day(crate::dates::now_ms());
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
    // With the site's names for search analytics (`pathlight sql` reads them from the config).
    for (name, sql) in [
        ("search totals", SEARCH_TOTALS),
        ("search queries", SEARCH_QUERIES),
        ("search refinements", SEARCH_REFINEMENTS),
    ] {
        out.push((name.into(), shown(search_query(&client, sql, f))));
    }
    out.push(("search items".into(), shown(search_items_query(&client, f))));
    // The weeks of the range as `retention` reads them on its last day, in the site's time zone
    // and in one east of UTC (a day's first hours there are the day before's in UTC).
    out.push((
        "retention today".into(),
        shown(client.query(LOCAL_TODAY).bind(&f.timezone)),
    ));
    let (first, last, _) = weeks_of(f, days_of(&f.to));
    let berlin = Filters {
        timezone: "Europe/Berlin".into(),
        ..f.clone()
    };
    out.push((
        "retention cohorts".into(),
        shown(cohorts_query(&client, f, first, last)),
    ));
    out.push((
        "retention cohorts Europe/Berlin".into(),
        shown(cohorts_query(&client, &berlin, first, last)),
    ));
    out.push((
        "retention anonymous".into(),
        shown(anonymous_query(&client, f, first, last)),
    ));
    out.push((
        "user events".into(),
        shown(user_events_query(&client, f, "u7")),
    ));
    // Of one user (`users/{id}/events`), or of the users of a page of sessions (`sessions`).
    out.push((
        "user traits".into(),
        shown(traits_query(
            &client,
            &f.site,
            &["u7".to_owned(), "u9".to_owned()],
        )),
    ));
    out.push(("rage clicks".into(), shown(rage_query(&client, f))));
    out.push(("dead clicks".into(), shown(dead_query(&client, f))));
    out.push((
        "anomalies".into(),
        shown(prepare(&client, &anomalies_sql(false), f, None)),
    ));
    let now = crate::dates::now_ms().max(0) as u64;
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
    // The timeline of the range's clicks, at most those stored by the end of its last day.
    let clicks = Filters {
        event_type: Some("click".into()),
        until: Some((days_of(&f.to) as u64 + 1) * 86_400_000),
        limit: 2,
        offset: 1,
        path: None,
        ..f.clone()
    };
    out.push(("timeline".into(), shown(timeline_query(&client, &clicks))));
    // The values of a custom property `plan`, of every kind of event.
    let top = Filters {
        path: None,
        ..f.clone()
    };
    out.push((
        "top property".into(),
        shown(top_property_query(&client, &top, "plan")),
    ));
    // The heatmap's clicks over an hours window: 10:00 to 11:00 of the range's first day.
    let ten = days_of(&f.from) as u64 * 86_400 + 10 * 3600;
    let window = Filters {
        window: Some((ten, ten + 3600)),
        ..f.clone()
    };
    out.push((
        "heatmap points window".into(),
        shown(prepare(
            &client,
            &heatmap_points_sql(),
            &window,
            Some("click"),
        )),
    ));
    out.push((
        "realtime".into(),
        shown(client.query(REALTIME).bind(&f.site)),
    ));
    out.push((
        "live recent".into(),
        shown(client.query(LIVE_RECENT).bind(&f.site)),
    ));
    out.push((
        "live today".into(),
        shown(client.query(LIVE_TODAY).bind(&f.site)),
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
        out.push((
            "session analysis events".into(),
            shown(session_analysis_query(&client, f, id)),
        ));
    }
    out
}
