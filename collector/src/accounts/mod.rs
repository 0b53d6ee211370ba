//! Accounts: who may sign in to the dashboards, and their sessions (issue 36).
//!
//! # The path of a sign-in
//! 1. `POST /api/v1/auth/signin` (`http/routes/auth.rs`) hands email, password and, when the
//!    account has two-factor on, a TOTP or recovery code to [`Accounts::sign_in`].
//! 2. The [`throttle`] refuses accounts and addresses with too many recent failures; the
//!    password is checked against its argon2id hash ([`password`]; an unknown email checks a
//!    decoy, so both take as long); then the code ([`totp`]).
//! 3. A new random token becomes the session: its SHA-256 is stored in `account_sessions`
//!    (`storage/clickhouse/accounts.rs`) and the token goes to the browser once, in an
//!    `HttpOnly` cookie. Every sign-in makes a new one, so a session id planted before it is
//!    never the one signed in (no fixation).
//! 4. Later requests bring the cookie; [`Accounts::session`] finds it in memory.
//!
//! Accounts have roles per site ([`roles`]: viewer, editor, admin; an instance admin is
//! admin of every site), given by one-time invitations; a site's admins also make shared
//! read-only links ([`shares`]) for people without an account.
//!
//! # Where the state lives
//! In the ClickHouse database the collectors already share: every change is a new row version,
//! and each collector reads both tables whole every `refresh_ms` (2 s by default), so a
//! revocation made on one collector is honoured by all within that time, with no server to
//! add. The tables are small (one row per account, sign-in, membership, invitation and shared
//! link); reading them whole is cheaper than asking on every request.

pub mod password;
pub mod roles;
pub mod shares;
pub mod throttle;
pub mod totp;

pub use roles::{Role, may_manage, role};

use crate::dates::now_ms;
use crate::storage::clickhouse::access;
use crate::storage::clickhouse::accounts::{self as store, AccountRow, SessionRow};
use clickhouse::Client;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use throttle::Throttle;

/// `[accounts]`: sign-in to the dashboards.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AccountsConfig {
    /// How long a sign-in lasts, days.
    pub session_days: u32,
    /// How often each collector reads the accounts and sessions again, ms: a change made
    /// through another collector (a revocation) is honoured here within this time.
    pub refresh_ms: u64,
    /// Let the first-start form (`POST /api/v1/setup`, which makes the first admin while no
    /// account exists) be used from any address, not only from this machine. Off: set up
    /// from the machine itself, or with `pathlight user add --admin`.
    pub setup_from_anywhere: bool,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        AccountsConfig {
            session_days: 14,
            refresh_ms: 2_000,
            setup_from_anywhere: false,
        }
    }
}

/// Why an account operation was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AccountError {
    /// Unknown email or wrong password (never said which).
    #[error("wrong email or password")]
    InvalidCredentials,
    /// The password was right and the account needs its second factor.
    #[error("this account needs a two-factor code")]
    TotpRequired,
    /// The second factor was wrong.
    #[error("wrong two-factor code")]
    TotpInvalid,
    /// Too many recent failures for the account or the address.
    #[error("too many failed sign-ins; try again in {0} s")]
    Throttled(u64),
    /// A new account's email is taken.
    #[error("an account with this email exists")]
    EmailTaken,
    /// A new email or password is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The first-start form after the first account was made, or from elsewhere.
    #[error("{0}")]
    SetupClosed(&'static str),
    /// The session or account named does not exist (any more).
    #[error("not signed in")]
    NotSignedIn,
    /// No pending invitation has this token: unknown, used, withdrawn or expired.
    #[error("this invitation does not exist, was used, or has expired")]
    InvitationNotFound,
    /// No standing share has this token or id: unknown, revoked or expired.
    #[error("this shared link does not exist, was revoked, or has expired")]
    ShareNotFound,
    /// The account is not a member of the site.
    #[error("this account is not a member of the site")]
    MemberNotFound,
    /// The shared link has a password and none was given.
    #[error("this shared link needs its password")]
    PasswordRequired,
    /// The shared link's password was wrong.
    #[error("wrong password for this shared link")]
    WrongPassword,
    /// ClickHouse could not store the change.
    #[error("storing the change failed: {0}")]
    Storage(String),
}

