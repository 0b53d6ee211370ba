//! Roles per site, and the invitations that give them (issue 36).
//!
//! # The path of a role
//! 1. An admin of a site makes an invitation (`POST /api/v1/sites/{id}/invitations`,
//!    `http/routes/manage/invitations.rs`): [`Accounts::invite`] stores its token's SHA-256
//!    with the role and a 7-day expiry, and the token goes back once, in the link the admin
//!    copies (`/invite.html#t=<token>`; a fragment, never sent in a request line).
//! 2. Whoever opens the link posts the token to `POST /api/v1/invitations/accept`:
//!    [`Accounts::accept`] re-reads the tables, finds the invitation still pending, makes an
//!    account (or takes the signed-in one), stores the membership and marks the invitation
//!    accepted, so it works once.
//! 3. Every collector reads `memberships` whole on the accounts' refresh; a signed-in
//!    request's [`SignedIn`] carries the account's roles as last read, and [`role`] answers
//!    from them: the query API lets any role read its site (`query::QueryApi::authorize`),
//!    management routes ask [`may_manage`].
//!
//! A role changed or removed through one collector is therefore honoured by every collector
//! at its next refresh (`refresh_ms`, 2 s by default). Two collectors accepting the same
//! invitation within that time could both succeed: the tables have no compare-and-set; each
//! re-reads them first, which narrows the window to the insert's round trip.

use super::{AccountError, Accounts, SignedIn, random_token, storage, token_digest};
use crate::dates::now_ms;
use crate::storage::clickhouse::access::{self as store, InvitationRow, MembershipRow};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// What an account may do on a site; each role may do all that the roles below it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads the site's dashboards and heatmaps.
    Viewer,
    /// Also manages goals, segments and saved views.
    Editor,
    /// Also manages the site, its members, its keys and its shared links.
    Admin,
}

impl Role {
    /// The role a name (`viewer`, `editor`, `admin`) names.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "viewer" => Some(Role::Viewer),
            "editor" => Some(Role::Editor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Its name, as stored and as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

/// How long an invitation can be accepted, ms.
pub const INVITATION_TTL_MS: u64 = 7 * 86_400_000;

/// The role of a signed-in account on `site`: an instance admin is admin of every site; any
/// other account has the role of its membership, if any.
pub fn role(signed_in: &SignedIn, site: &str) -> Option<Role> {
    if signed_in.account.is_admin == 1 {
        return Some(Role::Admin);
    }
    signed_in.roles.get(site).copied()
}

/// Whether the account may manage `site`: its settings, members, keys and shared links.
pub fn may_manage(signed_in: &SignedIn, site: &str) -> bool {
    role(signed_in, site).is_some_and(|r| r >= Role::Admin)
}

/// The memberships and pending invitations, as this collector last read them.
#[derive(Default)]
pub(super) struct Members {
    /// Account id → site → role; removed memberships and removed accounts left out.
    by_account: HashMap<String, BTreeMap<String, Role>>,
    /// Pending invitations (not accepted, not withdrawn, not expired) by their token's SHA-256.
    pending: HashMap<String, InvitationRow>,
}

impl Members {
    /// From the tables' latest rows; `known` tells which accounts exist.
    pub(super) fn new(
        memberships: Vec<MembershipRow>,
        invitations: Vec<InvitationRow>,
        known: impl Fn(&str) -> bool,
        now: u64,
    ) -> Members {
        let mut by_account: HashMap<String, BTreeMap<String, Role>> = HashMap::new();
        for m in memberships {
            if m.removed != 0 || !known(&m.account_id) {
                continue;
            }
            if let Some(role) = Role::parse(&m.role) {
                by_account
                    .entry(m.account_id)
                    .or_default()
                    .insert(m.site, role);
            }
        }
        let pending = invitations
            .into_iter()
            .filter(|i| i.removed == 0 && i.accepted_by.is_empty() && i.expires_at > now)
            .map(|i| (i.token_sha256.clone(), i))
            .collect();
        Members {
            by_account,
            pending,
        }
    }

    /// The account's roles per site.
    pub(super) fn of(&self, account_id: &str) -> BTreeMap<String, Role> {
        self.by_account.get(account_id).cloned().unwrap_or_default()
    }
}

/// A member of a site, as the members' list shows them.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Member {
    /// The account.
    pub account_id: String,
    /// Its email.
    pub email: String,
    /// Its role on the site.
    pub role: &'static str,
    /// An instance admin: admin of every site whatever its membership says, and not removed
    /// from one.
    pub instance_admin: bool,
}

/// What accepting an invitation did.
#[derive(Debug)]
pub struct Accepted {
    /// The site and the role the account now has there.
    pub site: String,
    /// The role.
    pub role: Role,
    /// The account's email.
    pub email: String,
    /// A new account was made and signed in: its session token, for the cookie.
    pub session_token: Option<String>,
}

impl Accounts {
    /// The members of `site`: the accounts with a membership, and the instance admins.
    pub fn members(&self, site: &str) -> Vec<Member> {
        let state = self.state();
        let mut out: Vec<Member> = state
            .accounts
            .values()
            .filter_map(|a| {
                let instance_admin = a.is_admin == 1;
                let role = if instance_admin {
                    Role::Admin
                } else {
                    *state.members.by_account.get(&a.id)?.get(site)?
                };
                Some(Member {
                    account_id: a.id.clone(),
                    email: a.email.clone(),
                    role: role.as_str(),
                    instance_admin,
                })
            })
            .collect();
        out.sort_by(|a, b| a.email.cmp(&b.email));
        out
    }

