//! The ingest pipeline: `decode → validate → enrich → batch → sink`, wired together by
//! [`Pipeline::ingest`]. The stages without I/O are the `pathlight_ingest` crate's, shared with
//! the edge worker; this file adds what is the collector's own (rate limits, geo lookup, the
//! session table, metrics, storage). Every transport (HTTP/1.1 and HTTP/2, HTTP/3, `pathlight
//! import`) describes its request as an [`IngestRequest`] and gets back an [`Ack`] or an
//! [`IngestError`]; relay workers' rows arrive already enriched ([`Pipeline::relay`]). An
//! identify (a site's user and their traits, `identify.rs`) is checked by the same site, key
//! and rate rules and stored as one row of `users`.
//! `DESIGN.md` in `collector/src` explains the choices.

pub mod geo;
mod identify;
mod live;
pub mod rate;
mod readiness;
pub mod recent_batches;
pub mod salts;
mod stages;
mod visitors;

pub use identify::{Identify, IdentifyRequest};
pub use live::LiveEvent;
pub use readiness::Readiness;
pub use stages::{Prepared, Stages};

use crate::config::Config;
use crate::dates::now_ms;
use crate::error::IngestError;
use crate::metrics::{KindLabel, Metrics, PathLabel, SiteLabel};
use crate::storage::clickhouse::{ClickHouseSink, EventRow};
use crate::storage::spool::{self, Spool};
pub use pathlight_ingest::{Ack, IngestRequest, Rejected};
use pathlight_wire::Limits;
use recent_batches::{Claim, RecentBatches};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long a resent batch waits for ClickHouse to say which of its events it has: the
/// answer is one key-range read, and a tracker's send must not hang on a slow server.
const RESENT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The collector's ingest state, shared by every connection.
pub struct Pipeline {
    stages: Stages,
    live: tokio::sync::broadcast::Sender<Arc<LiveEvent>>,
    stopping: tokio::sync::watch::Sender<bool>,
    /// The salts `stages` hashes with, for relay workers (`GET /v1/relay/salts`).
    salts: std::sync::RwLock<Vec<(i64, [u8; 16])>>,
    salts_db: clickhouse::Client,
    sink: ClickHouseSink,
    /// When set, acknowledgements wait for the spool's fsync instead of the insert.
    spool: Option<Spool>,
    /// Scale-out mode: rows go to the JetStream stream, acknowledged once it stored them.
    publisher: Option<crate::storage::broker::Publisher>,
    /// Scale-out mode: the live events every collector passes the others.
    live_bus: Option<crate::storage::broker::LiveBus>,
    /// Batches stored lately: one sent again is answered as stored, not stored twice.
    recent: RecentBatches,
    /// How long an insert of users' traits may take (`clickhouse.insert_timeout_ms`).
    insert_timeout: Duration,
    /// The version of the last users' row stored (`identify.rs`).
    users_version: std::sync::atomic::AtomicU64,
    /// Each site's visitors of the last five minutes.
    visitors: visitors::LiveVisitors,
}

