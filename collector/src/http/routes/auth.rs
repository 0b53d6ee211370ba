//! `/api/v1/auth/*` and `/api/v1/setup`: signing in to the dashboards, the session cookie,
//! and the account's own settings (`accounts/` holds the rules and the state).
//!
//! The cookie is `HttpOnly` (no script reads it), `SameSite=Lax` (not sent on other sites'
//! sub-requests or POSTs) and `Secure` when this listener speaks TLS. Every POST here must also
//! come from a page of this same origin (`Origin` names this host): a cookie alone never
//! changes anything, and nobody can sign a visitor in to an attacker's account from another
//! site (login CSRF).

use crate::accounts::{AccountError, Accounts, SignedIn, totp};
use crate::http::body::read_body;
use crate::http::error::ApiError;
use crate::http::response::{empty, json};
use crate::http::{App, ReqBody, Resp, client_ip, header_str};
use http::{HeaderValue, Method, Request, StatusCode, header};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// The session cookie's name.
pub const COOKIE: &str = "pathlight_session";
/// Account requests' bodies are a few fields.
const MAX_BODY: usize = 16 * 1024;

/// Answers `/api/v1/auth/{action}` or `/api/v1/setup` (`action` = `setup`).
pub async fn answer<B: ReqBody>(
    app: &App,
    peer: SocketAddr,
    action: &str,
    req: Request<B>,
) -> Resp {
    match route(app, peer, action, req).await {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

fn accounts(app: &App) -> Result<&Accounts, ApiError> {
    app.opts.accounts.as_deref().ok_or(ApiError::NotFound)
}

async fn route<B: ReqBody>(
    app: &App,
    peer: SocketAddr,
    action: &str,
    req: Request<B>,
) -> Result<Resp, ApiError> {
    let accounts = accounts(app)?;
    let method = req.method().clone();
    let takes = match action {
        "setup" | "me" | "sessions" => "GET, POST",
        "signin" | "signout" | "password" | "totp/setup" | "totp/enable" | "totp/disable" => "POST",
        _ => return Err(ApiError::NotFound),
    };
    if method == Method::GET && takes.starts_with("GET") {
        return read(app, accounts, peer, action, &req);
    }
    if method != Method::POST {
        return Err(ApiError::MethodNotAllowed(takes));
    }
    same_origin(&req)?;
    let ip = client_ip(&app.opts, peer, req.headers());
    let user_agent = header_str(req.headers(), header::USER_AGENT)
        .unwrap_or_default()
        .to_owned();
    let cookie = session_token(&req);
    let (_, body) = req.into_parts();
    let (body, _held) = read_body(app, body, MAX_BODY).await?;
    let fields: Fields = if body.is_empty() {
        Fields::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadBody(format!("body: {e}")))?
    };
    let signed_in = || {
        cookie
            .as_deref()
            .and_then(|t| accounts.session(t))
            .ok_or(ApiError::Account(AccountError::NotSignedIn))
    };
    let secure = app.opts.tls.is_some();
    match action {
        "setup" => {
            if !accounts.config().setup_from_anywhere && !peer.ip().is_loopback() {
                return Err(AccountError::SetupClosed(
                    "the first-start form answers on this machine only (or set \
                     [accounts] setup_from_anywhere)",
                )
                .into());
            }
            if !accounts.none_yet() {
                return Err(AccountError::SetupClosed("an account exists already").into());
            }
            accounts.add(&fields.email, &fields.password, true).await?;
            let (token, _) = accounts
                .sign_in(&fields.email, &fields.password, None, ip, &user_agent)
                .await?;
            Ok(with_cookie(
                me_answer(accounts, &token, StatusCode::CREATED),
                &token,
                secure,
            ))
        }
        "signin" => {
            let (token, _) = accounts
                .sign_in(
                    &fields.email,
                    &fields.password,
                    fields.code.as_deref(),
                    ip,
                    &user_agent,
                )
                .await?;
            Ok(with_cookie(
                me_answer(accounts, &token, StatusCode::OK),
                &token,
                secure,
            ))
        }
        "signout" => {
            if let Ok(who) = signed_in() {
                accounts
                    .revoke(&who.account.id, &who.session.id_sha256)
                    .await?;
            }
            Ok(with_cookie(empty(StatusCode::NO_CONTENT), "", secure))
        }
        "sessions" => {
            let who = signed_in()?;
            accounts.revoke(&who.account.id, &fields.id).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        "password" => {
            let who = signed_in()?;
            accounts
                .change_password(&who, &fields.current, &fields.password)
                .await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        "totp/setup" => {
            let who = signed_in()?;
            let secret = totp::new_secret().map_err(|e| AccountError::Storage(e.to_string()))?;
            let link = totp::link(&secret, &who.account.email);
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"secret": secret, "link": link}),
            ))
        }
        "totp/enable" => {
            let who = signed_in()?;
            let codes = accounts
                .enable_totp(&who, &fields.secret, fields.code.as_deref().unwrap_or(""))
                .await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"recovery_codes": codes}),
            ))
        }
        "totp/disable" => {
            let who = signed_in()?;
            accounts.disable_totp(&who, &fields.password).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        "me" => Err(ApiError::MethodNotAllowed("GET")),
        _ => Err(ApiError::NotFound),
    }
}