    /// Stores `role` for the account on `site` (a new membership or a changed one).
    async fn store_role(
        &self,
        site: &str,
        account_id: &str,
        role: Role,
    ) -> Result<(), AccountError> {
        let row = MembershipRow {
            site: site.to_owned(),
            account_id: account_id.to_owned(),
            role: role.as_str().to_owned(),
            version: self.version(),
            removed: 0,
        };
        store::insert_membership(&self.db, &row)
            .await
            .map_err(storage)
    }

    /// Changes a member's role on `site`. Only an existing membership changes: accounts
    /// become members by accepting an invitation.
    pub async fn set_role(
        &self,
        site: &str,
        account_id: &str,
        role: Role,
    ) -> Result<Member, AccountError> {
        let state = self.state();
        let member = state
            .members
            .by_account
            .get(account_id)
            .and_then(|sites| sites.get(site))
            .and_then(|_| state.accounts.get(account_id))
            .ok_or(AccountError::MemberNotFound)?;
        let out = Member {
            account_id: member.id.clone(),
            email: member.email.clone(),
            role: if member.is_admin == 1 {
                Role::Admin.as_str()
            } else {
                role.as_str()
            },
            instance_admin: member.is_admin == 1,
        };
        self.store_role(site, account_id, role).await?;
        self.refresh().await.map_err(storage)?;
        Ok(out)
    }

    /// Ends an account's membership of `site`.
    pub async fn remove_member(&self, site: &str, account_id: &str) -> Result<(), AccountError> {
        let role = self
            .state()
            .members
            .by_account
            .get(account_id)
            .and_then(|sites| sites.get(site).copied())
            .ok_or(AccountError::MemberNotFound)?;
        let row = MembershipRow {
            site: site.to_owned(),
            account_id: account_id.to_owned(),
            role: role.as_str().to_owned(),
            version: self.version(),
            removed: 1,
        };
        store::insert_membership(&self.db, &row)
            .await
            .map_err(storage)?;
        self.refresh().await.map_err(storage)
    }

    /// A new invitation to `site` with `role`, made by `by`; its token, shown once.
    pub async fn invite(
        &self,
        by: &SignedIn,
        site: &str,
        role: Role,
        email: &str,
    ) -> Result<(InvitationRow, String), AccountError> {
        let email = match email.trim() {
            "" => String::new(),
            e => super::normalized_email(e)?,
        };
        let token = random_token().map_err(|e| AccountError::Storage(e.to_string()))?;
        let id = random_token().map_err(|e| AccountError::Storage(e.to_string()))?;
        let version = self.version();
        let row = InvitationRow {
            id: id[..16].to_owned(),
            site: site.to_owned(),
            role: role.as_str().to_owned(),
            token_sha256: token_digest(&token),
            email,
            created_by: by.account.id.clone(),
            created_at: version,
            expires_at: version + INVITATION_TTL_MS,
            accepted_by: String::new(),
            version,
            removed: 0,
        };
        store::insert_invitation(&self.db, &row)
            .await
            .map_err(storage)?;
        self.refresh().await.map_err(storage)?;
        Ok((row, token))
    }

    /// The pending invitations of `site`, newest first.
    pub fn invitations(&self, site: &str) -> Vec<InvitationRow> {
        let now = now_ms().max(0) as u64;
        let mut out: Vec<_> = self
            .state()
            .members
            .pending
            .values()
            .filter(|i| i.site == site && i.expires_at > now)
            .cloned()
            .collect();
        out.sort_by_key(|i| std::cmp::Reverse(i.created_at));
        out
    }

    /// Withdraws a pending invitation of `site`.
    pub async fn withdraw_invitation(&self, site: &str, id: &str) -> Result<(), AccountError> {
        let row = self
            .invitations(site)
            .into_iter()
            .find(|i| i.id == id)
            .ok_or(AccountError::InvitationNotFound)?;
        let row = InvitationRow {
            removed: 1,
            version: self.version(),
            ..row
        };
        store::insert_invitation(&self.db, &row)
            .await
            .map_err(storage)?;
        self.refresh().await.map_err(storage)
    }

