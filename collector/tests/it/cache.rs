//! The query API's result cache and latency histogram, through the real server: a repeated
//! question is answered from memory, any other site, token or question is not, a new event
//! shows once the TTL has passed, and `/metrics` has each endpoint's answer times.

use crate::{TestServer, batch_now};
use pathlight_collector::config::{Config, SiteConfig};
use pathlight_wire::{EventKind, Id, RawEvent, cbor};
use std::time::{Duration, Instant};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

/// The cache as deployed (`Config::for_tests` has none).
fn cached(c: &mut Config) {
    c.query_cache = Default::default();
}

/// The cache, and a second site with a token of its own.
fn two_sites(c: &mut Config) {
    cached(c);
    c.sites.push(SiteConfig {
        id: "other".into(),
        origins: vec!["*".into()],
        max_events_per_sec: 0,
        api_token: "other-token".into(),
        api_token_sha256: String::new(),
        ingest_keys_sha256: Vec::new(),
        search: Default::default(),
        require_key: false,
        base_url: String::new(),
        goals: Vec::new(),
        metric_paths: Vec::new(),
        anomalies: Default::default(),
    });
}

/// Stores `n` page views for `site`, now, with ids of their own (`seed`).
async fn pageviews(server: &TestServer, site: &str, seed: u8, n: u8) {
    let mut b = batch_now();
    b.site_id = site.into();
    b.batch_id = Id([seed; 16]);
    let base = b.events[0].clone();
    b.events = (0..n)
        .map(|i| RawEvent {
            id: Id([seed, i, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]),
            kind: EventKind::Pageview,
            ..base.clone()
        })
        .collect();
    let resp = reqwest::Client::new()
        .post(server.url("/v1/batch"))
        .header("user-agent", CHROME)
        .body(cbor::encode(&b))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
}

/// Status and body of `GET /api/v1/{q}` with `token` (none: no `Authorization`).
async fn get(server: &TestServer, q: &str, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(server.url(&format!("/api/v1/{q}")));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The value of the sample `series` (name and labels, as exported) in `text`; 0 if absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().unwrap())
}

/// Hits and misses of `endpoint` so far.
async fn counts(server: &TestServer, endpoint: &str) -> (f64, f64) {
    let text = server.metrics().await;
    let label = format!("{{endpoint=\"{endpoint}\"}}");
    (
        sample(&text, &format!("pathlight_query_cache_hits_total{label}")),
        sample(&text, &format!("pathlight_query_cache_misses_total{label}")),
    )
}

fn pageviews_of(body: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["pageviews"].as_u64().unwrap_or_else(|| panic!("{body}"))
}

#[tokio::test]
async fn a_repeated_question_is_a_hit_with_the_same_answer() {
    let server = TestServer::start_with("cache_hit", cached).await;
    pageviews(&server, "test", 1, 3).await;
    let first = get(&server, "stats?site=test", Some("test-token")).await;
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(pageviews_of(&first.1), 3);
    assert_eq!(counts(&server, "stats").await, (0.0, 1.0));
    // The same question, its parameters in another order and a `to` spelled out that the
    // first left to its default (today): one key.
    let today = pathlight_collector::dates::civil(pathlight_collector::dates::unix_day(
        pathlight_collector::dates::now_ms(),
    ));
    for q in [
        "stats?site=test".to_owned(),
        format!("stats?to={today}&site=test"),
    ] {
        let again = get(&server, &q, Some("test-token")).await;
        assert_eq!(again, first, "{q}");
    }
    assert_eq!(counts(&server, "stats").await, (2.0, 1.0));
    let text = server.metrics().await;
    assert!(
        sample(&text, "pathlight_query_cache_entries") >= 1.0,
        "{text}"
    );
    assert!(sample(&text, "pathlight_query_cache_bytes") > 0.0, "{text}");
}

#[tokio::test]
async fn other_sites_tokens_and_questions_miss_and_never_leak() {
    let server = TestServer::start_with("cache_isolation", two_sites).await;
    pageviews(&server, "test", 1, 3).await;
    pageviews(&server, "other", 2, 1).await;
    let (status, test) = get(&server, "stats?site=test", Some("test-token")).await;
    assert_eq!((status, pageviews_of(&test)), (200, 3));

    // The other site's token never reads the first site's cached answer, nor does none, nor
    // a wrong one: the token is checked before the cache is.
    for token in [Some("other-token"), None, Some("test-tokem")] {
        let (status, body) = get(&server, "stats?site=test", token).await;
        assert_eq!(status, 401, "{token:?}: {body}");
    }
    // The other site asked the same question: its own answer, a miss.
    let (status, other) = get(&server, "stats?site=other", Some("other-token")).await;
    assert_eq!((status, pageviews_of(&other)), (200, 1));
    assert_ne!(other, test);
    assert_eq!(counts(&server, "stats").await, (0.0, 2.0));

    // Another question of the same site: another answer, a miss.
    let (_, hourly) = get(&server, "stats?site=test&interval=hour", Some("test-token")).await;
    assert_ne!(hourly, test);
    assert_eq!(pageviews_of(&hourly), 3);
    let (_, older) = get(
        &server,
        "stats?site=test&from=2020-01-01&to=2020-01-31",
        Some("test-token"),
    )
    .await;
    assert_eq!(pageviews_of(&older), 0);
    assert_eq!(counts(&server, "stats").await, (0.0, 4.0));

    // `exact=true` always asks ClickHouse, and is no hit or miss.
    get(&server, "stats?site=test&exact=true", Some("test-token")).await;
    get(&server, "stats?site=test&exact=true", Some("test-token")).await;
    assert_eq!(counts(&server, "stats").await, (0.0, 4.0));

    // The live overlay's token reads the site's heatmap as the API token does: one entry,
    // behind either; a token for another site, or a forged one, reads nothing.
    let (_, heatmap) = get(
        &server,
        "heatmap?site=test&path=/catalog",
        Some("test-token"),
    )
    .await;
    let (_, issued) = get(&server, "overlay-token?site=test", Some("test-token")).await;
    let overlay: serde_json::Value = serde_json::from_str(&issued).unwrap();
    let token = overlay["token"].as_str().unwrap();
    let (status, via_overlay) = get(
        &server,
        &format!("heatmap?site=test&path=/catalog&token={token}"),
        None,
    )
    .await;
    assert_eq!((status, &via_overlay), (200, &heatmap));
    assert_eq!(counts(&server, "heatmap").await, (1.0, 1.0));
    let (_, issued) = get(&server, "overlay-token?site=other", Some("other-token")).await;
    let overlay: serde_json::Value = serde_json::from_str(&issued).unwrap();
    let other_token = overlay["token"].as_str().unwrap();
    for t in [other_token, "4102444800.00"] {
        let q = format!("heatmap?site=test&path=/catalog&token={t}");
        assert_eq!(get(&server, &q, None).await.0, 401, "{t}");
    }
    // Tokens are issued anew, never served again.
    let (_, issued_again) = get(&server, "overlay-token?site=test", Some("test-token")).await;
    let again: serde_json::Value = serde_json::from_str(&issued_again).unwrap();
    assert_eq!(counts(&server, "overlay-token").await, (0.0, 0.0));
    assert!(again["token"].is_string());
}

