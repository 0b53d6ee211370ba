//! `GET|POST /api/v1/sites` and `PATCH|DELETE /api/v1/sites/{id}`: the sites a signed-in
//! person has a role on, making one (instance admins), changing and removing those made in the
//! product (file sites are read-only: `409 read_only`).

use super::Managed;
use crate::accounts::{Role, SignedIn, may_manage};
use crate::http::error::ApiError;
use crate::http::response::{empty, json};
use crate::http::{App, Resp};
use crate::sites::{Site, SiteError, SiteInput, snippet};
use http::{Method, StatusCode};
use serde_json::{Value, json};

/// The role `who` has on `site`, if any (`crate::accounts::roles`).
fn role(who: &SignedIn, site: &str) -> Option<&'static str> {
    crate::accounts::role(who, site).map(Role::as_str)
}

/// A site as the API shows it.
fn view(app: &App, site: &Site, role: &str) -> Value {
    json!({
        "id": site.config.id,
        "name": site.name,
        "origins": site.config.origins,
        "timezone": site.timezone,
        "base_url": site.config.base_url,
        "source": site.source.label(),
        "role": role,
        "snippet": snippet(&site.config.id, &app.opts.prefix),
    })
}

/// The site `id` as the API shows it now, to `who`.
fn answer(app: &App, who: &SignedIn, id: &str, status: StatusCode) -> Result<Resp, ApiError> {
    let sites = app.pipeline.sites().snapshot();
    let site = sites
        .get(id)
        .ok_or_else(|| SiteError::SiteNotFound(id.to_owned()))?;
    Ok(json(
        status,
        &view(app, site, role(who, id).unwrap_or("admin")),
    ))
}

/// `GET|POST /api/v1/sites`.
pub async fn collection(app: &App, m: Managed) -> Result<Resp, ApiError> {
    if m.method == Method::GET {
        let sites = app.pipeline.sites().snapshot();
        let list: Vec<Value> = sites
            .sorted()
            .into_iter()
            .filter_map(|s| Some(view(app, s, role(&m.who, &s.config.id)?)))
            .collect();
        return Ok(json(StatusCode::OK, &json!({ "sites": list })));
    }
    // Whoever makes a site is its admin; who may make one is the instance's admins.
    if m.who.account.is_admin != 1 {
        return Err(ApiError::Forbidden);
    }
    let input: SiteInput = m.fields()?;
    let row = app.pipeline.sites().create_site(input).await?;
    answer(app, &m.who, &row.id, StatusCode::CREATED)
}

/// `PATCH|DELETE /api/v1/sites/{id}`.
pub async fn one(app: &App, id: &str, m: Managed) -> Result<Resp, ApiError> {
    let registry = app.pipeline.sites();
    if registry.snapshot().get(id).is_none() {
        return Err(SiteError::SiteNotFound(id.to_owned()).into());
    }
    if !may_manage(&m.who, id) {
        return Err(ApiError::Forbidden);
    }
    if m.method == Method::DELETE {
        registry.remove_site(id).await?;
        return Ok(empty(StatusCode::NO_CONTENT));
    }
    let input: SiteInput = m.fields()?;
    registry.update_site(id, input).await?;
    answer(app, &m.who, id, StatusCode::OK)
}
