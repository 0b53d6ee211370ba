//! Issue 35's findings, each kept from coming back: the demo on an origin of its own serving
//! only pages, the security headers of every answer, redirects that stay on the origin, live
//! tokens nobody can forge, a secret `serve` insists on, wrong tokens throttled, and events of
//! other hosts refused. (The browser's side: tests/browser/security.test.mjs.)

use crate::{TestServer, free_port, json_body, post};
use pathlight_collector::config::SiteConfig;
use std::path::PathBuf;

fn repo(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(dir)
}

fn site(id: &str, origins: &[&str], token: &str) -> SiteConfig {
    SiteConfig {
        id: id.into(),
        origins: origins.iter().map(|o| (*o).to_owned()).collect(),
        max_events_per_sec: 0,
        api_token: token.into(),
        api_token_sha256: String::new(),
        ingest_keys_sha256: Vec::new(),
        search: Default::default(),
        require_key: false,
        base_url: String::new(),
        goals: Vec::new(),
        metric_paths: Vec::new(),
        anomalies: Default::default(),
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The header's value, or "" when absent.
fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .map_or("", |v| v.to_str().unwrap_or(""))
}

#[tokio::test]
async fn the_demo_has_its_own_origin_and_serves_its_pages_only() {
    let demo_port = free_port();
    let server = TestServer::start_with("sec_demo", |c| {
        c.www_dir = Some(repo("www"));
        c.demo_dir = Some(repo("demo-site"));
        c.demo_listen = Some(([127, 0, 0, 1], demo_port).into());
    })
    .await;
    let demo = |p: &str| format!("http://127.0.0.1:{demo_port}{p}");
    let client = no_redirects();
    let get = |url: String| {
        let c = client.clone();
        async move { c.get(url).send().await.unwrap() }
    };

    // The pages load the tracker from the collector, named as the page was asked for.
    let collector = server.url("");
    let page = get(demo("/demo/app.html")).await;
    assert_eq!(page.status(), 200);
    let csp = header(&page, "content-security-policy").to_owned();
    assert!(
        csp.contains(&format!("script-src 'self' {collector} 'wasm-unsafe-eval'")),
        "{csp}"
    );
    assert!(
        csp.contains(&format!("connect-src 'self' {collector};")),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    let html = page.text().await.unwrap();
    assert!(html.contains("<script src=\"app.js\">"), "{html}");
    assert!(
        html.contains(&format!("<script async src=\"{collector}/p.js\"")),
        "{html}"
    );
    let by_name = client
        .get(demo("/demo/index.html"))
        .header("host", format!("localhost:{demo_port}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let port = server.addr.port();
    assert!(
        by_name.contains(&format!("src=\"http://localhost:{port}/p.js\"")),
        "{by_name}"
    );
    for asset in ["/demo/app.js", "/demo/style.css", "/demo/"] {
        assert_eq!(get(demo(asset)).await.status(), 200, "{asset}");
    }
    let root = get(demo("/")).await;
    assert_eq!(
        (root.status().as_u16(), header(&root, "location")),
        (302, "/demo/")
    );
    // Config, data and everything of the dashboards' origin stay unreachable here.
    for p in [
        "/demo/pathlight.toml",
        "/demo/layout.json",
        "/demo/sample-events.csv",
        "/demo/../README.md",
        "/demo/.hidden",
        "/index.html",
        "/heatmap.html",
        "/common.js",
        "/api/v1/openapi.json",
        "/api/v1/stats?site=test",
        "/metrics",
        "/v1/relay/salts",
        "/p.js",
        "/v1/batch",
    ] {
        let r = get(demo(p)).await;
        assert_eq!(r.status(), 404, "{p} on the demo's origin");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff", "{p}");
    }
    let (status, _) = post(
        &client,
        &demo("/v1/batch"),
        None,
        pathlight_wire::cbor::encode(&crate::batch_now()),
    )
    .await;
    assert_eq!(status, 404, "batches go to the collector");
    // And the dashboards' origin serves no demo page.
    for p in ["/demo/app.html", "/demo/", "/demo"] {
        assert_eq!(
            get(server.url(p)).await.status(),
            404,
            "{p} on the dashboards' origin"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn every_page_and_api_answer_carries_the_security_headers() {
    let server = TestServer::start_with("sec_headers", |c| {
        c.www_dir = Some(repo("www"));
        c.sites
            .push(site("shop", &["https://shop.example", "*"], "shop-token"));
    })
    .await;
    let client = no_redirects();
    let mut pages = 0;
    for entry in std::fs::read_dir(repo("www")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".html") {
            continue;
        }
        pages += 1;
        let r = client
            .get(server.url(&format!("/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}");
        let csp = header(&r, "content-security-policy");
        for want in [
            "script-src 'self';",
            "frame-ancestors 'self'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(want), "{name}: {want} in {csp}");
        }
        assert!(
            !csp.contains("unsafe") && !csp.contains("wasm"),
            "{name}: {csp}"
        );
        let frames = if name == "heatmap.html" {
            "frame-src https://shop.example;"
        } else {
            "frame-src 'none';"
        };
        assert!(csp.contains(frames), "{name}: {csp}");
        assert_eq!(header(&r, "x-frame-options"), "SAMEORIGIN", "{name}");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff", "{name}");
        assert_eq!(
            header(&r, "referrer-policy"),
            "strict-origin-when-cross-origin",
            "{name}"
        );
    }
    assert_eq!(
        pages, 11,
        "index, sessions, heatmap, search, retention, signin, setup, account, settings, invite and share"
    );
    for (path, token, status) in [
        ("/api/v1/stats?site=test", "test-token", 200),
        ("/api/v1/site?site=shop", "shop-token", 200),
        ("/api/v1/export?site=test", "test-token", 200),
        ("/api/v1/stats?site=test", "wrong", 401),
    ] {
        let r = client
            .get(server.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{path}");
        assert_eq!(header(&r, "cache-control"), "no-store", "{path}");
        assert_eq!(
            header(&r, "content-security-policy"),
            "default-src 'none'; frame-ancestors 'none'",
            "{path}"
        );
        assert_eq!(header(&r, "x-content-type-options"), "nosniff", "{path}");
        if path.starts_with("/api/v1/site") {
            let body = json_body(r).await;
            assert_eq!(
                body["origins"],
                serde_json::json!(["https://shop.example", "*"])
            );
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn no_redirect_leaves_the_origin() {
    let demo_port = free_port();
    let server = TestServer::start_with("sec_redirects", |c| {
        c.www_dir = Some(repo("www"));
        c.demo_dir = Some(repo("demo-site"));
        c.demo_listen = Some(([127, 0, 0, 1], demo_port).into());
    })
    .await;
    let client = no_redirects();
    let demo = format!("http://127.0.0.1:{demo_port}");
    for (base, path) in [
        (server.url(""), "//vendor"),
        (server.url(""), "//vendor/"),
        (server.url(""), "/\\vendor"),
        (server.url(""), "//evil.example/x"),
        (demo.clone(), "//demo"),
        (demo.clone(), "/demo//"),
    ] {
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        let location = header(&r, "location");
        assert!(
            location.is_empty() || (location.starts_with('/') && !location.starts_with("//")),
            "{path}: {} to {location}",
            r.status()
        );
        assert_eq!(r.status(), 404, "{path}");
    }
    for (base, path, to) in [
        (server.url(""), "/vendor", "/vendor/"),
        (demo.clone(), "/demo", "/demo/"),
    ] {
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!((r.status().as_u16(), header(&r, "location")), (301, to));
    }
    server.stop().await;
}

#[tokio::test]
async fn live_tokens_cannot_be_forged_for_sites_without_an_api_token() {
    let server = TestServer::start_with("sec_live", |c| {
        c.sites.push(site("open", &["*"], ""));
    })
    .await;
    let client = reqwest::Client::new();
    // Signed with the deployment's own secret: only a token the API issued for a site with an
    // API token is accepted.
    let config = pathlight_collector::config::Config::for_tests("", "");
    let signer = pathlight_collector::query::auth::Auth::new(&config.hash_secret);
    let now = pathlight_collector::dates::now_ms() as u64 / 1000;
    for site in ["open", "nosuchsite"] {
        // `realtime/ws` checks tokens the same way (`QueryApi::live_site`).
        let (token, _) = signer.issue_live(site, now);
        let r = client
            .get(server.url(&format!(
                "/api/v1/realtime/stream?site={site}&token={token}"
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{site}");
    }
    let (token, _) = signer.issue_live("test", now);
    let r = client
        .get(server.url(&format!("/api/v1/realtime/stream?site=test&token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a site with an API token");
    drop(r);
    server.stop().await;
}

#[tokio::test]
async fn wrong_tokens_are_throttled_per_address_logged_and_counted() {
    let server = TestServer::start_with("sec_throttle", |c| {
        c.api_auth_failures_per_minute = 5;
        // Addresses as a proxy reports them, so the test can be two clients.
        c.client_ip_header = "x-forwarded-for".into();
    })
    .await;
    let client = reqwest::Client::new();
    let ask = |from: &'static str, auth: &'static str, site: &'static str| {
        let c = client.clone();
        let url = server.url(&format!("/api/v1/stats?site={site}"));
        async move {
            c.get(url)
                .header("x-forwarded-for", from)
                .header("authorization", auth)
                .send()
                .await
                .unwrap()
        }
    };
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let auth: &'static str = Box::leak(format!("{scheme} test-token").into_boxed_str());
        assert_eq!(
            ask("203.0.113.1", auth, "test").await.status(),
            200,
            "{scheme}"
        );
    }
    for i in 0..5 {
        let site = if i == 0 { "nosuchsite" } else { "test" };
        let r = ask("203.0.113.1", "Bearer guess", site).await;
        assert_eq!(r.status(), 401, "guess {i}");
    }
    for auth in ["Bearer guess", "Bearer test-token"] {
        let r = ask("203.0.113.1", auth, "test").await;
        assert_eq!(
            r.status(),
            429,
            "{auth}: every request of the address, right or wrong"
        );
        let wait: u64 = header(&r, "retry-after").parse().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(json_body(r).await["reason"], "throttled");
    }
    assert_eq!(
        ask("203.0.113.2", "Bearer test-token", "test")
            .await
            .status(),
        200,
        "another address"
    );
    let metrics = server.metrics().await;
    for line in [
        "pathlight_api_unauthorized_total{site=\"test\"} 4",
        "pathlight_api_unauthorized_total{site=\"other\"} 1",
        "pathlight_api_throttled_total 2",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    server.stop().await;
}

#[tokio::test]
async fn events_on_hosts_the_site_does_not_list_are_refused_one_by_one() {
    let server = TestServer::start_with("sec_hosts", |c| {
        c.sites[0].origins = vec!["https://shop.example:8443".into()];
    })
    .await;
    let mut batch = crate::batch_now();
    let urls = [
        "https://shop.example/a",
        "https://evil.example/x",
        "/imported/path",
        "//evil.example/y",
        "http://SHOP.example//evil.example/z",
        "https://evil.example\\@shop.example/",
    ];
    let template = batch.events[0].clone();
    batch.events = urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let mut e = template.clone();
            e.id.0[15] = i as u8;
            e.url = (*url).into();
            e
        })
        .collect();
    let (status, json) = post(
        &reqwest::Client::new(),
        &server.url("/v1/batch"),
        None,
        pathlight_wire::cbor::encode(&batch),
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["accepted"], 3, "{json}");
    let refused = crate::refused(&json);
    assert_eq!(
        refused,
        [
            (1, "host_not_allowed", "events[1].url"),
            (3, "host_not_allowed", "events[3].url"),
            (5, "host_not_allowed", "events[5].url"),
        ]
    );
    assert!(
        server
            .metrics()
            .await
            .contains("pathlight_events_rejected_total{reason=\"host_not_allowed\"} 3")
    );
    server.stop().await;
}

/// `serve` itself, as an operator starts it: no ClickHouse is needed to be refused.
#[test]
fn serve_refuses_to_start_with_a_secret_anyone_could_know() {
    let bin = env!("CARGO_BIN_EXE_pathlight");
    for secret in ["", "demo-secret-change-me", "too-short"] {
        let out = std::process::Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("PATHLIGHT_HASH_SECRET", secret)
            .env("PATHLIGHT_CLICKHOUSE__URL", "http://127.0.0.1:9")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{secret:?}");
        assert!(stderr.contains("pathlight secret"), "{secret:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{secret:?}: nothing listened");
    }
    let out = std::process::Command::new(bin)
        .arg("secret")
        .output()
        .unwrap();
    let secret = String::from_utf8(out.stdout).unwrap();
    assert!(
        secret.trim().len() == 64 && secret.trim().bytes().all(|b| b.is_ascii_hexdigit()),
        "{secret}"
    );
}

#[tokio::test]
async fn servers_write_into_a_site_with_its_ingest_key_and_only_with_it() {
    let digest = |k: &str| pathlight_collector::query::auth::digest_hex(k);
    let (old, new) = ("old-key-of-the-shop", "new-key-of-the-shop");
    let server = TestServer::start_with("sec_ingest_keys", |c| {
        c.sites[0].origins = vec!["https://shop.example".into()];
        c.sites[0].ingest_keys_sha256 = vec![digest(old), digest(new)];
        c.sites[0].require_key = true;
        let mut open = site("open", &[], "");
        open.ingest_keys_sha256 = vec![digest("key-of-open")];
        c.sites.push(open);
    })
    .await;
    let client = reqwest::Client::new();
    // Each send carries events of its own, so that stored counts add up.
    let mut n = 0u8;
    let mut send = |site: &str, headers: &[(&str, &str)]| {
        n += 1;
        let mut batch = crate::batch_now();
        batch.site_id = site.into();
        for e in &mut batch.events {
            e.id.0[14] = n;
        }
        batch.batch_id.0[14] = n;
        let mut req = client
            .post(server.url("/v1/batch"))
            .body(pathlight_wire::cbor::encode(&batch));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), json_body(resp).await)
        }
    };
    // A server without a key, or with a wrong one: refused with the reason.
    let (status, json) = send("test", &[]).await;
    assert_eq!(
        (status, json["reason"].as_str()),
        (401, Some("key_required")),
        "{json}"
    );
    let (status, json) = send("test", &[("x-api-key", "guess")]).await;
    assert_eq!(
        (status, json["reason"].as_str()),
        (401, Some("invalid_key")),
        "{json}"
    );
    // A page of another origin is no better than a server without a key.
    let (status, json) = send("test", &[("origin", "https://evil.example")]).await;
    assert_eq!(
        (status, json["reason"].as_str()),
        (401, Some("key_required")),
        "{json}"
    );
    // Either key, in either header, from anywhere; the site's own pages need none.
    for headers in [
        &[("x-api-key", old)][..],
        &[("authorization", &format!("Bearer {new}") as &str)][..],
        &[("x-api-key", new), ("origin", "https://evil.example")][..],
        &[("origin", "https://shop.example")][..],
    ] {
        let (status, json) = send("test", headers).await;
        assert_eq!(status, 204, "{headers:?}: {json}");
    }
    // A site that requires no key still takes servers without one, and refuses a wrong one.
    assert_eq!(send("open", &[]).await.0, 204);
    let (status, json) = send("open", &[("x-api-key", old)]).await;
    assert_eq!(
        (status, json["reason"].as_str()),
        (401, Some("invalid_key")),
        "{json}"
    );
    assert_eq!(send("open", &[("x-api-key", "key-of-open")]).await.0, 204);

    let per_batch = crate::batch_now().events.len() as u64;
    let stored = "SELECT count() FROM events WHERE site_id = ";
    assert_eq!(
        server.scalar(&format!("{stored}'test'")).await,
        4 * per_batch
    );
    assert_eq!(
        server.scalar(&format!("{stored}'open'")).await,
        2 * per_batch
    );
    let metrics = server.metrics().await;
    let counted = |line: &str| assert!(metrics.contains(line), "{line} in\n{metrics}");
    counted(&format!(
        "pathlight_ingest_key_batches_total{{site=\"test\",key=\"{}\"}} 1",
        &digest(old)[..8]
    ));
    counted(&format!(
        "pathlight_ingest_key_batches_total{{site=\"test\",key=\"{}\"}} 2",
        &digest(new)[..8]
    ));
    counted(&format!(
        "pathlight_ingest_key_batches_total{{site=\"open\",key=\"{}\"}} 1",
        &digest("key-of-open")[..8]
    ));
    counted(&format!(
        "pathlight_events_rejected_total{{reason=\"key_required\"}} {}",
        2 * per_batch
    ));
    counted(&format!(
        "pathlight_events_rejected_total{{reason=\"invalid_key\"}} {}",
        2 * per_batch
    ));
    server.stop().await;
}
