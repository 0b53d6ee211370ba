//! Accounts (issue 36, first part) against a real ClickHouse 18.16: the first-start form and
//! the session cookie it sets, fixation, cross-origin refusals, sign-out, two collectors
//! sharing the accounts (a revoked session ends on both within 5 s), throttled sign-in,
//! password change, two-factor codes and recovery codes, and `pathlight user add`.

use crate::{TestServer, clickhouse_url};
use pathlight_collector::accounts::totp;
use pathlight_collector::config::Config;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub const ADMIN: &str = "ada@example.com";
pub const PASSWORD: &str = "correct horse battery";

/// An answer: status, the `Set-Cookie` header, the JSON body (null when none).
pub struct Answer {
    pub status: u16,
    pub cookie: Option<String>,
    pub body: Value,
}

impl Answer {
    pub fn reason(&self) -> &str {
        self.body["reason"].as_str().unwrap_or_default()
    }

    /// The session token the answer set.
    pub fn token(&self) -> String {
        let c = self.cookie.as_deref().expect("a Set-Cookie");
        c.split(';')
            .next()
            .unwrap()
            .trim_start_matches("pathlight_session=")
            .to_owned()
    }
}

/// A request from a page of the collector's own origin (unless `origin` says otherwise).
pub async fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
    origin: Option<&str>,
) -> Answer {
    let base = server.url("");
    let mut req = reqwest::Client::new().request(method.parse().unwrap(), server.url(path));
    if let Some(o) = origin.map_or(Some(base.as_str()), |o| (!o.is_empty()).then_some(o)) {
        req = req.header("origin", o);
    }
    if let Some(t) = token {
        req = req.header("cookie", format!("theme=dark; pathlight_session={t}"));
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let cookie = resp
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    Answer {
        status,
        cookie,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

async fn sign_in(server: &TestServer, password: &str, code: Option<&str>) -> Answer {
    let body = json!({"email": ADMIN, "password": password, "code": code});
    call(
        server,
        "POST",
        "/api/v1/auth/signin",
        Some(body),
        None,
        None,
    )
    .await
}

pub async fn me(server: &TestServer, token: &str) -> u16 {
    call(server, "GET", "/api/v1/auth/me", None, Some(token), None)
        .await
        .status
}

pub async fn setup(server: &TestServer) -> Answer {
    let body = json!({"email": ADMIN, "password": PASSWORD});
    call(server, "POST", "/api/v1/setup", Some(body), None, None).await
}

#[tokio::test]
async fn the_first_admin_signs_in_with_a_cookie_and_the_form_closes_behind_them() {
    let server = TestServer::start("accounts_first").await;
    let open = call(&server, "GET", "/api/v1/setup", None, None, None).await;
    assert_eq!(open.body["open"], true, "{:?}", open.body);
    // From another site, or with no Origin at all: refused, nothing made.
    let body = json!({"email": ADMIN, "password": PASSWORD});
    for origin in ["https://evil.example", ""] {
        let a = call(
            &server,
            "POST",
            "/api/v1/setup",
            Some(body.clone()),
            None,
            Some(origin),
        )
        .await;
        assert_eq!((a.status, a.reason()), (403, "cross_origin"), "{origin:?}");
    }
    let weak = json!({"email": ADMIN, "password": "short"});
    let a = call(&server, "POST", "/api/v1/setup", Some(weak), None, None).await;
    assert_eq!((a.status, a.reason()), (400, "invalid"));

    let made = setup(&server).await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    assert_eq!(
        (made.body["email"].as_str(), made.body["admin"].as_bool()),
        (Some(ADMIN), Some(true))
    );
    let cookie = made.cookie.clone().unwrap();
    for part in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP here: {cookie}");
    let first = made.token();
    assert_eq!(me(&server, &first).await, 200);
    // Signed in, the admin reads a site's API without its token; nobody else does.
    let stats = |token: Option<&str>| {
        let token = token.map(str::to_owned);
        let server = &server;
        async move {
            call(
                server,
                "GET",
                "/api/v1/stats?site=test",
                None,
                token.as_deref(),
                None,
            )
            .await
            .status
        }
    };
    assert_eq!(stats(Some(&first)).await, 200);
    assert_eq!(stats(None).await, 401);
    assert_eq!(stats(Some("attacker-chosen-session-id")).await, 401);
    // The form is closed for good.
    let again = setup(&server).await;
    assert_eq!((again.status, again.reason()), (403, "setup_closed"));
    let open = call(&server, "GET", "/api/v1/setup", None, None, None).await;
    assert_eq!(open.body["open"], false);

    // Fixation: a session id planted in the browser before sign-in is never the one signed in.
    let planted = "attacker-chosen-session-id";
    assert_eq!(me(&server, planted).await, 401);
    let body = json!({"email": ADMIN, "password": PASSWORD});
    let signed = call(
        &server,
        "POST",
        "/api/v1/auth/signin",
        Some(body),
        Some(planted),
        None,
    )
    .await;
    assert_eq!(signed.status, 200);
    assert_ne!(signed.token(), planted);
    assert_ne!(signed.token(), first, "every sign-in is a new session");
    assert_eq!(me(&server, planted).await, 401);

    // The session list names both, the current one marked; sign-out ends only the current.
    let list = call(
        &server,
        "GET",
        "/api/v1/auth/sessions",
        None,
        Some(&first),
        None,
    )
    .await;
    let sessions = list.body["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    // A cookie alone changes nothing from another site.
    let forged = call(
        &server,
        "POST",
        "/api/v1/auth/signout",
        None,
        Some(&first),
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(forged.status, 403);
    assert_eq!(me(&server, &first).await, 200);
    let out = call(
        &server,
        "POST",
        "/api/v1/auth/signout",
        None,
        Some(&first),
        None,
    )
    .await;
    assert_eq!(out.status, 204);
    assert!(out.cookie.unwrap().contains("Max-Age=0"));
    assert_eq!(me(&server, &first).await, 401);
    assert_eq!(stats(Some(&first)).await, 401, "signed out: no more reads");
    assert_eq!(me(&server, &signed.token()).await, 200);
    // Methods the routes do not take.
    let a = call(&server, "DELETE", "/api/v1/auth/signin", None, None, None).await;
    assert_eq!(a.status, 405);
    server.stop().await;
}

/// Polls `check` until it holds, for at most 5 s (the bound for a fleet); the time
/// it took.
pub async fn within_5s(mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not seen by the other collector within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn a_session_revoked_on_one_collector_ends_on_the_other_and_guessing_is_throttled() {
    let a = TestServer::start("accounts_fleet").await;
    let b = TestServer::resume_at(clickhouse_url(), "accounts_fleet", |_| {}).await;
    assert_eq!(setup(&a).await.status, 201);
    let token = sign_in(&a, PASSWORD, None).await.token();
    within_5s(async || me(&b, &token).await == 200).await;
    assert_eq!(
        call(&a, "POST", "/api/v1/auth/signout", None, Some(&token), None)
            .await
            .status,
        204
    );
    within_5s(async || me(&b, &token).await == 401).await;

    // Five wrong passwords, then even the right one waits.
    for _ in 0..5 {
        let wrong = sign_in(&a, "not the password", None).await;
        assert_eq!((wrong.status, wrong.reason()), (401, "invalid_credentials"));
    }
    let blocked = reqwest::Client::new()
        .post(a.url("/api/v1/auth/signin"))
        .header("origin", a.url(""))
        .body(json!({"email": ADMIN, "password": PASSWORD}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(blocked.status(), 429);
    let wait: u64 = blocked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((800..=900).contains(&wait), "{wait}");
    // An unknown email answers like a wrong password (on the other collector, not throttled).
    let body = json!({"email": "nobody@example.com", "password": PASSWORD});
    let unknown = call(&b, "POST", "/api/v1/auth/signin", Some(body), None, None).await;
    assert_eq!(
        (unknown.status, unknown.reason()),
        (401, "invalid_credentials")
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn passwords_change_with_the_current_one_and_two_factor_codes_are_checked() {
    let server = TestServer::start("accounts_totp").await;
    let token = setup(&server).await.token();
    let other = sign_in(&server, PASSWORD, None).await.token();
    let change = |current: &str| json!({"current": current, "password": "a new long passphrase"});
    let bad = call(
        &server,
        "POST",
        "/api/v1/auth/password",
        Some(change("wrong")),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(bad.status, 401);
    let ok = call(
        &server,
        "POST",
        "/api/v1/auth/password",
        Some(change(PASSWORD)),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(ok.status, 204);
    assert_eq!(me(&server, &other).await, 401, "the other sessions ended");
    assert_eq!(me(&server, &token).await, 200, "this one stays");
    assert_eq!(sign_in(&server, PASSWORD, None).await.status, 401);
    let password = "a new long passphrase";

    let setup = call(
        &server,
        "POST",
        "/api/v1/auth/totp/setup",
        None,
        Some(&token),
        None,
    )
    .await;
    let secret = setup.body["secret"].as_str().unwrap().to_owned();
    assert!(
        setup.body["link"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Pathlight%3Aada%40example.com?secret=")
    );
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let code = totp::code(&secret, now()).unwrap();
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let enable = |code: &str| json!({"secret": secret, "code": code});
    let refused = call(
        &server,
        "POST",
        "/api/v1/auth/totp/enable",
        Some(enable(&wrong)),
        Some(&token),
        None,
    )
    .await;
    assert_eq!((refused.status, refused.reason()), (401, "totp_invalid"));
    let enabled = call(
        &server,
        "POST",
        "/api/v1/auth/totp/enable",
        Some(enable(&code)),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(enabled.status, 200, "{:?}", enabled.body);
    let recovery = enabled.body["recovery_codes"][0]
        .as_str()
        .unwrap()
        .to_owned();

    let needs = sign_in(&server, password, None).await;
    assert_eq!((needs.status, needs.reason()), (401, "totp_required"));
    let wrong_code = sign_in(&server, password, Some(&wrong)).await;
    assert_eq!(
        (wrong_code.status, wrong_code.reason()),
        (401, "totp_invalid")
    );
    let code = totp::code(&secret, now()).unwrap();
    assert_eq!(sign_in(&server, password, Some(&code)).await.status, 200);
    // A recovery code works once.
    assert_eq!(
        sign_in(&server, password, Some(&recovery)).await.status,
        200
    );
    let reused = sign_in(&server, password, Some(&recovery)).await;
    assert_eq!((reused.status, reused.reason()), (401, "totp_invalid"));
    server.stop().await;
}

#[tokio::test]
async fn pathlight_user_add_makes_an_account_that_signs_in() {
    let server = TestServer::start("accounts_cli").await;
    let config = Config::for_tests(clickhouse_url(), "it_accounts_cli");
    let dir = std::env::temp_dir().join(format!("pathlight-it-user-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("pathlight.toml");
    std::fs::write(&file, toml::to_string(&config).unwrap()).unwrap();
    let run = move |password: &str| {
        use std::io::Write;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pathlight"));
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("PATHLIGHT_")) {
            cmd.env_remove(key);
        }
        let mut child = cmd
            .arg("--config")
            .arg(&file)
            .args(["user", "add", "--admin", "--email", ADMIN])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let out = tokio::task::spawn_blocking(move || (run(PASSWORD), run(PASSWORD)))
        .await
        .unwrap();
    assert!(
        out.0.status.success(),
        "{}",
        String::from_utf8_lossy(&out.0.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.0.stdout).contains("account ada@example.com made (admin)")
    );
    assert!(!out.1.status.success(), "the email is taken");
    assert!(String::from_utf8_lossy(&out.1.stderr).contains("an account with this email exists"));
    // Seen by the running collector within its refresh (polled where failures are not
    // counted: polling the sign-in would throttle it).
    within_5s(async || {
        call(&server, "GET", "/api/v1/setup", None, None, None)
            .await
            .body["accounts"]
            == true
    })
    .await;
    assert_eq!(sign_in(&server, PASSWORD, None).await.status, 200);
    let _ = std::fs::remove_dir_all(&dir);
    server.stop().await;
}
