//! `POST /v1/identify` and `pathlight import --users` against ClickHouse 18.16: a site's users
//! and their traits, from its pages or its servers with an ingest key, the latest winning; bad
//! input refused with a JSON reason and counted.

use crate::{TestServer, clickhouse_url, json_body};
use pathlight_collector::config::Config;
use serde_json::{Value, json};

/// Each user's latest traits as stored (`argMax`, as the read side asks), by user id.
async fn latest(server: &TestServer, site: &str) -> Vec<(String, Value)> {
    let rows: Vec<(String, String)> = server
        .db
        .query(
            "SELECT user_id, argMax(traits, updated_ms) FROM users WHERE site_id = ? \
             GROUP BY user_id ORDER BY user_id",
        )
        .bind(site)
        .fetch_all()
        .await
        .unwrap();
    rows.into_iter()
        .map(|(u, t)| (u, serde_json::from_str(&t).unwrap()))
        .collect()
}

#[tokio::test]
async fn identify_stores_the_latest_traits_from_the_sites_pages_or_with_a_key() {
    let key = "identify-key-of-the-shop";
    let server = TestServer::start_with("identify", |c| {
        c.sites[0].origins = vec!["https://shop.example".into()];
        c.sites[0].ingest_keys_sha256 = vec![pathlight_collector::query::auth::digest_hex(key)];
    })
    .await;
    let client = reqwest::Client::new();
    let send = |body: String, headers: &[(&str, &str)], query: &str| {
        let mut req = client
            .post(server.url(&format!("/v1/identify{query}")))
            .body(body);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let cors = resp
                .headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, json_body(resp).await, cors)
        }
    };
    let identify = |user: &str, traits: Value| {
        json!({"site": "test", "user_id": user, "traits": traits}).to_string()
    };
    let json_type = ("content-type", "application/json");

    // A server with the key, in either header; the later identify of a user wins.
    let (status, body, _) = send(
        identify("u1", json!({"plan": "free", "name": "Ada"})),
        &[("x-api-key", key), json_type],
        "",
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let bearer = format!("Bearer {key}");
    let (status, body, _) = send(
        identify("u1", json!({"plan": "pro", "seats": 3, "trial": false})),
        &[("authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(status, 204, "{body}");
    // A page of the site, without a key, as the tracker sends it (a text body, no preflight);
    // the site may come as `?site=`.
    let (status, body, cors) = send(
        json!({"user_id": "u2", "traits": {"plan": "team"}}).to_string(),
        &[
            ("origin", "https://shop.example"),
            ("content-type", "text/plain;charset=UTF-8"),
        ],
        "?site=test",
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(cors.as_deref(), Some("https://shop.example"));
    // Without traits the user is only named: nothing to store, and nothing erased.
    let (status, _, _) = send(
        json!({"site": "test", "user_id": "u1"}).to_string(),
        &[("x-api-key", key)],
        "",
    )
    .await;
    assert_eq!(status, 204);

    // Refusals, each with its status, reason and field.
    let long = "x".repeat(2000);
    for (body, headers, status, reason, field) in [
        // A server without a key, although the site does not require one for batches.
        (
            identify("u9", json!({"a": 1})),
            vec![],
            401,
            "key_required",
            None,
        ),
        (
            identify("u9", json!({"a": 1})),
            vec![("origin", "https://evil.example")],
            401,
            "key_required",
            None,
        ),
        (
            identify("u9", json!({"a": 1})),
            vec![("x-api-key", "guess")],
            401,
            "invalid_key",
            None,
        ),
        (
            json!({"site": "nope", "user_id": "u9", "traits": {"a": 1}}).to_string(),
            vec![("x-api-key", key)],
            403,
            "unknown_site",
            Some("site_id"),
        ),
        (
            "{\"site\": ".to_owned(),
            vec![("x-api-key", key)],
            400,
            "malformed",
            None,
        ),
        (
            json!({"site": "test", "traits": {"a": 1}}).to_string(),
            vec![("x-api-key", key)],
            400,
            "missing_field",
            Some("user_id"),
        ),
        (
            identify("u9", json!({"address": {"city": "Oslo"}})),
            vec![("x-api-key", key)],
            400,
            "wrong_type",
            Some("traits.address"),
        ),
        (
            identify("u9", json!({"bio": long})),
            vec![("x-api-key", key)],
            400,
            "too_long",
            Some("traits.bio"),
        ),
        (
            identify("u9", json!({"a": 1})),
            vec![("x-api-key", key), ("content-type", "application/cbor")],
            415,
            "unsupported_media_type",
            None,
        ),
        (
            " ".repeat(200 * 1024),
            vec![("x-api-key", key)],
            413,
            "too_large",
            None,
        ),
    ] {
        let (got, json, _) = send(body, &headers, "").await;
        assert_eq!(
            (got, json["reason"].as_str(), json["field"].as_str()),
            (status, Some(reason), field),
            "{headers:?}: {json}"
        );
        assert!(json["error"].is_string(), "{json}");
    }

    assert_eq!(
        latest(&server, "test").await,
        [
            (
                "u1".to_owned(),
                json!({"plan": "pro", "seats": 3.0, "trial": false})
            ),
            ("u2".to_owned(), json!({"plan": "team"})),
        ]
    );
    assert_eq!(server.scalar("SELECT count() FROM users").await, 3);
    let metrics = server.metrics().await;
    for line in [
        "pathlight_identify_requests_total{reason=\"stored\"} 3",
        "pathlight_identify_requests_total{reason=\"named\"} 1",
        "pathlight_identify_requests_total{reason=\"key_required\"} 2",
        "pathlight_identify_requests_total{reason=\"invalid_key\"} 1",
        "pathlight_identify_requests_total{reason=\"unknown_site\"} 1",
        "pathlight_identify_requests_total{reason=\"too_large\"} 1",
        "pathlight_http_requests_total{route=\"identify\",status=\"401\"} 3",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    server.stop().await;
}

/// `pathlight import --users`, as an operator runs it: rows checked as identifies are, bad
/// ones named by line, a later row of a user winning.
#[tokio::test]
async fn import_users_stores_their_traits_and_names_bad_lines() {
    let server = TestServer::start("identify_import").await;
    let dir = std::env::temp_dir().join(format!(
        "pathlight-it-identify-import-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("users.csv");
    let long = "x".repeat(300);
    std::fs::write(
        &csv,
        format!(
            "user_id,name,country,plan\n\
             u1,Ada,NO,pro\n\
             u2,\"Lovelace, Ada\",,free\n\
             ,Nobody,SE,free\n\
             {long},Too long,DK,free\n\
             u1,Ada,NO,team\n"
        ),
    )
    .unwrap();
    let config = Config::for_tests(clickhouse_url(), "it_identify_import");
    let file = dir.join("pathlight.toml");
    std::fs::write(&file, toml::to_string(&config).unwrap()).unwrap();
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pathlight"));
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("PATHLIGHT_")) {
            cmd.env_remove(key);
        }
        cmd.arg("--config").arg(&file).args(args);
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let path = csv.to_str().unwrap();
    let (ok, stdout, stderr) = run(&["import", "--users", path, "--site", "test"]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("5 lines, 2 users stored, 2 lines refused"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("{path}:4: user_id: required field is missing")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{path}:5: user_id:")), "{stderr}");
    assert_eq!(
        latest(&server, "test").await,
        [
            (
                "u1".to_owned(),
                json!({"name": "Ada", "country": "NO", "plan": "team"})
            ),
            (
                "u2".to_owned(),
                json!({"name": "Lovelace, Ada", "plan": "free"})
            ),
        ]
    );
    // A file without the column, and an unknown site, stop before anything is stored.
    let bad = dir.join("no-id.csv");
    std::fs::write(&bad, "name\nAda\n").unwrap();
    let (ok, _, stderr) = run(&["import", "--users", bad.to_str().unwrap(), "--site", "test"]);
    assert!(!ok && stderr.contains("no user_id column"), "{stderr}");
    let (ok, _, stderr) = run(&["import", "--users", path, "--site", "nope"]);
    assert!(!ok && stderr.contains("not in [[sites]]"), "{stderr}");
    assert_eq!(server.scalar("SELECT count() FROM users").await, 2);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
