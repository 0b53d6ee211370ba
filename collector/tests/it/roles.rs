//! Roles per site, invitations and shared links (issue 36, second part) against a real
//! ClickHouse 18.16: a viewer reads its site and nothing else and changes nothing; an editor
//! manages no members or keys, an admin of the site does; an invitation makes an account signed in
//! with a new session, once, and not after it expired or was withdrawn; a shared link reads
//! exactly its scope, needs its password, and gives 404 once revoked or expired; a membership
//! removed or a link revoked on one collector ends on another within 5 s.

use crate::accounts::{ADMIN, Answer, PASSWORD, call, me, setup, within_5s};
use crate::{TestServer, clickhouse_url};
use pathlight_collector::config::{Config, SiteConfig};
use serde_json::{Value, json};
use std::time::Duration;

/// No throttle on refused reads: these tests are refused on purpose, and poll until a change
/// is seen, many times a minute from one address.
fn unthrottled(c: &mut Config) {
    c.api_auth_failures_per_minute = 0;
}

/// A second site beside the tests' `test`, with its own token.
fn two_sites(c: &mut Config) {
    unthrottled(c);
    let other = SiteConfig {
        id: "other".into(),
        api_token: "other-token".into(),
        ..c.sites[0].clone()
    };
    c.sites.push(other);
}

async fn post(server: &TestServer, path: &str, body: Value, cookie: Option<&str>) -> Answer {
    call(server, "POST", path, Some(body), cookie, None).await
}

