//! `identify`: a site names one of its users and their traits (`POST /v1/identify` from the
//! tracker or the site's server, `pathlight import --users`). The shared rules
//! (`pathlight_ingest::identify`) decode, validate and admit it; this adds the collector's own:
//! the site's and the address's rate limits (an identify counts as one event), metrics, and the
//! insert into `users`.
//!
//! An identify is answered once ClickHouse has its row, spool or not: it is one small row
//! that the next identify of the same user replaces, and a sender told `503` sends it again.
//! One without traits only names the user (the tracker sets the user id on later events) and
//! stores nothing, so that a page naming its user does not erase what the server said of them.

use super::Pipeline;
use crate::error::IngestError;
use crate::metrics::ReasonLabel;
use crate::storage::clickhouse::retry::{Decision, decide};
use crate::storage::clickhouse::users::{self, UserRow};
use pathlight_ingest::identify;
pub use pathlight_ingest::identify::Identify;
use std::net::IpAddr;

/// What a transport knows about one identify request.
#[derive(Debug, Default)]
pub struct IdentifyRequest<'a> {
    /// The body (JSON), already bounded by [`identify::MAX_BYTES`].
    pub body: &'a [u8],
    /// `Content-Type`, if sent.
    pub content_type: Option<&'a str>,
    /// `?site=`, if given.
    pub site: Option<&'a str>,
    /// `Origin`, if sent.
    pub origin: Option<&'a str>,
    /// Client address, for its rate limit.
    pub ip: Option<IpAddr>,
    /// The ingest key a server sent.
    pub key: Option<&'a str>,
    /// Server clock at receipt, ms since the epoch: the stored row's version.
    pub received_at: i64,
}

impl Pipeline {
    /// Checks and stores one identify; counted in `pathlight_identify_requests_total` by
    /// outcome (`stored`, `named` without traits, or the refusal's reason).
    pub async fn identify(&self, req: IdentifyRequest<'_>) -> Result<(), IngestError> {
        let result = self.identify_inner(req).await;
        let reason = match &result {
            Ok(true) => "stored",
            Ok(false) => "named",
            Err(e) => e.reason(),
        };
        self.metrics()
            .identify_requests
            .get_or_create(&ReasonLabel { reason })
            .inc();
        result.map(drop)
    }

    /// Whether a row was stored.
    async fn identify_inner(&self, req: IdentifyRequest<'_>) -> Result<bool, IngestError> {
        identify::readable(req.content_type)?;
        let id = identify::decode(req.body, req.site, &self.stages.limits)?;
        let sites = self.stages.sites.snapshot();
        let site = sites
            .get(&id.site)
            .ok_or_else(|| IngestError::UnknownSite(id.site.clone()))?;
        let key = identify::admit(site, req.key, req.origin, &id.site)?;
        self.stages.use_key(site, key)?;
        self.stages.take(site, req.ip, 1)?;
        if id.traits.is_empty() {
            return Ok(false);
        }
        let row = UserRow {
            traits: id.traits_json(),
            site_id: id.site,
            user_id: id.user_id,
            updated_ms: self.users_version(req.received_at),
        };
        self.store_users(&[row]).await?;
        Ok(true)
    }

    /// The version of a users' row received at `at_ms`: that time, or 1 ms after the last
    /// version given if that is later, so that of two identifies of a user this collector
    /// receives in the same millisecond the second still wins.
    pub fn users_version(&self, at_ms: i64) -> u64 {
        use std::sync::atomic::Ordering;
        let at = at_ms.max(0) as u64;
        let last = self
            .users_version
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(at.max(last + 1))
            })
            .unwrap_or_default();
        at.max(last + 1)
    }

    /// Inserts validated users' rows (`identify`, `import --users`) into `users`, as one insert.
    pub async fn store_users(&self, rows: &[UserRow]) -> Result<(), IngestError> {
        users::insert(&self.sink.bulk_writer(), rows, self.insert_timeout)
            .await
            .map_err(|e| match decide(&e) {
                Decision::Retry => {
                    tracing::warn!(error = %e, "storing users' traits failed; the sender may retry");
                    IngestError::StorageTimeout
                }
                Decision::Fail => IngestError::StorageRejected(e.to_string()),
            })
    }
}
