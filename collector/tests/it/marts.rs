//! The marts: session summaries with known answers, every mart-read figure equal to the same
//! figure read from `events FINAL`, and a migration filling marts from events stored before.

use crate::{TestServer, clickhouse_url};
use pathlight_collector::config::Config;
use pathlight_collector::dates::now_ms;
use pathlight_collector::storage::clickhouse::{Dialect, marts, migrations};
use pathlight_wire::{Click, EventKind, Id, RawBatch, RawEvent, Size, cbor};
use serde_json::{Value, json};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
const BOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

fn click(selector: &str, x: i32, y: i32) -> EventKind {
    EventKind::Click(Click {
        x,
        y,
        selector: selector.into(),
        tag: "button".into(),
        rel_x: 0.3,
        rel_y: 0.6,
        element_box: [0, 0, 100, 40],
        ..Click::default()
    })
}

fn custom(name: &str) -> EventKind {
    EventKind::Custom { name: name.into() }
}

fn leave() -> EventKind {
    EventKind::Engagement { visible_ms: 4_000 }
}

/// Posts one session's events, stamped `start + at` and sent now.
async fn post(
    server: &TestServer,
    n: u8,
    ua: &str,
    session: &str,
    width: u32,
    start: i64,
    events: &[(i64, &str, EventKind)],
) {
    let events = events
        .iter()
        .enumerate()
        .map(|(i, (at, path, kind))| RawEvent {
            id: Id([n, i as u8, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]),
            timestamp: start + at,
            session_id: session.into(),
            url: format!("https://shop.example{path}"),
            referrer: None,
            title: None,
            viewport: Size { w: width, h: 800 },
            document: Size { w: width, h: 3000 },
            user_id: None,
            user_agent: None,
            event_title: None,
            props: Default::default(),
            kind: kind.clone(),
        })
        .collect();
    let body = cbor::encode(&RawBatch {
        version: 1,
        site_id: "test".into(),
        sent_at: now_ms(),
        batch_id: Id([n; 16]),
        events,
    });
    let resp = reqwest::Client::new()
        .post(server.url("/v1/batch"))
        .header("user-agent", ua)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "{}", resp.text().await.unwrap());
}

/// Four sessions of known shape, and a bot.
async fn send_known_sessions(server: &TestServer) -> i64 {
    let now = now_ms();
    // Closed: the page was left after checkout (the engagement report is its last event).
    post(
        server,
        1,
        CHROME,
        "closed",
        1440,
        now - 120_000,
        &[
            (0, "/", EventKind::Pageview),
            (1_000, "/", click("#shop", 700, 300)),
            (2_000, "/pricing", EventKind::Pageview),
            (3_000, "/pricing", click("#buy", 100, 200)),
            (4_000, "/pricing", click("#buy", 102, 201)),
            (5_000, "/pricing", EventKind::Scroll { max_depth_pct: 60 }),
            (5_000, "/pricing", leave()),
        ],
    )
    .await;
    // Timed out: nothing for 40 minutes and no hide or leave seen.
    post(
        server,
        2,
        IPHONE,
        "gone",
        375,
        now - 40 * 60_000,
        &[
            (0, "/pricing", EventKind::Pageview),
            (10_000, "/pricing", click("#buy", 50, 400)),
        ],
    )
    .await;
    // Active: a minute ago, still open; stuck in a next/back loop.
    let mut looping = vec![(0, "/wizard", EventKind::Pageview)];
    for (i, name) in ["next", "back", "next", "back", "next", "back"]
        .iter()
        .enumerate()
    {
        looping.push((1_000 + 300 * i as i64, "/wizard", custom(name)));
    }
    post(server, 3, CHROME, "loop", 1440, now - 60_000, &looping).await;
    // Hidden, then back and still going: not closed.
    post(
        server,
        4,
        CHROME,
        "back",
        1440,
        now - 90_000,
        &[
            (0, "/", EventKind::Pageview),
            (1_000, "/", leave()),
            (30_000, "/", click("#shop", 700, 300)),
        ],
    )
    .await;
    post(
        server,
        5,
        BOT,
        "bot",
        1440,
        now - 50_000,
        &[(0, "/", EventKind::Pageview), (1, "/", leave())],
    )
    .await;
    now
}

