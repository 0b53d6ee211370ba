//! `/api/v1/sites…`, `/api/v1/invitations…` and `/api/v1/shares…`: what is managed in the
//! product, one file per resource (`sites`, `keys`, `members`, `invitations`, `shares`). The
//! rules are `crate::sites`'s and `crate::accounts`'s; this layer adds what is HTTP's, the same
//! for every resource:
//! - a method its path takes, else 405 with `Allow`;
//! - every change (POST, PATCH, DELETE) from a page of this same origin, as the account
//!   routes' POSTs: a cookie alone, sent along by another site's form, changes nothing;
//! - a person signed in by the session cookie (`auth.rs`), never a key: keys are for programs
//!   reading and sending, and managing them with one would let a leaked key make more. Accepting
//!   an invitation and opening a shared link are the exceptions: their token is the proof, and
//!   whoever has it may have no account yet;
//! - a body of at most 16 KiB of JSON, whose unknown fields are refused by name.
//!
//! Refusals are `ApiError`s (`http/error.rs`), counted with every answer by route and status.

pub mod invitations;
pub mod keys;
pub mod members;
pub mod shares;
pub mod sites;

use crate::accounts::{AccountError, SignedIn, may_manage};
use crate::http::body::read_body;
use crate::http::error::ApiError;
use crate::http::routes::auth::{same_origin, signed_in};
use crate::http::{App, ReqBody, Resp, client_ip, header_str};
use crate::sites::SiteError;
use bytes::Bytes;
use http::{Method, Request, header};
use std::net::{IpAddr, SocketAddr};

/// Management bodies are a few fields.
const MAX_BODY: usize = 16 * 1024;

/// A management request past the checks every resource shares.
pub struct Managed {
    /// Who asks.
    pub who: SignedIn,
    /// The method, one the path takes.
    pub method: Method,
    /// The body (empty but for POST and PATCH).
    pub body: Bytes,
}

impl Managed {
    /// The body as `T` (all defaults when empty).
    pub fn fields<T: serde::de::DeserializeOwned + Default>(&self) -> Result<T, ApiError> {
        fields(&self.body)
    }
}

/// A request that opens something by its token (an invitation, a shared link), signed in or
/// not.
pub struct ByToken {
    /// The session cookie's account, if signed in.
    pub signed_in: Option<SignedIn>,
    /// The client's address (throttles).
    pub ip: IpAddr,
    /// Its `User-Agent` (a new session's label).
    pub user_agent: String,
    /// The body.
    pub body: Bytes,
}

impl ByToken {
    /// The body as `T` (all defaults when empty).
    pub fn fields<T: serde::de::DeserializeOwned + Default>(&self) -> Result<T, ApiError> {
        fields(&self.body)
    }
}

fn fields<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadBody(format!("body: {e}")))
}

/// Answers `rest`, the path after `/api/v1/`.
pub async fn answer<B: ReqBody>(app: &App, peer: SocketAddr, rest: &str, req: Request<B>) -> Resp {
    match route(app, peer, rest, req).await {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

/// The accounts (none when this listener has no sign-in: nothing to manage).
fn accounts(app: &App) -> Result<&crate::accounts::Accounts, ApiError> {
    app.opts.accounts.as_deref().ok_or(ApiError::NotFound)
}

/// A path segment naming a site, a key or a member, percent-decoded.
fn segment(raw: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .map(|s| s.into_owned())
        .ok_or(ApiError::NotFound)
}

/// Refuses who may not manage `site` (its members, invitations and shared links: admins of
/// the site), and a site that does not exist, as `keys.rs` does.
pub(super) fn site_admin(app: &App, site: &str, m: &Managed) -> Result<(), ApiError> {
    if app.pipeline.sites().snapshot().get(site).is_none() {
        return Err(SiteError::SiteNotFound(site.to_owned()).into());
    }
    if !may_manage(&m.who, site) {
        return Err(ApiError::Forbidden);
    }
    Ok(())
}

async fn body<B: ReqBody>(app: &App, req: Request<B>) -> Result<Bytes, ApiError> {
    match read_body(app, req.into_body(), MAX_BODY).await {
        Ok((body, _held)) => Ok(body),
        Err(e) if e.status() == http::StatusCode::PAYLOAD_TOO_LARGE => {
            Err(ApiError::BodyTooLarge(MAX_BODY))
        }
        Err(e) => Err(e.into()),
    }
}

async fn route<B: ReqBody>(
    app: &App,
    peer: SocketAddr,
    rest: &str,
    req: Request<B>,
) -> Result<Resp, ApiError> {
    let parts: Vec<&str> = rest.split('/').collect();
    let takes = match parts.as_slice() {
        ["sites"] | ["sites", _, "keys" | "invitations" | "shares"] => "GET, POST",
        ["sites", _] | ["sites", _, "members", _] => "DELETE, PATCH",
        ["sites", _, "keys" | "invitations" | "shares", _] => "DELETE",
        ["sites", _, "members"] => "GET",
        ["invitations", "accept"] | ["shares", "open"] => "POST",
        _ => return Err(ApiError::NotFound),
    };
    let method = req.method().clone();
    if !takes.split(", ").any(|m| m == method.as_str()) {
        return Err(ApiError::MethodNotAllowed(takes));
    }
    if method != Method::GET {
        same_origin(&req)?;
    }
    let signed_in = signed_in(app, &req);
    if let ["invitations", "accept"] | ["shares", "open"] = parts.as_slice() {
        let t = ByToken {
            signed_in,
            ip: client_ip(&app.opts, peer, req.headers()),
            user_agent: header_str(req.headers(), header::USER_AGENT)
                .unwrap_or_default()
                .to_owned(),
            body: body(app, req).await?,
        };
        return match parts[0] {
            "invitations" => invitations::accept(app, t).await,
            _ => shares::open(app, t).await,
        };
    }
    let who = signed_in.ok_or(AccountError::NotSignedIn)?;
    let body = if matches!(method, Method::POST | Method::PATCH) {
        body(app, req).await?
    } else {
        Bytes::new()
    };
    let m = Managed { who, method, body };
    match parts.as_slice() {
        ["sites"] => sites::collection(app, m).await,
        ["sites", id] => sites::one(app, &segment(id)?, m).await,
        ["sites", id, "keys"] => keys::collection(app, &segment(id)?, m).await,
        ["sites", id, "keys", key] => keys::one(app, &segment(id)?, &segment(key)?, m).await,
        ["sites", id, "members"] => members::answer(app, &segment(id)?, None, m).await,
        ["sites", id, "members", account] => {
            members::answer(app, &segment(id)?, Some(&segment(account)?), m).await
        }
        ["sites", id, "invitations"] => invitations::answer(app, &segment(id)?, None, m).await,
        ["sites", id, "invitations", inv] => {
            invitations::answer(app, &segment(id)?, Some(&segment(inv)?), m).await
        }
        ["sites", id, "shares"] => shares::answer(app, &segment(id)?, None, m).await,
        ["sites", id, "shares", share] => {
            shares::answer(app, &segment(id)?, Some(&segment(share)?), m).await
        }
        _ => Err(ApiError::NotFound),
    }
}

/// A time in ms as the API writes it: RFC 3339, 0 as null (never, no end).
pub fn time(ms: u64) -> serde_json::Value {
    match ms {
        0 => serde_json::Value::Null,
        ms => crate::dates::rfc3339(ms as i64).into(),
    }
}