// Waits for the TTL in real time: tokio's paused clock would jump ahead whenever the runtime
// waits on this test's sockets (server, ClickHouse) and fire their timeouts. The TTL's exact
// bounds are unit tested on the paused clock in `query/cache.rs`.
#[tokio::test]
async fn a_new_event_in_the_current_hour_shows_once_the_ttl_has_passed() {
    let ttl = Duration::from_secs(2);
    let server = TestServer::start_with("cache_ttl", |c| {
        cached(c);
        c.query_cache.ttl_secs = ttl.as_secs();
    })
    .await;
    pageviews(&server, "test", 1, 2).await;
    let q = "stats?site=test&interval=hour";
    let asked = Instant::now();
    let (_, before) = get(&server, q, Some("test-token")).await;
    assert_eq!(pageviews_of(&before), 2);
    // Stored (acknowledged once in ClickHouse) in the current hour, which the range includes.
    pageviews(&server, "test", 2, 1).await;
    let (_, cached) = get(&server, q, Some("test-token")).await;
    if asked.elapsed() < ttl {
        // Within the TTL: the answer kept, as the hit counter says.
        assert_eq!(cached, before);
        assert_eq!(counts(&server, "stats").await, (1.0, 1.0));
    }
    tokio::time::sleep(ttl.saturating_sub(asked.elapsed()) + Duration::from_millis(50)).await;
    let (_, after) = get(&server, q, Some("test-token")).await;
    assert_eq!(pageviews_of(&after), 3, "{after}");
    let text = server.metrics().await;
    assert!(
        sample(
            &text,
            "pathlight_query_cache_evictions_total{reason=\"expired\"}"
        ) >= 1.0,
        "{text}"
    );
}

#[tokio::test]
async fn the_latency_histogram_has_each_endpoint_and_cache_outcome() {
    let server = TestServer::start_with("cache_histogram", cached).await;
    pageviews(&server, "test", 1, 1).await;
    let t = Some("test-token");
    for q in [
        "stats?site=test",
        "stats?site=test",
        "heatmap?site=test&path=/catalog",
        "sessions?site=test",
        "sessions/k3v9q2m8x1?site=test",
        "users/someone/events?site=test",
        "funnel?site=test&steps=/a,/b",
        "realtime?site=test",
        "stats?site=test&exact=true",
        "no-such-endpoint?site=test",
        "sessions/a/b?site=test",
    ] {
        get(&server, q, t).await;
    }
    get(&server, "stats?site=test", None).await;
    let export = reqwest::Client::new()
        .get(server.url("/api/v1/export?site=test"))
        .bearer_auth("test-token")
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    drop(export.bytes().await);
    let text = server.metrics().await;
    let count = |endpoint: &str, cache: &str| {
        sample(
            &text,
            &format!(
                "pathlight_query_request_seconds_count{{endpoint=\"{endpoint}\",cache=\"{cache}\"}}"
            ),
        )
    };
    for (endpoint, cache, n) in [
        ("stats", "miss", 1.0),
        ("stats", "hit", 1.0),
        ("stats", "bypass", 1.0),
        ("stats", "error", 1.0),
        ("heatmap", "miss", 1.0),
        ("sessions", "miss", 1.0),
        ("session", "miss", 1.0),
        ("user_events", "miss", 1.0),
        ("funnel", "miss", 1.0),
        ("realtime", "bypass", 1.0),
        ("export", "bypass", 1.0),
        // Paths that name no endpoint: one label, whatever they are.
        ("other", "error", 2.0),
    ] {
        assert_eq!(count(endpoint, cache), n, "{endpoint} {cache}:\n{text}");
    }
    assert!(!text.contains("no-such-endpoint"), "{text}");
    // Buckets from 1 ms to 30 s, with the goals (0.3 s, 1 s) among them.
    for le in ["0.001", "0.3", "1.0", "30.0", "+Inf"] {
        let bucket = format!(
            "pathlight_query_request_seconds_bucket{{le=\"{le}\",endpoint=\"stats\",cache=\"miss\"}}"
        );
        assert!(text.contains(&bucket), "{bucket}:\n{text}");
    }
}
