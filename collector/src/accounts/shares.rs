//! Shared read-only links: one site's dashboard, or one page's heatmap, for people without an
//! account (issue 36).
//!
//! # The path of a shared link
//! 1. An admin of the site makes it (`POST /api/v1/sites/{id}/shares`,
//!    `http/routes/manage/shares.rs`): [`Accounts::share`] stores the token's SHA-256, the
//!    scope (kind, path, filters), an optional password (argon2id) and an optional expiry; the
//!    token goes back once, in the link (`/share.html#s=<token>`).
//! 2. The page posts the token (and the password) to `POST /api/v1/shares/open`:
//!    [`Accounts::open_share`] finds the share, refusing an unknown, revoked or expired one
//!    alike (404) and a wrong password (401, throttled like sign-ins); the route then has the
//!    query API sign a short-lived read token naming the share (`query/auth.rs`).
//! 3. Each read brings that token; the query API checks its signature and asks
//!    [`Accounts::live_share`] whether the share still stands, so a revocation or the expiry
//!    ends every read token of the share at once (within a refresh on other collectors).

use super::{AccountError, Accounts, SignedIn, password, random_token, storage, token_digest};
use crate::dates::now_ms;
use crate::storage::clickhouse::access::{self as store, ShareRow};
use std::collections::HashMap;
use std::net::IpAddr;

/// What a share reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareKind {
    /// The site's dashboards: its read endpoints.
    Dashboard,
    /// One page's heatmap: `heatmap` and `elements` of that path only.
    Heatmap,
}

impl ShareKind {
    /// The kind a name (`dashboard`, `heatmap`) names.
    pub fn parse(name: &str) -> Option<ShareKind> {
        match name {
            "dashboard" => Some(ShareKind::Dashboard),
            "heatmap" => Some(ShareKind::Heatmap),
            _ => None,
        }
    }

    /// Its name, as stored and as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ShareKind::Dashboard => "dashboard",
            ShareKind::Heatmap => "heatmap",
        }
    }
}

/// What a new share is asked to be.
#[derive(Debug, Default)]
pub struct NewShare<'a> {
    /// `dashboard` or `heatmap`.
    pub kind: &'a str,
    /// The heatmap's page (required for a heatmap), or the dashboard's page filter.
    pub path: &'a str,
    /// The view's filters, a query string.
    pub filters: &'a str,
    /// Empty: none.
    pub password: &'a str,
    /// ms; 0: never expires.
    pub expires_at: u64,
}

/// Longest path and filters taken: a URL's worth.
const MAX_TEXT: usize = 2048;

/// The shares that stand (not revoked, not expired when read), as this collector last read
/// them.
#[derive(Default)]
pub(super) struct Shares {
    by_id: HashMap<String, ShareRow>,
    /// Token SHA-256 → id.
    by_token: HashMap<String, String>,
}

impl Shares {
    pub(super) fn new(rows: Vec<ShareRow>) -> Shares {
        let by_id: HashMap<String, ShareRow> = rows
            .into_iter()
            .filter(|s| s.revoked == 0)
            .map(|s| (s.id.clone(), s))
            .collect();
        let by_token = by_id
            .values()
            .map(|s| (s.token_sha256.clone(), s.id.clone()))
            .collect();
        Shares { by_id, by_token }
    }
}

fn standing(s: &ShareRow, now: u64) -> bool {
    s.expires_at == 0 || s.expires_at > now
}

fn invalid(why: &str) -> AccountError {
    AccountError::Invalid(why.to_owned())
}

/// `new` checked: a known kind, a page path where one is needed, filters that are a query
/// string, a future expiry.
fn checked(new: &NewShare<'_>, now: u64) -> Result<ShareKind, AccountError> {
    let kind = ShareKind::parse(new.kind).ok_or_else(|| invalid("kind: dashboard or heatmap"))?;
    let path_ok = |p: &str| p.starts_with('/') && !p.starts_with("//") && p.len() <= MAX_TEXT;
    match kind {
        ShareKind::Heatmap if !path_ok(new.path) => {
            return Err(invalid("path: a heatmap share needs its page, /…"));
        }
        ShareKind::Dashboard if !new.path.is_empty() && !path_ok(new.path) => {
            return Err(invalid("path: a page, /…"));
        }
        _ => {}
    }
    if new.filters.len() > MAX_TEXT
        || new.filters.starts_with(['?', '#'])
        || new
            .filters
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid("filters: a query string, a=1&b=2"));
    }
    if !new.password.is_empty()
        && let Some(why) = password::weakness(new.password)
    {
        return Err(AccountError::Invalid(why));
    }
    if new.expires_at != 0 && new.expires_at <= now {
        return Err(invalid("expires_at: a time in the future"));
    }
    Ok(kind)
}