impl AccountError {
    /// The machine-readable reason of the JSON answer.
    pub fn reason(&self) -> &'static str {
        match self {
            AccountError::InvalidCredentials => "invalid_credentials",
            AccountError::TotpRequired => "totp_required",
            AccountError::TotpInvalid => "totp_invalid",
            AccountError::Throttled(_) => "throttled",
            AccountError::EmailTaken => "email_taken",
            AccountError::Invalid(_) => "invalid",
            AccountError::SetupClosed(_) => "setup_closed",
            AccountError::NotSignedIn => "not_signed_in",
            AccountError::InvitationNotFound => "invitation_not_found",
            AccountError::ShareNotFound => "share_not_found",
            AccountError::MemberNotFound => "member_not_found",
            AccountError::PasswordRequired => "password_required",
            AccountError::WrongPassword => "wrong_password",
            AccountError::Storage(_) => "storage_unavailable",
        }
    }
}

fn storage(e: clickhouse::error::Error) -> AccountError {
    tracing::warn!(error = %e, "storing an account change failed");
    AccountError::Storage(e.to_string())
}

/// What each collector holds in memory.
#[derive(Default)]
struct State {
    /// By id, removed ones excluded.
    accounts: HashMap<String, AccountRow>,
    /// Email → id.
    emails: HashMap<String, String>,
    /// By `id_sha256`, revoked and expired ones excluded.
    sessions: HashMap<String, SessionRow>,
    /// Roles per site and pending invitations.
    members: roles::Members,
    /// Shared links that stand.
    shares: shares::Shares,
}

/// A signed-in request's account and session.
#[derive(Clone, Debug)]
pub struct SignedIn {
    /// The account.
    pub account: AccountRow,
    /// The session.
    pub session: SessionRow,
    /// The account's roles per site, as this collector last read them (an instance admin's
    /// are those of its memberships; [`role`] makes it admin everywhere).
    pub roles: BTreeMap<String, Role>,
}

/// The accounts of a deployment, as this collector last read them.
pub struct Accounts {
    db: Client,
    cfg: AccountsConfig,
    state: RwLock<Arc<State>>,
    throttle: Throttle,
    versions: crate::dates::VersionClock,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// SHA-256 hex of a session token.
fn token_digest(token: &str) -> String {
    crate::hex::encode(&Sha256::digest(token.as_bytes()))
}

fn random_token() -> anyhow::Result<String> {
    use base64::Engine;
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

fn normalized_email(email: &str) -> Result<String, AccountError> {
    let e = email.trim().to_lowercase();
    let valid = e.len() <= 254
        && e.split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(e)
    } else {
        Err(AccountError::Invalid("not an email address".into()))
    }
}

impl Accounts {
    /// The accounts of `db` (a client with the deployment's database selected), none read yet:
    /// [`Accounts::refresh`] reads them.
    pub fn new(db: Client, cfg: AccountsConfig) -> Arc<Accounts> {
        Arc::new(Accounts {
            db,
            cfg,
            state: RwLock::default(),
            throttle: Throttle::default(),
            versions: Default::default(),
        })
    }

    /// Reads the tables again, replacing what this collector holds.
    pub async fn refresh(&self) -> clickhouse::error::Result<()> {
        let now = now_ms().max(0) as u64;
        let (accounts, sessions, memberships, invitations, shares) = tokio::try_join!(
            store::read_accounts(&self.db),
            store::read_sessions(&self.db, now),
            access::read_memberships(&self.db),
            access::read_invitations(&self.db, now),
            access::read_shares(&self.db, now),
        )?;
        let accounts: HashMap<_, _> = accounts
            .into_iter()
            .filter(|a| a.deleted == 0)
            .map(|a| (a.id.clone(), a))
            .collect();
        let emails = accounts
            .values()
            .map(|a| (a.email.clone(), a.id.clone()))
            .collect();
        let sessions = sessions
            .into_iter()
            .filter(|s| s.revoked == 0 && accounts.contains_key(&s.account_id))
            .map(|s| (s.id_sha256.clone(), s))
            .collect();
        let members = roles::Members::new(
            memberships,
            invitations,
            |id| accounts.contains_key(id),
            now,
        );
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(State {
            accounts,
            emails,
            sessions,
            members,
            shares: shares::Shares::new(shares),
        });
        Ok(())
    }