    /// Accepts the invitation of `token`: the signed-in account gets its role (never a lower
    /// one than it has), or, signed out, a new account is made with `email` (the invitation's
    /// when empty) and `password` and signed in with a new session.
    pub async fn accept(
        &self,
        token: &str,
        signed_in: Option<&SignedIn>,
        email: &str,
        password: &str,
        ip: IpAddr,
        user_agent: &str,
    ) -> Result<Accepted, AccountError> {
        // Another collector may have just accepted or withdrawn it.
        self.refresh().await.map_err(storage)?;
        let now = now_ms().max(0) as u64;
        let invitation = self
            .state()
            .members
            .pending
            .get(&token_digest(token))
            .filter(|i| i.expires_at > now)
            .cloned()
            .ok_or(AccountError::InvitationNotFound)?;
        let invited = Role::parse(&invitation.role).ok_or(AccountError::InvitationNotFound)?;
        let (account_id, email, new_account) = match signed_in {
            Some(who) => (who.account.id.clone(), who.account.email.clone(), false),
            None => {
                let email = if email.trim().is_empty() {
                    invitation.email.as_str()
                } else {
                    email
                };
                let made = self.add(email, password, false).await?;
                (made.id, made.email, true)
            }
        };
        let held = self
            .state()
            .members
            .of(&account_id)
            .get(&invitation.site)
            .copied();
        let role = held.map_or(invited, |r| r.max(invited));
        if held != Some(role) {
            self.store_role(&invitation.site, &account_id, role).await?;
        }
        let used = InvitationRow {
            accepted_by: account_id,
            version: self.version(),
            ..invitation
        };
        store::insert_invitation(&self.db, &used)
            .await
            .map_err(storage)?;
        let session_token = if new_account {
            Some(
                self.sign_in(&email, password, None, ip, user_agent)
                    .await?
                    .0,
            )
        } else {
            self.refresh().await.map_err(storage)?;
            None
        };
        Ok(Accepted {
            site: used.site,
            role,
            email,
            session_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::clickhouse::accounts::{AccountRow, SessionRow};

    fn signed_in(admin: bool, roles: &[(&str, Role)]) -> SignedIn {
        SignedIn {
            account: AccountRow {
                id: "a1".into(),
                is_admin: u8::from(admin),
                ..AccountRow::default()
            },
            session: SessionRow::default(),
            roles: roles.iter().map(|(s, r)| ((*s).to_owned(), *r)).collect(),
        }
    }

    #[test]
    fn roles_are_ordered_and_an_instance_admin_manages_every_site() {
        assert!(Role::Viewer < Role::Editor && Role::Editor < Role::Admin);
        for r in [Role::Viewer, Role::Editor, Role::Admin] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("owner"), None);
        let viewer = signed_in(false, &[("shop", Role::Viewer), ("blog", Role::Admin)]);
        assert_eq!(role(&viewer, "shop"), Some(Role::Viewer));
        assert_eq!(role(&viewer, "other"), None);
        assert!(!may_manage(&viewer, "shop") && may_manage(&viewer, "blog"));
        assert!(!may_manage(
            &signed_in(false, &[("shop", Role::Editor)]),
            "shop"
        ));
        let admin = signed_in(true, &[]);
        assert_eq!(role(&admin, "anything"), Some(Role::Admin));
        assert!(may_manage(&admin, "shop"));
    }

    #[test]
    fn removed_memberships_accounts_and_used_invitations_are_left_out() {
        let m = |site: &str, account: &str, role: &str, removed: u8| MembershipRow {
            site: site.into(),
            account_id: account.into(),
            role: role.into(),
            version: 1,
            removed,
        };
        let i = |token: &str, accepted: &str, removed: u8, expires_at: u64| InvitationRow {
            token_sha256: token.into(),
            accepted_by: accepted.into(),
            removed,
            expires_at,
            ..InvitationRow::default()
        };
        let members = Members::new(
            vec![
                m("shop", "a1", "viewer", 0),
                m("blog", "a1", "admin", 1),
                m("shop", "gone", "admin", 0),
                m("shop", "a2", "owner", 0),
            ],
            vec![
                i("t1", "", 0, 200),
                i("t2", "a1", 0, 200),
                i("t3", "", 1, 200),
                i("t4", "", 0, 100),
            ],
            |a| a != "gone",
            100,
        );
        assert_eq!(
            members.of("a1"),
            BTreeMap::from([("shop".to_owned(), Role::Viewer)])
        );
        assert!(members.of("gone").is_empty() && members.of("a2").is_empty());
        let pending: Vec<_> = members.pending.keys().collect();
        assert_eq!(pending, ["t1"]);
    }
}