impl Accounts {
    /// A new share of `site`, made by `by`; its token, shown once.
    pub async fn share(
        &self,
        by: &SignedIn,
        site: &str,
        new: &NewShare<'_>,
    ) -> Result<(ShareRow, String), AccountError> {
        let now = now_ms().max(0) as u64;
        let kind = checked(new, now)?;
        let password_hash = if new.password.is_empty() {
            String::new()
        } else {
            let given = new.password.to_owned();
            tokio::task::spawn_blocking(move || password::hash(&given))
                .await
                .map_err(|e| AccountError::Storage(e.to_string()))?
                .map_err(|e| AccountError::Storage(e.to_string()))?
        };
        let token = random_token().map_err(|e| AccountError::Storage(e.to_string()))?;
        let id = random_token().map_err(|e| AccountError::Storage(e.to_string()))?;
        let version = self.version();
        let row = ShareRow {
            id: id[..16].to_owned(),
            site: site.to_owned(),
            kind: kind.as_str().to_owned(),
            path: new.path.to_owned(),
            filters: new.filters.to_owned(),
            token_sha256: token_digest(&token),
            password_hash,
            expires_at: new.expires_at,
            created_by: by.account.id.clone(),
            created_at: version,
            revoked: 0,
            version,
        };
        store::insert_share(&self.db, &row).await.map_err(storage)?;
        self.refresh().await.map_err(storage)?;
        Ok((row, token))
    }

    /// The standing shares of `site`, newest first.
    pub fn shares(&self, site: &str) -> Vec<ShareRow> {
        let now = now_ms().max(0) as u64;
        let mut out: Vec<_> = self
            .state()
            .shares
            .by_id
            .values()
            .filter(|s| s.site == site && standing(s, now))
            .cloned()
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        out
    }

    /// Revokes a share of `site`: its link and every read token it gave stop.
    pub async fn revoke_share(&self, site: &str, id: &str) -> Result<(), AccountError> {
        let row = self
            .state()
            .shares
            .by_id
            .get(id)
            .filter(|s| s.site == site)
            .cloned()
            .ok_or(AccountError::ShareNotFound)?;
        let row = ShareRow {
            revoked: 1,
            version: self.version(),
            ..row
        };
        store::insert_share(&self.db, &row).await.map_err(storage)?;
        self.refresh().await.map_err(storage)
    }

    /// The share a link's token opens, given its password when it has one. Failed passwords
    /// are throttled per share and per address, as sign-ins are.
    pub async fn open_share(
        &self,
        token: &str,
        given: Option<&str>,
        ip: IpAddr,
    ) -> Result<ShareRow, AccountError> {
        let now = now_ms().max(0) as u64;
        let share = {
            let state = self.state();
            state
                .shares
                .by_token
                .get(&token_digest(token))
                .and_then(|id| state.shares.by_id.get(id))
                .filter(|s| standing(s, now))
                .cloned()
                .ok_or(AccountError::ShareNotFound)?
        };
        if share.password_hash.is_empty() {
            return Ok(share);
        }
        let key = format!("share {}", share.id);
        if let Some(secs) = self.throttle.blocked(&key, ip, now) {
            return Err(AccountError::Throttled(secs));
        }
        let Some(given) = given.filter(|p| !p.is_empty()) else {
            return Err(AccountError::PasswordRequired);
        };
        let (given, hash) = (given.to_owned(), share.password_hash.clone());
        let right = tokio::task::spawn_blocking(move || password::verify(&given, &hash))
            .await
            .unwrap_or(false);
        if !right {
            self.throttle.failed(&key, ip, now);
            return Err(AccountError::WrongPassword);
        }
        Ok(share)
    }

    /// The share `id` if it still stands (not revoked, not expired): what a read token of it
    /// may read.
    pub fn live_share(&self, id: &str) -> Option<ShareRow> {
        let now = now_ms().max(0) as u64;
        self.state()
            .shares
            .by_id
            .get(id)
            .filter(|s| standing(s, now))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_shares_are_checked() {
        let ok = |n: NewShare<'_>| checked(&n, 1_000);
        let heatmap = NewShare {
            kind: "heatmap",
            path: "/pricing",
            ..NewShare::default()
        };
        assert_eq!(
            ok(NewShare {
                filters: "from=2026-01-01&device=mobile",
                expires_at: 2_000,
                ..heatmap
            }),
            Ok(ShareKind::Heatmap)
        );
        assert_eq!(
            ok(NewShare {
                kind: "dashboard",
                ..NewShare::default()
            }),
            Ok(ShareKind::Dashboard)
        );
        for bad in [
            NewShare {
                kind: "everything",
                ..NewShare::default()
            },
            NewShare {
                path: "",
                ..heatmap
            },
            NewShare {
                path: "//evil.example/",
                ..heatmap
            },
            NewShare {
                filters: "?from=x",
                ..heatmap
            },
            NewShare {
                filters: "a=1\nb=2",
                ..heatmap
            },
            NewShare {
                password: "short",
                ..heatmap
            },
            NewShare {
                expires_at: 1_000,
                ..heatmap
            },
        ] {
            assert!(ok(bad).is_err());
        }
    }

    #[test]
    fn revoked_shares_are_left_out_and_expired_ones_do_not_stand() {
        let row = |id: &str, revoked: u8, expires_at: u64| ShareRow {
            id: id.into(),
            token_sha256: format!("t-{id}"),
            revoked,
            expires_at,
            ..ShareRow::default()
        };
        let shares = Shares::new(vec![row("a", 0, 0), row("b", 1, 0), row("c", 0, 50)]);
        assert_eq!(shares.by_token.get("t-a").map(String::as_str), Some("a"));
        assert!(!shares.by_id.contains_key("b") && !shares.by_token.contains_key("t-b"));
        assert!(standing(&shares.by_id["a"], 100));
        assert!(standing(&shares.by_id["c"], 49) && !standing(&shares.by_id["c"], 50));
    }
}
