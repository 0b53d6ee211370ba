//! Pathlight's collector: receives event batches over HTTP, enriches them, and writes them to
//! ClickHouse, acknowledging a batch only once its events are durable: in the spool (fsynced)
//! when one is configured, in the broker's stream in scale-out mode, otherwise in ClickHouse.
//!
//! # Layers
//! `cli` (the `pathlight` commands) and [`serve`] assemble the rest. [`http`] (transports and
//! routes) calls [`pipeline`] (ingest) and [`query`] (the API); both read the sites they serve
//! from [`sites`] (the file's and those made in the product, with their API keys) and call
//! [`storage`] (ClickHouse, spool, broker). No layer imports one above it; [`config`], [`metrics`] and
//! [`dates`] are shared by all. `DESIGN.md` beside this file has the rule and how it is checked.
//!
//! # The path of an event through the collector
//!
//! 1. `http/listener.rs` (TCP: HTTP/1.1, HTTP/2) or `http/quic.rs` (HTTP/3) accepts the
//!    connection; `http/router.rs` names the route, and `POST /v1/batch`
//!    (`http/routes/batch.rs`) reads the body under `http/body.rs`'s limits (refusing it past
//!    `limits.max_batch_bytes` without buffering more) and describes the request as a
//!    [`pipeline::IngestRequest`]: body, content type and encoding, origin, client address.
//! 2. [`pipeline::Pipeline::ingest`] runs the stages (`pipeline/stages.rs`). *decode*: a gzip
//!    body is inflated under the same limit (`pathlight_ingest::gzip`), then
//!    `pathlight_wire::decode_with_refused` reads CBOR (v1 or v2) or JSON into a `RawBatch`,
//!    setting aside an event it cannot read. *validate*: the envelope, the site and its allowed
//!    origins, then each event on its own, so bad events are refused individually and the
//!    good ones beside them kept. *enrich*: `pathlight_wire::enrich` adds corrected time, URL
//!    parts, User-Agent facts, visitor hash (`pipeline/salts.rs`) and geo data
//!    (`pipeline/geo.rs`); a server-side session is assigned when the client sent none. The
//!    result is flattened to an [`storage::clickhouse::EventRow`] and encoded as RowBinary.
//! 3. With a spool ([`storage::spool`]): the rows are appended to the active segment, and the
//!    group's fsync is the acknowledgement; sealed segments are shipped to ClickHouse, deleted
//!    only once inserted, and replayed after a crash. In scale-out mode
//!    ([`storage::broker`]) JetStream's acknowledgement is, and loaders insert. Otherwise
//!    [`storage::clickhouse::ClickHouseSink`] gathers rows of many requests into one insert
//!    (rows, bytes or time: `storage/clickhouse/batcher.rs`), and the insert's commit is the
//!    acknowledgement. All retry transient failures by the rules in
//!    [`storage::clickhouse::retry`].
//! 4. Only then does the request get its `204` (or `200` listing refused events). A refusal at
//!    any stage is an [`error::IngestError`], turned into a status and a JSON reason in one
//!    place (`http/error.rs`) and counted in [`metrics`].
//!
//! Edge workers in relay mode post rows they validated and enriched with the same
//! `pathlight_ingest` code to `POST /v1/relay` (`http/routes/relay.rs`); those join at step 3.
//!
//! # The path of a question through it
//! `GET /api/v1/…` (`http/routes/query.rs`) goes to [`query::QueryApi`], which checks the
//! site's token, a read key and its scopes, or the signed-in account, and answers from its
//! short-lived cache or from ClickHouse (one file per endpoint family in `query/sql/`),
//! reading, in this order of preference:
//! - the marts that materialized views keep at every insert (`storage/clickhouse/marts.rs`:
//!   heatmap bins, pages, elements, one row per session and day, traffic per day and
//!   breakdown);
//! - the rollups (`query/rollup.rs`), made every few minutes from the marts and the events
//!   for what needs a whole session in order: session figures per day, and what sessions did
//!   (`query/behaviour.rs`: anomalies, rage and dead clicks, action sequences);
//! - the events themselves, for what the marts do not keep (a filter they lack,
//!   `exact=true`, a session's timeline), over the narrowest range the question allows.
//!
//! [`serve`] runs all of it on an already-bound listener until a shutdown future resolves;
//! the binary `pathlight` (`main.rs`) adds the CLI. The demo site, when configured, has a
//! listener of its own (`http/demo_site.rs`); `http/security.rs` has the headers every answer
//! carries.

#![warn(missing_docs)]

pub mod config;
pub mod dates;
pub use pathlight_ingest::error;
pub mod accounts;
pub mod cli;
pub mod http;
pub use pathlight_ingest::hex;
#[cfg(test)]
mod layering;
pub mod metrics;
pub mod pipeline;
pub mod query;
pub mod sites;
pub mod source;
pub mod storage;

use anyhow::Context;
use config::Config;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The client the accounts are read and written with: the deployment's database, and in
/// cluster mode inserts that return once every shard has them.
pub fn accounts_client(config: &Config) -> clickhouse::Client {
    storage::clickhouse::state_client(&config.clickhouse)
}

