//! `/api/v1/sites/{id}/shares[/{id}]` and `/api/v1/shares/open`: read-only links to one site's
//! dashboard or one page's heatmap, for people without an account. An admin of the site makes
//! one (optionally with a password and an expiry) and copies its link
//! (`/share.html#s=<token>`); the page posts the token to `open`, which answers the share's
//! scope and a short-lived read token the query API takes as a bearer (`query/auth.rs`). An
//! unknown, revoked or expired link is 404 alike (`accounts/shares.rs` holds the rules).

use super::{ByToken, Managed, accounts, site_admin, time};
use crate::accounts::AccountError;
use crate::accounts::shares::NewShare;
use crate::http::error::ApiError;
use crate::http::response::{empty, json};
use crate::http::{App, Resp};
use crate::storage::clickhouse::access::ShareRow;
use http::{Method, StatusCode};
use serde::Deserialize;

/// `POST`'s body.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct New {
    kind: String,
    path: String,
    filters: String,
    password: String,
    /// RFC 3339; none: never expires.
    expires_at: Option<String>,
}

/// `open`'s body.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Open {
    token: String,
    password: Option<String>,
}

/// A share as the list shows it (never its token: only its digest is kept).
fn shown(s: &ShareRow) -> serde_json::Value {
    serde_json::json!({
        "id": s.id,
        "site": s.site,
        "kind": s.kind,
        "path": s.path,
        "filters": s.filters,
        "password": !s.password_hash.is_empty(),
        "created_at": time(s.created_at),
        "expires_at": time(s.expires_at),
    })
}

/// Answers `GET` (the standing shares) and `POST` (a new one) of the list, and `DELETE`
/// (revoke) of one, for an admin of `site`.
pub async fn answer(app: &App, site: &str, id: Option<&str>, m: Managed) -> Result<Resp, ApiError> {
    site_admin(app, site, &m)?;
    let accounts = accounts(app)?;
    if let Some(id) = id {
        accounts.revoke_share(site, id).await?;
        return Ok(empty(StatusCode::NO_CONTENT));
    }
    if m.method == Method::GET {
        let list: Vec<_> = accounts.shares(site).iter().map(shown).collect();
        return Ok(json(StatusCode::OK, &serde_json::json!({ "shares": list })));
    }
    let new: New = m.fields()?;
    let expires_at = match new.expires_at.as_deref() {
        None | Some("") => 0,
        Some(t) => crate::dates::parse_rfc3339(t)
            .filter(|ms| *ms > 0)
            .ok_or_else(|| AccountError::Invalid("expires_at: an RFC 3339 date-time".into()))?
            as u64,
    };
    let asked = NewShare {
        kind: &new.kind,
        path: &new.path,
        filters: &new.filters,
        password: &new.password,
        expires_at,
    };
    let (row, token) = accounts.share(&m.who, site, &asked).await?;
    let mut body = shown(&row);
    body["url"] = format!("/share.html#s={token}").into();
    Ok(json(StatusCode::CREATED, &body))
}

/// `POST /api/v1/shares/open`: the share's scope and a read token for it.
pub async fn open(app: &App, t: ByToken) -> Result<Resp, ApiError> {
    let fields: Open = t.fields()?;
    if fields.token.is_empty() {
        return Err(AccountError::ShareNotFound.into());
    }
    let share = accounts(app)?
        .open_share(&fields.token, fields.password.as_deref(), t.ip)
        .await?;
    let (read_token, expires_in) = app.query.share_token(&share);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "site": share.site,
            "kind": share.kind,
            "path": share.path,
            "filters": share.filters,
            "read_token": read_token,
            "expires_in": expires_in,
        }),
    ))
}
