//! The HTTP surface around ingest: CORS preflight, health, static files, path safety.

use crate::TestServer;

#[tokio::test]
async fn preflight_health_and_static_files() {
    let dirs = tempdir("static");
    std::fs::create_dir_all(dirs.join("www")).unwrap();
    std::fs::create_dir_all(dirs.join("demo")).unwrap();
    std::fs::write(dirs.join("www/index.html"), "<h1>dash</h1>").unwrap();
    std::fs::write(dirs.join("demo/index.html"), "<h1>demo</h1>").unwrap();
    std::fs::write(dirs.join("demo/t.wasm"), b"\0asm").unwrap();
    std::fs::write(dirs.join("www/notes.md"), "not a page").unwrap();
    std::fs::write(dirs.join("secret.txt"), "no").unwrap();
    let (www, demo) = (dirs.join("www"), dirs.join("demo"));
    let server = TestServer::start_with("http_surface", move |c| {
        c.www_dir = Some(www);
        c.demo_dir = Some(demo);
    })
    .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let pre = client
        .request(reqwest::Method::OPTIONS, server.url("/v1/batch"))
        .header("origin", "https://anywhere.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 204);
    assert_eq!(
        pre.headers()["access-control-allow-origin"],
        "https://anywhere.example"
    );
    assert_eq!(pre.headers()["access-control-allow-credentials"], "true");
    assert!(
        pre.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );

    let health = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let get = |p: &'static str| {
        let c = client.clone();
        let u = server.url(p);
        async move {
            let r = c.get(u).send().await.unwrap();
            let ct = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            (r.status().as_u16(), ct, r.text().await.unwrap())
        }
    };
    assert_eq!(get("/").await.2, "<h1>dash</h1>");
    // The demo site has an origin of its own (http/security.rs), never the dashboards'.
    for p in [
        "/../secret.txt",
        "/demo/",
        "/demo/t.wasm",
        "/demo/../secret.txt",
        "/%2e%2e/secret.txt",
        "/nope.html",
        "/notes.md",
    ] {
        let (status, _, body) = get(p).await;
        assert_eq!(status, 404, "{p}");
        assert!(
            !body.contains("no") || body.contains("not found"),
            "{p}: {body}"
        );
    }
    server.stop().await;
    let _ = std::fs::remove_dir_all(dirs);
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("pathlight-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The tracker's files, as a site on any origin loads them: open to every origin, the
/// content-hashed ones cached for a year, the loader revalidated; the same under `prefix`, where
/// nothing else is served; the earlier names still answer.
#[tokio::test]
async fn tracker_files_are_public_cached_and_under_the_prefix() {
    let dir = tempdir("tracker");
    std::fs::write(dir.join("p.js"), "loader").unwrap();
    std::fs::write(dir.join("p.0123abcd.wasm"), b"\0asm").unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        r#"{"loader":"p.js","wasm":"p.0123abcd.wasm"}"#,
    )
    .unwrap();
    std::fs::write(dir.join("secret.txt"), "no").unwrap();
    let server = TestServer::start_with("tracker_files", move |c| {
        c.tracker_dir = Some(dir);
        c.prefix = "/_pl".into();
    })
    .await;
    let client = reqwest::Client::new();
    for base in ["", "/_pl"] {
        let wasm = client
            .get(server.url(&format!("{base}/p.0123abcd.wasm")))
            .header("origin", "https://shop.example")
            .send()
            .await
            .unwrap();
        assert_eq!(wasm.status(), 200, "{base}");
        let h = wasm.headers();
        assert_eq!(h["content-type"], "application/wasm");
        assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
        assert_eq!(h["access-control-allow-origin"], "*");
        assert_eq!(h["cross-origin-resource-policy"], "cross-origin");
        assert_eq!(h["x-content-type-options"], "nosniff");

        let loader = client
            .get(server.url(&format!("{base}/p.js")))
            .send()
            .await
            .unwrap();
        assert_eq!(loader.headers()["cache-control"], "public, max-age=300");
        let etag = loader.headers()["etag"].clone();
        assert_eq!(loader.text().await.unwrap(), "loader");
        let again = client
            .get(server.url(&format!("{base}/p.js")))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{base}: unchanged loader");
        assert_eq!(again.headers()["access-control-allow-origin"], "*");
    }
    let legacy = client
        .get(server.url("/pathlight_bg.wasm"))
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.bytes().await.unwrap().as_ref(), b"\0asm");
    for p in [
        "/_pl/secret.txt",
        "/_pl/healthz",
        "/_pl/metrics",
        "/_pl/api/v1/openapi.json",
        "/_pl/p.ABCDEF12.wasm",
        "/secret.txt",
    ] {
        let status = client.get(server.url(p)).send().await.unwrap().status();
        assert_eq!(status, 404, "{p}");
    }
    let (status, _) = crate::post(
        &client,
        &server.url("/_pl/v1/batch"),
        None,
        pathlight_wire::cbor::encode(&crate::batch_now()),
    )
    .await;
    assert_eq!(status, 204, "batches under the prefix");
    server.stop().await;
    let _ = std::fs::remove_dir_all(tempdir("tracker"));
}
