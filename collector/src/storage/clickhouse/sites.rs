//! The tables of what is managed in the product rather than in the config file: sites made
//! through the API (`sites`) and every site's API keys (`api_keys`).
//!
//! Like the accounts' tables (`accounts.rs`), both are small `ReplacingMergeTree`s versioned by
//! the time of the change: a change is a new row, the latest version of a key wins, and every
//! collector reads them whole every few seconds (`crate::sites`). A key's secret is never
//! stored, only its SHA-256.
//!
//! One rule is the tables' own: a key's revocation carries [`REVOKED`] in its version, so it
//! outranks every version written without it. Another collector that saw the key in use
//! before it heard of the revocation writes a newer "last used" row; without the bit, that row
//! would win at the next merge and bring the key back.

use super::config::ClickHouseConfig;
use super::dialect::Dialect;
use clickhouse::Client;
use serde::{Deserialize, Serialize};

/// The bit a revocation's version carries: above any time in ms, so no later write that is
/// not a revocation wins over it.
pub const REVOKED: u64 = 1 << 63;

/// One version of a site made through the API.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, clickhouse::Row)]
pub struct SiteRow {
    /// What the tracker sends (`data-site`).
    pub id: String,
    /// For people.
    pub name: String,
    /// Origins whose pages may send events (`https://shop.example`, or `*`).
    pub origins: Vec<String>,
    /// IANA name of the site's time zone (`Europe/Berlin`).
    pub timezone: String,
    /// Where the site's pages live, for "Open on site"; empty: the first origin.
    pub base_url: String,
    /// When it was made, ms.
    pub created_at: u64,
    /// The change's time, ms: the latest wins.
    pub version: u64,
    /// 1: removed.
    pub removed: u8,
}

/// One version of an API key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, clickhouse::Row)]
pub struct KeyRow {
    /// Random, never reused.
    pub id: String,
    /// The site it reads or writes.
    pub site: String,
    /// For people.
    pub name: String,
    /// `read` or `ingest`.
    pub kind: String,
    /// `stats`, `heatmaps`, `export` (read keys) or `ingest`.
    pub scopes: Vec<String>,
    /// The key's first characters (`pl_r_k3x9a0bq`), to recognise it by.
    pub prefix: String,
    /// SHA-256 hex of the whole key.
    pub sha256: String,
    /// When it was made, ms.
    pub created_at: u64,
    /// The account that made it.
    pub created_by: String,
    /// Until when it works, ms; 0: no end.
    pub expires_at: u64,
    /// When it was last used, ms (written at most once a minute); 0: never.
    pub last_used_at: u64,
    /// 1: revoked.
    pub revoked: u8,
    /// The change's time, ms, with [`REVOKED`] set on a revocation: the highest wins.
    pub version: u64,
}

const TABLES: [(&str, &str); 2] = [
    (
        "sites",
        "id String, name String, origins Array(String), timezone String, base_url String, \
         created_at UInt64, version UInt64, removed UInt8",
    ),
    (
        "api_keys",
        "id String, site String, name String, kind String, scopes Array(String), \
         prefix String, sha256 String, created_at UInt64, created_by String, \
         expires_at UInt64, last_used_at UInt64, revoked UInt8, version UInt64",
    ),
];

/// The statements creating both tables (and, in cluster mode, their `Distributed` tables,
/// sharded by id so that all versions of a row meet in one shard's merges and `FINAL`).
pub fn statements(_dialect: Dialect, cfg: &ClickHouseConfig) -> Vec<String> {
    let mut out = Vec::new();
    for (table, columns) in TABLES {
        let local = cfg.local_table(table);
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {local} ({columns}) \
             ENGINE = ReplacingMergeTree(version) ORDER BY id"
        ));
        if cfg.clustered() {
            let (cluster, db) = (&cfg.cluster, &cfg.database);
            out.push(format!(
                "CREATE TABLE IF NOT EXISTS {table} AS {local} \
                 ENGINE = Distributed({cluster}, {db}, {local}, sipHash64(id))"
            ));
        }
    }
    out
}

/// Every site's latest version, removed ones included.
pub async fn read_sites(client: &Client) -> clickhouse::error::Result<Vec<SiteRow>> {
    client
        .query("SELECT ?fields FROM sites FINAL")
        .fetch_all()
        .await
}

/// Every key's latest version, revoked and expired ones included (the list shows them).
pub async fn read_keys(client: &Client) -> clickhouse::error::Result<Vec<KeyRow>> {
    client
        .query("SELECT ?fields FROM api_keys FINAL")
        .fetch_all()
        .await
}

/// Inserts one version of a site.
pub async fn insert_site(client: &Client, row: &SiteRow) -> clickhouse::error::Result<()> {
    let mut insert = client.insert::<SiteRow>("sites").await?;
    insert.write(row).await?;
    insert.end().await
}

/// Inserts versions of keys, as one insert.
pub async fn insert_keys(client: &Client, rows: &[KeyRow]) -> clickhouse::error::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut insert = client.insert::<KeyRow>("api_keys").await?;
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await
}

/// Whether ClickHouse knows the time zone `name`: the database that counts the site's days
/// is the one to ask. `Ok(false)` when it refused the name, an error when it did not answer.
pub async fn timezone_known(client: &Client, name: &str) -> clickhouse::error::Result<bool> {
    match client
        .query("SELECT toString(toTimeZone(toDateTime(0), ?))")
        .bind(name)
        .fetch_one::<String>()
        .await
    {
        Ok(_) => Ok(true),
        Err(clickhouse::error::Error::BadResponse(_)) => Ok(false),
        Err(e) => Err(e),
    }
}
