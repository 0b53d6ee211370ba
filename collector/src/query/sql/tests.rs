//! The SQL's shape and bindings, checked without a server (the integration tests and
//! tests/chdb run it).

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
    mark_complete(&mut days, false, Period::Day, now);
    assert_eq!(days.map(|d| d.complete), [true, false]);
    let mut hours = [
        row("2026-11-09 23:00:00"),
        row("2026-11-10 12:00:00"),
        row("2026-11-10 13:00:00"),
    ];
    mark_complete(&mut hours, true, Period::Day, now);
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
        ("site=", "site"),
        ("site=demo&from=%2B2026-11-01", "from"),
        ("site=demo&layers=clicks,clicks", "layers"),
        ("site=demo&layers=clicks,%20scroll", "layers"),
        ("site=demo&steps=/a", "steps"),
        ("site=demo&steps=/a,,/b", "steps"),
    ] {
        match Filters::parse(q) {
            Err(QueryError::BadParam { param: p, .. }) => assert_eq!(p, param, "{q}"),
            other => panic!("{q}: {other:?}"),
        }
    }
    // Lengths count characters, as JSON Schema's maxLength does.
    let site = "é".repeat(256);
    assert_eq!(Filters::parse(&format!("site={site}")).unwrap().site, site);
    assert!(Filters::parse(&format!("site={site}é")).is_err());
    // Steps are taken as sent: a space belongs to the step.
    let f = Filters::parse("site=demo&steps=/a,%20signup").unwrap();
    assert_eq!(f.steps, ["/a", " signup"]);
}

#[test]
fn a_range_is_clamped_to_the_days_events_can_have_and_may_be_empty() {
    let range = |q: &str| {
        let f = Filters::parse(&format!("site=demo&{q}")).unwrap();
        (f.from, f.to)
    };
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        range("from=0001-01-01&to=2026-11-01"),
        pair("1970-01-01", "2026-11-01")
    );
    assert_eq!(
        range("from=2026-11-01&to=9999-12-31"),
        pair("2026-11-01", "2100-12-31")
    );
    let empty = pair("2101-01-01", "2100-12-31");
    assert_eq!(range("from=2026-11-02&to=2026-11-01"), empty);
    assert_eq!(range("from=1900-01-01&to=1969-12-31"), empty);
    assert_eq!(range("from=2200-01-01&to=2300-01-01"), empty);
    assert_eq!(range("to=0000-01-01"), empty);
    let days: Vec<_> = super::stats::unrolled_days(
        &Filters::parse("site=demo&from=2026-11-02&to=2026-11-01").unwrap(),
        &[],
    );
    assert!(days.is_empty());
}

#[test]
fn weeks_start_on_monday_and_months_on_the_first() {
    // 2026-11-12 is a Thursday.
    let thu = days_from_civil(2026, 11, 12);
    assert_eq!(civil(Period::Week.start_of(thu)), "2026-11-09");
    assert_eq!(civil(Period::Week.start_of(thu - 3)), "2026-11-09");
    assert_eq!(civil(Period::Week.start_of(thu - 4)), "2026-11-02");
    assert_eq!(civil(Period::Month.start_of(thu)), "2026-11-01");
    assert_eq!(civil(Period::Day.start_of(thu)), "2026-11-12");
    let row = |d: &str| Day {
        day: d.into(),
        visitors: 1,
        pageviews: 1,
        complete: false,
    };
    let now = thu * 86_400_000 + 3_600_000;
    let mut weeks = [row("2026-11-02"), row("2026-11-09")];
    mark_complete(&mut weeks, false, Period::Week, now);
    assert_eq!(weeks.map(|d| d.complete), [true, false]);
    let mut months = [row("2026-10-01"), row("2026-11-01")];
    mark_complete(&mut months, false, Period::Month, now);
    assert_eq!(months.map(|d| d.complete), [true, false]);
}