/// Invites `email` to `site` with `role` as the signed-in `admin`; the link's token.
async fn invite(server: &TestServer, admin: &str, site: &str, role: &str, email: &str) -> String {
    let made = post(
        server,
        &format!("/api/v1/sites/{site}/invitations"),
        json!({"role": role, "email": email}),
        Some(admin),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let url = made.body["url"].as_str().unwrap();
    url.strip_prefix("/invite.html#t=").unwrap().to_owned()
}

/// Accepts `token` signed out, making the account `email`; its session token.
async fn join(server: &TestServer, token: &str, email: &str) -> String {
    let body = json!({"token": token, "email": email, "password": PASSWORD});
    let joined = post(server, "/api/v1/invitations/accept", body, None).await;
    assert_eq!(joined.status, 201, "{}", joined.body);
    joined.token()
}

/// The status of `GET /api/v1/{q}` with a session cookie.
async fn read(server: &TestServer, q: &str, cookie: &str) -> u16 {
    call(
        server,
        "GET",
        &format!("/api/v1/{q}"),
        None,
        Some(cookie),
        None,
    )
    .await
    .status
}

/// The status of `GET /api/v1/{q}` with `Authorization: Bearer <token>`.
async fn bearer(server: &TestServer, q: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(server.url(&format!("/api/v1/{q}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The account id of `email` among the members of `site`.
async fn member_id(server: &TestServer, admin: &str, site: &str, email: &str) -> String {
    let path = format!("/api/v1/sites/{site}/members");
    let list = call(server, "GET", &path, None, Some(admin), None).await;
    assert_eq!(list.status, 200, "{}", list.body);
    list.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == email)
        .unwrap_or_else(|| panic!("{email} in {}", list.body))["account_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn an_invited_viewer_reads_its_site_only_and_changes_nothing() {
    let server = TestServer::start_with("roles_viewer", two_sites).await;
    let admin = setup(&server).await.token();
    let token = invite(&server, &admin, "test", "viewer", "Vera@Example.com").await;
    let pending = call(
        &server,
        "GET",
        "/api/v1/sites/test/invitations",
        None,
        Some(&admin),
        None,
    )
    .await;
    let list = pending.body["invitations"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{}", pending.body);
    assert_eq!(
        (list[0]["role"].as_str(), list[0]["email"].as_str()),
        (Some("viewer"), Some("vera@example.com"))
    );
    assert!(
        !pending.body.to_string().contains(&token),
        "no token listed"
    );

    // Accepted signed out, with a session id planted before: a new account, a new session,
    // the invitation's email when none is given.
    let planted = "attacker-chosen-session-id";
    let body = json!({"token": token, "password": PASSWORD});
    let joined = call(
        &server,
        "POST",
        "/api/v1/invitations/accept",
        Some(body.clone()),
        Some(planted),
        None,
    )
    .await;
    assert_eq!(joined.status, 201, "{}", joined.body);
    assert_eq!(
        joined.body,
        json!({"site": "test", "role": "viewer", "email": "vera@example.com"})
    );
    let viewer = joined.token();
    assert_ne!(viewer, planted);
    assert_eq!(me(&server, planted).await, 401);
    let who = call(&server, "GET", "/api/v1/auth/me", None, Some(&viewer), None).await;
    assert_eq!(
        (&who.body["admin"], &who.body["roles"]),
        (&json!(false), &json!({"test": "viewer"}))
    );
    // Once.
    let again = post(&server, "/api/v1/invitations/accept", body, None).await;
    assert_eq!(
        (again.status, again.reason()),
        (404, "invitation_not_found")
    );
    let listed = call(
        &server,
        "GET",
        "/api/v1/sites/test/invitations",
        None,
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(listed.body["invitations"], json!([]), "no longer pending");

    // Its list of sites holds its site, with its role, and no other.
    let sites = call(&server, "GET", "/api/v1/sites", None, Some(&viewer), None).await;
    let listed: Vec<(&str, &str)> = sites.body["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["role"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, [("test", "viewer")], "{}", sites.body);
    // Reads its site, by cookie, and nothing else.
    for q in [
        "stats?site=test",
        "heatmap?site=test&path=/",
        "sessions?site=test",
    ] {
        assert_eq!(read(&server, q, &viewer).await, 200, "{q}");
    }
    for q in ["stats?site=other", "heatmap?site=other&path=/"] {
        assert_eq!(read(&server, q, &viewer).await, 401, "{q}");
    }
    // Every write, and the admins' lists, refused: on its site and on the other.
    let vera = member_id(&server, &admin, "test", "vera@example.com").await;
    for site in ["test", "other"] {
        for (method, path, body) in [
            ("GET", format!("/api/v1/sites/{site}/members"), None),
            (
                "PATCH",
                format!("/api/v1/sites/{site}/members/{vera}"),
                Some(json!({"role": "admin"})),
            ),
            (
                "DELETE",
                format!("/api/v1/sites/{site}/members/{vera}"),
                None,
            ),
            ("GET", format!("/api/v1/sites/{site}/invitations"), None),
            (
                "POST",
                format!("/api/v1/sites/{site}/invitations"),
                Some(json!({"role": "admin"})),
            ),
            (
                "DELETE",
                format!("/api/v1/sites/{site}/invitations/x"),
                None,
            ),
            ("GET", format!("/api/v1/sites/{site}/shares"), None),
            (
                "POST",
                format!("/api/v1/sites/{site}/shares"),
                Some(json!({"kind": "dashboard"})),
            ),
            ("DELETE", format!("/api/v1/sites/{site}/shares/x"), None),
            (
                "PATCH",
                format!("/api/v1/sites/{site}"),
                Some(json!({"name": "mine"})),
            ),
            ("DELETE", format!("/api/v1/sites/{site}"), None),
            ("GET", format!("/api/v1/sites/{site}/keys"), None),
            (
                "POST",
                format!("/api/v1/sites/{site}/keys"),
                Some(json!({"name": "k", "kind": "read"})),
            ),
            ("DELETE", format!("/api/v1/sites/{site}/keys/x"), None),
        ] {
            let a = call(&server, method, &path, body, Some(&viewer), None).await;
            assert_eq!(
                (a.status, a.reason()),
                (403, "forbidden"),
                "{method} {path}"
            );
        }
    }
    // Without a session, or from another origin, before any role is asked.
    let a = call(
        &server,
        "GET",
        "/api/v1/sites/test/members",
        None,
        None,
        None,
    )
    .await;
    assert_eq!((a.status, a.reason()), (401, "not_signed_in"));
    let a = call(
        &server,
        "POST",
        "/api/v1/sites/test/invitations",
        Some(json!({"role": "viewer"})),
        Some(&admin),
        Some("https://evil.example"),
    )
    .await;
    assert_eq!((a.status, a.reason()), (403, "cross_origin"));
    let a = call(
        &server,
        "PUT",
        "/api/v1/sites/test/members",
        None,
        None,
        None,
    )
    .await;
    assert_eq!(a.status, 405);
    // Refusals are counted like every other answer.
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"route="api_manage",status="403""#),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn only_admins_of_a_site_manage_its_members_and_invitations_expire() {
    let server = TestServer::start_with("roles_admin", two_sites).await;
    let admin = setup(&server).await.token();
    let token = invite(&server, &admin, "test", "editor", "eddie@example.com").await;
    let editor = join(&server, &token, "eddie@example.com").await;
    let eddie = member_id(&server, &admin, "test", "eddie@example.com").await;
    let members = call(
        &server,
        "GET",
        "/api/v1/sites/test/members",
        None,
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(
        members.body["members"],
        json!([
            {"account_id": members.body["members"][0]["account_id"], "email": ADMIN, "role": "admin", "instance_admin": true},
            {"account_id": eddie, "email": "eddie@example.com", "role": "editor", "instance_admin": false},
        ])
    );
    // An editor reads, and manages no member.
    assert_eq!(read(&server, "stats?site=test", &editor).await, 200);
    let patch = |cookie: &str, role: &str| {
        let (path, cookie, role) = (
            format!("/api/v1/sites/test/members/{eddie}"),
            cookie.to_owned(),
            role.to_owned(),
        );
        let server = &server;
        async move {
            call(
                server,
                "PATCH",
                &path,
                Some(json!({ "role": role })),
                Some(&cookie),
                None,
            )
            .await
        }
    };
    let refused = patch(&editor, "admin").await;
    assert_eq!((refused.status, refused.reason()), (403, "forbidden"));
    let refused = post(
        &server,
        "/api/v1/sites/test/invitations",
        json!({"role": "viewer"}),
        Some(&editor),
    )
    .await;
    assert_eq!(refused.status, 403);
    for (method, body) in [
        ("GET", None),
        ("POST", Some(json!({"name": "k", "kind": "read"}))),
    ] {
        let keys = call(
            &server,
            method,
            "/api/v1/sites/test/keys",
            body,
            Some(&editor),
            None,
        )
        .await;
        assert_eq!((keys.status, keys.reason()), (403, "forbidden"), "{method}");
    }
    let bad = patch(&admin, "owner").await;
    assert_eq!((bad.status, bad.reason()), (400, "invalid"));

    // Made admin of the site: manages its members, not the other site's.
    let promoted = patch(&admin, "admin").await;
    assert_eq!(promoted.status, 200, "{}", promoted.body);
    assert_eq!(promoted.body["role"], "admin");
    let key = post(
        &server,
        "/api/v1/sites/test/keys",
        json!({"name": "report", "kind": "read"}),
        Some(&editor),
    )
    .await;
    assert_eq!(key.status, 201, "{}", key.body);
    let key = key.body["key"].as_str().unwrap();
    assert_eq!(bearer(&server, "stats?site=test", key).await, 200);
    let sites = call(&server, "GET", "/api/v1/sites", None, Some(&editor), None).await;
    assert_eq!(sites.body["sites"][0]["role"], "admin", "{}", sites.body);
    let token = invite(&server, &editor, "test", "viewer", "").await;
    let viewer = join(&server, &token, "vic@example.com").await;
    assert_eq!(read(&server, "stats?site=test", &viewer).await, 200);
    for path in [
        "/api/v1/sites/other/invitations",
        "/api/v1/sites/other/keys",
    ] {
        let body = json!({"role": "viewer", "name": "k", "kind": "read"});
        let refused = post(&server, path, body, Some(&editor)).await;
        assert_eq!(refused.status, 403, "{path}");
    }
    let vic = member_id(&server, &editor, "test", "vic@example.com").await;
    let removed = call(
        &server,
        "DELETE",
        &format!("/api/v1/sites/test/members/{vic}"),
        None,
        Some(&editor),
        None,
    )
    .await;
    assert_eq!(removed.status, 204);
    assert_eq!(read(&server, "stats?site=test", &viewer).await, 401);
    let gone = call(
        &server,
        "DELETE",
        &format!("/api/v1/sites/test/members/{vic}"),
        None,
        Some(&editor),
        None,
    )
    .await;
    assert_eq!((gone.status, gone.reason()), (404, "member_not_found"));
    let unknown = call(
        &server,
        "GET",
        "/api/v1/sites/nosuchsite/members",
        None,
        Some(&admin),
        None,
    )
    .await;
    assert_eq!((unknown.status, unknown.reason()), (404, "site_not_found"));

    // Withdrawn, or expired (a row 8 days old, as another collector would have left it).
    let token = invite(&server, &admin, "test", "viewer", "").await;
    let pending = call(
        &server,
        "GET",
        "/api/v1/sites/test/invitations",
        None,
        Some(&admin),
        None,
    )
    .await;
    let id = pending.body["invitations"][0]["id"].as_str().unwrap();
    let withdrawn = call(
        &server,
        "DELETE",
        &format!("/api/v1/sites/test/invitations/{id}"),
        None,
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(withdrawn.status, 204);
    let now = pathlight_collector::dates::now_ms() as u64;
    let made = now - 8 * 86_400_000;
    server
        .db
        .query("INSERT INTO invitations (id, site, role, token_sha256, created_at, expires_at, version) VALUES ('old', 'test', 'admin', ?, ?, ?, ?)")
        .bind(pathlight_collector::query::auth::digest_hex("an-expired-token"))
        .bind(made)
        .bind(made + 7 * 86_400_000)
        .bind(made)
        .execute()
        .await
        .unwrap();
    for token in [token.as_str(), "an-expired-token", "never-made"] {
        let body = json!({"token": token, "email": "late@example.com", "password": PASSWORD});
        let late = post(&server, "/api/v1/invitations/accept", body, None).await;
        assert_eq!(
            (late.status, late.reason()),
            (404, "invitation_not_found"),
            "{token}"
        );
    }
    let body = json!({"email": "late@example.com", "password": PASSWORD});
    let never = call(
        &server,
        "POST",
        "/api/v1/auth/signin",
        Some(body),
        None,
        None,
    )
    .await;
    assert_eq!(never.status, 401, "no account was made");
    server.stop().await;
}

/// An RFC 3339 time `secs` from now.
fn in_secs(secs: i64) -> String {
    pathlight_collector::dates::rfc3339(pathlight_collector::dates::now_ms() + secs * 1000)
}

/// Opens a shared link: the answer.
async fn open(server: &TestServer, token: &str, password: Option<&str>) -> Answer {
    let body = json!({"token": token, "password": password});
    post(server, "/api/v1/shares/open", body, None).await
}

/// Makes a share of `test` as `admin`: its link's token and its id.
async fn share(server: &TestServer, admin: &str, body: Value) -> (String, String) {
    let made = post(server, "/api/v1/sites/test/shares", body, Some(admin)).await;
    assert_eq!(made.status, 201, "{}", made.body);
    let url = made.body["url"].as_str().unwrap();
    let token = url.strip_prefix("/share.html#s=").unwrap().to_owned();
    (token, made.body["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_shared_link_reads_its_scope_until_revoked_or_expired() {
    let server = TestServer::start_with("roles_shares", two_sites).await;
    let admin = setup(&server).await.token();

    // A dashboard: the site's JSON endpoints, but none that issue tokens, nor exports.
    let (dashboard_link, dashboard) = share(&server, &admin, json!({"kind": "dashboard"})).await;
    let opened = open(&server, &dashboard_link, None).await;
    assert_eq!(opened.status, 200, "{}", opened.body);
    assert_eq!(
        (&opened.body["site"], &opened.body["kind"]),
        (&json!("test"), &json!("dashboard"))
    );
    let expires_in = opened.body["expires_in"].as_u64().unwrap();
    assert!((3590..=3600).contains(&expires_in), "{expires_in}");
    let read_token = opened.body["read_token"].as_str().unwrap().to_owned();
    for q in [
        "stats?site=test",
        "sessions?site=test",
        "heatmap?site=test&path=/anything",
        // The viewer's frame of a page (the heatmap links of the shared dashboard).
        "viewer-token?site=test&viewer=http://127.0.0.1:1",
    ] {
        assert_eq!(bearer(&server, q, &read_token).await, 200, "{q}");
    }
    for q in [
        "stats?site=other",
        "live-token?site=test",
        "overlay-token?site=test",
        "export?site=test",
    ] {
        assert_eq!(bearer(&server, q, &read_token).await, 401, "{q}");
    }
    assert_eq!(bearer(&server, "stats?site=test", "x.1.2").await, 401);

    // One page's heatmap, behind a password: that page's heatmap and elements, nothing else.
    let body = json!({"kind": "heatmap", "path": "/pricing", "filters": "device=mobile", "password": "a share password"});
    let (link, _) = share(&server, &admin, body).await;
    let a = open(&server, &link, None).await;
    assert_eq!((a.status, a.reason()), (401, "password_required"));
    let a = open(&server, &link, Some("not the password")).await;
    assert_eq!((a.status, a.reason()), (401, "wrong_password"));
    let opened = open(&server, &link, Some("a share password")).await;
    assert_eq!(opened.status, 200, "{}", opened.body);
    assert_eq!(
        (&opened.body["path"], &opened.body["filters"]),
        (&json!("/pricing"), &json!("device=mobile"))
    );
    let heatmap_token = opened.body["read_token"].as_str().unwrap().to_owned();
    // And what the heatmap viewer needs to frame that page: the site's origins and base URL,
    // and a viewer token (which reads nothing).
    for q in [
        "heatmap?site=test&path=/pricing",
        "elements?site=test&path=/pricing",
        "site?site=test",
        "viewer-token?site=test&viewer=http://127.0.0.1:1",
    ] {
        assert_eq!(bearer(&server, q, &heatmap_token).await, 200, "{q}");
    }
    let by_param = reqwest::get(server.url(&format!(
        "/api/v1/heatmap?site=test&path=/pricing&token={heatmap_token}"
    )))
    .await
    .unwrap();
    assert_eq!(
        by_param.status(),
        200,
        "?token= where the endpoint takes one"
    );
    for q in [
        "heatmap?site=test&path=/",
        "heatmap?site=other&path=/pricing",
        "stats?site=test",
        "site?site=other",
        "overlay-token?site=test&path=/pricing",
    ] {
        assert_eq!(bearer(&server, q, &heatmap_token).await, 401, "{q}");
    }
    let list = call(
        &server,
        "GET",
        "/api/v1/sites/test/shares",
        None,
        Some(&admin),
        None,
    )
    .await;
    let shares = list.body["shares"].as_array().unwrap();
    assert_eq!(shares.len(), 2, "{}", list.body);
    assert_eq!(shares[0]["password"], true);
    assert!(!list.body.to_string().contains(&link), "no token listed");

    // Revoked: the link is 404 and its read tokens stop at once.
    let revoked = call(
        &server,
        "DELETE",
        &format!("/api/v1/sites/test/shares/{dashboard}"),
        None,
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(revoked.status, 204);
    let a = open(&server, &dashboard_link, None).await;
    assert_eq!((a.status, a.reason()), (404, "share_not_found"));
    assert_eq!(
        bearer(&server, "heatmap?site=test&path=/pricing", &heatmap_token).await,
        200
    );
    assert_eq!(bearer(&server, "stats?site=test", &read_token).await, 401);

    // Expired: 404, and its read token, never valid past the share, stops too.
    let past = post(
        &server,
        "/api/v1/sites/test/shares",
        json!({"kind": "dashboard", "expires_at": in_secs(-60)}),
        Some(&admin),
    )
    .await;
    assert_eq!((past.status, past.reason()), (400, "invalid"));
    let (link, _) = share(
        &server,
        &admin,
        json!({"kind": "dashboard", "expires_at": in_secs(3)}),
    )
    .await;
    let opened = open(&server, &link, None).await;
    assert_eq!(opened.status, 200, "{}", opened.body);
    assert!(opened.body["expires_in"].as_u64().unwrap() <= 3);
    let short = opened.body["read_token"].as_str().unwrap().to_owned();
    assert_eq!(bearer(&server, "stats?site=test", &short).await, 200);
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    let a = open(&server, &link, None).await;
    assert_eq!((a.status, a.reason()), (404, "share_not_found"));
    assert_eq!(bearer(&server, "stats?site=test", &short).await, 401);
    let a = open(&server, "never-made", None).await;
    assert_eq!((a.status, a.reason()), (404, "share_not_found"));
    server.stop().await;
}

#[tokio::test]
async fn a_role_removed_or_a_link_revoked_on_one_collector_ends_on_the_other() {
    let a = TestServer::start_with("roles_fleet", unthrottled).await;
    let b = TestServer::resume_at(clickhouse_url(), "roles_fleet", unthrottled).await;
    let admin = setup(&a).await.token();
    let token = invite(&a, &admin, "test", "viewer", "").await;
    let viewer = join(&a, &token, "vera@example.com").await;
    within_5s(async || read(&b, "stats?site=test", &viewer).await == 200).await;
    let (link, id) = share(&a, &admin, json!({"kind": "dashboard"})).await;
    let read_token = {
        let mut opened = open(&b, &link, None).await;
        within_5s(async || {
            opened = open(&b, &link, None).await;
            opened.status == 200
        })
        .await;
        opened.body["read_token"].as_str().unwrap().to_owned()
    };
    assert_eq!(bearer(&b, "stats?site=test", &read_token).await, 200);

    let vera = member_id(&a, &admin, "test", "vera@example.com").await;
    let path = format!("/api/v1/sites/test/members/{vera}");
    assert_eq!(
        call(&a, "DELETE", &path, None, Some(&admin), None)
            .await
            .status,
        204
    );
    let path = format!("/api/v1/sites/test/shares/{id}");
    assert_eq!(
        call(&a, "DELETE", &path, None, Some(&admin), None)
            .await
            .status,
        204
    );
    let took = within_5s(async || read(&b, "stats?site=test", &viewer).await == 401).await;
    within_5s(async || bearer(&b, "stats?site=test", &read_token).await == 401).await;
    assert_eq!(
        me(&b, &viewer).await,
        200,
        "still signed in, without the role"
    );
    println!("membership removal seen by the other collector after {took:?}");
    a.stop().await;
    b.stop().await;
}
