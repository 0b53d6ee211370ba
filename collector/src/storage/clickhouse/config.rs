//! `[clickhouse]`: where and how events are written.

use anyhow::bail;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How often the rollups look for days to roll, unless configured: the figures read from them
/// are at most this old.
pub const DEFAULT_ROLLUP_PERIOD_SECS: u64 = 300;

/// The ClickHouse sink's settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP interface URL.
    pub url: String,
    /// Database holding Pathlight's tables; `pathlight migrate` creates it.
    pub database: String,
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Flush a batch once it holds this many rows. ClickHouse wants few, large inserts: each
    /// insert makes a part on disk that must later be merged.
    pub max_rows: usize,
    /// Flush a batch once its rows take about this many bytes in memory.
    pub max_bytes: usize,
    /// Flush a batch this long after its first row arrived, ms, however small it is. This is
    /// also the longest a sender waits for its acknowledgement when ClickHouse is healthy.
    pub flush_interval_ms: u64,
    /// Most events waiting to be written. When full, new batches get 503 + `Retry-After`
    /// instead of growing memory without bound while ClickHouse is slow or down.
    pub queue_capacity: usize,
    /// How long a request waits for its events to be written before answering 503, ms. The
    /// events stay queued and are still written; the sender's retry is deduplicated by event id.
    pub ack_timeout_ms: u64,
    /// Timeout of one insert request, ms.
    pub insert_timeout_ms: u64,
    /// Retry of failed inserts.
    pub retry: RetryConfig,
    /// How often the rollups (`query/rollup.rs`: session figures, and what sessions did) look for
    /// days to roll, seconds: the figures read from them are at most this old.
    pub rollup_period_secs: u64,
    /// Keep events this many days. Current ClickHouse: a table TTL set at creation. 18.x has
    /// no TTL: the collector drops monthly partitions once all their days are older (so up to
    /// a month more is kept). 0: forever. Ingest refuses older events (`too_old`), imports
    /// included, rather than acknowledge what retention would delete.
    pub retention_days: u32,
    /// Cluster mode: the cluster's name in the servers' `remote_servers` configuration (every
    /// server lists every shard). Data tables are then created on each shard as `<name>_local`,
    /// and `Distributed` tables with the usual names spread inserts over the shards by
    /// session (a session's events stay on one shard) and gather queries from all of them.
    /// Empty: one server.
    pub cluster: String,
    /// Cluster mode: the HTTP URL of one server of every shard, in any order. Migrations,
    /// retention and erasure run on each (no ZooKeeper needed: no `ON CLUSTER`); the first
    /// also keeps the visitor-id salts every collector shares. `url` may be any server of the
    /// cluster.
    pub shards: Vec<String>,
}

/// Backoff between insert attempts. Retryable failures are retried until they succeed, since
/// dropping acknowledged-to-be-written rows is not an option; see `retry.rs` for what is final.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// First backoff, ms.
    pub initial_backoff_ms: u64,
    /// Backoff ceiling, ms: doubling stops here.
    pub max_backoff_ms: u64,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig {
            url: "http://127.0.0.1:8123".into(),
            database: "pathlight".into(),
            user: "default".into(),
            password: String::new(),
            max_rows: 50_000,
            max_bytes: 32 << 20,
            flush_interval_ms: 1_000,
            queue_capacity: 200_000,
            ack_timeout_ms: 10_000,
            insert_timeout_ms: 30_000,
            retry: RetryConfig::default(),
            rollup_period_secs: DEFAULT_ROLLUP_PERIOD_SECS,
            retention_days: 400,
            cluster: String::new(),
            shards: Vec::new(),
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff_ms: 100,
            max_backoff_ms: 10_000,
        }
    }
}

impl ClickHouseConfig {
    /// Short flush interval so tests do not wait a second per batch.
    pub fn for_tests() -> Self {
        ClickHouseConfig {
            flush_interval_ms: 20,
            ack_timeout_ms: 5_000,
            retry: RetryConfig {
                initial_backoff_ms: 20,
                max_backoff_ms: 200,
            },
            // Rollups at start only (an empty database): tests that read rolled figures roll
            // by hand, so a roll never lands between their writes and their reads.
            ..ClickHouseConfig::default()
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            bail!(
                "clickhouse.url must be an http:// or https:// URL, not {:?}",
                self.url
            );
        }
        if self.database.is_empty()
            || !self
                .database
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            bail!(
                "clickhouse.database must be letters, digits and _, not {:?}",
                self.database
            );
        }
        if self.rollup_period_secs == 0 {
            bail!("clickhouse.rollup_period_secs must be at least 1");
        }
        if !self.cluster.is_empty() {
            if !self
                .cluster
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                bail!("clickhouse.cluster must be letters, digits and _");
            }
            if self.shards.is_empty() {
                bail!("clickhouse.cluster is set: list every shard's server in clickhouse.shards");
            }
            if let Some(bad) = self
                .shards
                .iter()
                .find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
            {
                bail!("clickhouse.shards must be http:// or https:// URLs, not {bad:?}");
            }
        } else if !self.shards.is_empty() {
            bail!("clickhouse.shards needs clickhouse.cluster, the cluster's name");
        }
        if self.max_rows == 0 || self.max_bytes == 0 || self.queue_capacity == 0 {
            bail!("clickhouse.max_rows, max_bytes and queue_capacity must be > 0");
        }
        if self.queue_capacity < self.max_rows {
            bail!("clickhouse.queue_capacity must be at least max_rows");
        }
        if self.retry.initial_backoff_ms == 0
            || self.retry.max_backoff_ms < self.retry.initial_backoff_ms
        {
            bail!("clickhouse.retry: need 0 < initial_backoff_ms <= max_backoff_ms");
        }
        Ok(())
    }

    /// Whether the data is spread over shards.
    pub fn clustered(&self) -> bool {
        !self.cluster.is_empty()
    }

    /// The table holding a shard's part of `table`'s rows: `table` itself on one server.
    pub fn local_table(&self, table: &str) -> String {
        if self.clustered() {
            format!("{table}_local")
        } else {
            table.to_owned()
        }
    }

    /// The servers holding data, one per shard (on one server: that server): what
    /// migrations, retention and erasure act on.
    pub fn shard_configs(&self) -> Vec<ClickHouseConfig> {
        if !self.clustered() {
            return vec![self.clone()];
        }
        self.shards
            .iter()
            .map(|url| ClickHouseConfig {
                url: url.clone(),
                ..self.clone()
            })
            .collect()
    }

    /// [`Self::flush_interval_ms`] as a duration.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }
}