#[tokio::test]
async fn session_summaries_have_the_known_answers() {
    let server = TestServer::start("sessions_mart").await;
    let now = send_known_sessions(&server).await;

    let ids_of = |page: &Value| -> Vec<String> {
        page.as_array()
            .unwrap()
            .iter()
            .map(|s| s["session_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = server.api("sessions?site=test").await;
    let ids = ids_of(&list);
    // Newest first; the bot is not a session.
    assert_eq!(ids, ["loop", "back", "closed", "gone"], "{list}");
    // A page the last hour holds is found through its events (after 01:30 UTC, when the last
    // hour is past a session timeout after midnight); the others by the days: the same order.
    for (offset, limit) in [(0, 1), (0, 3), (1, 2), (2, 2)] {
        let page = server
            .api(&format!("sessions?site=test&offset={offset}&limit={limit}"))
            .await;
        assert_eq!(
            ids_of(&page),
            ids[offset..offset + limit],
            "{offset} {limit}"
        );
        assert_eq!(page[0], list[offset]);
    }
    let by = |id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|s| s["session_id"] == id)
            .unwrap()
            .clone()
    };

    let closed = by("closed");
    assert_eq!(closed["ended"], "closed");
    // Times are shifted by the batch's time in flight (received − sent), a few ms here.
    let start = closed["start_ms"].as_i64().unwrap();
    assert!((now - 120_000..now - 115_000).contains(&start), "{closed}");
    assert_eq!(closed["end_ms"].as_i64(), Some(start + 5_000));
    assert_eq!(closed["duration_secs"], 5.0);
    assert_eq!(
        [
            &closed["events"],
            &closed["pageviews"],
            &closed["clicks"],
            &closed["scrolls"],
            &closed["customs"],
            &closed["pages"]
        ],
        [
            &json!(7),
            &json!(2),
            &json!(3),
            &json!(1),
            &json!(0),
            &json!(2)
        ]
    );
    assert_eq!(
        (closed["entry"].as_str(), closed["exit"].as_str()),
        (Some("/"), Some("/pricing"))
    );
    assert_eq!(closed["actions"], json!(["click #buy", "click #shop"]));
    assert_eq!(
        (closed["device"].as_str(), closed["browser"].as_str()),
        (Some("desktop"), Some("Chrome"))
    );
    assert_eq!(closed["anomalies"], Value::Null);

    let gone = by("gone");
    assert_eq!(gone["ended"], "timed_out", "{gone}");
    assert_eq!(gone["device"], "mobile");
    assert_eq!(gone["duration_secs"], 10.0);

    let looping = by("loop");
    assert_eq!(looping["ended"], "active");
    assert_eq!(looping["customs"], 6);
    // Three of each: topK keeps both, in either order.
    let mut actions: Vec<&str> = looping["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    actions.sort();
    assert_eq!(actions, ["custom back", "custom next"]);
    assert_eq!(
        looping["anomalies"],
        json!({"session_id": "loop", "events": 7, "rapid": 0, "repeated": 0, "loops": 1})
    );
    assert_eq!(by("back")["ended"], "active", "hidden, then used again");

    let only = |q: &str| {
        let (server, q) = (&server, q.to_owned());
        async move {
            server
                .api(&q)
                .await
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["session_id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(only("sessions?site=test&ended=closed").await, ["closed"]);
    assert_eq!(only("sessions?site=test&ended=timed_out").await, ["gone"]);
    assert_eq!(
        only("sessions?site=test&ended=active").await,
        ["loop", "back"]
    );
    assert_eq!(only("sessions?site=test&device=mobile").await, ["gone"]);
    assert_eq!(
        only("sessions?site=test&limit=2&offset=1").await,
        ["back", "closed"]
    );
    assert_eq!(
        only("sessions?site=test&from=2020-01-01&to=2020-01-02").await,
        Vec::<String>::new()
    );

    // The stats' session figures come from the mart, and agree with the raw events.
    let from_mart = server.api("stats?site=test").await;
    let exact = server.api("stats?site=test&exact=true").await;
    for k in [
        "sessions",
        "avg_session_secs",
        "bounce_rate",
        "entries",
        "exits",
        "pages",
    ] {
        assert_eq!(from_mart[k], exact[k], "{k}");
    }
    assert_eq!(from_mart["sessions"], 4);

    // A session that crossed midnight started the day before: a list of today leaves it out
    // (its rows of yesterday give its start), one from yesterday has it.
    server
        .db
        .query(
            "INSERT INTO events (site_id, event_id, event_type, timestamp, received_at, session_id, path, device) \
             SELECT 'test', generateUUIDv4(), 'pageview', toDateTime(toDate(now())) + arrayJoin([-5, 1]), now(), 'midnight', '/', 'desktop'",
        )
        .execute()
        .await
        .unwrap();
    let today: String = server
        .db
        .query("SELECT toString(toDate(now()))")
        .fetch_one()
        .await
        .unwrap();
    let yesterday: String = server
        .db
        .query("SELECT toString(toDate(now()) - 1)")
        .fetch_one()
        .await
        .unwrap();
    let listed = |from: &str| format!("sessions?site=test&from={from}&to={today}");
    assert!(!only(&listed(&today)).await.contains(&"midnight".to_owned()));
    assert!(
        only(&listed(&yesterday))
            .await
            .contains(&"midnight".to_owned())
    );
    server.stop().await;
}

#[tokio::test]
async fn sessions_time_out_after_the_configured_session_timeout() {
    // 10 minutes, not the default 30: a session quiet for 15 has timed out, one quiet for 5
    // has not.
    let server =
        TestServer::start_with("sessions_timeout", |c| c.session_timeout_secs = 10 * 60).await;
    let now = now_ms();
    for (n, session, quiet) in [(1, "quiet", 15), (2, "recent", 5)] {
        let start = now - quiet * 60_000 - 10_000;
        let events = [
            (0, "/", EventKind::Pageview),
            (10_000, "/", click("#buy", 50, 400)),
        ];
        post(&server, n, CHROME, session, 1440, start, &events).await;
    }
    let list = server.api("sessions?site=test").await;
    let ended: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["session_id"].as_str().unwrap(),
                s["ended"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ended,
        [("recent", "active"), ("quiet", "timed_out")],
        "{list}"
    );
    for (which, id) in [("timed_out", "quiet"), ("active", "recent")] {
        let only = server
            .api(&format!("sessions?site=test&ended={which}"))
            .await;
        assert_eq!(only.as_array().unwrap().len(), 1, "{which}: {only}");
        assert_eq!(only[0]["session_id"], id, "{which}: {only}");
    }
    server.stop().await;
}

#[tokio::test]
async fn mart_figures_equal_the_raw_events_and_a_migration_fills_them() {
    let server = TestServer::start("marts_equal").await;
    send_known_sessions(&server).await;
    let compare = || {
        let server = &server;
        let queries = [
            "heatmap?site=test&path=/pricing",
            "heatmap?site=test&path=/pricing&width=375",
            "heatmap?site=test&path=/pricing&device=desktop",
            "heatmap?site=test&path=/",
            "elements?site=test&path=/pricing",
            "elements?site=test&path=/&width=1440",
            "stats?site=test",
            "stats?site=test&device=mobile",
            "stats?site=test&interval=hour",
        ];
        async move {
            let mut answers = Vec::new();
            for q in queries {
                let mut mart = server.api(q).await;
                let mut exact = server.api(&format!("{q}&exact=true")).await;
                // The one field that differs: the traffic mart's distinct counts say they are
                // approximate (and are exact at this size).
                if let (Some(m), Some(e)) = (mart.as_object_mut(), exact.as_object_mut()) {
                    let stats = q.starts_with("stats");
                    assert_eq!(m.remove("approximate"), stats.then_some(true.into()), "{q}");
                    assert_eq!(
                        e.remove("approximate"),
                        stats.then_some(false.into()),
                        "{q}"
                    );
                }
                assert_eq!(mart, exact, "{q}");
                answers.push(mart);
            }
            answers
        }
    };
    let before = compare().await;
    assert_eq!(before[0]["clicks"], 3, "{}", before[0]);

    // Marts dropped, and the migration run again as on a database that predates them: it fills
    // them from the stored events and creates the views again.
    for name in marts::NAMES {
        for sql in [
            format!("DROP TABLE IF EXISTS {name}_mv"),
            format!("DROP TABLE IF EXISTS {name}"),
        ] {
            server.db.query(&sql).execute().await.unwrap();
        }
    }
    // A database from before version 10 has the per-element mart as `element_daily`.
    for sql in [
        "CREATE TABLE element_daily (day Date) ENGINE = MergeTree ORDER BY day",
        "CREATE MATERIALIZED VIEW element_daily_mv TO element_daily AS SELECT toDate(timestamp) AS day FROM events",
    ] {
        server.db.query(sql).execute().await.unwrap();
    }
    let cfg = Config::for_tests(clickhouse_url(), "it_marts_equal").clickhouse;
    let base = pathlight_collector::storage::clickhouse::client(&cfg).with_validation(false);
    let forget = || async {
        server
            .db
            .query("DROP TABLE schema_migrations")
            .execute()
            .await
            .unwrap();
        migrations::run(&base, &cfg, Dialect::LEGACY).await.unwrap()
    };
    // Every migration runs again: the list grows with each new one.
    let all: Vec<_> = migrations::migrations(Dialect::LEGACY, &cfg)
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(forget().await, all);
    assert_eq!(compare().await, before);
    // Tables named like `pattern`, with their engines: the per-element mart is `element_days`
    // (migration 10) and the sessions mart was copied into small granules (migration 11), its
    // rows (`compare` read them above) and view kept.
    let tables = |pattern: &'static str| {
        let db = &server.db;
        async move {
            db.query("SELECT name, engine_full FROM system.tables WHERE database = currentDatabase() AND name LIKE ? ORDER BY name")
                .bind(pattern)
                .fetch_all::<(String, String)>()
                .await
                .unwrap()
        }
    };
    let small = "SETTINGS index_granularity = 256";
    let elements = tables("element_da%").await;
    let names: Vec<&str> = elements.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(names, ["element_days", "element_days_mv"]);
    assert!(elements[0].1.ends_with(small), "{elements:?}");
    let sessions = tables("sessions%").await;
    let names: Vec<&str> = sessions.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(names, ["sessions", "sessions_mv"]);
    assert!(sessions[0].1.ends_with(small), "{sessions:?}");
    // Run once more: the marts are not empty, so nothing is filled twice.
    forget().await;
    assert_eq!(compare().await, before);
    // And the views work again: one more click reaches the mart.
    post(
        &server,
        9,
        CHROME,
        "later",
        1440,
        now_ms() - 1_000,
        &[(0, "/pricing", click("#buy", 100, 200))],
    )
    .await;
    let after = compare().await;
    assert_eq!(after[0]["clicks"], 4);
    server.stop().await;
}

/// The session figures of a `stats` answer.
fn session_figures(v: &Value) -> Value {
    json!([
        v["avg_session_secs"],
        v["bounce_rate"],
        v["entries"],
        v["exits"]
    ])
}

/// On a site with `TODAY_LIVE_MAX` sessions today, today's session figures come from the
/// rollup, say when it rolled, and equal the events'; a session after the roll shows at the
/// next roll.
#[tokio::test]
async fn a_busy_sites_today_is_read_from_the_rollup() {
    use pathlight_collector::query::TODAY_LIVE_MAX;
    use pathlight_collector::query::rollup;
    let server = TestServer::start_with("busy_today", |c| {
        c.clickhouse.rollup_period_secs = 3600;
    })
    .await;
    let today = now_ms().div_euclid(86_400_000);
    // The sessions of a busy morning, inserted straight into `events` (the marts' views take
    // them in as from the collector): one or two page views each, a minute apart, in the hour
    // before now (today: the test runs after 01:00 UTC or uses the day's first hour).
    let insert = format!(
        "INSERT INTO events (site_id, event_id, event_type, timestamp, session_id, visitor_id, path, \
         viewport_w, document_w, device) \
         SELECT 'test', generateUUIDv4(), 'pageview', \
         toDateTime(greatest(toStartOfDay(now()), now() - 3600 + intDiv(number, 2) % 3000 + 60 * (number % 2))), \
         concat('b', toString(intDiv(number, 2))), intDiv(number, 2), if(number % 2 = 0, '/a', '/b'), \
         1440, 1440, 'desktop' FROM system.numbers WHERE number % 2 = 0 OR intDiv(number, 2) % 3 = 0 \
         LIMIT {}",
        TODAY_LIVE_MAX * 4 / 3
    );
    server.db.query(&insert).execute().await.unwrap();
    let cfg = Config::for_tests(clickhouse_url(), "it_busy_today").clickhouse;
    let version = |v: &Value| v["session_figures_as_of_ms"].as_u64();
    let q = format!(
        "stats?site=test&from={0}&to={0}",
        pathlight_collector::dates::civil(today)
    );
    // Not rolled yet: live.
    let live = server.api(&q).await;
    assert_eq!(version(&live), None, "{live}");
    rollup::roll(&server.db, &cfg, &Default::default(), 0, today)
        .await
        .unwrap();
    let rolled = server.api(&q).await;
    let exact = server.api(&format!("{q}&exact=true")).await;
    let at = version(&rolled).expect("today from the rollup");
    assert!(at.abs_diff(now_ms() as u64) < 60_000, "{rolled}");
    assert_eq!(session_figures(&rolled), session_figures(&exact));
    assert_eq!(session_figures(&rolled), session_figures(&live));
    // A third of the sessions viewed two pages: the rest bounced.
    let bounce = rolled["bounce_rate"].as_f64().unwrap();
    assert!((bounce - 2.0 / 3.0).abs() < 0.01, "{rolled}");
    assert_eq!(exact["session_figures_as_of_ms"], Value::Null);
    server.stop().await;
}

/// The session figures of days before today come from the rollup (`session_days`) and equal the
/// same figures from `events FINAL`: sessions over several days, one running past midnight,
/// a device filter, and a late batch for a rolled day, which the next roll takes in.
#[tokio::test]
async fn rolled_up_session_figures_equal_the_raw_events_and_take_in_late_batches() {
    use pathlight_collector::query::rollup;
    // Rolled by hand below: the late batch's day must stay as rolled until then.
    let server = TestServer::start_with("rollup", |c| {
        c.clickhouse.rollup_period_secs = 3600;
    })
    .await;
    let day_ms = 86_400_000;
    let today = now_ms().div_euclid(day_ms);
    let at = |days_ago: i64, secs: i64| (today - days_ago) * day_ms + secs * 1000;
    let pv = |t: i64, path: &'static str| (t, path, EventKind::Pageview);
    post(
        &server,
        1,
        CHROME,
        "r1",
        1440,
        at(5, 3_600),
        &[pv(0, "/a"), pv(10_000, "/b")],
    )
    .await;
    post(&server, 2, CHROME, "r2", 1440, at(5, 7_200), &[pv(0, "/a")]).await;
    // From 23:59:50 into the next day.
    post(
        &server,
        3,
        CHROME,
        "r3",
        1440,
        at(4, 86_390),
        &[pv(0, "/b"), pv(5_000, "/c"), pv(20_000, "/a")],
    )
    .await;
    post(
        &server,
        4,
        IPHONE,
        "r4",
        375,
        at(3, 600),
        &[pv(0, "/c"), (1_000, "/c", click("#buy", 5, 5))],
    )
    .await;
    post(
        &server,
        5,
        CHROME,
        "r5",
        1440,
        now_ms() - 60_000,
        &[pv(0, "/a"), pv(30_000, "/c")],
    )
    .await;
    let count = |sql: &'static str| server.scalar(sql);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while count("SELECT toUInt64(countMerge(events)) FROM sessions").await < 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "events never reached the sessions mart"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let cfg = Config::for_tests(clickhouse_url(), "it_rollup").clickhouse;
    let rolled = rollup::roll(&server.db, &cfg, &Default::default(), 0, today)
        .await
        .unwrap()
        .sessions;
    assert!(
        rolled.contains(&(today - 5)) && rolled.contains(&(today - 3)),
        "{rolled:?}"
    );
    // Today is rolled too, but read live on a site this small (below).
    assert!(rolled.contains(&today), "{rolled:?}");
    assert!(count("SELECT count() FROM session_days WHERE site_id = 'test'").await > 0);
    let compare = || async {
        let mut out = Vec::new();
        for q in [
            "stats?site=test",
            "stats?site=test&device=mobile",
            "stats?site=test&device=desktop",
        ] {
            let mart = session_figures(&server.api(q).await);
            let exact = session_figures(&server.api(&format!("{q}&exact=true")).await);
            out.push((q, mart, exact));
        }
        out
    };
    for (q, mart, exact) in compare().await {
        assert_eq!(mart, exact, "{q}");
    }
    // 5 sessions: r2 and r4 bounced; r3 counts on the day it started.
    let all = server.api("stats?site=test").await;
    assert_eq!(all["bounce_rate"], 0.4, "{all}");
    assert_eq!(all["entries"][0], json!({"key": "/a", "count": 3}), "{all}");
    assert_eq!(all["session_figures_as_of_ms"], Value::Null, "{all}");

    // A merge writes the mart's rows anew (new parts, new modification times) without a new
    // row: a roller that saw the rows finds nothing due.
    let mut seen = rollup::Seen::new();
    rollup::roll_since(&server.db, &cfg, &Default::default(), 0, today, &mut seen)
        .await
        .unwrap();
    server
        .db
        .query("OPTIMIZE TABLE sessions FINAL")
        .execute()
        .await
        .unwrap();
    let merged = rollup::roll_since(&server.db, &cfg, &Default::default(), 0, today, &mut seen)
        .await
        .unwrap();
    assert!(
        merged.sessions.is_empty() && merged.behaviour.is_empty(),
        "{merged:?}"
    );

    // r2's second page view arrives late (a tracker's queue): until the next roll the rollup
    // still has r2 as a bounce; after it, the figures agree again.
    post(
        &server,
        6,
        CHROME,
        "r2",
        1440,
        at(5, 7_200),
        &[pv(40_000, "/c")],
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while count("SELECT toUInt64(countMerge(events)) FROM sessions").await < 11 {
        assert!(
            std::time::Instant::now() < deadline,
            "the late batch never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let late = server.api("stats?site=test&exact=true").await;
    assert_eq!(late["bounce_rate"], 0.2, "{late}");
    // The day is read from the rollup, as it was rolled: proof that it is read at all.
    let stale = server.api("stats?site=test").await;
    assert_eq!(stale["bounce_rate"], 0.4, "{stale}");
    let again = rollup::roll_since(&server.db, &cfg, &Default::default(), 0, today, &mut seen)
        .await
        .unwrap()
        .sessions;
    assert!(
        again.contains(&(today - 5)),
        "the late batch's day is rolled again: {again:?}"
    );
    for (q, mart, exact) in compare().await {
        assert_eq!(mart, exact, "{q}, after the late batch");
    }
    server.stop().await;
}