impl Pipeline {
    /// Builds the stages and starts the sink (which migrates the schema first). The returned
    /// task finishes after the pipeline is dropped and the last rows are flushed.
    pub async fn start(
        config: &Config,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<(Arc<Pipeline>, JoinHandle<()>)> {
        let (sink, mut sink_task) =
            ClickHouseSink::start(&config.clickhouse, metrics.clone()).await?;
        let stopping = tokio::sync::watch::channel(false).0;
        let spool = match &config.spool.dir {
            None => None,
            Some(_) => {
                let (spool, shipping) = Spool::open(&config.spool, metrics.clone())?;
                let shipper = tokio::spawn(spool::ship(
                    shipping,
                    sink.bulk_writer(),
                    config.clickhouse.clone(),
                    metrics.clone(),
                    stopping.subscribe(),
                ));
                // The pipeline's task ends when both the batcher and the shipper have.
                sink_task = tokio::spawn(async move {
                    let _ = sink_task.await;
                    let _ = shipper.await;
                });
                Some(spool)
            }
        };
        let publisher = if config.broker.enabled() {
            Some(crate::storage::broker::Publisher::connect(&config.broker).await?)
        } else {
            None
        };
        let live_bus = crate::storage::broker::LiveBus::connect(&config.broker).await?;
        // Slow live viewers miss events (they are told how many) rather than hold memory.
        let live = tokio::sync::broadcast::channel(1024).0;
        if let Some(bus) = &live_bus {
            tokio::spawn(others_live(
                bus.subscribe().await?,
                live.clone(),
                stopping.subscribe(),
            ));
        }
        let (hasher, salts) = salts::hasher(&sink.salts_db(), today()).await?;
        // The product's sites, on the schema the sink's start migrated; the caller refreshes
        // them from then on (`Registry::run_refresh`).
        let sites = crate::sites::Registry::new(
            config,
            crate::storage::clickhouse::state_client(&config.clickhouse),
        );
        if let Err(e) = sites.refresh().await {
            tracing::warn!(error = %e, "reading the sites made in the product failed; the file's only until the next refresh");
        }
        let pipeline = Arc::new(Pipeline {
            stages: Stages::with_sites(config, sites, hasher, metrics)?,
            salts: std::sync::RwLock::new(salts),
            live,
            live_bus,
            stopping,
            salts_db: sink.salts_db(),
            sink,
            spool,
            publisher,
            recent: RecentBatches::default(),
            insert_timeout: Duration::from_millis(config.clickhouse.insert_timeout_ms),
            users_version: Default::default(),
            visitors: Default::default(),
        });
        // Sessions idle past the timeout are forgotten once a minute, so memory follows the
        // number of active visitors.
        let weak = Arc::downgrade(&pipeline);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(p) = weak.upgrade() else { return };
                p.stages
                    .sessions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .prune(now_ms());
                if let Some(limit) = &p.stages.ip_limit {
                    limit.forget_idle();
                }
                // Between scrapes too, so memory follows the current visitors.
                p.visitors.current(now_ms());
                // New day: a new salt, and the day before yesterday's forgotten. Every minute,
                // so collectors that raced to create a day's salt agree quickly.
                match salts::hasher(&p.salts_db, today()).await {
                    Ok((h, salts)) => {
                        *p.stages.hasher.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(h);
                        *p.salts.write().unwrap_or_else(|e| e.into_inner()) = salts;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "refreshing visitor-id salts failed; keeping the current ones")
                    }
                }
            }
        });
        Ok((pipeline, sink_task))
    }

    /// Starts shutting down: queued events are written at once instead of at the next flush.
    pub fn drain(&self) {
        self.stopping.send_replace(true);
        self.sink.drain();
    }

    /// Turns true when shutdown starts: long-lived answers (live feeds) end then, so open
    /// connections can close within the grace period.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// The feed of stored events, for live dashboards.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<LiveEvent>> {
        self.live.subscribe()
    }

    /// The limits batches are held to (transports bound the body with `max_batch_bytes`).
    pub fn limits(&self) -> &Limits {
        &self.stages.limits
    }

    /// The sites it serves, the file's and the product's.
    pub fn sites(&self) -> &Arc<crate::sites::Registry> {
        &self.stages.sites
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.stages.metrics
    }

    /// Sets the gauges read from state kept elsewhere (the broker client's connection, the
    /// current visitors), just before `/metrics` is encoded.
    pub fn refresh_gauges(&self) {
        let _ = self.readiness();
        let metrics = self.metrics();
        let mut current: std::collections::HashMap<String, usize> = self
            .stages
            .sites
            .snapshot()
            .by_id()
            .keys()
            .map(|s| (s.clone(), 0))
            .collect();
        for (site, n) in self.visitors.current(now_ms()) {
            *current
                .entry(self.site_label(&site).to_owned())
                .or_default() += n;
        }
        for (site, n) in current {
            metrics
                .current_visitors
                .get_or_create(&SiteLabel { site })
                .set(n as i64);
        }
    }

    /// The visitors of `site` with an event stored here in the last five minutes.
    pub fn current_visitors(&self, site: &str) -> usize {
        self.visitors
            .current(now_ms())
            .into_iter()
            .find_map(|(s, n)| (s == site).then_some(n))
            .unwrap_or(0)
    }

    /// `site` as a metrics label: a served site's id, else `other` (relay workers' rows
    /// name their own sites), so the label's values stay the sites'.
    fn site_label<'a>(&self, site: &'a str) -> &'a str {
        if self.stages.sites.snapshot().get(site).is_some() {
            site
        } else {
            "other"
        }
    }

    /// Whether some site allows browser pages of `origin` to send events (for CORS answers,
    /// which are given before the body says which site a batch is for).
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.stages.sites.snapshot().origin_allowed(origin)
    }

    /// Runs one batch through every stage. Refusals are counted in the metrics here, so every
    /// transport reports alike.
    pub async fn ingest(&self, req: IngestRequest<'_>) -> Result<Ack, IngestError> {
        self.stages
            .metrics
            .batch_bytes
            .observe(req.body.len() as f64);
        let mut events_in_batch = 1;
        let result = self.ingest_inner(req, &mut events_in_batch).await;
        if let Err(e) = &result {
            self.stages
                .metrics
                .reject(e.reason(), events_in_batch as u64);
        }
        result
    }

    async fn ingest_inner(
        &self,
        req: IngestRequest<'_>,
        counted: &mut usize,
    ) -> Result<Ack, IngestError> {
        let Prepared { mut rows, rejected } = self.stages.prepare(&req, counted)?;
        let Some(first) = rows.first() else {
            return Ok(Ack::new(0, rejected));
        };
        let accepted = rows.len();
        let key = (first.batch_id, first.event_id, accepted as u32);
        let duplicate = |metrics: &Metrics| {
            metrics.duplicate_batches.inc();
            let mut ack = Ack::new(accepted, rejected.clone());
            ack.duplicate = true;
            ack
        };
        let again = req.delivery.resent || req.delivery.redelivered;
        match self.recent.claim(key, again) {
            Claim::New => {}
            Claim::Stored => return Ok(duplicate(&self.stages.metrics)),
            Claim::InFlight => return Err(IngestError::InFlight),
        }
        let mut delivery = req.delivery;
        if again {
            match self.drop_stored(&mut rows).await {
                0 => {}
                _ if rows.is_empty() => {
                    self.recent.finish(key, true);
                    return Ok(duplicate(&self.stages.metrics));
                }
                // Part of it arrived: its first send was not lost.
                _ => delivery.resent = false,
            }
        }
        // Stored now although sent again: the first send was lost (pathlight_ingest::delivery).
        rows.extend(delivery.row(&rows[0]));
        let body = pathlight_ingest::write_rows(&rows);
        let stored = self.store(&rows, body).await;
        self.recent.finish(key, stored.is_ok());
        stored?;
        self.stages
            .metrics
            .count_undelivered(&rows[0].site_id, delivery);
        Ok(Ack::new(accepted, rejected))
    }

    /// A batch sent again that this collector does not remember storing may be stored all the
    /// same: by this collector before it restarted or too long ago for its memory, or by
    /// another collector of the fleet. A tracker sends the last batch of a closed tab again at
    /// the visitor's next visit, whenever that is, so this is the common case for such
    /// batches, not a rare one. Stored again, the marts would count the batch twice (their
    /// views count inserts) and an `$undelivered` report would say its first send was lost.
    /// So the events ClickHouse has are taken out of `rows`; returns how many. When
    /// ClickHouse does not answer in time, nothing is taken out: the batch is stored as before
    /// (once in `events FINAL`, perhaps twice in the marts) rather than refused.
    async fn drop_stored(&self, rows: &mut Vec<EventRow>) -> usize {
        let client = self.sink.bulk_writer();
        match tokio::time::timeout(
            RESENT_CHECK_TIMEOUT,
            crate::storage::clickhouse::stored::drop_stored(&client, rows),
        )
        .await
        {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot check a resent batch against ClickHouse; storing it");
                0
            }
            Err(_) => {
                tracing::warn!("checking a resent batch against ClickHouse timed out; storing it");
                0
            }
        }
    }

    /// Stores rows an edge worker in relay mode validated and enriched (`POST /v1/relay`,
    /// RowBinary in `layout`): checked to be whole rows, then stored like the collector's own.
    pub async fn relay(
        &self,
        body: Vec<u8>,
        layout: pathlight_ingest::Layout,
    ) -> Result<usize, IngestError> {
        let rows = pathlight_ingest::read_rows_of(&body, layout)
            .map_err(|e| IngestError::Body(e.to_string()))?;
        // A worker of the previous version sends rows without the latest column.
        let body = if layout == pathlight_ingest::Layout::CURRENT {
            body
        } else {
            pathlight_ingest::write_rows(&rows)
        };
        self.store(&rows, body).await?;
        Ok(rows.len())
    }

    /// The salts visitor ids are hashed with now (relay workers hash with the same).
    pub fn salts(&self) -> Vec<(i64, [u8; 16])> {
        self.salts.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes `rows` (encoded as `body`) durable, then counts and publishes them.
    async fn store(&self, rows: &[EventRow], body: Vec<u8>) -> Result<(), IngestError> {
        self.stages.metrics.batch_events.observe(rows.len() as f64);
        // Other collectors' viewers may watch, whether or not this one has any.
        let live: Vec<Arc<LiveEvent>> = if self.live.receiver_count() > 0 || self.live_bus.is_some()
        {
            rows.iter().map(|r| Arc::new(LiveEvent::of(r))).collect()
        } else {
            Vec::new()
        };
        match (&self.publisher, &self.spool) {
            (Some(publisher), _) => publisher.publish(rows, body).await?,
            (None, Some(spool)) => spool
                .append(body, rows.len())?
                .await
                .unwrap_or(Err(IngestError::ShuttingDown))?,
            (None, None) => self.sink.submit(body, rows.len())?.wait().await?,
        }
        if let Some(bus) = &self.live_bus
            && !live.is_empty()
        {
            let events: Vec<&LiveEvent> = live.iter().map(|e| &**e).collect();
            bus.publish(serde_json::to_vec(&events).unwrap_or_default())
                .await;
        }
        for e in live {
            // No receiver left is fine: nobody is watching.
            let _ = self.live.send(e);
        }
        // Tallied first: a family lookup per event (a lock and a hash) costs more than the
        // rest of counting.
        let mut by_code = [0u64; 8];
        for r in rows {
            by_code[(r.event_type as u8 as usize).min(7)] += 1;
        }
        self.visitors.record(rows, now_ms());
        self.count_page_views(rows);
        for (code, n) in by_code.into_iter().enumerate().filter(|(_, n)| *n > 0) {
            let kind = pathlight_wire::EventKind::name_of_code(code as u8).unwrap_or("unknown");
            self.stages
                .metrics
                .events_accepted
                .get_or_create(&KindLabel { kind })
                .inc_by(n);
        }
        Ok(())
    }
}

