//! The query API answers exactly for crafted traffic whose figures are known.

use crate::TestServer;
use pathlight_collector::dates::now_ms;
use pathlight_wire::{Click, EventKind, Id, Props, RawBatch, RawEvent, Size, cbor};
use serde_json::{Value, json};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
const BOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

struct Session {
    ua: &'static str,
    id: &'static str,
    width: u32,
    /// (ms after the session's start, path, event)
    events: Vec<(i64, &'static str, Ev)>,
}

/// An event of a session: its kind and its properties.
#[derive(Clone)]
struct Ev(EventKind, Props);

impl From<EventKind> for Ev {
    fn from(kind: EventKind) -> Ev {
        Ev(kind, Props::default())
    }
}

fn click(x: i32, y: i32, rel_x: f32) -> Ev {
    Ev::from(EventKind::Click(Click {
        x,
        y,
        element_id: Some("buy".into()),
        selector: "#buy".into(),
        tag: "button".into(),
        text: Some("Buy".into()),
        rel_x,
        rel_y: 0.5,
        element_box: [0, 180, 400, 40],
        ..Click::default()
    }))
}

fn batch(n: u8, s: &Session, start: i64) -> Vec<u8> {
    batch_at("test", n, s, start, start + 20_000)
}

/// Session `s`'s events as one batch of `site` (numbered `n`) sent at `sent_at`.
fn batch_at(site: &str, n: u8, s: &Session, start: i64, sent_at: i64) -> Vec<u8> {
    let events = s
        .events
        .iter()
        .enumerate()
        .map(|(i, (at, path, Ev(kind, props)))| RawEvent {
            id: Id([n, i as u8, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]),
            timestamp: start + at,
            session_id: s.id.into(),
            url: format!("https://shop.example{path}"),
            referrer: Some("https://news.example/article".into()),
            title: None,
            viewport: Size { w: s.width, h: 800 },
            document: Size { w: 1000, h: 3000 },
            user_id: None,
            user_agent: None,
            event_title: None,
            props: props.clone(),
            kind: kind.clone(),
        })
        .collect();
    cbor::encode(&RawBatch {
        version: 1,
        site_id: site.into(),
        sent_at,
        batch_id: Id([n; 16]),
        events,
    })
}

/// Sends a request; its status and JSON body.
async fn answer(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap(),
    )
}

/// Posts each session as one batch from its browser.
async fn send(server: &TestServer, client: &reqwest::Client, sessions: &[Session], start: i64) {
    for (n, s) in sessions.iter().enumerate() {
        let resp = client
            .post(server.url("/v1/batch"))
            .header("user-agent", s.ua)
            .body(batch(n as u8, s, start))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }
}

