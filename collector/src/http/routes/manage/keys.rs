//! `GET|POST /api/v1/sites/{id}/keys` and `DELETE /api/v1/sites/{id}/keys/{key_id}`: a site's
//! API keys, for whoever manages the site. A new key's text is in the answer that made it and
//! nowhere else, ever: only its SHA-256 is stored.

use super::{Managed, time};
use crate::accounts::may_manage;
use crate::http::error::ApiError;
use crate::http::response::{empty, json};
use crate::http::{App, Resp};
use crate::sites::{KeyInput, SiteError};
use crate::storage::clickhouse::sites::KeyRow;
use http::{Method, StatusCode};
use serde_json::{Value, json};

/// A key as the API shows it: never its text or its digest.
fn view(app: &App, k: &KeyRow) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "kind": k.kind,
        "scopes": k.scopes,
        "prefix": k.prefix,
        "created_at": time(k.created_at),
        "last_used_at": time(app.pipeline.sites().last_used(k)),
        "expires_at": time(k.expires_at),
        "revoked": k.revoked == 1,
    })
}

/// Refuses who may not manage `site`, and a site that does not exist.
fn managed(app: &App, site: &str, m: &Managed) -> Result<(), ApiError> {
    if app.pipeline.sites().snapshot().get(site).is_none() {
        return Err(SiteError::SiteNotFound(site.to_owned()).into());
    }
    if !may_manage(&m.who, site) {
        return Err(ApiError::Forbidden);
    }
    Ok(())
}

/// `GET|POST /api/v1/sites/{id}/keys`.
pub async fn collection(app: &App, site: &str, m: Managed) -> Result<Resp, ApiError> {
    managed(app, site, &m)?;
    let registry = app.pipeline.sites();
    if m.method == Method::GET {
        let sites = registry.snapshot();
        let keys: Vec<Value> = sites
            .keys_of(site)
            .into_iter()
            .map(|k| view(app, k))
            .collect();
        return Ok(json(StatusCode::OK, &json!({ "keys": keys })));
    }
    let input: KeyInput = m.fields()?;
    let (row, key) = registry.create_key(site, input, &m.who.account.id).await?;
    let mut answer = view(app, &row);
    answer["key"] = Value::String(key);
    Ok(json(StatusCode::CREATED, &answer))
}

/// `DELETE /api/v1/sites/{id}/keys/{key_id}`: revokes it.
pub async fn one(app: &App, site: &str, key: &str, m: Managed) -> Result<Resp, ApiError> {
    managed(app, site, &m)?;
    app.pipeline.sites().revoke_key(site, key).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