/// The GETs: whether the first-start form is open; who is signed in; their sessions.
fn read<B>(
    app: &App,
    accounts: &Accounts,
    peer: SocketAddr,
    action: &str,
    req: &Request<B>,
) -> Result<Resp, ApiError> {
    if action == "setup" {
        let here = accounts.config().setup_from_anywhere || peer.ip().is_loopback();
        return Ok(json(
            StatusCode::OK,
            &serde_json::json!({"open": accounts.none_yet() && here, "accounts": !accounts.none_yet()}),
        ));
    }
    let _ = app;
    let token = session_token(req).ok_or(AccountError::NotSignedIn)?;
    let who = accounts.session(&token).ok_or(AccountError::NotSignedIn)?;
    if action == "me" {
        return Ok(me_answer(accounts, &token, StatusCode::OK));
    }
    let list: Vec<_> = accounts
        .sessions_of(&who.account.id)
        .into_iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id_sha256,
                "created_ms": s.created_ms,
                "expires_ms": s.expires_ms,
                "user_agent": s.user_agent,
                "current": s.id_sha256 == who.session.id_sha256,
            })
        })
        .collect();
    Ok(json(StatusCode::OK, &serde_json::json!({"sessions": list})))
}

fn me_answer(accounts: &Accounts, token: &str, status: StatusCode) -> Resp {
    match accounts.session(token) {
        Some(SignedIn {
            account,
            session,
            roles,
        }) => json(
            status,
            &serde_json::json!({
                "email": account.email,
                "admin": account.is_admin == 1,
                "roles": roles.iter().map(|(site, r)| (site.clone(), r.as_str())).collect::<BTreeMap<_, _>>(),
                "two_factor": !account.totp_secret.is_empty(),
                "session": {"created_ms": session.created_ms, "expires_ms": session.expires_ms},
            }),
        ),
        None => ApiError::Account(AccountError::NotSignedIn).response(),
    }
}

/// What the account routes' bodies may hold.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Fields {
    email: String,
    password: String,
    current: String,
    code: Option<String>,
    secret: String,
    id: String,
}

/// The account the request's session cookie signed in, if any.
pub fn signed_in<B>(app: &App, req: &Request<B>) -> Option<SignedIn> {
    let accounts = app.opts.accounts.as_deref()?;
    accounts.session(&session_token(req)?)
}

/// The session token of the request's cookie.
pub fn session_token<B>(req: &Request<B>) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

/// `resp` setting the cookie to `token` (empty: removing it).
pub(crate) fn with_cookie(mut resp: Resp, token: &str, secure: bool) -> Resp {
    let max_age = if token.is_empty() { "0" } else { "1209600" };
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Refuses a POST whose `Origin` is not this host's (or is missing: browsers send it on every
/// POST, and programs use keys, not sessions).
pub(crate) fn same_origin<B>(req: &Request<B>) -> Result<(), ApiError> {
    let host = header_str(req.headers(), header::HOST)
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let origin = header_str(req.headers(), header::ORIGIN);
    let origin_host = origin
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    match (host, origin_host) {
        (Some(h), Some(o)) if h.eq_ignore_ascii_case(o) => Ok(()),
        _ => Err(ApiError::CrossOrigin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request<()> {
        let mut r = Request::builder().method("POST").uri("/api/v1/auth/signin");
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.body(()).unwrap()
    }

    #[test]
    fn posts_come_from_this_origin_and_the_cookie_is_read_by_name() {
        let host = ("host", "pl.example.net:8080");
        assert!(same_origin(&req(&[host, ("origin", "https://pl.example.net:8080")])).is_ok());
        for origin in [
            "https://evil.example",
            "https://pl.example.net",
            "https://pl.example.net:8080.evil.example",
            "null",
        ] {
            assert!(
                same_origin(&req(&[host, ("origin", origin)])).is_err(),
                "{origin}"
            );
        }
        assert!(same_origin(&req(&[host])).is_err(), "no Origin");
        let r = req(&[("cookie", "a=1; pathlight_session=tok; b=2")]);
        assert_eq!(session_token(&r).as_deref(), Some("tok"));
        assert_eq!(
            session_token(&req(&[("cookie", "pathlight_session=")])),
            None
        );
        let set = with_cookie(empty(StatusCode::OK), "tok", true);
        let cookie = set.headers()[header::SET_COOKIE].to_str().unwrap();
        for part in [
            "pathlight_session=tok",
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/",
        ] {
            assert!(cookie.contains(part), "{cookie}");
        }
    }
}