    /// Refreshes every `refresh_ms` until `stopping` resolves; a failed read keeps the last
    /// state (sign-ins keep working through a short ClickHouse outage).
    pub async fn run_refresh(self: Arc<Self>, stopping: impl std::future::Future<Output = ()>) {
        let every = std::time::Duration::from_millis(self.cfg.refresh_ms.max(100));
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = &mut stopping => return,
            }
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "reading the accounts failed; keeping the last ones");
            }
        }
    }

    fn state(&self) -> Arc<State> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A version later than any this collector gave.
    fn version(&self) -> u64 {
        self.versions.next()
    }

    /// Whether no account exists yet (the first-start form is open).
    pub fn none_yet(&self) -> bool {
        self.state().accounts.is_empty()
    }

    /// The settings.
    pub fn config(&self) -> &AccountsConfig {
        &self.cfg
    }

    /// Makes an account.
    pub async fn add(
        &self,
        email: &str,
        password: &str,
        admin: bool,
    ) -> Result<AccountRow, AccountError> {
        let email = normalized_email(email)?;
        if let Some(why) = password::weakness(password) {
            return Err(AccountError::Invalid(why));
        }
        // Re-read first: another collector (or `pathlight user add`) may have just made it.
        self.refresh().await.map_err(storage)?;
        if self.state().emails.contains_key(&email) {
            return Err(AccountError::EmailTaken);
        }
        let version = self.version();
        let row = AccountRow {
            id: random_token().map_err(|e| AccountError::Storage(e.to_string()))?[..16].into(),
            email,
            password_hash: password::hash(password)
                .map_err(|e| AccountError::Storage(e.to_string()))?,
            is_admin: u8::from(admin),
            created_ms: version,
            version,
            ..AccountRow::default()
        };
        store::insert_account(&self.db, &row)
            .await
            .map_err(storage)?;
        self.refresh().await.map_err(storage)?;
        Ok(row)
    }

    /// Signs in: a new session and its token (for the cookie).
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        code: Option<&str>,
        ip: IpAddr,
        user_agent: &str,
    ) -> Result<(String, SessionRow), AccountError> {
        let now = now_ms().max(0) as u64;
        let email = email.trim().to_lowercase();
        if let Some(secs) = self.throttle.blocked(&email, ip, now) {
            return Err(AccountError::Throttled(secs));
        }
        let state = self.state();
        let account = state
            .emails
            .get(&email)
            .and_then(|id| state.accounts.get(id));
        let hash = account.map_or(password::decoy(), |a| a.password_hash.as_str());
        // argon2 takes tens of ms of CPU: off the runtime's threads.
        let (given, hash) = (password.to_owned(), hash.to_owned());
        let right = tokio::task::spawn_blocking(move || password::verify(&given, &hash))
            .await
            .unwrap_or(false);
        let Some(account) = account.filter(|_| right) else {
            self.throttle.failed(&email, ip, now);
            return Err(AccountError::InvalidCredentials);
        };
        let mut account = account.clone();
        if !account.totp_secret.is_empty() {
            let code = code.map(str::trim).filter(|c| !c.is_empty());
            let Some(code) = code else {
                return Err(AccountError::TotpRequired);
            };
            if !totp::verify(&account.totp_secret, code, now / 1000) {
                // A recovery code works once: it is struck from the account.
                let digest = token_digest(&code.to_lowercase());
                let codes: Vec<&str> = account.recovery_codes.split(',').collect();
                if !codes.contains(&digest.as_str()) {
                    self.throttle.failed(&email, ip, now);
                    return Err(AccountError::TotpInvalid);
                }
                account.recovery_codes = codes
                    .into_iter()
                    .filter(|c| *c != digest)
                    .collect::<Vec<_>>()
                    .join(",");
                account.version = self.version();
                store::insert_account(&self.db, &account)
                    .await
                    .map_err(storage)?;
            }
        }
        self.throttle.succeeded(&email);
        let token = random_token().map_err(|e| AccountError::Storage(e.to_string()))?;
        let version = self.version();
        let session = SessionRow {
            id_sha256: token_digest(&token),
            account_id: account.id.clone(),
            created_ms: version,
            expires_ms: version + u64::from(self.cfg.session_days) * 86_400_000,
            user_agent: user_agent.chars().take(300).collect(),
            revoked: 0,
            version,
        };
        store::insert_session(&self.db, &session)
            .await
            .map_err(storage)?;
        self.refresh().await.map_err(storage)?;
        Ok((token, session))
    }

    /// The account and session of a cookie's token, if it is signed in.
    pub fn session(&self, token: &str) -> Option<SignedIn> {
        let state = self.state();
        let session = state.sessions.get(&token_digest(token))?;
        let now = now_ms().max(0) as u64;
        (session.expires_ms > now).then_some(())?;
        Some(SignedIn {
            account: state.accounts.get(&session.account_id)?.clone(),
            session: session.clone(),
            roles: state.members.of(&session.account_id),
        })
    }

    /// The account's sessions, newest first.
    pub fn sessions_of(&self, account_id: &str) -> Vec<SessionRow> {
        let mut out: Vec<_> = self
            .state()
            .sessions
            .values()
            .filter(|s| s.account_id == account_id)
            .cloned()
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.created_ms));
        out
    }

    /// Ends one of the account's sessions, named by its `id_sha256` (sign-out ends the
    /// current one).
    pub async fn revoke(&self, account_id: &str, id_sha256: &str) -> Result<(), AccountError> {
        let session = self
            .state()
            .sessions
            .get(id_sha256)
            .filter(|s| s.account_id == account_id)
            .cloned()
            .ok_or(AccountError::NotSignedIn)?;
        let row = SessionRow {
            revoked: 1,
            version: self.version(),
            ..session
        };
        store::insert_session(&self.db, &row)
            .await
            .map_err(storage)?;
        self.refresh().await.map_err(storage)
    }

    /// Changes the password, given the current one; the account's other sessions end.
    pub async fn change_password(
        &self,
        who: &SignedIn,
        current: &str,
        new: &str,
    ) -> Result<(), AccountError> {
        if !password::verify(current, &who.account.password_hash) {
            return Err(AccountError::InvalidCredentials);
        }
        if let Some(why) = password::weakness(new) {
            return Err(AccountError::Invalid(why));
        }
        let row = AccountRow {
            password_hash: password::hash(new).map_err(|e| AccountError::Storage(e.to_string()))?,
            version: self.version(),
            ..who.account.clone()
        };
        store::insert_account(&self.db, &row)
            .await
            .map_err(storage)?;
        for s in self.sessions_of(&who.account.id) {
            if s.id_sha256 != who.session.id_sha256 {
                self.revoke(&who.account.id, &s.id_sha256).await?;
            }
        }
        self.refresh().await.map_err(storage)
    }

    /// Turns two-factor on with `secret` (shown to the user by `totp/setup`) once `code`
    /// proves their app has it; returns the recovery codes, shown once.
    pub async fn enable_totp(
        &self,
        who: &SignedIn,
        secret: &str,
        code: &str,
    ) -> Result<Vec<String>, AccountError> {
        let now = now_ms().max(0) as u64 / 1000;
        if !totp::verify(secret, code, now) {
            return Err(AccountError::TotpInvalid);
        }
        let codes = totp::recovery_codes().map_err(|e| AccountError::Storage(e.to_string()))?;
        let row = AccountRow {
            totp_secret: secret.to_owned(),
            recovery_codes: codes
                .iter()
                .map(|c| token_digest(c))
                .collect::<Vec<_>>()
                .join(","),
            version: self.version(),
            ..who.account.clone()
        };
        store::insert_account(&self.db, &row)
            .await
            .map_err(storage)?;
        self.refresh().await.map_err(storage)?;
        Ok(codes)
    }

    /// Turns two-factor off, given the password.
    pub async fn disable_totp(&self, who: &SignedIn, password: &str) -> Result<(), AccountError> {
        if !password::verify(password, &who.account.password_hash) {
            return Err(AccountError::InvalidCredentials);
        }
        let row = AccountRow {
            totp_secret: String::new(),
            recovery_codes: String::new(),
            version: self.version(),
            ..who.account.clone()
        };
        store::insert_account(&self.db, &row)
            .await
            .map_err(storage)?;
        self.refresh().await.map_err(storage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(
            normalized_email(" Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@localhost",
            "@example.com",
            "a da@example.com",
        ] {
            assert!(normalized_email(bad).is_err(), "{bad}");
        }
    }
}