#[test]
fn periods_and_hours_windows_are_parsed_or_refused() {
    let f = Filters::parse("site=s&period=week").unwrap();
    assert_eq!(f.period, Period::Week);
    assert!(Filters::parse("site=s&period=year").is_err());
    let f = Filters::parse("site=s&period=week&interval=hour").unwrap();
    assert_eq!((f.hourly, f.period), (true, Period::Day));
    let f = Filters::parse("site=s&from=2026-11-10T22:00:00Z&to=2026-11-11T02:00:00Z").unwrap();
    let lo = days_from_civil(2026, 11, 10) as u64 * 86_400 + 22 * 3600;
    assert_eq!(f.window, Some((lo, lo + 4 * 3600)));
    assert_eq!(
        (f.from.as_str(), f.to.as_str()),
        ("2026-11-10", "2026-11-11")
    );
    // `to` is exclusive: a window ending at midnight reads no day past it.
    let f = Filters::parse("site=s&from=2026-11-10T22:00:00Z&to=2026-11-11T00:00:00Z").unwrap();
    assert_eq!(f.to, "2026-11-10");
    // RFC 3339: an offset, a fraction (dropped), lowercase; a date on one side is its day's
    // start (`from`) or end (`to`); an empty window is no error, it reads nothing.
    let w = |q: &str| Filters::parse(&format!("site=s&{q}")).unwrap().window;
    assert_eq!(
        w("from=2026-11-11T00:00:00.75%2B02:00&to=2026-11-11t02:00:00z"),
        Some((lo, lo + 4 * 3600))
    );
    assert_eq!(
        w("from=2026-11-10T22:00:00Z&to=2026-11-10"),
        Some((lo, lo + 2 * 3600))
    );
    assert_eq!(
        w("from=2026-11-10T22:00:00Z&to=2026-11-10T21:00:00Z"),
        Some((lo, lo))
    );
    for bad in [
        "from=2026-11-10T24:00:00Z&to=2026-11-11T02:00:00Z",
        "from=2026-11-10T22:00:00&to=2026-11-11T02:00:00Z",
        "from=2026-11-10T22:00Z&to=2026-11-11T02:00:00Z",
        "from=2026-11-10T22:00:00.Z",
        "from=2026-11-10T22:00:00%2B2:00",
        "from=2026-11-10T+2:00:00Z",
        "event_type=tap",
        "property=",
        "until=x",
    ] {
        assert!(Filters::parse(&format!("site=s&{bad}")).is_err(), "{bad}");
    }
    let mut binds = Vec::new();
    let f = Filters::parse("site=s&from=2026-11-10T22:00:00Z&to=2026-11-11T02:00:00Z").unwrap();
    assert!(f.condition(Some("click"), &mut binds).ends_with(
        "AND timestamp >= toDateTime(toUInt32(?)) AND timestamp < toDateTime(toUInt32(?))"
    ));
    assert!(!f.page_marts() && !f.frustration_rollup());
}

#[test]
fn search_queries_bind_the_sites_names_and_splice_none() {
    let mut f = Filters::parse("site=shop&from=2026-11-01&to=2026-11-02").unwrap();
    f.search.search_event = "search_performed".into();
    f.search.click_event = "it'em_viewed".into();
    f.search.results_property = "results_count".into();
    f.search.refinement_secs = 90;
    let client = Client::default();
    for sql in [SEARCH_TOTALS, SEARCH_QUERIES, SEARCH_REFINEMENTS] {
        let shown = search_query(&client, sql, &f).sql_display().to_string();
        assert!(!shown.contains('?'), "every placeholder bound: {shown}");
        // In the order they stand: the window, then the click event before the site.
        let at = |s: &str| shown.find(s).unwrap_or_else(|| panic!("{s} in {shown}"));
        assert!(at("<= 90000") < at(r"= 'it\'em_viewed'"));
        assert!(at("'results_count'") < at("site_id = 'shop'"));
        assert!(at("site_id = 'shop'") < at(r"IN ('search_performed', 'it\'em_viewed')"));
    }
    let items = search_items_query(&client, &f).sql_display().to_string();
    assert!(!items.contains('?'), "{items}");
    assert!(items.contains(r"IN ('it\'em_viewed', 'view_item', 'add_to_cart', 'purchase')"));
}

