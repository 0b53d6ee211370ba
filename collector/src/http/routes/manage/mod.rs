//! `/api/v1/sites…` (and, as roles come, `invitations…` and `shares…`): what is managed in the
//! product, one file per resource. The rules are `crate::sites`'s and `crate::accounts`'s;
//! this layer adds what is HTTP's, the same for every resource:
//! - a person signed in by the session cookie (`auth.rs`), never a key: keys are for programs
//!   reading and sending, and managing them with one would let a leaked key make more;
//! - every change (POST, PATCH, DELETE) from a page of this same origin, as the account
//!   routes' POSTs: a cookie alone, sent along by another site's form, changes nothing;
//! - a body of at most 16 KiB of JSON, whose unknown fields are refused by name.
//!
//! Refusals are `ApiError`s (`http/error.rs`), counted with every answer by route and status.

pub mod keys;
pub mod sites;

use crate::accounts::{AccountError, SignedIn};
use crate::http::body::read_body;
use crate::http::error::ApiError;
use crate::http::routes::auth::{same_origin, signed_in};
use crate::http::{App, ReqBody, Resp};
use bytes::Bytes;
use http::{Method, Request};

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
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(T::default());
        }
        serde_json::from_slice(&self.body).map_err(|e| ApiError::BadBody(format!("body: {e}")))
    }
}

/// Answers `rest`, the path after `/api/v1/`.
pub async fn answer<B: ReqBody>(app: &App, rest: &str, req: Request<B>) -> Resp {
    match route(app, rest, req).await {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

/// A path segment naming a site or a key, percent-decoded.
fn segment(raw: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .map(|s| s.into_owned())
        .ok_or(ApiError::NotFound)
}

async fn route<B: ReqBody>(app: &App, rest: &str, req: Request<B>) -> Result<Resp, ApiError> {
    let parts: Vec<&str> = rest.split('/').collect();
    let takes = match parts.as_slice() {
        ["sites"] | ["sites", _, "keys"] => "GET, POST",
        ["sites", _] => "DELETE, PATCH",
        ["sites", _, "keys", _] => "DELETE",
        _ => return Err(ApiError::NotFound),
    };
    let method = req.method().clone();
    if !takes.split(", ").any(|m| m == method.as_str()) {
        return Err(ApiError::MethodNotAllowed(takes));
    }
    if method != Method::GET {
        same_origin(&req)?;
    }
    let who = signed_in(app, &req).ok_or(AccountError::NotSignedIn)?;
    let body = if matches!(method, Method::POST | Method::PATCH) {
        match read_body(app, req.into_body(), MAX_BODY).await {
            Ok((body, _held)) => body,
            Err(e) if e.status() == http::StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::BodyTooLarge(MAX_BODY));
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        Bytes::new()
    };
    let m = Managed { who, method, body };
    match parts.as_slice() {
        ["sites"] => sites::collection(app, m).await,
        ["sites", id] => sites::one(app, &segment(id)?, m).await,
        ["sites", id, "keys"] => keys::collection(app, &segment(id)?, m).await,
        ["sites", id, "keys", key] => keys::one(app, &segment(id)?, &segment(key)?, m).await,
        _ => Err(ApiError::NotFound),
    }
}