/// Starts the pipeline (connecting to ClickHouse and migrating), serves `listener` (and the
/// demo site on `demo_listen`, when configured) until `shutdown` resolves, then flushes every
/// queued event before returning. TLS, when configured, uses the certificate `config.tls`
/// names (or a self-signed one made here). Refuses to start without a `hash_secret` nobody
/// can guess.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let cert = if config.tls.enabled() {
        Some(http::tls::Certificate::load(&config.tls)?)
    } else {
        None
    };
    let demo = bind_demo(&config).await?;
    serve_with(config, listener, demo, cert, shutdown).await
}

/// The demo site's listener, when `demo_listen` and `demo_dir` are both set.
pub async fn bind_demo(config: &Config) -> anyhow::Result<Option<TcpListener>> {
    match (config.demo_listen, &config.demo_dir) {
        (Some(addr), Some(_)) => {
            Ok(Some(TcpListener::bind(addr).await.with_context(|| {
                format!("binding the demo site's address {addr}")
            })?))
        }
        _ => Ok(None),
    }
}

/// [`serve`] with the listeners bound and the TLS certificate loaded (the binary prints their
/// addresses and the certificate's SPKI hash first).
pub async fn serve_with(
    config: Config,
    listener: TcpListener,
    demo: Option<TcpListener>,
    cert: Option<http::tls::Certificate>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    config.check_secrets()?;
    let metrics = Arc::new(metrics::Metrics::new());
    let cache = query::QueryCache::new(&config.query_cache, metrics.clone());
    let (pipeline, sink_task) = pipeline::Pipeline::start(&config, metrics).await?;
    // The query API's rollups, on the schema the pipeline's start migrated.
    let repeats = query::behaviour::Repeats::new(&config.sites, &config.anomalies);
    query::rollup::spawn(config.clickhouse.clone(), repeats, |shard| {
        storage::clickhouse::client(shard).with_validation(false)
    });
    // The file's sites and those made in the product, one registry for every stage.
    let sites = pipeline.sites().clone();
    let accounts = accounts::Accounts::new(accounts_client(&config), config.accounts.clone());
    if let Err(e) = accounts.refresh().await {
        tracing::warn!(error = %e, "reading the accounts failed; retrying in the background");
    }
    let header = |h: &str| (!h.is_empty()).then(|| h.to_ascii_lowercase());
    let tls = cert.map(Arc::new);
    let opts = http::HttpOptions {
        www_dir: config.www_dir.clone(),
        demo_dir: config.demo_dir.clone(),
        demo_site: false,
        collector_port: listener.local_addr()?.port(),
        security: Arc::new(http::security::Security::new(&config, sites.clone())),
        tracker_dir: config.tracker_dir.clone(),
        prefix: config.prefix.clone(),
        trusted_proxies: config.trusted_proxies.clone(),
        client_ip_header: header(&config.client_ip_header),
        country_header: header(&config.country_header),
        limits: config.http.clone(),
        relay_token: hex::decode(&config.relay_token_sha256),
        tls,
        http3: config.tls.http3,
        live: config.live.clone(),
        accounts: Some(accounts.clone()),
    };
    let reader = storage::clickhouse::client(&config.clickhouse)
        .with_database(&config.clickhouse.database)
        .with_validation(false);
    let query_api = Arc::new(query::QueryApi::new(
        reader,
        sites.clone(),
        &config.hash_secret,
        config.session_timeout_secs,
        cache,
        &config.anomalies,
    ));
    let drain = pipeline.clone();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut refresh_stopped = stopped.clone();
    tokio::spawn(accounts.run_refresh(async move {
        let _ = refresh_stopped.wait_for(|s| *s).await;
    }));
    // On the accounts' period: a site made or a key revoked through another collector is
    // honoured here as soon as a session revoked there.
    let mut sites_stopped = stopped.clone();
    let every = std::time::Duration::from_millis(config.accounts.refresh_ms.max(100));
    tokio::spawn(sites.run_refresh(every, async move {
        let _ = sites_stopped.wait_for(|s| *s).await;
    }));
    let shutdown = async move {
        shutdown.await;
        drain.drain();
        stop.send_replace(true);
    };
    let demo = demo.map(|listener| {
        // Its own origin, the same collector: pages that load the tracker from it.
        let opts = http::HttpOptions {
            www_dir: None,
            demo_site: true,
            ..opts.clone()
        };
        let mut stopped = stopped.clone();
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        http::listener::run(
            listener,
            pipeline.clone(),
            query_api.clone(),
            opts,
            shutdown,
        )
    });
    let demo = async move {
        if let Some(demo) = demo {
            demo.await;
        }
    };
    tokio::join!(
        http::listener::run(listener, pipeline, query_api, opts, shutdown),
        demo
    );
    // The server dropped its handle to the pipeline; the sink sees its queue close, writes
    // what is left, and ends.
    sink_task.await?;
    Ok(())
}
