//! Where enriched events are kept, and how they reach ClickHouse.
//!
//! - [`clickhouse`]: the schema (versioned, dialect-aware migrations; the marts' materialized
//!   views; the rolled tables' DDL), the batching insert with its retry rules, retention and
//!   erasure. The one place that writes ClickHouse.
//! - [`spool`]: the durable local log an acknowledged batch waits in (fsynced) until it is
//!   inserted, replayed after a crash.
//! - [`broker`]: scale-out mode, a NATS JetStream stream between collectors and the loaders
//!   that insert.
//!
//! Storage depends on nothing above it: not the pipeline, not the query API, not HTTP.

pub mod broker;
pub mod clickhouse;
pub mod spool;