impl Pipeline {
    /// Counts the page views of stored `rows`, bots left out: one family lookup per run of
    /// rows of one site (a batch is one site's).
    fn count_page_views(&self, rows: &[EventRow]) {
        let pageview = pathlight_wire::EventKind::Pageview.code() as i8;
        let sites = self.stages.sites.snapshot();
        let mut run: Option<(&str, u64)> = None;
        let flush = |run: Option<(&str, u64)>| {
            if let Some((site, n)) = run.filter(|(_, n)| *n > 0) {
                self.stages
                    .metrics
                    .page_views
                    .get_or_create(&SiteLabel {
                        site: self.site_label(site).to_owned(),
                    })
                    .inc_by(n);
            }
        };
        for r in rows
            .iter()
            .filter(|r| r.event_type == pageview && r.is_bot == 0)
        {
            match &mut run {
                Some((site, n)) if *site == r.site_id => *n += 1,
                _ => flush(run.replace((&r.site_id, 1))),
            }
            if let Some(site) = sites.get(&r.site_id)
                && !site.config.metric_paths.is_empty()
            {
                let path = if site.config.metric_paths.contains(&r.path) {
                    r.path.as_str()
                } else {
                    "other"
                };
                self.stages
                    .metrics
                    .page_views_by_path
                    .get_or_create(&PathLabel {
                        site: r.site_id.clone(),
                        path: path.to_owned(),
                    })
                    .inc();
            }
        }
        flush(run);
    }
}

/// Hands the other collectors' live events (`storage/broker/live.rs`) to this one's live
/// viewers, until shutdown starts.
async fn others_live(
    mut messages: async_nats::Subscriber,
    live: tokio::sync::broadcast::Sender<Arc<LiveEvent>>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    use futures_util::StreamExt;
    loop {
        let message = tokio::select! {
            m = messages.next() => match m {
                Some(m) => m,
                None => return,
            },
            _ = stopping.wait_for(|s| *s) => return,
        };
        // Nobody watching here: not worth decoding.
        if live.receiver_count() == 0 {
            continue;
        }
        match serde_json::from_slice::<Vec<LiveEvent>>(&message.payload) {
            Ok(events) => {
                for e in events {
                    let _ = live.send(Arc::new(e));
                }
            }
            Err(e) => tracing::debug!(error = %e, "a live message that is not live events"),
        }
    }
}

/// Days since the Unix epoch, UTC.
fn today() -> i64 {
    now_ms().div_euclid(86_400_000)
}
