//! Where enriched events go. One folder per sink: its config, the sink, its retry rules.

pub mod clickhouse;