#[test]
fn retention_reads_whole_weeks_up_to_today_and_at_most_104() {
    // 2026-11-12 is a Thursday.
    let today = days_from_civil(2026, 11, 12);
    let weeks = |q: &str| {
        let (first, last, cut) = weeks_of(&Filters::parse(&format!("site=s&{q}")).unwrap(), today);
        (civil(first), civil(last), cut)
    };
    let w = |a: &str, b: &str, cut| (a.to_owned(), b.to_owned(), cut);
    assert_eq!(
        weeks("from=2026-10-14&to=2026-11-01"),
        w("2026-10-12", "2026-10-26", false),
        "a Wednesday to a Sunday: their weeks"
    );
    assert_eq!(
        weeks("from=2026-11-01&to=2027-03-01"),
        w("2026-10-26", "2026-11-09", false),
        "to after today is today"
    );
    assert_eq!(
        weeks("from=2020-01-01&to=2026-11-12"),
        w("2024-11-18", "2026-11-09", true),
        "the last 104 weeks"
    );
    assert_eq!(
        weeks("from=1970-01-01&to=1970-03-01"),
        w("1970-01-05", "1970-02-23", false),
        "from the first Monday a Date has"
    );
    let (first, last, _) = weeks_of(
        &Filters::parse("site=s&from=2026-11-02&to=2026-11-01").unwrap(),
        today,
    );
    assert!(first > last, "an empty range has no week");
}

#[test]
fn retention_makes_a_triangle_with_a_cell_per_week() {
    let (first, last) = (days_from_civil(2026, 10, 26), days_from_civil(2026, 11, 9));
    let cell = |week: &str, k, users| CohortCell {
        week: week.into(),
        k,
        users,
    };
    let cohorts = triangle(
        first,
        last,
        &[
            cell("2026-10-26", 0, 4),
            cell("2026-10-26", 2, 1),
            cell("2026-11-09", 0, 2),
        ],
    );
    let shape: Vec<_> = cohorts
        .iter()
        .map(|c| (c.week.as_str(), c.users, c.active.clone(), c.share.clone()))
        .collect();
    assert_eq!(
        shape,
        [
            (
                "2026-10-26",
                4,
                vec![4, 0, 1],
                vec![Some(1.0), Some(0.0), Some(0.25)]
            ),
            ("2026-11-02", 0, vec![0, 0], vec![None, None]),
            ("2026-11-09", 2, vec![2], vec![Some(1.0)]),
        ]
    );
    let week = |w: &str, v, r, s| AnonymousWeek {
        week: w.into(),
        visitor_days: v,
        returning: r,
        sessions: s,
    };
    let a = anonymous_of(
        first,
        last,
        vec![week("2026-10-26", 3, 1, 5), week("2026-11-09", 1, 0, 1)],
    );
    assert_eq!(
        (
            a.visitor_days,
            a.returning,
            a.returning_share,
            a.sessions,
            a.sessions_per_visitor_day
        ),
        (4, 1, 0.25, 6, 1.5)
    );
    assert_eq!(a.weeks[1], week("2026-11-02", 0, 0, 0));
    assert_eq!(a.weeks.len(), 3);
    let none = anonymous_of(first, last, Vec::new());
    assert_eq!(
        (none.returning_share, none.sessions_per_visitor_day),
        (0.0, 0.0)
    );
}

#[test]
fn retention_queries_bind_the_time_zone_and_splice_nothing() {
    let f = Filters {
        timezone: "Europe/Berlin".into(),
        ..Filters::parse("site=o'shop").unwrap()
    };
    let (first, last) = (days_from_civil(2026, 10, 26), days_from_civil(2026, 11, 9));
    let client = Client::default();
    let cohorts = cohorts_query(&client, &f, first, last)
        .sql_display()
        .to_string();
    assert!(!cohorts.contains('?'), "{cohorts}");
    assert_eq!(cohorts.matches("'Europe/Berlin'").count(), 2, "{cohorts}");
    assert!(cohorts.contains(r"site_id = 'o\'shop'"), "{cohorts}");
    assert!(
        cohorts.contains("toDate(timestamp) <= toDate('2026-11-15') + 1"),
        "{cohorts}"
    );
    assert!(
        cohorts.contains("BETWEEN toDate('2026-10-26') AND toDate('2026-11-09')"),
        "{cohorts}"
    );
    let anonymous = anonymous_query(&client, &f, first, last)
        .sql_display()
        .to_string();
    assert!(
        anonymous.contains("day BETWEEN toDate('2026-10-26') AND toDate('2026-11-15')"),
        "{anonymous}"
    );
}
