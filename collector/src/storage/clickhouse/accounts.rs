//! The accounts' tables: who may sign in to the dashboards (`accounts`) and their sign-ins
//! (`account_sessions`).
//!
//! Both are small `ReplacingMergeTree`s versioned by the time of the change: a change is a new
//! row with a later version, never an update, and readers take the latest row of each key
//! (`FINAL`). Every collector of a deployment reads them whole every few seconds
//! (`accounts/`), so a sign-in or a revocation made through one collector reaches the others
//! without a server of their own. Secrets are never stored: passwords as argon2id hashes,
//! session tokens as their SHA-256.

use super::config::ClickHouseConfig;
use super::dialect::Dialect;
use clickhouse::Client;
use serde::{Deserialize, Serialize};

/// One version of an account.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, clickhouse::Row)]
pub struct AccountRow {
    /// Random, never reused; sessions name their account by it.
    pub id: String,
    /// Lowercased: the sign-in name.
    pub email: String,
    /// argon2id, PHC string.
    pub password_hash: String,
    /// The TOTP secret (base32), empty when two-factor is off.
    pub totp_secret: String,
    /// SHA-256 hex of each unused recovery code, comma-separated.
    pub recovery_codes: String,
    /// Manages everything (the first account, and those it names).
    pub is_admin: u8,
    /// When the account was made, ms.
    pub created_ms: u64,
    /// The change's time, ms (unique per collector): the latest wins.
    pub version: u64,
    /// 1: removed.
    pub deleted: u8,
}

/// One version of a sign-in.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, clickhouse::Row)]
pub struct SessionRow {
    /// SHA-256 hex of the cookie's token.
    pub id_sha256: String,
    /// The account signed in.
    pub account_id: String,
    /// When, ms.
    pub created_ms: u64,
    /// Until when, ms.
    pub expires_ms: u64,
    /// The browser's User-Agent at sign-in, for the list of sessions.
    pub user_agent: String,
    /// 1: signed out or revoked.
    pub revoked: u8,
    /// The change's time, ms: the latest wins.
    pub version: u64,
}

const TABLES: [(&str, &str, &str); 2] = [
    (
        "accounts",
        "id String, email String, password_hash String, totp_secret String, \
         recovery_codes String, is_admin UInt8, created_ms UInt64, version UInt64, deleted UInt8",
        "id",
    ),
    (
        "account_sessions",
        "id_sha256 String, account_id String, created_ms UInt64, expires_ms UInt64, \
         user_agent String, revoked UInt8, version UInt64",
        "id_sha256",
    ),
];

/// The statements creating both tables (and, in cluster mode, their `Distributed` tables).
pub fn statements(_dialect: Dialect, cfg: &ClickHouseConfig) -> Vec<String> {
    versioned_tables(cfg, &TABLES)
}

/// `CREATE TABLE` of each `(table, columns, key)` as a `ReplacingMergeTree(version)` ordered by
/// its key, and in cluster mode its `Distributed` table, sharded by the key so that all
/// versions of a row meet in one shard's merges and `FINAL`.
pub(super) fn versioned_tables(
    cfg: &ClickHouseConfig,
    tables: &[(&str, &str, &str)],
) -> Vec<String> {
    let mut out = Vec::new();
    for (table, columns, key) in tables {
        let local = cfg.local_table(table);
        let order = if key.contains(',') {
            format!("({key})")
        } else {
            (*key).to_owned()
        };
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {local} ({columns}) \
             ENGINE = ReplacingMergeTree(version) ORDER BY {order}"
        ));
        if cfg.clustered() {
            let (cluster, db) = (&cfg.cluster, &cfg.database);
            out.push(format!(
                "CREATE TABLE IF NOT EXISTS {table} AS {local} \
                 ENGINE = Distributed({cluster}, {db}, {local}, sipHash64({key}))"
            ));
        }
    }
    out
}

/// Every account's latest version, removed ones included (their sessions must stop too).
pub async fn read_accounts(client: &Client) -> clickhouse::error::Result<Vec<AccountRow>> {
    client
        .query("SELECT ?fields FROM accounts FINAL")
        .fetch_all()
        .await
}

/// The latest version of every session that has not expired at `now_ms`.
pub async fn read_sessions(
    client: &Client,
    now_ms: u64,
) -> clickhouse::error::Result<Vec<SessionRow>> {
    client
        .query("SELECT ?fields FROM account_sessions FINAL WHERE expires_ms > ?")
        .bind(now_ms)
        .fetch_all()
        .await
}

/// Inserts one version of an account.
pub async fn insert_account(client: &Client, row: &AccountRow) -> clickhouse::error::Result<()> {
    let mut insert = client.insert::<AccountRow>("accounts").await?;
    insert.write(row).await?;
    insert.end().await
}

/// Inserts one version of a session.
pub async fn insert_session(client: &Client, row: &SessionRow) -> clickhouse::error::Result<()> {
    let mut insert = client.insert::<SessionRow>("account_sessions").await?;
    insert.write(row).await?;
    insert.end().await
}
