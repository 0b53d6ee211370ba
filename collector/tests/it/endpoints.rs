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
        .map(|r| (r["selector"].as_str().unwrap(), r["count"].as_u64().unwrap()))
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
        assert!(matches!(body["field"].as_str(), Some("from" | "to")), "{body}");
    }
    server.stop().await;
}