#[tokio::test]
async fn heatmap_elements_and_stats_have_the_known_answers() {
    let server = TestServer::start("api").await;
    let client = reqwest::Client::new();
    let sessions = [
        Session {
            ua: CHROME,
            id: "s1",
            width: 1440,
            events: vec![
                (0, "/pricing", EventKind::Pageview.into()),
                (1_000, "/pricing", click(100, 200, 0.25)),
                (
                    2_000,
                    "/pricing",
                    EventKind::Scroll { max_depth_pct: 80 }.into(),
                ),
                (10_000, "/checkout", EventKind::Pageview.into()),
            ],
        },
        Session {
            ua: IPHONE,
            id: "s2",
            width: 375,
            events: vec![
                (0, "/pricing", EventKind::Pageview.into()),
                (500, "/pricing", click(300, 200, 0.75)),
                (600, "/pricing", click(300, 201, 0.75)),
                (
                    2_000,
                    "/pricing",
                    EventKind::Scroll { max_depth_pct: 40 }.into(),
                ),
            ],
        },
        Session {
            ua: CHROME,
            id: "s3",
            width: 1440,
            events: vec![(0, "/pricing", EventKind::Pageview.into())],
        },
        Session {
            ua: BOT,
            id: "bot",
            width: 1440,
            events: vec![(0, "/pricing", EventKind::Pageview.into())],
        },
    ];
    // Twenty seconds ago: well inside today unless the test runs across midnight UTC.
    let start = now_ms() - 20_000;
    send(&server, &client, &sessions, start).await;
    let get = |q: &str, token: Option<&str>| {
        let req = client.get(server.url(&format!("/api/v1/{q}")));
        answer(match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        })
    };
    let ok = |q: &'static str| {
        let get = &get;
        async move {
            let (status, body) = get(q, Some("test-token")).await;
            assert_eq!(status, 200, "{q}: {body}");
            body
        }
    };

    let stats = ok("stats?site=test").await;
    assert_eq!(stats["visitors"], 2, "{stats}");
    assert_eq!(stats["sessions"], 3);
    assert_eq!(stats["pageviews"], 4);
    assert_eq!(stats["events"], 9);
    assert!(
        (stats["avg_session_secs"].as_f64().unwrap() - 4.0).abs() < 1e-9,
        "{stats}"
    );
    assert!((stats["bounce_rate"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(
        stats["pages"],
        json!([{"key": "/pricing", "count": 3}, {"key": "/checkout", "count": 1}])
    );
    assert_eq!(
        stats["devices"],
        json!([{"key": "desktop", "count": 3}, {"key": "mobile", "count": 1}])
    );
    assert_eq!(
        stats["referrers"],
        json!([{"key": "news.example", "count": 4}])
    );
    assert_eq!(stats["series"].as_array().unwrap().len(), 1);
    assert_eq!(stats["series"][0]["pageviews"], 4);
    assert_eq!(stats["entries"], json!([{"key": "/pricing", "count": 3}]));
    assert_eq!(
        stats["exits"],
        json!([{"key": "/pricing", "count": 2}, {"key": "/checkout", "count": 1}])
    );
    // Two visitors today so far, the same two over the week and the month ending now; the
    // 29 complete days of the default range had nobody: no average.
    let today = pathlight_collector::dates::civil(pathlight_collector::dates::unix_day(start));
    assert_eq!(
        stats["active"]["today"],
        json!({"day": today, "dau": 2, "wau": 2, "mau": 2, "complete": false})
    );
    assert_eq!(
        (&stats["active"]["dau"], &stats["active"]["days"]),
        (&Value::Null, &json!(0))
    );
    assert_eq!(stats["active"]["series"].as_array().unwrap().len(), 30);
    assert_eq!(stats["series"][0]["complete"], false, "today is under way");
    let hourly = ok("stats?site=test&interval=hour").await;
    let hour = hourly["series"][0]["day"].as_str().unwrap().to_owned();
    assert!(hour.ends_with(":00:00") && hour.len() == 19, "{hour}");

    let el = ok("elements?site=test&path=/pricing").await;
    assert_eq!(el["views"], 3, "{el}");
    let buy = &el["elements"][0];
    assert_eq!(
        (buy["selector"].as_str(), buy["element_id"].as_str()),
        (Some("#buy"), Some("buy"))
    );
    assert_eq!(
        (buy["clicks"].as_u64(), buy["clickers"].as_u64()),
        (Some(3), Some(2))
    );
    assert!((buy["ctr"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    assert!((buy["avg_rel_x"].as_f64().unwrap() - (0.25 + 0.75 + 0.75) / 3.0).abs() < 1e-6);

    let hm = ok("heatmap?site=test&path=/pricing").await;
    assert_eq!(hm["clicks"], 3, "{hm}");
    assert_eq!(
        hm["points"],
        json!([{"x": 0.3, "y": 200, "n": 2, "fixed": 0}, {"x": 0.1, "y": 200, "n": 1, "fixed": 0}])
    );
    assert_eq!(
        hm["anchored"],
        json!([{"selector": "#buy", "rel_x": 0.75, "rel_y": 0.5, "n": 2}, {"selector": "#buy", "rel_x": 0.25, "rel_y": 0.5, "n": 1}])
    );
    let reach: Vec<f64> = hm["scroll_reach"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(
        reach,
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.0, 0.0]
    );

    assert_eq!(
        ok("heatmap?site=test&path=/pricing&width=375").await["clicks"],
        2
    );
    // Layers not asked for come back empty.
    let clicks_only = ok("heatmap?site=test&path=/pricing&layers=clicks").await;
    assert_eq!(clicks_only["points"], hm["points"]);
    assert_eq!(clicks_only["scroll_reach"][0], 0.0);
    let (status, body) = get(
        "heatmap?site=test&path=/pricing&layers=clicks,fun",
        Some("test-token"),
    )
    .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("layers")));
    assert_eq!(
        ok("heatmap?site=test&path=/pricing&device=desktop").await["clicks"],
        1
    );
    assert_eq!(
        ok("heatmap?site=test&path=/pricing&from=2020-01-01&to=2020-01-31").await["clicks"],
        0
    );

    let (status, body) = get("stats?site=test", None).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = get("stats?site=test", Some("test-tokem")).await;
    assert_eq!(status, 401);
    let (status, body) = get("heatmap?site=test", Some("test-token")).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("path")),
        "{body}"
    );
    let (status, body) = get("stats?site=test&from=2026-02-30", Some("test-token")).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("from")));
    let (status, body) = get("funnel?site=test&steps=/only", Some("test-token")).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("steps")));
    let (status, body) = get("stats?site=test&interval=week", Some("test-token")).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("interval")));
    let (status, _) = get("nope?site=test", Some("test-token")).await;
    assert_eq!(status, 404);
    // Other products' parameters are refused by name, never ignored (the default range would
    // answer as if they had been applied).
    for (q, names) in [
        ("stats?site=test&start_date=2026-01-01", "start_date"),
        ("stats?site=test&hours=24&days=1", "hours, days"),
        ("export?site=test&page_url=/x", "page_url"),
        ("heatmap?site=test&path=/pricing&page_url=/x", "page_url"),
        ("realtime/stream?site=test&from=2026-01-01", "from"),
    ] {
        let (status, body) = get(q, Some("test-token")).await;
        assert_eq!(
            (status, body["reason"].as_str()),
            (400, Some("unknown_param")),
            "{q}"
        );
        let first = names.split(", ").next().unwrap();
        assert_eq!(body["field"], first, "{q}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains(&format!(" {names}: this endpoint takes site")),
            "{error}"
        );
    }
    // A range with no day in it is empty, not an error.
    let reversed = ok("heatmap?site=test&path=/pricing&from=2026-11-02&to=2026-11-01").await;
    assert_eq!(reversed["clicks"], 0);
    assert_eq!(
        ok("stats?site=test&from=0001-01-01&to=9999-12-31").await["pageviews"],
        ok("stats?site=test&from=1970-01-01&to=2100-12-31").await["pageviews"],
    );
    // A method the path does not take: 405, naming the ones it does.
    let client = reqwest::Client::new();
    for (method, path, allow) in [
        ("TRACE", "/api/v1/stats?site=test", "GET"),
        ("DELETE", "/api/v1/sessions/s1?site=test", "GET"),
        ("HEAD", "/api/v1/openapi.json", "GET"),
        ("PUT", "/v1/batch", "OPTIONS, POST"),
    ] {
        let resp = client
            .request(method.parse().unwrap(), server.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405, "{method} {path}");
        assert_eq!(resp.headers()["allow"], allow, "{method} {path}");
    }
    // A value that would break out of a quoted literal if spliced: bound, it matches nothing.
    let (status, body) = get(
        "heatmap?site=test&path=/x'%20OR%201=1%20--",
        Some("test-token"),
    )
    .await;
    assert_eq!((status, body["clicks"].as_u64()), (200, Some(0)), "{body}");
    server.stop().await;
}

