//! The ClickHouse sink: a batching inserter that acknowledges each request once its rows are
//! written, with explicit retry rules and versioned, dialect-aware migrations.

mod config;
pub mod migrations;
pub mod retention;
pub mod retry;
mod row;
mod sink;

pub use config::{ClickHouseConfig, RetryConfig};
pub use migrations::Dialect;
pub use row::EventRow;
pub use sink::{ClickHouseSink, Pending, client, connect};
