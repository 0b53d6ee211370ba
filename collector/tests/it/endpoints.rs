//! The seeds' endpoints (issue 31) answer exactly for rows whose figures are known: the stats
//! series by week and month, a site's conversion to its goal events, the heatmap of an hours
//! window, the events timeline, top values of a custom property, a session's analysis with
//! its anomalies, and the export's kinds and JSON array.

use crate::TestServer;
use serde_json::{Value, json};

/// An event row, inserted as the pipeline would have stored it.
#[derive(Clone)]
struct Row {
    kind: &'static str,
    /// `YYYY-MM-DD HH:MM:SS` (UTC) and ms.
    at: String,
    ms: u16,
    session: &'static str,
    visitor: u64,
    path: &'static str,
    selector: &'static str,
    tag: &'static str,
    x: i32,
    y: i32,
    name: &'static str,
    props: &'static str,
    bot: u8,
}

fn row(kind: &'static str, at: &str, session: &'static str, visitor: u64) -> Row {
    Row {
        kind,
        at: at.to_owned(),
        ms: 0,
        session,
        visitor,
        path: "/",
        selector: "",
        tag: "",
        x: 0,
        y: 0,
        name: "",
        props: "",
        bot: 0,
    }
}

impl Row {
    fn path(self, path: &'static str) -> Row {
        Row { path, ..self }
    }
    fn custom(name: &'static str, at: &str, session: &'static str, visitor: u64) -> Row {
        Row {
            name,
            ..row("custom", at, session, visitor)
        }
    }
    fn click(at: &str, ms: u16, session: &'static str, selector: &'static str, xy: i32) -> Row {
        Row {
            ms,
            selector,
            tag: "button",
            x: xy,
            y: xy,
            ..row("click", at, session, 1)
        }
    }
}

/// Inserts `rows` into the test's events table, ids numbered from `first`.
async fn insert(server: &TestServer, first: usize, rows: &[Row]) {
    let values: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            format!(
                "('test', toUUID('00000000-0000-0000-0000-{:012}'), '{}', toDateTime('{}', 'UTC'), {}, '{}', {}, \
                 'https://shop.example{}', '{}', {}, {}, 1000, 3000, 1440, 800, '{}', '{}', '{}', '{}', 'desktop', {})",
                first + i,
                r.kind,
                r.at,
                r.ms,
                r.session,
                r.visitor,
                r.path,
                r.path,
                r.x,
                r.y,
                r.selector,
                r.tag,
                r.name,
                r.props,
                r.bot
            )
        })
        .collect();
    server
        .db
        .query(&format!(
            "INSERT INTO events (site_id, event_id, event_type, timestamp, timestamp_ms, session_id, visitor_id, \
             url, path, x, y, document_w, document_h, viewport_w, viewport_h, selector, tag, name, props, device, is_bot) \
             VALUES {}",
            values.join(", ")
        ))
        .execute()
        .await
        .unwrap();
}

/// Status and JSON body of `GET /api/v1/{q}` with the test site's token.
async fn get(server: &TestServer, q: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(server.url(&format!("/api/v1/{q}")))
        .bearer_auth("test-token")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, crate::json_body(resp).await)
}

