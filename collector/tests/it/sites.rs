//! Sites and keys managed in the product (issue 36, second part) against a real ClickHouse
//! 18.16, with two collectors sharing one database as a fleet does: a site made through the API
//! ingests and answers exactly as a `[[sites]]` one, on both collectors within 5 s (CORS, the
//! viewer's `frame-src`, the live feed); read keys are held to their scopes and expiry, ingest
//! keys work beside the file's, and a revoked key stops on the other collector within 5 s; and
//! the management routes refuse bad input, file sites, other origins and non-admins.

use crate::{TestServer, batch_now, clickhouse_url};
use pathlight_collector::config::Config;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const ADMIN: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery";
/// A desktop browser's: requests without one are bots, which the figures leave out.
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36";

/// An answer's status and JSON body (null when none).
struct Answer {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

impl Answer {
    fn reason(&self) -> &str {
        self.body["reason"].as_str().unwrap_or_default()
    }
}

/// What a request carries besides its method, path and body.
#[derive(Clone, Copy, Default)]
struct As<'a> {
    /// The session cookie's token.
    session: Option<&'a str>,
    /// `Authorization: Bearer`.
    bearer: Option<&'a str>,
    /// `Origin`: none → the collector's own (a page of the dashboards); `Some("")` → none.
    origin: Option<&'a str>,
}

async fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    body: Option<&str>,
    who: As<'_>,
) -> Answer {
    let base = server.url("");
    let mut req = reqwest::Client::new().request(method.parse().unwrap(), server.url(path));
    if let Some(o) = who
        .origin
        .map_or(Some(base.as_str()), |o| (!o.is_empty()).then_some(o))
    {
        req = req.header("origin", o);
    }
    if let Some(t) = who.session {
        req = req.header("cookie", format!("pathlight_session={t}"));
    }
    if let Some(k) = who.bearer {
        req = req.bearer_auth(k);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_owned());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    }
}

/// Makes the first admin on `server` (the first-start form); their session token.
async fn first_admin(server: &TestServer) -> String {
    let body = json!({"email": ADMIN, "password": PASSWORD}).to_string();
    let resp = reqwest::Client::new()
        .post(server.url("/api/v1/setup"))
        .header("origin", server.url(""))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap()["pathlight_session=".len()..].to_owned()
}

/// Polls `check` every 100 ms until it holds, failing after 5 s; how long it took.
async fn within_5s(what: &str, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: not within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

/// The repository's `www/`, so the viewer's page is served with its CSP.
fn www() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../www")
}

/// Two collectors on one database, as a fleet (`a` made it, `b` joined), and the session of
/// the first admin, made on `a` and known to both.
async fn fleet(name: &str) -> (TestServer, TestServer, String) {
    let adjust = |c: &mut Config| {
        c.www_dir = Some(www());
        // The tests poll with keys the other collector does not know yet (or no longer):
        // refusals the wrong-token throttle would count against 127.0.0.1.
        c.api_auth_failures_per_minute = 0;
    };
    let a = TestServer::start_with(name, adjust).await;
    let b = TestServer::resume_at(clickhouse_url(), name, adjust).await;
    let admin = first_admin(&a).await;
    let who = As {
        session: Some(&admin),
        ..As::default()
    };
    within_5s("b knows the session", async || {
        call(&b, "GET", "/api/v1/auth/me", None, who).await.status == 200
    })
    .await;
    (a, b, admin)
}

/// Posts `batch` (CBOR) to `server` with `origin` (`""`: none) and `key` (`X-API-Key`).
async fn post_batch(
    server: &TestServer,
    batch: &pathlight_wire::RawBatch,
    origin: &str,
    key: Option<&str>,
) -> Answer {
    let mut req = reqwest::Client::new()
        .post(server.url("/v1/batch"))
        .header("content-type", "application/cbor")
        .header("user-agent", BROWSER)
        .body(pathlight_wire::cbor::encode(batch));
    if !origin.is_empty() {
        req = req.header("origin", origin);
    }
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    }
}

/// Makes a site through the API.
async fn make_site(server: &TestServer, session: &str, site: Value) -> Answer {
    let who = As {
        session: Some(session),
        ..As::default()
    };
    call(
        server,
        "POST",
        "/api/v1/sites",
        Some(&site.to_string()),
        who,
    )
    .await
}