#[tokio::test]
async fn the_live_feed_streams_stored_events_and_the_openapi_document_lists_every_endpoint() {
    let server = TestServer::start("live").await;
    let client = reqwest::Client::new();
    // The overlay's way in: a live token from the API, then the stream without the API token.
    let (status, issued) = answer(
        client
            .get(server.url("/api/v1/live-token?site=test"))
            .bearer_auth("test-token"),
    )
    .await;
    assert_eq!(status, 200, "{issued}");
    let token = issued["token"].as_str().unwrap();
    assert!(issued["expires_at"].as_u64().unwrap() > now_ms() as u64 / 1000 + 3000);
    for refused in [
        "/api/v1/realtime/stream?site=test".to_owned(),
        "/api/v1/realtime/stream?site=test&token=1.00".to_owned(),
        format!("/api/v1/realtime/stream?site=other&token={token}"),
        "/api/v1/live-token?site=test".to_owned(),
    ] {
        let status = client
            .get(server.url(&refused))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401, "{refused}");
    }
    let mut live = client
        .get(server.url(&format!("/api/v1/realtime/stream?site=test&token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    assert_eq!(
        &live.chunk().await.unwrap().unwrap()[..],
        b": connected\n\n"
    );
    let s = Session {
        ua: CHROME,
        id: "live",
        width: 1440,
        events: vec![
            (0, "/live", EventKind::Pageview.into()),
            (5, "/live", click(1, 2, 0.5)),
        ],
    };
    let resp = client
        .post(server.url("/v1/batch"))
        .header("user-agent", CHROME)
        .body(batch(9, &s, now_ms() - 1_000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let mut text = String::new();
    while text.matches("data: ").count() < 2 {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), live.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["kind"], "pageview");
    assert_eq!(
        (
            events[1]["kind"].as_str(),
            events[1]["selector"].as_str(),
            events[1]["path"].as_str()
        ),
        (Some("click"), Some("#buy"), Some("/live"))
    );

    let doc: Value = serde_json::from_slice(
        &client
            .get(server.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/actions",
            "/anomalies",
            "/elements",
            "/export",
            "/funnel",
            "/heatmap",
            "/invitations/accept",
            "/live-token",
            "/openapi.json",
            "/overlay-token",
            "/patterns",
            "/realtime",
            "/realtime/stream",
            "/realtime/ws",
            "/retention",
            "/search",
            "/sessions",
            "/sessions/{id}",
            "/sessions/{id}/analysis",
            "/shares/open",
            "/site",
            "/sites",
            "/sites/{id}",
            "/sites/{id}/invitations",
            "/sites/{id}/invitations/{invitation_id}",
            "/sites/{id}/keys",
            "/sites/{id}/keys/{key_id}",
            "/sites/{id}/members",
            "/sites/{id}/members/{account_id}",
            "/sites/{id}/shares",
            "/sites/{id}/shares/{share_id}",
            "/stats",
            "/timeline",
            "/top",
            "/users/{user_id}/events",
            "/viewer-check",
            "/viewer-token"
        ]
    );
    // Shutdown ends the open live stream instead of waiting out the grace period.
    let t = std::time::Instant::now();
    server.stop().await;
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "shutdown took {:?}",
        t.elapsed()
    );
    while let Ok(Some(_)) = live.chunk().await {}
}

fn click_on(selector: &str, tag: &str, x: i32, y: i32) -> Ev {
    Ev::from(EventKind::Click(Click {
        x,
        y,
        selector: selector.into(),
        tag: tag.into(),
        rel_x: 0.5,
        rel_y: 0.5,
        ..Click::default()
    }))
}

fn custom(name: &str) -> Ev {
    custom_with(name, &[])
}

#[tokio::test]
async fn rage_dead_clicks_and_session_anomalies_have_the_known_answers() {
    let server = TestServer::start("anomalies").await;
    let client = reqwest::Client::new();
    let mut r = vec![
        (0, "/pricing", EventKind::Pageview.into()),
        (1_000, "/pricing", click_on("#buy", "button", 100, 200)),
        (1_300, "/pricing", click_on("#buy", "button", 105, 203)),
        (1_600, "/pricing", click_on("#buy", "button", 110, 198)),
        (1_700, "/pricing", click_on("#buy", "button", 102, 200)),
        (1_750, "/pricing", custom("help")),
        (5_000, "/pricing", click_on("#hero", "div", 500, 50)),
        (6_000, "/pricing", click_on("#link", "a", 50, 50)),
    ];
    for (i, name) in ["next", "back", "next", "back", "next", "back"]
        .iter()
        .enumerate()
    {
        r.push((8_000 + 200 * i as i64, "/pricing", custom(name)));
    }
    let sessions = [
        Session {
            ua: CHROME,
            id: "r",
            width: 1440,
            events: r,
        },
        Session {
            ua: IPHONE,
            id: "q",
            width: 375,
            events: vec![
                (0, "/pricing", EventKind::Pageview.into()),
                (1_000, "/pricing", click_on("#hero", "div", 10, 10)),
                (1_400, "/checkout", EventKind::Pageview.into()),
                // Three quick clicks near one spot, but over two pages: not a rage burst.
                (1_500, "/checkout", click_on("#menu", "a", 12, 12)),
                (1_650, "/checkout", click_on("#menu", "a", 11, 13)),
            ],
        },
        Session {
            ua: CHROME,
            id: "s",
            width: 1440,
            events: {
                let mut s = vec![
                    (0, "/list", EventKind::Pageview.into()),
                    // Two elements 40 ms apart: no hand is that fast.
                    (1_000, "/list", click_on("#a", "button", 10, 10)),
                    (1_040, "/list", click_on("#b", "button", 200, 10)),
                    // A label's click passed on to its checkbox at once: one click.
                    (3_000, "/list", click_on("label.agree", "label", 10, 100)),
                    (3_000, "/list", click_on("#agree", "input", 10, 100)),
                ];
                // Save, three times, seconds apart; the page answers each at once.
                for at in [5_000, 7_000, 9_000] {
                    s.push((at, "/list", click_on("#save", "button", 300, 300)));
                    s.push((at + 5, "/list", custom("saved")));
                }
                // Three products seen from the list, then back and forth to the last one.
                for (i, path) in [
                    "/item?id=1",
                    "/list",
                    "/item?id=2",
                    "/list",
                    "/item?id=3",
                    "/list",
                    "/item?id=3",
                    "/list",
                    "/item?id=3",
                ]
                .into_iter()
                .enumerate()
                {
                    s.push((11_000 + 1_000 * i as i64, path, EventKind::Pageview.into()));
                }
                s
            },
        },
    ];
    let start = now_ms() - 20_000;
    send(&server, &client, &sessions, start).await;
    let get = |q: &str| {
        let req = client
            .get(server.url(&format!("/api/v1/{q}")))
            .bearer_auth("test-token");
        async move {
            let (status, body) = answer(req).await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let a = get("anomalies?site=test").await;
    // r: its four quick #buy clicks are a rage burst, not repeated actions; the help event
    // 50 ms after a click is the page's answer, not rapid; next/back three times is a loop.
    // s: one rapid click, one action repeated, one loop of pages (by address: the three
    // products before it are not one).
    assert_eq!(
        a["sessions"],
        json!([
            {"session_id": "s", "events": 20, "rapid": 1, "repeated": 1, "loops": 1},
            {"session_id": "r", "events": 14, "rapid": 0, "repeated": 0, "loops": 1}
        ]),
        "{a}"
    );
    assert_eq!(
        a["rage"],
        json!([{"selector": "#buy", "count": 1, "sessions": 1, "x": 110.0, "y": 198.0}])
    );
    assert_eq!(
        a["dead"],
        json!([{"selector": "#hero", "count": 1, "sessions": 1, "x": 500.0, "y": 50.0}])
    );
    let patterns = get("patterns?site=test").await;
    assert_eq!(patterns["loops"][1]["session_id"], "r");
    assert_eq!(patterns["loops"][1]["loops"], 1);
    // Repeating is the site's `repeated` rule (its `gap_ms`), not the rage threshold.
    let slow = get("anomalies?site=test&rage_ms=2500").await;
    assert_eq!(slow["sessions"][0]["repeated"], 1, "{slow}");
    // Stricter thresholds: three clicks within 200 ms never happened.
    let strict = get("anomalies?site=test&rage_ms=200").await;
    assert_eq!(strict["rage"], json!([]));
    let hm = get("heatmap?site=test&path=/pricing").await;
    assert_eq!(hm["rage"][0]["selector"], "#buy");
    assert_eq!(hm["dead"][0]["selector"], "#hero");
    server.stop().await;
}

#[tokio::test]
async fn actions_and_a_users_timeline_across_sessions() {
    let key = "the-shop-server-key";
    let server = TestServer::start_with("actions", |c| {
        c.sites[0].ingest_keys_sha256 = vec![pathlight_collector::query::auth::digest_hex(key)];
    })
    .await;
    let client = reqwest::Client::new();
    let start = now_ms() - 20_000;
    let sessions = [
        Session {
            ua: CHROME,
            id: "a1",
            width: 1440,
            events: vec![
                (0, "/home", EventKind::Pageview.into()),
                (100, "/home", click_on("#buy", "button", 1, 1)),
                (200, "/home", custom("signup")),
            ],
        },
        Session {
            ua: IPHONE,
            id: "a2",
            width: 375,
            events: vec![
                (5_000, "/home", click_on("#buy", "button", 1, 1)),
                (5_050, "/pricing", EventKind::Pageview.into()),
            ],
        },
        // The same path as a1, later: a pattern shared by two sessions.
        Session {
            ua: CHROME,
            id: "a3",
            width: 1440,
            events: vec![
                (9_000, "/home", EventKind::Pageview.into()),
                (9_100, "/home", click_on("#buy", "button", 1, 1)),
                (9_200, "/home", custom("signup")),
            ],
        },
    ];
    for (n, s) in sessions.iter().enumerate() {
        // Both sessions belong to the signed-in user u7.
        let mut b = cbor::decode(
            &batch(n as u8, s, start),
            &pathlight_wire::Limits::default(),
        )
        .unwrap();
        b.events
            .iter_mut()
            .for_each(|e| e.user_id = Some("u7".into()));
        let resp = client
            .post(server.url("/v1/batch"))
            .header("user-agent", s.ua)
            .body(cbor::encode(&b))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }
    // The site's server says who u7 is, then says it again: the latest traits win.
    for plan in ["free", "pro"] {
        let resp = client
            .post(server.url("/v1/identify"))
            .header("x-api-key", key)
            .body(json!({"site": "test", "user_id": "u7", "traits": {"plan": plan}}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }
    let get = |q: &str| {
        answer(
            client
                .get(server.url(&format!("/api/v1/{q}")))
                .bearer_auth("test-token"),
        )
    };
    let (status, actions) = get("actions?site=test").await;
    assert_eq!(status, 200);
    assert_eq!(
        actions,
        json!([
            {"action": "click #buy", "path": "/home", "count": 3, "sessions": 3},
            {"action": "custom signup", "path": "/home", "count": 2, "sessions": 2}
        ])
    );
    let (_, all) = get("users/u7/events?site=test").await;
    assert_eq!(
        (&all["user_id"], &all["traits"]),
        (&json!("u7"), &json!({"plan": "pro"}))
    );
    assert!(all["traits_updated_ms"].as_u64().unwrap() > start as u64);
    let seen: Vec<(&str, &str)> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap(),
                e["session_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("pageview", "a1"),
            ("click", "a1"),
            ("custom", "a1"),
            ("click", "a2"),
            ("pageview", "a2"),
            ("pageview", "a3"),
            ("click", "a3"),
            ("custom", "a3")
        ]
    );
    let (_, page) = get("users/u7/events?site=test&limit=2&offset=2").await;
    let types: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["custom", "click"]);
    // The id in the path is percent-decoded, as clients encode it (an e-mail address's `@`).
    let (status, encoded) = get("users/%75%37/events?site=test").await;
    assert_eq!((status, &encoded["events"]), (200, &all["events"]));
    let (_, patterns) = get("patterns?site=test").await;
    let grams: Vec<(Vec<&str>, u64)> = patterns["frequent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["actions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap())
                    .collect(),
                p["sessions"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        grams,
        [
            (
                vec!["pageview:/home:", "click:/home:#buy", "custom:/home:signup"],
                2
            ),
            (vec!["click:/home:#buy", "custom:/home:signup"], 2),
            (vec!["pageview:/home:", "click:/home:#buy"], 2),
        ],
        "{patterns}"
    );
    let (status, body) = get("users/u7/events?site=test&limit=0").await;
    assert_eq!((status, body["field"].as_str()), (400, Some("limit")));
    // Paging stops at 100 k rows deep: the sessions list holds offset + limit rows to page.
    let (status, body) = get("sessions?site=test&offset=100001").await;
    assert_eq!((status, body["field"].as_str()), (400, Some("offset")));
    let (status, nobody) = get("users/nobody/events?site=test").await;
    assert_eq!(status, 200);
    assert_eq!(
        nobody,
        json!({"user_id": "nobody", "traits": null, "traits_updated_ms": null, "events": []})
    );
    // The session explorer's list shows the user's traits beside each of their sessions.
    let (_, listed) = get("sessions?site=test").await;
    let traits: Vec<(&str, &Value)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["session_id"].as_str().unwrap(), &s["traits"]))
        .collect();
    let pro = json!({"plan": "pro"});
    assert_eq!(traits, [("a3", &pro), ("a2", &pro), ("a1", &pro)]);
    server.stop().await;
}

fn custom_with(name: &str, props: &[(&str, pathlight_wire::PropValue)]) -> Ev {
    Ev(
        EventKind::Custom { name: name.into() },
        props
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

/// Posts `sessions` as batches of `site`, numbered from `n`, sent a second after their last
/// event (so that events a minute and more into a session are not ahead of their batch).
async fn send_to(
    server: &TestServer,
    client: &reqwest::Client,
    site: &str,
    n: u8,
    sessions: &[Session],
    start: i64,
) {
    for (i, s) in sessions.iter().enumerate() {
        let last = s.events.iter().map(|e| e.0).max().unwrap_or(0);
        let resp = client
            .post(server.url("/v1/batch"))
            .header("user-agent", s.ua)
            .body(batch_at(site, n + i as u8, s, start, start + last + 1_000))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }
}

/// `/api/v1/search` of `site`, the whole answer.
async fn search_of(server: &TestServer, client: &reqwest::Client, site: &str) -> Value {
    let (status, body) = answer(
        client
            .get(server.url(&format!("/api/v1/search?site={site}")))
            .bearer_auth("test-token"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A query's row of `queries`, as the API answers it.
fn query_row(
    q: &str,
    searches: u64,
    clicks: u64,
    ctr: f64,
    pos: Option<f64>,
    zero: f64,
    refined: f64,
) -> Value {
    json!({"query": q, "searches": searches, "clicks": clicks, "ctr": ctr, "avg_position": pos,
        "zero_result_rate": zero, "refinement_rate": refined})
}

/// Search analytics on ClickHouse 18.16 with known answers, for a site using the default
/// event names (`test`), a site naming its events as a search seed does (`shop`, through
/// `[sites.search]`, with a longer refinement window), and a site with the default names sent
/// the seed's events (`plain`), which therefore has no searches.
///
/// The story, in both namings: session `s` searches "lamp" and clicks the 2nd result, searches
/// "lamp" again and clicks the 1st, searches "unicorn" (no results) and at once "unicorn lamp"
/// (a refinement). Session `t` searches "lamp", views an item without clicking a result,
/// buys it, and 90 s later searches "desk" (a refinement within 120 s, not within 60 s) and
/// clicks the 3rd result (a click with a position and no query).
#[tokio::test]
async fn search_analytics_have_the_known_answers_with_default_and_mapped_names() {
    use pathlight_collector::config::SearchConfig;
    use pathlight_wire::PropValue::{Number as N, Text as T};
    let server = TestServer::start_with("search", |c| {
        let mut shop = c.sites[0].clone();
        shop.id = "shop".into();
        shop.search = SearchConfig {
            search_event: "search_performed".into(),
            click_event: "item_viewed".into(),
            query_property: "q".into(),
            results_property: "results_count".into(),
            position_property: "rank".into(),
            item_property: "product_id".into(),
            view_event: "item_viewed".into(),
            cart_event: "cart_add".into(),
            purchase_event: "order_completed".into(),
            refinement_secs: 120,
        };
        let mut plain = c.sites[0].clone();
        plain.id = "plain".into();
        c.sites.extend([shop, plain]);
    })
    .await;
    let client = reqwest::Client::new();
    let ev = |name: &str, props: &[(&str, pathlight_wire::PropValue)]| custom_with(name, props);

    // Default names.
    let search = |q: &str, n: f64| ev("search", &[("query", T(q.into())), ("results", N(n))]);
    let item = |name: &str, id: &str| ev(name, &[("item_id", T(id.into()))]);
    let default = [
        Session {
            ua: CHROME,
            id: "s",
            width: 1440,
            events: vec![
                (0, "/search", search("lamp", 3.0)),
                (
                    100,
                    "/search",
                    ev(
                        "search_result_click",
                        &[
                            ("query", T("lamp".into())),
                            ("position", N(2.0)),
                            ("item_id", T("L1".into())),
                        ],
                    ),
                ),
                (200, "/item/L1", item("view_item", "L1")),
                (300, "/item/L1", item("add_to_cart", "L1")),
                (400, "/search", search("lamp", 3.0)),
                (
                    500,
                    "/search",
                    ev(
                        "search_result_click",
                        &[
                            ("query", T("lamp".into())),
                            ("position", N(1.0)),
                            ("item_id", T("L2".into())),
                        ],
                    ),
                ),
                (600, "/item/L2", item("view_item", "L2")),
                (700, "/search", search("unicorn", 0.0)),
                (800, "/search", search("unicorn lamp", 2.0)),
            ],
        },
        Session {
            ua: IPHONE,
            id: "t",
            width: 375,
            events: vec![
                (0, "/search", search("lamp", 3.0)),
                (100, "/item/L1", item("view_item", "L1")),
                (200, "/item/L1", item("purchase", "L1")),
                (90_000, "/search", search("desk", 1.0)),
                (
                    90_100,
                    "/search",
                    ev(
                        "search_result_click",
                        &[("position", N(3.0)), ("item_id", T("D1".into()))],
                    ),
                ),
                // Neither query nor position: not taken for a result click.
                (90_200, "/search", item("search_result_click", "D2")),
            ],
        },
    ];
    // A search seed's names.
    let searched = |q: &str, n: f64| {
        ev(
            "search_performed",
            &[("q", T(q.into())), ("results_count", N(n))],
        )
    };
    let product = |name: &str, id: &str| ev(name, &[("product_id", T(id.into()))]);
    let seed = [
        Session {
            ua: CHROME,
            id: "s",
            width: 1440,
            events: vec![
                (0, "/search", searched("lamp", 3.0)),
                (
                    100,
                    "/item/L1",
                    ev(
                        "item_viewed",
                        &[
                            ("q", T("lamp".into())),
                            ("rank", N(2.0)),
                            ("product_id", T("L1".into())),
                        ],
                    ),
                ),
                (300, "/item/L1", product("cart_add", "L1")),
                (400, "/search", searched("lamp", 3.0)),
                (
                    500,
                    "/item/L2",
                    ev(
                        "item_viewed",
                        &[
                            ("q", T("lamp".into())),
                            ("rank", N(1.0)),
                            ("product_id", T("L2".into())),
                        ],
                    ),
                ),
                (700, "/search", searched("unicorn", 0.0)),
                (800, "/search", searched("unicorn lamp", 2.0)),
            ],
        },
        Session {
            ua: IPHONE,
            id: "t",
            width: 375,
            events: vec![
                (0, "/search", searched("lamp", 3.0)),
                // Viewed from elsewhere than the results: no query, no rank.
                (100, "/item/L1", product("item_viewed", "L1")),
                (200, "/item/L1", product("order_completed", "L1")),
                (90_000, "/search", searched("desk", 1.0)),
                (
                    90_100,
                    "/item/D1",
                    ev(
                        "item_viewed",
                        &[("rank", N(3.0)), ("product_id", T("D1".into()))],
                    ),
                ),
            ],
        },
    ];
    let start = now_ms() - 200_000;
    send_to(&server, &client, "test", 0, &default, start).await;
    send_to(&server, &client, "shop", 2, &seed, start).await;
    send_to(&server, &client, "plain", 4, &seed, start).await;

    let (third, sixth) = (1.0 / 3.0, 1.0 / 6.0);
    let queries = |lamp_refined: f64| {
        json!([
            query_row("lamp", 3, 2, 2.0 / 3.0, Some(1.5), 0.0, lamp_refined),
            query_row("desk", 1, 1, 1.0, Some(3.0), 0.0, 0.0),
            query_row("unicorn", 1, 0, 0.0, None, 1.0, 1.0),
            query_row("unicorn lamp", 1, 0, 0.0, None, 0.0, 0.0),
        ])
    };
    let items = |rows: &[(&str, u64, u64, u64, u64)]| {
        Value::Array(
            rows.iter()
                .map(|&(item, from_search, views, carts, purchases)| {
                    let rate = |n: u64| if views == 0 { 0.0 } else { n as f64 / views as f64 };
                    json!({"item": item, "from_search": from_search, "views": views, "add_to_cart": carts,
                        "purchases": purchases, "cart_rate": rate(carts), "purchase_rate": rate(purchases)})
                })
                .collect(),
        )
    };

    let body = search_of(&server, &client, "test").await;
    assert_eq!(
        body["totals"],
        json!({"searches": 6, "sessions": 2, "clicks": 3, "ctr": 0.5, "avg_position": 2.0,
            "zero_result_rate": sixth, "refinements": 1, "refinement_rate": sixth}),
        "{body}"
    );
    assert_eq!(body["queries"], queries(0.0), "{body}");
    assert_eq!(
        body["refinements"],
        json!([{"from": "unicorn", "to": "unicorn lamp", "count": 1}])
    );
    assert_eq!(
        body["items"],
        items(&[
            ("L1", 1, 2, 1, 1),
            ("L2", 1, 1, 0, 0),
            ("D1", 1, 0, 0, 0),
            ("D2", 0, 0, 0, 0)
        ]),
        "{body}"
    );

    // The same story in the seed's names, read through the site's mapping; its 120 s window
    // makes "lamp" then "desk" a refinement.
    let body = search_of(&server, &client, "shop").await;
    assert_eq!(
        body["totals"],
        json!({"searches": 6, "sessions": 2, "clicks": 3, "ctr": 0.5, "avg_position": 2.0,
            "zero_result_rate": sixth, "refinements": 2, "refinement_rate": third}),
        "{body}"
    );
    assert_eq!(body["queries"], queries(third), "{body}");
    assert_eq!(
        body["refinements"],
        json!([{"from": "lamp", "to": "desk", "count": 1}, {"from": "unicorn", "to": "unicorn lamp", "count": 1}])
    );
    assert_eq!(
        body["items"],
        items(&[("L1", 1, 2, 1, 1), ("D1", 1, 1, 0, 0), ("L2", 1, 1, 0, 0)]),
        "{body}"
    );

    // Without the mapping the seed's events are no searches.
    let body = search_of(&server, &client, "plain").await;
    assert_eq!(
        body,
        json!({"totals": {"searches": 0, "sessions": 0, "clicks": 0, "ctr": 0.0, "avg_position": null,
            "zero_result_rate": 0.0, "refinements": 0, "refinement_rate": 0.0},
            "queries": [], "refinements": [], "items": []})
    );
    server.stop().await;
}

/// DAU, WAU and MAU as averages over the range's complete days, from rows whose days are
/// known: each day's figures, days nobody was active in, the users seen before the range,
/// bots, signed-in users whose visitor id changes daily, and today so far kept apart.
#[tokio::test]
async fn active_users_are_averaged_over_the_complete_days() {
    use pathlight_collector::dates::{civil, unix_day};
    let server = TestServer::start("api_active").await;
    let today = unix_day(now_ms());
    // (days before today, user id, visitor id, bot): a signed-in user every day from T-9 to
    // today under a new visitor id each day; anonymous visitors on T-12 (before the range),
    // T-5 and today; a bot on T-3.
    let mut seen: Vec<(i64, &str, u64, u8)> =
        (0..=9).map(|d| (d, "u1", 100 + d as u64, 0)).collect();
    seen.extend([(12, "", 2, 0), (5, "", 3, 0), (0, "", 5, 0), (3, "", 4, 1)]);
    let values: Vec<String> = seen
        .iter()
        .enumerate()
        .map(|(n, (ago, user, visitor, bot))| {
            format!(
                "('test', toUUID('00000000-0000-0000-0000-{n:012}'), 'pageview', toDateTime('{} 00:00:01', 'UTC'), \
                 's{n}', {visitor}, '{user}', '/', 'desktop', {bot})",
                civil(today - ago)
            )
        })
        .collect();
    server
        .db
        .query(&format!(
            "INSERT INTO events (site_id, event_id, event_type, timestamp, session_id, visitor_id, user_id, path, device, is_bot) VALUES {}",
            values.join(", ")
        ))
        .execute()
        .await
        .unwrap();

    let range = |lo: i64, hi: i64| {
        format!(
            "stats?site=test&from={}&to={}",
            civil(today - lo),
            civil(today - hi)
        )
    };
    let figures = |a: &Value| -> Vec<(u64, u64, u64)> {
        a["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["dau"].as_u64().unwrap(),
                    d["wau"].as_u64().unwrap(),
                    d["mau"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let a = server.api(&range(14, 0)).await["active"].clone();
    // T-14 and T-13: nobody yet. T-12: the first visitor, in the week until T-6 and in the
    // month after. From T-9 the user; T-5 one more visitor; today one more.
    let mut want = vec![(0, 0, 0), (0, 0, 0), (1, 1, 1), (0, 1, 1), (0, 1, 1)];
    want.extend([(1, 2, 2); 4]);
    want.push((2, 2, 3));
    want.extend([(1, 2, 3); 4]);
    want.push((2, 3, 4));
    assert_eq!(figures(&a), want, "{a}");
    // Averaged from T-12, the first day with anyone in its window, to yesterday.
    assert_eq!(a["days"], 12);
    let avg = |k: &str| a[k].as_f64().unwrap();
    assert!((avg("dau") - 11.0 / 12.0).abs() < 1e-9, "{a}");
    assert!((avg("wau") - 21.0 / 12.0).abs() < 1e-9, "{a}");
    assert!((avg("mau") - 26.0 / 12.0).abs() < 1e-9, "{a}");
    assert_eq!(
        a["today"],
        json!({"day": civil(today), "dau": 2, "wau": 3, "mau": 4, "complete": false})
    );
    assert_eq!(a["series"][13]["complete"], true);

    // A range that ended yesterday: the same complete days, no today.
    let past = server.api(&range(14, 1)).await["active"].clone();
    assert_eq!(figures(&past), want[..14], "{past}");
    assert_eq!((&past["today"], &past["dau"]), (&Value::Null, &a["dau"]));
    // Only today: nothing complete to average.
    let now = server.api(&range(0, 0)).await["active"].clone();
    assert_eq!((&now["dau"], &now["days"]), (&Value::Null, &json!(0)));
    assert_eq!(now["today"]["mau"], 4);
}

/// A funnel's known answer: who reached each step in order, and the median time between
/// steps; a session doing steps out of order, one re-sending a step's event, and other pages
/// and events in between change nothing they should not.
#[tokio::test]
async fn a_funnel_counts_the_sessions_that_did_the_steps_in_order() {
    let server = TestServer::start("funnel_known").await;
    let client = reqwest::Client::new();
    let pv = |at: i64, path: &'static str| (at, path, EventKind::Pageview.into());
    let sessions = [
        // /a → /b → /c, 10 s then 20 s, with a click and another page in between.
        Session {
            ua: CHROME,
            id: "f1",
            width: 1440,
            events: vec![
                pv(0, "/a"),
                (3_000, "/a", click(1, 1, 0.5)),
                pv(5_000, "/x"),
                pv(10_000, "/b"),
                pv(30_000, "/c"),
            ],
        },
        // /a → /c: step 1 only.
        Session {
            ua: CHROME,
            id: "f2",
            width: 1440,
            events: vec![pv(0, "/a"), pv(4_000, "/c")],
        },
        // /b → /a: out of order, step 1 only.
        Session {
            ua: IPHONE,
            id: "f3",
            width: 375,
            events: vec![pv(0, "/b"), pv(8_000, "/a")],
        },
        // /a → /b in 30 s, /b re-sent below.
        Session {
            ua: CHROME,
            id: "f4",
            width: 1440,
            events: vec![pv(0, "/a"), pv(30_000, "/b")],
        },
        // Never on /a.
        Session {
            ua: CHROME,
            id: "f5",
            width: 1440,
            events: vec![pv(0, "/x"), pv(1_000, "/b"), pv(2_000, "/c")],
        },
    ];
    let start = now_ms() - 3_600_000;
    send(&server, &client, &sessions, start).await;
    // f4's batch again, as a client that lost the answer sends it.
    let resp = client
        .post(server.url("/v1/batch"))
        .header("user-agent", CHROME)
        .body(batch(3, &sessions[3], start))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while server.scalar("SELECT count() FROM events FINAL").await < 13 {
        assert!(std::time::Instant::now() < deadline, "events never stored");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let f = server.api("funnel?site=test&steps=/a,/b,/c").await;
    let got: Vec<(String, u64)> = f["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_owned(),
                s["sessions"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("/a".into(), 4), ("/b".into(), 2), ("/c".into(), 1)],
        "{f}"
    );
    // From /a to /b: f1 10 s, f4 30 s; from /b to /c: f1 20 s.
    assert_eq!(f["steps"][1]["median_secs_from_previous"], 20.0, "{f}");
    assert_eq!(f["steps"][2]["median_secs_from_previous"], 20.0, "{f}");
    assert_eq!(f["steps"][1]["conversion"], 0.5, "{f}");
    server.stop().await;
}
