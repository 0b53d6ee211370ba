//! Who else may read a site: its members and their roles (`memberships`), the one-time links
//! that make a member (`invitations`), and read-only links to one dashboard or heatmap
//! (`shares`).
//!
//! Like the accounts' tables (`accounts.rs`) these are small `ReplacingMergeTree`s versioned
//! by the time of the change: a change is a new row with a later version, readers take the
//! latest row of each key (`FINAL`), and every collector reads them whole on the accounts'
//! refresh (`accounts/roles.rs`, `accounts/shares.rs`), so a role removed through one
//! collector is honoured by all within that time. Tokens are never stored, only their
//! SHA-256; share passwords as argon2id hashes.

use super::accounts::versioned_tables;
use super::config::ClickHouseConfig;
use super::dialect::Dialect;
use clickhouse::Client;
use serde::{Deserialize, Serialize};

/// One version of an account's role on a site.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, clickhouse::Row)]
pub struct MembershipRow {
    /// The site's id.
    pub site: String,
    /// The member.
    pub account_id: String,
    /// `viewer`, `editor` or `admin`.
    pub role: String,
    /// The change's time, ms: the latest wins.
    pub version: u64,
    /// 1: no longer a member.
    pub removed: u8,
}

/// One version of an invitation to a site.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, clickhouse::Row)]
pub struct InvitationRow {
    /// Random; names it in the list of pending ones and their `DELETE`.
    pub id: String,
    /// The site it gives a role on.
    pub site: String,
    /// The role it gives.
    pub role: String,
    /// SHA-256 hex of the link's token.
    pub token_sha256: String,
    /// Who it was meant for, as the admin typed it (a label: any account may accept it).
    pub email: String,
    /// The admin who made it.
    pub created_by: String,
    /// When, ms.
    pub created_at: u64,
    /// Until when it can be accepted, ms.
    pub expires_at: u64,
    /// The account that accepted it; empty while it is pending.
    pub accepted_by: String,
    /// The change's time, ms: the latest wins.
    pub version: u64,
    /// 1: withdrawn.
    pub removed: u8,
}

/// One version of a shared read-only link.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, clickhouse::Row)]
pub struct ShareRow {
    /// Random; names it in read tokens, the list and `DELETE`.
    pub id: String,
    /// The site it reads.
    pub site: String,
    /// `dashboard` (the site's read endpoints) or `heatmap` (one page's heatmap).
    pub kind: String,
    /// The page of a heatmap share; the dashboard's first page filter otherwise (may be empty).
    pub path: String,
    /// The view's filters as a query string (`from=…&device=mobile`), for the page to apply.
    pub filters: String,
    /// SHA-256 hex of the link's token.
    pub token_sha256: String,
    /// argon2id PHC string of the link's password; empty: none.
    pub password_hash: String,
    /// Until when, ms; 0: never expires.
    pub expires_at: u64,
    /// The admin who made it.
    pub created_by: String,
    /// When, ms.
    pub created_at: u64,
    /// 1: revoked.
    pub revoked: u8,
    /// The change's time, ms: the latest wins.
    pub version: u64,
}

const TABLES: [(&str, &str, &str); 3] = [
    (
        "memberships",
        "site String, account_id String, role String, version UInt64, removed UInt8",
        "site, account_id",
    ),
    (
        "invitations",
        "id String, site String, role String, token_sha256 String, email String, \
         created_by String, created_at UInt64, expires_at UInt64, accepted_by String, \
         version UInt64, removed UInt8",
        "id",
    ),
    (
        "shares",
        "id String, site String, kind String, path String, filters String, \
         token_sha256 String, password_hash String, expires_at UInt64, created_by String, \
         created_at UInt64, revoked UInt8, version UInt64",
        "id",
    ),
];

/// The statements creating the three tables (and their `Distributed` tables in cluster mode).
pub fn statements(_dialect: Dialect, cfg: &ClickHouseConfig) -> Vec<String> {
    versioned_tables(cfg, &TABLES)
}

/// The latest version of every membership, removed ones included.
pub async fn read_memberships(client: &Client) -> clickhouse::error::Result<Vec<MembershipRow>> {
    client
        .query("SELECT ?fields FROM memberships FINAL")
        .fetch_all()
        .await
}

/// The latest version of every invitation that can still be accepted at `now_ms` or was
/// accepted (pending ones are listed; accepted ones are refused by name).
pub async fn read_invitations(
    client: &Client,
    now_ms: u64,
) -> clickhouse::error::Result<Vec<InvitationRow>> {
    client
        .query("SELECT ?fields FROM invitations FINAL WHERE expires_at > ?")
        .bind(now_ms)
        .fetch_all()
        .await
}

/// The latest version of every share that has not expired at `now_ms`.
pub async fn read_shares(client: &Client, now_ms: u64) -> clickhouse::error::Result<Vec<ShareRow>> {
    client
        .query("SELECT ?fields FROM shares FINAL WHERE expires_at = 0 OR expires_at > ?")
        .bind(now_ms)
        .fetch_all()
        .await
}

/// Inserts one version of a membership.
pub async fn insert_membership(
    client: &Client,
    row: &MembershipRow,
) -> clickhouse::error::Result<()> {
    let mut insert = client.insert::<MembershipRow>("memberships").await?;
    insert.write(row).await?;
    insert.end().await
}

/// Inserts one version of an invitation.
pub async fn insert_invitation(
    client: &Client,
    row: &InvitationRow,
) -> clickhouse::error::Result<()> {
    let mut insert = client.insert::<InvitationRow>("invitations").await?;
    insert.write(row).await?;
    insert.end().await
}

/// Inserts one version of a share.
pub async fn insert_share(client: &Client, row: &ShareRow) -> clickhouse::error::Result<()> {
    let mut insert = client.insert::<ShareRow>("shares").await?;
    insert.write(row).await?;
    insert.end().await
}
