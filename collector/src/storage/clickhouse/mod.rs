//! The ClickHouse sink: rows as RowBinary, a batching inserter that acknowledges each request
//! once its rows are written (the mode without a spool; with one, `crate::storage::spool` ships its
//! segments through the same insert), explicit retry rules, and versioned, dialect-aware
//! migrations; beside the events, the `users` table of identified users' traits (`users.rs`),
//! the accounts (`accounts.rs`), the sites and keys managed in the product (`sites.rs`), and
//! who else reads a site: members, invitations and shared links (`access.rs`).

pub mod access;
pub mod accounts;
mod batcher;
mod config;
pub mod dialect;
pub mod erasure;
pub mod health;
pub mod marts;
pub mod migrations;
pub mod retention;
pub mod retry;
pub mod rolled;
pub mod sites;
pub use pathlight_ingest::row;
mod sink;
pub mod stored;
pub mod users;

pub use config::{ClickHouseConfig, DEFAULT_ROLLUP_PERIOD_SECS, RetryConfig};
pub use dialect::Dialect;
pub use row::EventRow;
pub use sink::{
    ClickHouseSink, INSERT_BLOCK_BYTES, Pending, Stopped, client, connect, insert_retrying,
    insert_row_binary, state_client, writer,
};
