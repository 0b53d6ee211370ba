//! The stages before storage — decode, authorize, validate, rate-limit, enrich, flatten — for
//! one request, with no I/O: `pathlight_ingest::check` and `pathlight_ingest::enrich` (shared
//! with the edge worker) with what is the collector's own around them: per-site and per-address
//! rate limits (`rate.rs`), the geo lookup (`geo.rs`), the server-side session table, metrics.

use super::geo::GeoLookup;
use super::rate::{IpLimit, SiteLimit};
use crate::config::Config;
use crate::dates::now_ms;
use crate::error::IngestError;
use crate::metrics::{KeyLabels, Metrics};
use crate::sites::{Registry, Site};
use crate::storage::clickhouse::EventRow;
use pathlight_ingest::{Checked, IngestRequest};
use pathlight_wire::enrich::VisitorHasher;
use pathlight_wire::session::Sessionizer;
use pathlight_wire::{Limits, RequestContext, WireError};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Server-side sessions tracked at once (~100 bytes each, ~50 MB full): far more visitors than
/// one collector sees within a session timeout from senders without session ids, while a
/// flood of made-up visitors between two prunes cannot grow the table without bound.
const MAX_SERVER_SESSIONS: usize = 500_000;

/// The stages before storage — decode, authorize, validate, rate-limit, enrich, flatten —
/// with no I/O, so they run (and are fuzzed: `fuzz/`) without a server.
pub struct Stages {
    pub(super) limits: Limits,
    /// The sites and their keys, the file's and the product's (`crate::sites`): each request
    /// reads one snapshot.
    pub(super) sites: Arc<Registry>,
    /// The file's sites' own rates (`max_events_per_sec`); sites made in the product have
    /// none, the per-address limit holds for them.
    site_limits: HashMap<String, SiteLimit>,
    /// Today's salts; swapped by the pipeline's minute task (`salts.rs`).
    pub(super) hasher: std::sync::RwLock<Arc<VisitorHasher>>,
    pub(super) sessions: Mutex<Sessionizer>,
    geo: GeoLookup,
    pub(super) ip_limit: Option<IpLimit>,
    pub(super) metrics: Arc<Metrics>,
}

/// A batch through [`Stages::prepare`]: its rows, ready to store, and the refused events.
pub struct Prepared {
    /// One row per good event.
    pub rows: Vec<EventRow>,
    /// Refused events, by index in the batch.
    pub rejected: Vec<(usize, WireError)>,
}