/// (bucket, visitors, page views, complete) of a stats series.
fn series(stats: &Value) -> Vec<(String, u64, u64, bool)> {
    stats["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["day"].as_str().unwrap().to_owned(),
                d["visitors"].as_u64().unwrap(),
                d["pageviews"].as_u64().unwrap(),
                d["complete"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn stats_by_week_and_month_and_the_sites_conversion() {
    let server = TestServer::start_with("ep_stats", |c| {
        c.sites[0].goals = vec!["signup".into(), "purchase".into()];
    })
    .await;
    insert(
        &server,
        1,
        &[
            row("pageview", "2026-10-30 10:00:00", "s1", 1),
            // A Monday, and the Sunday of its week.
            row("pageview", "2026-11-02 10:00:00", "s2", 2),
            row("pageview", "2026-11-08 10:00:00", "s3", 3),
            row("pageview", "2026-11-08 10:00:05", "s3", 3).path("/b"),
            // The next Monday: three visitors, two of them converted (one to both goals).
            row("pageview", "2026-11-09 10:00:00", "s4", 4),
            Row::custom("signup", "2026-11-09 10:00:10", "s4", 4),
            row("pageview", "2026-11-09 11:00:00", "s5", 5),
            Row::custom("purchase", "2026-11-09 11:00:10", "s5", 5),
            Row::custom("signup", "2026-11-09 11:00:20", "s5", 5),
            row("pageview", "2026-11-09 12:00:00", "s6", 6),
            Row::custom("newsletter", "2026-11-09 12:00:10", "s6", 6),
            // A bot's signup counts nowhere.
            Row {
                bot: 1,
                ..Row::custom("signup", "2026-11-09 13:00:00", "s7", 7)
            },
        ],
    )
    .await;
    let range = "stats?site=test&from=2026-10-28&to=2026-11-10";
    // From the traffic mart and, with exact=true, from the events: the same buckets.
    for exact in ["", "&exact=true"] {
        let weeks = server.api(&format!("{range}&period=week{exact}")).await;
        assert_eq!(
            series(&weeks),
            [
                ("2026-10-26".into(), 1, 1, true),
                ("2026-11-02".into(), 2, 3, true),
                ("2026-11-09".into(), 3, 3, true)
            ],
            "{exact}"
        );
        let months = server.api(&format!("{range}&period=month{exact}")).await;
        assert_eq!(
            series(&months),
            [
                ("2026-10-01".into(), 1, 1, true),
                ("2026-11-01".into(), 5, 6, true)
            ],
            "{exact}"
        );
        let days = server.api(&format!("{range}&period=day{exact}")).await;
        assert_eq!(series(&days).len(), 4, "days with events: {days}");
    }
    let one_day = server
        .api("stats?site=test&from=2026-11-09&to=2026-11-09")
        .await;
    let third = 1.0 / 3.0;
    assert_eq!(
        one_day["conversion"],
        json!({
            "goals": ["signup", "purchase"],
            "converted": 2,
            "rate": 2.0 * third,
            "by_goal": [
                {"goal": "signup", "visitors": 2, "rate": 2.0 * third},
                {"goal": "purchase", "visitors": 1, "rate": third},
            ]
        })
    );
    // Over the whole range: six visitors (visitor ids), the same two converted.
    let all = server.api(range).await;
    assert_eq!(
        (&all["conversion"]["converted"], &all["conversion"]["rate"]),
        (&json!(2), &json!(third))
    );
    let (status, body) = get(&server, &format!("{range}&period=year")).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("period")));
    server.stop().await;

    // A site without goals has no conversion figure.
    let server = TestServer::start("ep_no_goals").await;
    let stats = server.api("stats?site=test").await;
    assert_eq!(stats["conversion"], Value::Null);
    server.stop().await;
}

#[tokio::test]
async fn a_heatmap_over_an_hours_window() {
    let server = TestServer::start("ep_window").await;
    let rage = |h: &str, s: &'static str| {
        [0, 200, 400].map(|ms| Row::click(&format!("2026-11-09 {h}"), ms, s, "#r", 500))
    };
    let mut rows = vec![Row::click("2026-11-09 10:00:00", 0, "a", "#a", 100)];
    rows.extend(rage("10:30:00", "a"));
    rows.extend([
        Row::click("2026-11-09 10:59:59", 0, "a", "#a", 100),
        // The window's end is not in it.
        Row::click("2026-11-09 11:00:00", 0, "b", "#a", 100),
    ]);
    rows.extend(rage("14:00:00", "b"));
    let rows: Vec<Row> = rows.into_iter().map(|r| r.path("/p")).collect();
    insert(&server, 1, &rows).await;
    let window = "from=2026-11-09T10:00:00Z&to=2026-11-09T11:00:00Z";
    let hm = server
        .api(&format!("heatmap?site=test&path=/p&{window}"))
        .await;
    assert_eq!(hm["clicks"], 5, "{hm}");
    let bursts: Vec<(&str, u64)> = hm["rage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["selector"].as_str().unwrap(),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(bursts, [("#r", 1)]);
    // The whole day, from the marts: every click.
    let day = server
        .api("heatmap?site=test&path=/p&from=2026-11-09&to=2026-11-09")
        .await;
    assert_eq!(day["clicks"], 9);
    assert_eq!(day["rage"][0]["count"], 2, "{day}");
    // Two hours across midnight read both days.
    let late = server
        .api("heatmap?site=test&path=/p&from=2026-11-09T13:00:00Z&to=2026-11-10T01:00:00Z")
        .await;
    assert_eq!(late["clicks"], 3);
    // From 13:00 to the end of the day `to` names; an offset; an empty window.
    let rest = server
        .api("heatmap?site=test&path=/p&from=2026-11-09T13:00:00Z&to=2026-11-09")
        .await;
    assert_eq!(rest["clicks"], 3);
    let paris = server
        .api("heatmap?site=test&path=/p&from=2026-11-09T11:00:00%2B01:00&to=2026-11-09T11:30:00%2B01:00")
        .await;
    assert_eq!(paris["clicks"], 1);
    let none = server
        .api("heatmap?site=test&path=/p&from=2026-11-09T11:00:00Z&to=2026-11-09T10:00:00Z")
        .await;
    assert_eq!(none["clicks"], 0);
    for bad in [
        format!("elements?site=test&path=/p&{window}"),
        "heatmap?site=test&path=/p&from=2026-11-09T10:00&to=2026-11-09T11:00".to_owned(),
    ] {
        let (status, body) = get(&server, &bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            matches!(body["field"].as_str(), Some("from" | "to")),
            "{body}"
        );
    }
    server.stop().await;
}

/// Events of a theme switcher and a letter picker, over three days.
fn explorer_rows() -> Vec<Row> {
    let prop = |name, at: &str, props, visitor, session| Row {
        props,
        ..Row::custom(name, at, session, visitor)
    };
    vec![
        row("pageview", "2026-11-08 09:00:00", "t1", 1).path("/a"),
        row("pageview", "2026-11-09 10:00:00", "t2", 2).path("/b"),
        Row::click("2026-11-09 10:00:00", 0, "t2", "#go", 10),
        Row {
            ms: 500,
            ..prop(
                "theme_change",
                "2026-11-09 10:00:01",
                r#"{"theme":"dark"}"#,
                2,
                "t2",
            )
        },
        prop(
            "theme_change",
            "2026-11-10 08:00:00",
            r#"{"theme":"dark"}"#,
            3,
            "t3",
        ),
        prop(
            "theme_change",
            "2026-11-10 08:00:01",
            r#"{"theme":"light"}"#,
            3,
            "t3",
        ),
        prop(
            "letter",
            "2026-11-10 08:00:02",
            r#"{"letter":"A","n":4}"#,
            3,
            "t3",
        ),
        Row {
            bot: 1,
            ..prop(
                "theme_change",
                "2026-11-10 09:00:00",
                r#"{"theme":"bot"}"#,
                9,
                "t9",
            )
        },
    ]
}

/// (kind, time ms, name) of a timeline page's events.
fn events(page: &Value) -> Vec<(String, u64, String)> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap().to_owned(),
                e["ts"].as_u64().unwrap(),
                e["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_timeline_pages_newest_first_and_top_ranks_a_propertys_values() {
    use pathlight_collector::dates::days_from_civil;
    let server = TestServer::start("ep_timeline").await;
    let rows = explorer_rows();
    insert(&server, 1, &rows).await;
    // The light theme's event again (a re-sent batch): shown and counted once.
    insert(&server, 6, &rows[5..6]).await;
    let ms = |d: i64, secs: u64| d as u64 * 86_400_000 + secs * 1000;
    let (d8, d9, d10) = (
        days_from_civil(2026, 11, 8),
        days_from_civil(2026, 11, 9),
        days_from_civil(2026, 11, 10),
    );
    let e = |kind: &str, at: u64, name: &str| (kind.to_owned(), at, name.to_owned());
    let q = "timeline?site=test&from=2026-11-01&to=2026-11-10&limit=3";
    let first = server.api(q).await;
    assert_eq!(
        events(&first),
        [
            e("custom", ms(d10, 8 * 3600 + 2), "letter"),
            e("custom", ms(d10, 8 * 3600 + 1), "theme_change"),
            e("custom", ms(d10, 8 * 3600), "theme_change"),
        ],
        "{first}"
    );
    assert_eq!(first["next_offset"], 3);
    assert_eq!(first["events"][0]["props"], json!({"letter": "A", "n": 4}));
    assert_eq!(first["events"][0]["visitor_id"], "3");
    let until = first["until_ms"].as_u64().unwrap();
    // The next pages, bound to the first's time: the page and the click of the same second
    // come by id, newest id first.
    let second = server.api(&format!("{q}&offset=3&until={until}")).await;
    assert_eq!(
        events(&second),
        [
            e("custom", ms(d9, 36_001) + 500, "theme_change"),
            e("click", ms(d9, 36_000), ""),
            e("pageview", ms(d9, 36_000), ""),
        ]
    );
    assert_eq!(second["until_ms"].as_u64(), Some(until));
    let last = server.api(&format!("{q}&offset=6&until={until}")).await;
    assert_eq!(events(&last), [e("pageview", ms(d8, 9 * 3600), "")]);
    assert_eq!(last["next_offset"], Value::Null);
    // One kind; and only what was stored by a time.
    let customs = server
        .api("timeline?site=test&from=2026-11-01&to=2026-11-10&event_type=custom")
        .await;
    assert_eq!(events(&customs).len(), 4, "the bot's left out: {customs}");
    let before = server
        .api(&format!(
            "timeline?site=test&from=2026-11-01&to=2026-11-10&limit=1&until={}",
            ms(d10, 8 * 3600 + 1)
        ))
        .await;
    assert_eq!(
        events(&before),
        [e("custom", ms(d10, 8 * 3600 + 1), "theme_change")]
    );

    let top = |q: &str| {
        let q = format!("top?site=test&from=2026-11-01&to=2026-11-10&{q}");
        let server = &server;
        async move { server.api(&q).await }
    };
    assert_eq!(
        top("property=theme").await,
        json!({"property": "theme", "values": [
            {"value": "dark", "count": 2, "visitors": 2},
            {"value": "light", "count": 1, "visitors": 1},
        ]})
    );
    assert_eq!(
        top("property=theme&limit=1").await["values"],
        json!([{"value": "dark", "count": 2, "visitors": 2}])
    );
    assert_eq!(
        top("property=n").await["values"],
        json!([{"value": "4", "count": 1, "visitors": 1}])
    );
    assert_eq!(
        top("property=theme&event_type=pageview").await["values"],
        json!([])
    );
    assert_eq!(top("property=nothing").await["values"], json!([]));
    for (bad, field) in [
        ("top?site=test", "property"),
        ("top?site=test&property=", "property"),
        ("timeline?site=test&event_type=tap", "event_type"),
        ("timeline?site=test&until=soon", "until"),
        ("timeline?site=test&limit=1001", "limit"),
    ] {
        let (status, body) = get(&server, bad).await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some(field)),
            "{bad}: {body}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn export_takes_a_kind_and_answers_one_json_array() {
    let server = TestServer::start("ep_export").await;
    let rows = explorer_rows();
    insert(&server, 1, &rows).await;
    insert(&server, 6, &rows[5..6]).await;
    let export = |q: &str| {
        reqwest::Client::new()
            .get(server.url(&format!(
                "/api/v1/export?site=test&from=2026-11-01&to=2026-11-10&{q}"
            )))
            .bearer_auth("test-token")
            .send()
    };
    let resp = export("format=json&event_type=custom").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let all: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    let names: Vec<(&str, &str)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap(),
                e["name"].as_str().unwrap(),
            )
        })
        .collect();
    // Oldest first, the re-sent event once, the bot's left out.
    assert_eq!(
        names,
        [
            ("custom", "theme_change"),
            ("custom", "theme_change"),
            ("custom", "theme_change"),
            ("custom", "letter")
        ]
    );
    assert_eq!(all[3]["props"], r#"{"letter":"A","n":4}"#);
    // An empty answer is an empty array.
    let none = export("format=json&event_type=scroll").await.unwrap();
    assert_eq!(none.text().await.unwrap().trim(), "[]");
    let clicks = export("event_type=click").await.unwrap();
    assert_eq!(clicks.headers()["content-type"], "application/x-ndjson");
    let text = clicks.text().await.unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains(r##""selector":"#go""##), "{text}");
    let csv = export("format=csv&event_type=pageview").await.unwrap();
    assert_eq!(
        csv.text().await.unwrap().lines().count(),
        3,
        "a header and two page views"
    );
    for (q, field) in [("event_type=tap", "event_type"), ("format=xml", "format")] {
        let resp = export(q).await.unwrap();
        assert_eq!(resp.status(), 400, "{q}");
        assert_eq!(crate::json_body(resp).await["field"], field, "{q}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_sessions_analysis_has_its_summary_and_anomalies_by_the_configured_rules() {
    use pathlight_collector::query::analysis::{RepeatedRule, Rule, Severity};
    let server = TestServer::start_with("ep_analysis", |c| {
        // Global: dead clicks matter more than by default; the site: three repeats are enough.
        c.anomalies.dead = Some(Rule {
            enabled: None,
            severity: Some(Severity::Medium),
        });
        c.sites[0].anomalies.repeated = Some(RepeatedRule {
            min: Some(3),
            severity: Some(Severity::High),
            ..RepeatedRule::default()
        });
    })
    .await;
    let img = |ms| Row {
        tag: "img",
        ..Row::click("2026-11-09 10:00:10", ms, "q1", "#img", 50)
    };
    let mut rows = vec![row("pageview", "2026-11-09 10:00:00", "q1", 1).path("/f")];
    rows.extend(
        ["02", "04", "06"]
            .map(|s| Row::click(&format!("2026-11-09 10:00:{s}"), 0, "q1", "#save", 10).path("/f")),
    );
    rows.extend([img(0), img(100), img(200)].map(|r| r.path("/f")));
    // q2 clicks twice and leaves its page: closed, nothing unusual.
    rows.extend([
        row("pageview", "2026-11-09 11:00:00", "q2", 2),
        Row::click("2026-11-09 11:00:02", 0, "q2", "#save", 10),
        Row::click("2026-11-09 11:00:04", 0, "q2", "#save", 10),
        row("engagement", "2026-11-09 11:00:05", "q2", 2),
    ]);
    insert(&server, 1, &rows).await;
    let range = "site=test&from=2026-11-01&to=2026-11-10";
    let at = |secs: u64, ms: u64| {
        pathlight_collector::dates::days_from_civil(2026, 11, 9) as u64 * 86_400_000
            + 36_000_000
            + secs * 1000
            + ms
    };
    let q1 = server.api(&format!("sessions/q1/analysis?{range}")).await;
    assert_eq!(
        q1["summary"],
        json!({
            "start_ms": at(0, 0), "end_ms": at(10, 200), "duration_secs": 10.2, "pages": 1,
            "events": {"pageview": 1, "click": 6, "total": 7},
            "entry": "/f", "exit": "/f", "ended": "timed_out"
        })
    );
    let found: Vec<(&str, &str, u64, &str, u64)> = q1["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["rule"].as_str().unwrap(),
                a["severity"].as_str().unwrap(),
                a["at_ms"].as_u64().unwrap(),
                a["what"].as_str().unwrap(),
                a["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("repeated", "high", at(2, 0), "click /f #save", 3),
            ("dead", "medium", at(10, 0), "#img", 3),
            ("rage", "high", at(10, 0), "#img", 3),
            ("missing_close", "low", at(10, 200), "", 1),
        ],
        "{q1}"
    );
    assert_eq!(q1["severity"], "high");
    let q2 = server.api(&format!("sessions/q2/analysis?{range}")).await;
    assert_eq!(q2["summary"]["ended"], "closed");
    assert_eq!(
        (&q2["anomalies"], &q2["severity"]),
        (&json!([]), &Value::Null)
    );
    let none = server
        .api(&format!("sessions/nobody/analysis?{range}"))
        .await;
    assert_eq!(
        none,
        json!({"session_id": "nobody", "summary": null, "anomalies": [], "severity": null})
    );
    let (status, body) = get(&server, &format!("sessions/q1/analysis?{range}&limit=3")).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (400, Some("unknown_param"))
    );
    server.stop().await;
}

#[tokio::test]
async fn the_anomaly_lists_and_their_rollup_take_the_sites_repeated_rule() {
    use pathlight_collector::query::analysis::RepeatedRule;
    use pathlight_collector::query::{Repeats, rollup};
    // The site counts a fourth retry, not a third (the default).
    let server = TestServer::start_with("ep_repeat_rule", |c| {
        c.sites[0].anomalies.repeated = Some(RepeatedRule {
            min: Some(4),
            ..RepeatedRule::default()
        });
    })
    .await;
    let save = |at: &str, ms, session| Row::click(at, ms, session, "#save", 10).path("/f");
    let rows = vec![
        // r3: Save three times, seconds apart: enough by default, not for this site.
        row("pageview", "2026-11-09 10:00:00", "r3", 1).path("/f"),
        save("2026-11-09 10:00:02", 0, "r3"),
        save("2026-11-09 10:00:04", 0, "r3"),
        save("2026-11-09 10:00:06", 0, "r3"),
        // r4: four times, the second a double click (its fast repeat folded into it, as the
        // session analysis folds it): one action a fourth time.
        row("pageview", "2026-11-09 11:00:00", "r4", 2).path("/f"),
        save("2026-11-09 11:00:02", 0, "r4"),
        save("2026-11-09 11:00:04", 0, "r4"),
        save("2026-11-09 11:00:04", 150, "r4"),
        save("2026-11-09 11:00:06", 0, "r4"),
        save("2026-11-09 11:00:08", 0, "r4"),
    ];
    insert(&server, 1, &rows).await;
    let range = "site=test&from=2026-11-01&to=2026-11-10";
    let want = json!([{"session_id": "r4", "events": 6, "rapid": 0, "repeated": 1, "loops": 0}]);
    let live = server.api(&format!("anomalies?{range}&exact=true")).await;
    assert_eq!(live["sessions"], want, "{live}");
    // The session analysis finds the same run, by the same rule.
    let r4 = server.api(&format!("sessions/r4/analysis?{range}")).await;
    assert_eq!(r4["anomalies"][0]["rule"], "repeated", "{r4}");
    assert_eq!(r4["anomalies"][0]["count"], 4, "{r4}");
    let r3 = server.api(&format!("sessions/r3/analysis?{range}")).await;
    let rules: Vec<&Value> = r3["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["rule"])
        .collect();
    assert_eq!(rules, [&json!("missing_close")], "{r3}");
    // The rollup applies each site's rule: the rolled answer is the live one.
    let repeats = Repeats {
        sites: vec![("test".into(), (4, 1000))],
        ..Repeats::default()
    };
    let today = pathlight_collector::dates::days_from_civil(2026, 11, 9) + 2;
    let rolled = rollup::roll(&server.db, &server.clickhouse, &repeats, 0, today)
        .await
        .unwrap();
    assert!(!rolled.behaviour.is_empty(), "{rolled:?}");
    let from_rollup = server.api(&format!("anomalies?{range}")).await;
    assert_eq!(from_rollup["sessions"], want, "{from_rollup}");
    server.stop().await;
}

/// One event of a retention story: (`YYYY-MM-DD HH:MM:SS` UTC, session, visitor id, user id,
/// bot).
type Seen = (&'static str, &'static str, u64, &'static str, u8);

/// Inserts page views of `site` as the pipeline would have stored them, ids from `first`.
async fn insert_seen(server: &TestServer, site: &str, first: usize, rows: &[Seen]) {
    let values: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, (at, session, visitor, user, bot))| {
            format!(
                "('{site}', toUUID('00000000-0000-0000-0000-{:012}'), 'pageview', toDateTime('{at}', 'UTC'), \
                 '{session}', {visitor}, '{user}', '/', 'desktop', {bot})",
                first + i
            )
        })
        .collect();
    server
        .db
        .query(&format!(
            "INSERT INTO events (site_id, event_id, event_type, timestamp, session_id, visitor_id, user_id, \
             path, device, is_bot) VALUES {}",
            values.join(", ")
        ))
        .execute()
        .await
        .unwrap();
}

/// A cohort of a `retention` answer: (week, users, active, share).
type Cohort = (String, u64, Vec<u64>, Vec<Option<f64>>);

/// Each cohort of a `retention` answer.
fn cohorts(r: &Value) -> Vec<Cohort> {
    r["cohorts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["week"].as_str().unwrap().to_owned(),
                c["users"].as_u64().unwrap(),
                c["active"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_u64().unwrap())
                    .collect(),
                c["share"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(Value::as_f64)
                    .collect(),
            )
        })
        .collect()
}

/// Known users first seen in different weeks (Mondays 2026-10-05, -12, -19, -26) and back in
/// others; anonymous visitors back the same day in a new session, in two tabs at once, and over
/// midnight.
fn retention_story() -> Vec<Seen> {
    vec![
        // Seen first before the range: in no cohort of it, though active in it.
        ("2026-09-20 10:00:00", "k0", 90, "early", 0),
        ("2026-10-13 10:00:00", "k0b", 91, "early", 0),
        // Week 0: u1 (back in weeks 1 and 3), u2 at the week's last second (back in week 2).
        ("2026-10-05 09:00:00", "k1", 1, "u1", 0),
        ("2026-10-13 09:00:00", "k1b", 11, "u1", 0),
        ("2026-10-27 09:00:00", "k1c", 12, "u1", 0),
        ("2026-10-11 23:59:59", "k2", 2, "u2", 0),
        ("2026-10-20 08:00:00", "k2b", 21, "u2", 0),
        // Week 1: u3 at its first second (again that week, and in week 2); u7 from another
        // visitor id and device each time, back in week 3.
        ("2026-10-12 00:00:00", "k3", 3, "u3", 0),
        ("2026-10-15 12:00:00", "k3b", 31, "u3", 0),
        ("2026-10-21 12:00:00", "k3c", 32, "u3", 0),
        ("2026-10-14 12:00:00", "k7", 70, "u7", 0),
        ("2026-10-30 12:00:00", "k7b", 71, "u7", 0),
        // Week 2: u4, back only after the range. Week 3: u5.
        ("2026-10-19 10:00:00", "k4", 4, "u4", 0),
        ("2026-11-03 10:00:00", "k4b", 41, "u4", 0),
        ("2026-10-27 10:00:00", "k5", 5, "u5", 0),
        // A bot with a user id is in no cohort.
        ("2026-10-06 10:00:00", "k6", 6, "u6", 1),
        // Anonymous, 10-06: visitor 100 back at 14:00 in a new session; visitor 101 in two
        // tabs at once (no return); 10-07: visitor 102 once.
        ("2026-10-06 10:00:00", "a1", 100, "", 0),
        ("2026-10-06 10:05:00", "a1", 100, "", 0),
        ("2026-10-06 14:00:00", "a2", 100, "", 0),
        ("2026-10-06 14:10:00", "a2", 100, "", 0),
        ("2026-10-06 10:00:00", "b1", 101, "", 0),
        ("2026-10-06 10:30:00", "b1", 101, "", 0),
        ("2026-10-06 10:10:00", "b2", 101, "", 0),
        ("2026-10-06 10:20:00", "b2", 101, "", 0),
        ("2026-10-07 10:00:00", "c1", 102, "", 0),
        // 10-13: visitor 103 in two overlapping tabs, then back at 20:00; visitor 104 signed
        // in in one of its sessions (no anonymous visitor-day); a bot back twice.
        ("2026-10-13 09:00:00", "d1", 103, "", 0),
        ("2026-10-13 09:01:00", "d1", 103, "", 0),
        ("2026-10-13 09:00:30", "d2", 103, "", 0),
        ("2026-10-13 09:02:00", "d2", 103, "", 0),
        ("2026-10-13 20:00:00", "d3", 103, "", 0),
        ("2026-10-13 08:00:00", "e1", 104, "u3", 0),
        ("2026-10-13 18:00:00", "e2", 104, "", 0),
        ("2026-10-13 08:00:00", "f1", 105, "", 1),
        ("2026-10-13 18:00:00", "f2", 105, "", 1),
        // A session over midnight: a visitor id each day, one session on each, no return.
        ("2026-10-14 23:50:00", "g1", 106, "", 0),
        ("2026-10-15 00:10:00", "g1", 107, "", 0),
    ]
}

#[tokio::test]
async fn retention_counts_cohorts_of_known_users_by_week_and_anonymous_returns_within_a_day() {
    let server = TestServer::start("ep_retention").await;
    let story = retention_story();
    insert_seen(&server, "test", 1, &story).await;
    // A re-sent event changes nothing.
    insert_seen(&server, "test", 1, &story[2..3]).await;
    // A Wednesday to a Wednesday: their whole weeks.
    let r = server
        .api("retention?site=test&from=2026-10-07&to=2026-10-28")
        .await;
    assert_eq!(
        (
            &r["timezone"],
            &r["from"],
            &r["to"],
            &r["truncated"],
            &r["partial_week"]
        ),
        (
            &json!("UTC"),
            &json!("2026-10-05"),
            &json!("2026-11-01"),
            &json!(false),
            &Value::Null
        )
    );
    let (h, q) = (Some(0.5), Some(1.0));
    assert_eq!(
        cohorts(&r),
        [
            ("2026-10-05".into(), 2, vec![2, 1, 1, 1], vec![q, h, h, h]),
            ("2026-10-12".into(), 2, vec![2, 1, 1], vec![q, h, h]),
            ("2026-10-19".into(), 1, vec![1, 0], vec![q, Some(0.0)]),
            ("2026-10-26".into(), 1, vec![1], vec![q]),
        ]
    );
    let anonymous = &r["anonymous"];
    assert_eq!(
        anonymous["weeks"],
        json!([
            {"week": "2026-10-05", "visitor_days": 3, "returning": 1, "sessions": 5},
            {"week": "2026-10-12", "visitor_days": 3, "returning": 1, "sessions": 5},
            {"week": "2026-10-19", "visitor_days": 0, "returning": 0, "sessions": 0},
            {"week": "2026-10-26", "visitor_days": 0, "returning": 0, "sessions": 0},
        ])
    );
    assert_eq!(
        (
            &anonymous["visitor_days"],
            &anonymous["returning"],
            &anonymous["returning_share"],
            &anonymous["sessions"],
            &anonymous["sessions_per_visitor_day"]
        ),
        (
            &json!(6),
            &json!(2),
            &json!(2.0 / 6.0),
            &json!(10),
            &json!(10.0 / 6.0)
        )
    );
    assert!(
        anonymous["not_counted"]
            .as_str()
            .unwrap()
            .starts_with("Returns on another day"),
        "{anonymous}"
    );

    // Over more than 104 weeks: the last 104, the earliest user's cohort among them.
    let long = server
        .api("retention?site=test&from=2020-01-01&to=2026-10-28")
        .await;
    let all = cohorts(&long);
    assert_eq!((all.len(), &long["truncated"]), (104, &json!(true)));
    assert_eq!(long["from"], "2024-11-04");
    let early = all.iter().find(|c| c.0 == "2026-09-14").unwrap();
    assert_eq!(early.2, [1, 0, 0, 0, 1, 0, 0], "early: seen again on 10-13");
    assert_eq!(
        &all[100..],
        cohorts(&r),
        "the range's own cohorts unchanged"
    );
    assert_eq!(all.iter().map(|c| c.1).sum::<u64>(), 7);

    // Without `to`: up to today's week, which is under way.
    let today = pathlight_collector::dates::unix_day(pathlight_collector::dates::now_ms());
    let monday = today - (today + 3).rem_euclid(7);
    let civil = pathlight_collector::dates::civil;
    let now = server.api("retention?site=test&from=2026-10-07").await;
    assert_eq!(
        (&now["partial_week"], &now["to"]),
        (&json!(civil(monday)), &json!(civil(monday + 6)))
    );
    let weeks = cohorts(&now);
    let first = pathlight_collector::dates::days_from_civil(2026, 10, 5);
    assert_eq!(weeks.len() as i64, (monday - first) / 7 + 1);
    assert_eq!(weeks[0].2[..5], [2, 1, 1, 1, 0]);
    assert_eq!(weeks[2].2[..3], [1, 0, 1], "u4 back after the range");

    // A range with no week; parameters it does not take; a date-time.
    let empty = server
        .api("retention?site=test&from=2026-10-28&to=2026-10-07")
        .await;
    assert_eq!(cohorts(&empty), []);
    assert_eq!(empty["anonymous"]["weeks"], json!([]));
    for (q, field) in [
        ("retention?site=test&period=week", "period"),
        ("retention?site=test&exact=true", "exact"),
        ("retention?site=test&from=2026-10-07T00:00:00Z", "from"),
        ("retention?site=test&to=2026-10-32", "to"),
        ("retention?site=", "site"),
    ] {
        let (status, body) = get(&server, q).await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some(field)),
            "{q}: {body}"
        );
    }
    let unauthorized = reqwest::Client::new()
        .get(server.url("/api/v1/retention?site=test"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    server.stop().await;
}

#[tokio::test]
async fn retention_weeks_are_the_sites_time_zones() {
    let server = TestServer::start("ep_retention_tz").await;
    let base = server.url("");
    let client = reqwest::Client::new();
    let setup = client
        .post(server.url("/api/v1/setup"))
        .header("origin", &base)
        .body(json!({"email": "ada@example.com", "password": "correct horse battery"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(setup.status(), 201);
    let cookie = setup.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let made = client
        .post(server.url("/api/v1/sites"))
        .header("origin", &base)
        .header("cookie", &cookie)
        .header("content-type", "application/json")
        .body(
            json!({"id": "tokyo", "origins": ["https://tokyo.example"], "timezone": "Asia/Tokyo"})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201, "{}", made.text().await.unwrap());
    // Tokyo is 9 hours ahead of UTC, all year. t1's first event is on Sunday 10-11 in UTC and
    // Monday 10-12 in Tokyo; t2's return on Sunday 10-18 in UTC, Monday 10-19 in Tokyo.
    insert_seen(
        &server,
        "tokyo",
        1,
        &[
            ("2026-10-11 16:00:00", "t1", 1, "t1", 0),
            ("2026-10-12 10:00:00", "t2", 2, "t2", 0),
            ("2026-10-18 15:30:00", "t2b", 3, "t2", 0),
        ],
    )
    .await;
    let ask = || {
        client
            .get(server.url("/api/v1/retention?site=tokyo&from=2026-10-12&to=2026-10-25"))
            .header("cookie", &cookie)
            .send()
    };
    let mut tries = 0;
    let r = loop {
        let resp = ask().await.unwrap();
        if resp.status() == 200 {
            break crate::json_body(resp).await;
        }
        // The new site is heard of within `refresh_ms`.
        tries += 1;
        assert!(tries < 50, "{}", resp.status());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(r["timezone"], "Asia/Tokyo");
    assert_eq!(
        cohorts(&r),
        [
            (
                "2026-10-12".into(),
                2,
                vec![2, 1],
                vec![Some(1.0), Some(0.5)]
            ),
            ("2026-10-19".into(), 0, vec![0], vec![None]),
        ]
    );
    server.stop().await;
}
