//! `/api/v1/sites/{id}/invitations[/{id}]` and `/api/v1/invitations/accept`: one-time links
//! that give an account a role on a site. There is no mail server to depend on: the admin
//! copies the link (`/invite.html#t=<token>`, the token in the fragment, which browsers never
//! send) and passes it on. Whoever opens it accepts: signed in, the role is added to that
//! account; signed out, an account is made with the email and password they choose and signed
//! in with a new session (`accounts/roles.rs` holds the rules).

use super::{ByToken, Managed, accounts, site_admin, time};
use crate::accounts::AccountError;
use crate::http::error::ApiError;
use crate::http::response::{empty, json};
use crate::http::routes::auth::with_cookie;
use crate::http::{App, Resp};
use crate::storage::clickhouse::access::InvitationRow;
use http::{Method, StatusCode};
use serde::Deserialize;

/// `POST`'s body.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct New {
    role: String,
    email: String,
}

/// `accept`'s body.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Accept {
    token: String,
    email: String,
    password: String,
}

/// An invitation as the list shows it (never its token: only its digest is kept).
fn shown(i: &InvitationRow) -> serde_json::Value {
    serde_json::json!({
        "id": i.id,
        "site": i.site,
        "role": i.role,
        "email": i.email,
        "created_at": time(i.created_at),
        "expires_at": time(i.expires_at),
    })
}

/// Answers `GET` (the pending invitations) and `POST` (a new one) of the list, and `DELETE`
/// of one, for an admin of `site`.
pub async fn answer(app: &App, site: &str, id: Option<&str>, m: Managed) -> Result<Resp, ApiError> {
    site_admin(app, site, &m)?;
    let accounts = accounts(app)?;
    if let Some(id) = id {
        accounts.withdraw_invitation(site, id).await?;
        return Ok(empty(StatusCode::NO_CONTENT));
    }
    if m.method == Method::GET {
        let list: Vec<_> = accounts.invitations(site).iter().map(shown).collect();
        return Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "invitations": list }),
        ));
    }
    let new: New = m.fields()?;
    let role = super::members::parse_role(&new.role)?;
    let (row, token) = accounts.invite(&m.who, site, role, &new.email).await?;
    let mut body = shown(&row);
    body["url"] = format!("/invite.html#t={token}").into();
    Ok(json(StatusCode::CREATED, &body))
}

/// `POST /api/v1/invitations/accept`: 200 with the role added to the signed-in account, or 201
/// with a new account signed in (`Set-Cookie`: a new session, whatever cookie came).
pub async fn accept(app: &App, t: ByToken) -> Result<Resp, ApiError> {
    let fields: Accept = t.fields()?;
    if fields.token.is_empty() {
        return Err(AccountError::InvitationNotFound.into());
    }
    let accepted = accounts(app)?
        .accept(
            &fields.token,
            t.signed_in.as_ref(),
            &fields.email,
            &fields.password,
            t.ip,
            &t.user_agent,
        )
        .await?;
    let body = serde_json::json!({
        "site": accepted.site,
        "role": accepted.role.as_str(),
        "email": accepted.email,
    });
    Ok(match accepted.session_token {
        Some(token) => with_cookie(
            json(StatusCode::CREATED, &body),
            &token,
            app.opts.tls.is_some(),
        ),
        None => json(StatusCode::OK, &body),
    })
}