/// Makes a key of `site`; the answer (with `key`).
async fn make_key(server: &TestServer, session: &str, site: &str, key: Value) -> Value {
    let who = As {
        session: Some(session),
        ..As::default()
    };
    let path = format!("/api/v1/sites/{site}/keys");
    let a = call(server, "POST", &path, Some(&key.to_string()), who).await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.body
}

/// A site's stored events, one line each, without what differs by site by design: the site id,
/// the visitor id (keyed by site) and the batch id (each batch its own).
async fn stored(server: &TestServer, site: &str) -> Vec<String> {
    server
        .rows(&format!(
            "SELECT concat(toString(event_id), '|', toString(event_type), '|', toString(timestamp), \
             '|', toString(timestamp_ms), '|', session_id, '|', url, '|', path, '|', toString(x), \
             '|', toString(y), '|', toString(rel_x), '|', selector, '|', name, '|', props, '|', \
             browser, '|', os, '|', toString(device), '|', toString(is_bot), '|', country) \
             FROM events FINAL WHERE site_id = '{site}' ORDER BY event_id"
        ))
        .await
}

#[tokio::test]
async fn a_site_made_in_the_product_ingests_and_answers_like_a_file_site_on_every_collector() {
    let (a, b, admin) = fleet("sites_fleet").await;
    let made = make_site(
        &a,
        &admin,
        json!({"id": "shop", "name": "The shop", "origins": ["https://shop.example"],
               "timezone": "Europe/Berlin", "base_url": "https://shop.example/"}),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(
        made.body,
        json!({"id": "shop", "name": "The shop", "origins": ["https://shop.example"],
               "timezone": "Europe/Berlin", "base_url": "https://shop.example/", "source": "api",
               "role": "admin", "snippet": r#"<script async src="/_pl/p.js" data-site="shop"></script>"#})
    );

    // The same batch for the file's site `test` (through `a`) and for `shop` (through `b`,
    // once it has heard of the site), each its own batch id. Without `sent_at` the events keep
    // the times they carry, whenever each batch arrives.
    let mut file_batch = batch_now();
    file_batch.sent_at = 0;
    let mut shop_batch = file_batch.clone();
    shop_batch.site_id = "shop".into();
    shop_batch.batch_id = pathlight_wire::Id([0xcd; 16]);
    let stranger = post_batch(&b, &shop_batch, "https://evil.example", None).await;
    assert_eq!(stranger.status, 403, "{}", stranger.body);
    assert_eq!(post_batch(&a, &file_batch, "", None).await.status, 204);
    let mut cors = None;
    let took = within_5s("b takes the new site's events", async || {
        let r = post_batch(&b, &shop_batch, "https://shop.example", None).await;
        assert!(matches!(r.status, 204 | 403), "{} {}", r.status, r.body);
        cors = r.headers.get("access-control-allow-origin").cloned();
        r.status == 204
    })
    .await;
    eprintln!("the second collector took the new site's events after {took:?}");
    assert_eq!(cors.unwrap(), "https://shop.example");
    let refused = post_batch(&b, &shop_batch, "https://evil.example", None).await;
    assert_eq!(
        (refused.status, refused.reason()),
        (403, "origin_not_allowed")
    );

    // Stored alike, and every figure alike, whichever collector is asked.
    let file_rows = stored(&a, "test").await;
    assert_eq!(file_rows.len(), file_batch.events.len());
    assert_eq!(stored(&a, "shop").await, file_rows);
    let today = pathlight_collector::dates::civil(pathlight_collector::dates::unix_day(
        pathlight_collector::dates::now_ms(),
    ));
    let admin_on = As {
        session: Some(&admin),
        ..As::default()
    };
    for q in [
        "stats?from={d}&to={d}",
        "heatmap?path=/catalog&from={d}&to={d}",
        "elements?path=/catalog&from={d}&to={d}",
        "top?property=plan&from={d}&to={d}",
        "anomalies?from={d}&to={d}",
        "search?from={d}&to={d}",
    ] {
        let q = q.replace("{d}", &today);
        let file = call(&a, "GET", &format!("/api/v1/{q}&site=test"), None, admin_on).await;
        assert_eq!(file.status, 200, "{q}: {}", file.body);
        let shop = call(&b, "GET", &format!("/api/v1/{q}&site=shop"), None, admin_on).await;
        assert_eq!(shop.body, file.body, "{q}");
    }
    let site = call(&b, "GET", "/api/v1/site?site=shop", None, admin_on).await;
    assert_eq!(
        site.body,
        json!({"site": "shop", "origins": ["https://shop.example"], "base_url": "https://shop.example"})
    );

    // The viewer may frame the new site's pages, on both collectors.
    for server in [&a, &b] {
        let viewer = reqwest::get(server.url("/heatmap.html")).await.unwrap();
        let csp = viewer.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("frame-src https://shop.example;"), "{csp}");
    }

    // The live feed opens for it with a live token, which only a readable site gets.
    let live = call(&b, "GET", "/api/v1/live-token?site=shop", None, admin_on).await;
    let token = live.body["token"].as_str().unwrap().to_owned();
    let stream = reqwest::get(b.url(&format!("/api/v1/realtime/stream?site=shop&token={token}")))
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    drop(stream);

    // Both collectors list it with the file's site, each with its source.
    let list = call(&b, "GET", "/api/v1/sites", None, admin_on).await;
    let sources: Vec<(&str, &str)> = list.body["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["source"].as_str().unwrap()))
        .collect();
    assert_eq!(sources, [("shop", "api"), ("test", "file")]);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn keys_are_held_to_their_scopes_and_expiry_and_revocation_reaches_every_collector() {
    let (a, b, admin) = fleet("sites_keys").await;
    let made = make_site(
        &a,
        &admin,
        json!({"id": "blog", "origins": ["https://shop.example"]}),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let heatmaps = make_key(
        &a,
        &admin,
        "blog",
        json!({"name": "designer", "kind": "read", "scopes": ["heatmaps"]}),
    )
    .await;
    let key = heatmaps["key"].as_str().unwrap().to_owned();
    assert!(
        key.starts_with(&format!("{}_", heatmaps["prefix"].as_str().unwrap())),
        "{heatmaps}"
    );
    assert!(
        key.starts_with("pl_r_") && key.len() == "pl_r_".len() + 8 + 1 + 43,
        "{key}"
    );
    assert_eq!(heatmaps["scopes"], json!(["heatmaps"]));
    assert_eq!(
        (&heatmaps["expires_at"], &heatmaps["last_used_at"]),
        (&Value::Null, &Value::Null)
    );
    let status = async |server: &TestServer, q: &str, k: &str| {
        let who = As {
            bearer: Some(k),
            origin: Some(""),
            ..As::default()
        };
        call(server, "GET", &format!("/api/v1/{q}"), None, who).await
    };
    // A heatmaps key reads heatmaps (and the site's description), not stats nor raw events.
    assert_eq!(
        status(&a, "heatmap?site=blog&path=/", &key).await.status,
        200
    );
    assert_eq!(status(&a, "site?site=blog", &key).await.status, 200);
    for q in ["stats?site=blog", "export?site=blog", "sessions?site=blog"] {
        let r = status(&a, q, &key).await;
        assert_eq!((r.status, r.reason()), (403, "forbidden"), "{q}");
    }
    assert_eq!(
        status(&a, "heatmap?site=test&path=/", &key).await.status,
        401,
        "another site"
    );
    // A key of every scope, the default.
    let all = make_key(&a, &admin, "blog", json!({"name": "ci", "kind": "read"})).await;
    assert_eq!(all["scopes"], json!(["stats", "heatmaps", "export"]));
    let all_key = all["key"].as_str().unwrap().to_owned();
    within_5s("b takes the new key", async || {
        status(&b, "stats?site=blog", &all_key).await.status == 200
    })
    .await;
    assert_eq!(status(&b, "export?site=blog", &all_key).await.status, 200);
    // The file's token keeps working, as a key of every scope.
    assert_eq!(
        status(&b, "export?site=test", "test-token").await.status,
        200
    );

    // An expiring key works until its time, then nowhere.
    let soon = pathlight_collector::dates::now_ms() + 2_500;
    let expiring = make_key(
        &a,
        &admin,
        "blog",
        json!({"name": "temp", "kind": "read", "expires_at": pathlight_collector::dates::rfc3339(soon)}),
    )
    .await;
    let expiring_key = expiring["key"].as_str().unwrap().to_owned();
    assert_eq!(
        status(&a, "stats?site=blog", &expiring_key).await.status,
        200
    );
    let wait = soon - pathlight_collector::dates::now_ms();
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64 + 50)).await;
    for server in [&a, &b] {
        let r = status(server, "stats?site=blog", &expiring_key).await;
        assert_eq!((r.status, r.reason()), (401, "unauthorized"));
    }

    // An ingest key writes from a server, as the file's ingest keys do, on either collector.
    let ingest = make_key(
        &a,
        &admin,
        "blog",
        json!({"name": "backend", "kind": "ingest"}),
    )
    .await;
    assert_eq!(ingest["scopes"], json!(["ingest"]));
    let ingest_key = ingest["key"].as_str().unwrap().to_owned();
    assert!(ingest_key.starts_with("pl_i_"));
    let mut batch = batch_now();
    batch.site_id = "blog".into();
    assert_eq!(
        post_batch(&a, &batch, "", Some(&ingest_key)).await.status,
        204
    );
    let wrong = post_batch(&a, &batch, "", Some("pl_i_nope")).await;
    assert_eq!((wrong.status, wrong.reason()), (401, "invalid_key"));
    assert_eq!(
        status(&a, "stats?site=blog", &ingest_key).await.status,
        401,
        "not a read key"
    );
    let identify = reqwest::Client::new()
        .post(a.url("/v1/identify"))
        .bearer_auth(&ingest_key)
        .header("content-type", "application/json")
        .body(json!({"site": "blog", "user_id": "u1", "traits": {"plan": "pro"}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(identify.status(), 204);

    // Used keys say so; the list never holds a key's text.
    let admin_on = As {
        session: Some(&admin),
        ..As::default()
    };
    let list = call(&a, "GET", "/api/v1/sites/blog/keys", None, admin_on).await;
    let keys = list.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 4);
    assert!(
        !list.body.to_string().contains(&key[10..]),
        "a key's text listed"
    );
    for k in keys {
        assert!(k["last_used_at"].is_string(), "{k}");
    }
    // Written to the table (the first use at once), for the other collectors.
    within_5s("last use written", async || {
        a.scalar("SELECT count() FROM api_keys FINAL WHERE last_used_at > 0")
            .await
            == 4
    })
    .await;

    // Revoked on one collector, refused on the other within 5 s.
    let id = all["id"].as_str().unwrap();
    let revoke = call(
        &a,
        "DELETE",
        &format!("/api/v1/sites/blog/keys/{id}"),
        None,
        admin_on,
    )
    .await;
    assert_eq!(revoke.status, 204, "{}", revoke.body);
    assert_eq!(
        status(&a, "stats?site=blog", &all_key).await.status,
        401,
        "at once where revoked"
    );
    let took = within_5s("b refuses the revoked key", async || {
        status(&b, "stats?site=blog", &all_key).await.status == 401
    })
    .await;
    eprintln!("the other collector refused the revoked read key after {took:?}");
    let id = ingest["id"].as_str().unwrap();
    let revoke = call(
        &b,
        "DELETE",
        &format!("/api/v1/sites/blog/keys/{id}"),
        None,
        admin_on,
    )
    .await;
    assert_eq!(revoke.status, 204);
    let took = within_5s("a refuses the revoked ingest key", async || {
        post_batch(&a, &batch, "", Some(&ingest_key)).await.status == 401
    })
    .await;
    eprintln!("the other collector refused the revoked ingest key after {took:?}");
    // A later "last used" write cannot bring a revoked key back, merged or not.
    a.db.query("OPTIMIZE TABLE api_keys FINAL")
        .execute()
        .await
        .unwrap();
    let revoked = a
        .scalar("SELECT count() FROM api_keys FINAL WHERE revoked = 1")
        .await;
    assert_eq!(revoked, 2);
    let list = call(&b, "GET", "/api/v1/sites/blog/keys", None, admin_on).await;
    let flags: Vec<bool> = list.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["revoked"].as_bool().unwrap())
        .collect();
    assert_eq!(flags.iter().filter(|r| **r).count(), 2, "{}", list.body);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn bad_input_file_sites_other_origins_and_non_admins_are_refused() {
    let server = TestServer::start_with("sites_refusals", |c| {
        c.prefix = "/stats".into();
        // Another account is made beside the server below, which signs in once it has read it.
        c.accounts.refresh_ms = 100;
    })
    .await;
    let s = &server;
    let nobody = call(s, "GET", "/api/v1/sites", None, As::default()).await;
    assert_eq!((nobody.status, nobody.reason()), (401, "not_signed_in"));
    let admin = first_admin(s).await;
    let admin_on = As {
        session: Some(&admin),
        ..As::default()
    };
    let post = |body: &str| {
        let body = body.to_owned();
        async move { call(s, "POST", "/api/v1/sites", Some(&body), admin_on).await }
    };
    for (body, field) in [
        (r#"{"id": "a b"}"#, "id"),
        (r#"{"id": ""}"#, "id"),
        (r#"{"name": "no id"}"#, "id"),
        (r#"{"id": "x", "origins": ["shop.example"]}"#, "origins"),
        (
            r#"{"id": "x", "origins": ["https://shop.example/path"]}"#,
            "origins",
        ),
        (
            r#"{"id": "x", "timezone": "Mars/Olympus_Mons"}"#,
            "timezone",
        ),
        (
            r#"{"id": "x", "base_url": "javascript:alert(1)"}"#,
            "base_url",
        ),
        (r#"{"id": "x", "name": "  "}"#, "name"),
        (
            r#"{"id": "x", "origins": ["https://shop.example/"]}"#,
            "origins",
        ),
    ] {
        let r = post(body).await;
        assert_eq!(
            (r.status, r.reason()),
            (400, "invalid"),
            "{body}: {}",
            r.body
        );
        assert_eq!(r.body["field"], field, "{body}");
        assert!(
            r.body["error"].as_str().unwrap().starts_with(field),
            "{}",
            r.body
        );
    }
    for body in [
        "not json",
        r#"{"id": "x", "colour": "red"}"#,
        r#"{"id": 5}"#,
        "[]",
    ] {
        let r = post(body).await;
        assert_eq!(
            (r.status, r.reason()),
            (400, "bad_body"),
            "{body}: {}",
            r.body
        );
    }
    let taken = post(r#"{"id": "test"}"#).await;
    assert_eq!((taken.status, taken.reason()), (409, "site_exists"));
    for (method, body) in [("PATCH", Some(r#"{"name": "Test"}"#)), ("DELETE", None)] {
        let r = call(s, method, "/api/v1/sites/test", body, admin_on).await;
        assert_eq!((r.status, r.reason()), (409, "read_only"), "{method}");
    }
    let missing = call(s, "PATCH", "/api/v1/sites/nope", Some("{}"), admin_on).await;
    assert_eq!((missing.status, missing.reason()), (404, "site_not_found"));
    let put = call(s, "PUT", "/api/v1/sites", Some("{}"), admin_on).await;
    assert_eq!(
        (put.status, &put.headers["allow"]),
        (405, &"GET, POST".parse().unwrap())
    );

    // From another site's page, or with no Origin at all, a cookie changes nothing.
    for origin in ["https://evil.example", ""] {
        let who = As {
            origin: Some(origin),
            ..admin_on
        };
        let r = call(s, "POST", "/api/v1/sites", Some(r#"{"id": "evil"}"#), who).await;
        assert_eq!((r.status, r.reason()), (403, "cross_origin"), "{origin:?}");
    }
    // A key is no session.
    let r = call(
        s,
        "GET",
        "/api/v1/sites",
        None,
        As {
            bearer: Some("test-token"),
            ..As::default()
        },
    )
    .await;
    assert_eq!(r.status, 401);

    // Made, changed, removed; the snippet follows the collector's prefix.
    let made = post(r#"{"id": "shop", "origins": ["https://Shop.Example"]}"#).await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(
        (
            &made.body["origins"],
            &made.body["timezone"],
            &made.body["name"]
        ),
        (
            &json!(["https://shop.example"]),
            &json!("UTC"),
            &json!("shop")
        )
    );
    assert_eq!(
        made.body["snippet"],
        r#"<script async src="/stats/p.js" data-site="shop"></script>"#
    );
    let patch =
        r#"{"name": "Shop", "origins": ["https://shop.example", "https://www.shop.example"]}"#;
    let changed = call(s, "PATCH", "/api/v1/sites/shop", Some(patch), admin_on).await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["name"], "Shop");
    assert_eq!(changed.body["origins"][1], "https://www.shop.example");
    let key = make_key(s, &admin, "shop", json!({"name": "k", "kind": "read"})).await;
    let key = key["key"].as_str().unwrap().to_owned();
    let reads = |k: String| async move {
        call(
            s,
            "GET",
            "/api/v1/stats?site=shop",
            None,
            As {
                bearer: Some(&k),
                origin: Some(""),
                ..As::default()
            },
        )
        .await
        .status
    };
    assert_eq!(reads(key.clone()).await, 200);
    assert_eq!(
        call(s, "DELETE", "/api/v1/sites/shop", None, admin_on)
            .await
            .status,
        204
    );
    let mut batch = batch_now();
    batch.site_id = "shop".into();
    let gone = post_batch(s, &batch, "https://shop.example", None).await;
    assert_eq!((gone.status, gone.reason()), (403, "unknown_site"));
    let keys = call(s, "GET", "/api/v1/sites/shop/keys", None, admin_on).await;
    assert_eq!((keys.status, keys.reason()), (404, "site_not_found"));
    // Made again, the id does not bring its old keys back.
    assert_eq!(post(r#"{"id": "shop"}"#).await.status, 201);
    assert_eq!(reads(key).await, 401);

    // An account that is no instance admin makes and manages nothing, and sees no site.
    let config = Config::for_tests(clickhouse_url(), "it_sites_refusals");
    let accounts = pathlight_collector::accounts::Accounts::new(
        pathlight_collector::accounts_client(&config),
        config.accounts.clone(),
    );
    accounts
        .add("bob@example.com", PASSWORD, false)
        .await
        .unwrap();
    // A few tries apart, not more: each failure counts towards the sign-in throttle.
    let mut bob = None;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let body = json!({"email": "bob@example.com", "password": PASSWORD}).to_string();
        let r = reqwest::Client::new()
            .post(s.url("/api/v1/auth/signin"))
            .header("origin", s.url(""))
            .body(body)
            .send()
            .await
            .unwrap();
        bob = r.headers().get("set-cookie").map(|c| {
            let c = c.to_str().unwrap().split(';').next().unwrap();
            c["pathlight_session=".len()..].to_owned()
        });
        if bob.is_some() {
            break;
        }
    }
    let bob = bob.unwrap();
    let bob_on = As {
        session: Some(&bob),
        ..As::default()
    };
    let list = call(s, "GET", "/api/v1/sites", None, bob_on).await;
    assert_eq!((list.status, &list.body), (200, &json!({"sites": []})));
    for (method, path, body) in [
        ("POST", "/api/v1/sites", Some(r#"{"id": "bobs"}"#)),
        ("PATCH", "/api/v1/sites/shop", Some(r#"{"name": "mine"}"#)),
        ("DELETE", "/api/v1/sites/shop", None),
        ("GET", "/api/v1/sites/shop/keys", None),
        (
            "POST",
            "/api/v1/sites/shop/keys",
            Some(r#"{"name": "k", "kind": "read"}"#),
        ),
    ] {
        let r = call(s, method, path, body, bob_on).await;
        assert_eq!(
            (r.status, r.reason()),
            (403, "forbidden"),
            "{method} {path}"
        );
    }
    // Every refusal is counted with its route and status.
    let metrics = s.metrics().await;
    for status in ["400", "401", "403", "404", "405", "409"] {
        let line = format!("route=\"api_manage\",status=\"{status}\"");
        assert!(metrics.contains(&line), "{line} not counted");
    }
    server.stop().await;
}