impl Stages {
    /// The stages for `config`'s own sites, hashing visitor ids with `hasher` (tools, benches
    /// and fuzzing: no database to read the product's sites from).
    pub fn new(
        config: &Config,
        hasher: VisitorHasher,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Stages> {
        Self::with_sites(config, Registry::file_only(config), hasher, metrics)
    }

    /// The stages for the sites of `sites`.
    pub fn with_sites(
        config: &Config,
        sites: Arc<Registry>,
        hasher: VisitorHasher,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Stages> {
        let site_limits = config
            .sites
            .iter()
            .filter_map(|s| {
                let limit = SiteLimit::new(s.max_events_per_sec, config.limits.max_events)?;
                Some((s.id.clone(), limit))
            })
            .collect();
        Ok(Stages {
            // Nothing is acknowledged that retention would delete: the window is storage's.
            limits: Limits {
                retention_days: config.clickhouse.retention_days,
                ..config.limits.clone()
            },
            sites,
            site_limits,
            hasher: std::sync::RwLock::new(Arc::new(hasher)),
            sessions: Mutex::new(Sessionizer::new(
                config.session_timeout_secs as i64 * 1000,
                MAX_SERVER_SESSIONS,
            )),
            geo: GeoLookup::open(config)?,
            ip_limit: IpLimit::new(config.ip_events_per_sec, config.limits.max_events),
            metrics,
        })
    }

    /// Every stage but storage. `counted` is set to the number of events a refusal of the
    /// whole batch should be counted as.
    pub fn prepare(
        &self,
        req: &IngestRequest<'_>,
        counted: &mut usize,
    ) -> Result<Prepared, IngestError> {
        let sites = self.sites.snapshot();
        let Checked {
            batch,
            site,
            rejected,
            key,
        } = pathlight_ingest::check(req, &self.limits, sites.by_id(), counted)?;
        self.use_key(site, key)?;
        for (_, e) in &rejected {
            self.metrics.reject(e.reason(), 1);
        }
        self.take(site, req.ip, *counted)?;
        let ctx = RequestContext {
            received_at: req.received_at,
            ip: req.ip,
            user_agent: req.user_agent.map(str::to_owned),
            geo: self.geo.lookup(req.ip, req.country),
        };
        let hasher = self
            .hasher
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // Locked only for senders without sessions, and then once per batch.
        let mut sessions = None;
        let rows = pathlight_ingest::enrich(batch, &rejected, &ctx, &hasher, |e| {
            sessions
                .get_or_insert_with(|| self.sessions.lock().unwrap_or_else(|e| e.into_inner()))
                .assign(&e.site_id, e.visitor_id, e.timestamp)
        });
        Ok(Prepared { rows, rejected })
    }
}

impl Stages {
    /// Refuses a key past its expiry (the snapshot drops it at the next refresh; this holds
    /// between two), then counts the request accepted with the site's ingest key `key` (an
    /// index into its keys) and records a product key's use.
    pub(super) fn use_key(&self, site: &Site, key: Option<usize>) -> Result<(), IngestError> {
        let Some(key) = key.and_then(|i| site.ingest_key(i)) else {
            return Ok(());
        };
        if key.expires_at != 0 && now_ms().max(0) as u64 >= key.expires_at {
            return Err(IngestError::InvalidKey(site.config.id.clone()));
        }
        if let Some(id) = &key.id {
            self.sites.used(id);
        }
        self.metrics
            .ingest_key_batches
            .get_or_create(&KeyLabels {
                site: site.config.id.clone(),
                key: key.label.clone(),
            })
            .inc();
        Ok(())
    }

    /// Takes `n` events from the site's and the client address's rate limits.
    pub(super) fn take(
        &self,
        site: &Site,
        ip: Option<IpAddr>,
        n: usize,
    ) -> Result<(), IngestError> {
        let limited = |retry_after| IngestError::RateLimited {
            site: site.config.id.clone(),
            retry_after,
        };
        if let Some(limit) = self.site_limits.get(&site.config.id) {
            limit.take(n).map_err(limited)?;
        }
        if let (Some(limit), Some(ip)) = (&self.ip_limit, ip) {
            limit.take(ip, n).map_err(limited)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server-side sessions of three events of one visitor, 9 and then 11 minutes apart,
    /// under `session_timeout_secs`.
    fn sessions_under(session_timeout_secs: u64) -> Vec<String> {
        let mut config = Config::for_tests("http://127.0.0.1:1", "unit");
        config.session_timeout_secs = session_timeout_secs;
        let hasher = VisitorHasher::new(&[], [7; 16]);
        let stages = Stages::new(&config, hasher, Arc::new(Metrics::new())).unwrap();
        let t = 1_800_000_000_000;
        let mut batch = pathlight_wire::sample::typical_batch();
        batch.site_id = "test".into();
        batch.sent_at = t;
        batch.events.truncate(3);
        for (e, minutes) in batch.events.iter_mut().zip([40, 31, 20]) {
            // No session id: the collector assigns one.
            e.session_id = String::new();
            e.timestamp = t - minutes * 60_000;
        }
        let body = pathlight_wire::cbor::encode(&batch);
        let req = IngestRequest {
            body: &body,
            content_type: Some("application/cbor"),
            content_encoding: None,
            site: None,
            origin: None,
            ip: Some("198.51.100.7".parse().unwrap()),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"),
            country: None,
            received_at: t,
            delivery: Default::default(),
            key: None,
        };
        let prepared = stages.prepare(&req, &mut 0).unwrap();
        assert!(prepared.rejected.is_empty(), "{:?}", prepared.rejected);
        prepared.rows.into_iter().map(|r| r.session_id).collect()
    }

    #[test]
    fn server_sessions_end_after_the_configured_timeout() {
        let s = sessions_under(10 * 60);
        assert_eq!(s[0], s[1], "9 minutes apart: one session");
        assert_ne!(s[1], s[2], "11 minutes apart: a new one, at 10 minutes");
        let s = sessions_under(30 * 60);
        assert!(
            s[0] == s[1] && s[1] == s[2],
            "one session at 30 minutes: {s:?}"
        );
    }
}
