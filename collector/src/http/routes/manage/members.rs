//! `/api/v1/sites/{id}/members[/{account_id}]`: who has a role on a site. Accounts become
//! members by accepting an invitation (`invitations.rs`); here an admin of the site lists them,
//! changes a role (`PATCH {"role"}`) and removes one (`DELETE`). The change is honoured by
//! every collector at its next read of the memberships (`accounts/roles.rs`).

use super::{Managed, accounts, site_admin};
use crate::accounts::{AccountError, Role};
use crate::http::error::ApiError;
use crate::http::response::{empty, json};
use crate::http::{App, Resp};
use http::{Method, StatusCode};
use serde::Deserialize;

/// `PATCH`'s body.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Change {
    role: String,
}

/// The role a body names: 400 `invalid` for another name.
pub(super) fn parse_role(name: &str) -> Result<Role, ApiError> {
    Role::parse(name)
        .ok_or_else(|| AccountError::Invalid("role: viewer, editor or admin".into()).into())
}

/// Answers `GET` of the list, `PATCH` and `DELETE` of one member, for an admin of `site`.
pub async fn answer(
    app: &App,
    site: &str,
    account_id: Option<&str>,
    m: Managed,
) -> Result<Resp, ApiError> {
    site_admin(app, site, &m)?;
    let accounts = accounts(app)?;
    let Some(account_id) = account_id else {
        let members = accounts.members(site);
        return Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "members": members }),
        ));
    };
    if m.method == Method::DELETE {
        accounts.remove_member(site, account_id).await?;
        return Ok(empty(StatusCode::NO_CONTENT));
    }
    let change: Change = m.fields()?;
    let role = parse_role(&change.role)?;
    let member = accounts.set_role(site, account_id, role).await?;
    Ok(json(StatusCode::OK, &member))
}
