//! Pathlight's bench tools, kept out of the product: the `pathlight-bench` binary that the
//! scripts in `bench/` build (`cargo build --release --bin pathlight-bench`) and run beside a
//! release `pathlight`, and the library the collector's integration tests use as their client.
//! Nothing here is in the `pathlight` binary or its dependency tree; in particular the TLS
//! client that accepts any certificate (`loadgen --insecure`, for a self-signed collector on
//! loopback) is not.
//!
//! # The path of a load request
//! [`loadgen`] takes the wire crate's sample batch, repeats its events to the batch size,
//! gives each request fresh event ids (from the run's seed and the request's number) and
//! times of now, encodes it as CBOR and posts it to `/v1/batch` over HTTP/1.1, HTTP/2 or
//! HTTP/3; the answer's status and latency are counted, the body read and dropped.
//!
//! # What each tool measures, and where
//! - [`loadgen`] (`pathlight-bench loadgen`): what a collector answers under load: requests
//!   and events per second, latency percentiles (p50 to max) and answers by status, at a fixed
//!   rate or as fast as answered. Every network bench: bench/load.sh, limits.sh, half-load.sh,
//!   sustained.sh, ab.sh, cores.sh, rss.sh, profile.sh, sched-delays.sh, http3.sh (h1/h2/h3
//!   over TLS), generator.sh (its own CPU per request) and edge-worker.sh (through workerd).
//! - [`discard`] (`pathlight-bench discard`): the transport limit, a minimal hyper server that
//!   reads each body and answers 204: what HTTP alone reaches on a core (bench/limits.sh), the
//!   latency floor at a given rate (bench/half-load.sh), the generator's counterpart
//!   (bench/generator.sh).
//! - [`insert_limit`] (`pathlight-bench insert-limit`): the storage limit, ClickHouse taking
//!   rows built beforehand by the collector's stages through the collector's insert, in rows
//!   per second (bench/limits.sh, bench/storage.sh); with `--write`, those rows as files for
//!   other ClickHouse versions (bench/modern-storage.sh).

//! - [`fanout`] (`pathlight-bench ws-fanout`): how long a stored event takes to reach each of
//!   many viewers of the live feed over WebSocket (bench/websocket.sh), through [`ws`], the
//!   live feed's client, which the collector's integration tests use too.

#![warn(missing_docs)]

pub mod discard;
pub mod fanout;
pub mod insert_limit;
pub mod loadgen;
pub mod ws;
