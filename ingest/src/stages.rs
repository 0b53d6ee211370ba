//! Decode, authorize, validate ([`check`]) and enrich ([`enrich`]): the order and the refusal
//! rules every receiver shares.

use crate::error::IngestError;
use crate::row::EventRow;
use pathlight_wire::enrich::{Enricher, VisitorHasher, url_host};
use pathlight_wire::validate::{validate_envelope, validate_event};
use pathlight_wire::{Encoding, EnrichedEvent, Field, Limits, RawBatch, RequestContext, WireError};
use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;

/// What a transport knows about one batch request.
#[derive(Debug, Default)]
pub struct IngestRequest<'a> {
    /// The body as received, already bounded by `limits.max_batch_bytes`: gzip (by its first
    /// bytes or `content_encoding`) is inflated by [`check`], to at most as many bytes.
    pub body: &'a [u8],
    /// `Content-Type`, if sent: the encoding of the (inflated) body.
    pub content_type: Option<&'a str>,
    /// `Content-Encoding`, if sent: `gzip` (or `x-gzip`) says the body is gzip; any other but
    /// `identity` is refused by [`crate::rules::precheck`] before the body is read.
    pub content_encoding: Option<&'a str>,
    /// `?site=`, if given.
    pub site: Option<&'a str>,
    /// `Origin`, if sent (browsers do on cross-origin requests).
    pub origin: Option<&'a str>,
    /// Client address (used for the visitor hash and geo, never stored).
    pub ip: Option<IpAddr>,
    /// `User-Agent`.
    pub user_agent: Option<&'a str>,
    /// Country from a trusted header.
    pub country: Option<&'a str>,
    /// Server clock at receipt, ms since the epoch.
    pub received_at: i64,
    /// What the sender says about its earlier sends (`?r=1&d=N`).
    pub delivery: crate::Delivery,
    /// The ingest key a server sent (`X-API-Key`, or `Authorization: Bearer`): see
    /// [`crate::keys`].
    pub key: Option<&'a str>,
}

/// The answer to an accepted batch: everything stored, or the good events stored and the
/// bad ones listed.
#[derive(Debug, Serialize)]
pub struct Ack {
    /// Events written.
    pub accepted: usize,
    /// Events refused, by index in the batch.
    pub rejected: Vec<Rejected>,
    /// The batch, sent again, had been stored before: answered `208 Already Reported`, so a
    /// tracker learns that its first try arrived.
    #[serde(skip)]
    pub duplicate: bool,
}

impl Ack {
    /// The answer for `accepted` stored events and the refused ones of the same batch.
    pub fn new(accepted: usize, rejected: Vec<(usize, WireError)>) -> Ack {
        Ack {
            accepted,
            rejected: rejected
                .into_iter()
                .map(|(index, e)| Rejected {
                    index,
                    field: e.field(),
                    reason: e.reason(),
                    error: e.to_string(),
                })
                .collect(),
            duplicate: false,
        }
    }
}

/// One refused event of an otherwise accepted batch.
#[derive(Debug, Serialize)]
pub struct Rejected {
    /// Index in the batch.
    pub index: usize,
    /// Why.
    pub error: String,
    /// The field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Stable reason label.
    pub reason: &'static str,
}

/// What every receiver needs to know of a site it serves.
pub trait SiteRules {
    /// Origins whose pages may send the site's events from a browser; `"*"` allows any.
    fn origins(&self) -> &[String];
    /// SHA-256 digests of the site's ingest keys (two while one replaces the other).
    fn ingest_keys(&self) -> &[[u8; 32]];
    /// Whether a request from no allowed origin needs a key.
    fn require_key(&self) -> bool;
}

/// Whether `origin` is one of `origins` (or they allow any).
pub fn origin_matches(origins: &[String], origin: &str) -> bool {
    origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
}

/// Whether a page `url` belongs to a site with `origins`: when they name hosts, it must be on
/// one of them (any port or scheme) or have no host at all (a path, as imports may send);
/// `"*"` or no origins take any. Else its clicks would draw a foreign page in the viewer.
pub fn page_host_allowed(origins: &[String], url: &str) -> bool {
    let host = url_host(url);
    host.is_empty()
        || origins.is_empty()
        || origins
            .iter()
            .any(|o| o == "*" || url_host(o).eq_ignore_ascii_case(host))
}

/// A batch past decode, authorize and validate.
pub struct Checked<'s, S> {
    /// The decoded batch, bad events included (by index in `rejected`).
    pub batch: RawBatch,
    /// The site it is for.
    pub site: &'s S,
    /// Refused events, by index, in order.
    pub rejected: Vec<(usize, WireError)>,
    /// Which of the site's ingest keys the request carried, by index, if any.
    pub key: Option<usize>,
}

impl<S> Checked<'_, S> {
    /// How many events will be stored.
    pub fn good(&self) -> usize {
        self.batch.events.len() - self.rejected.len()
    }
}

/// Stages 1–2: bytes → batch (a gzip body inflated first, [`crate::gzip`]), the site and
/// origin, each event's validity. `counted` is set to the number of events a refusal of the
/// whole batch should be counted as in metrics.
pub fn check<'s, S: SiteRules>(
    req: &IngestRequest<'_>,
    limits: &Limits,
    sites: &'s HashMap<String, S>,
    counted: &mut usize,
) -> Result<Checked<'s, S>, IngestError> {
    let encoding = Encoding::from_content_type(req.content_type).ok_or_else(|| {
        IngestError::UnsupportedMediaType(req.content_type.unwrap_or("").to_owned())
    })?;
    let body = crate::gzip::body(req.body, req.content_encoding, limits.max_batch_bytes)?;
    let (batch, unreadable) =
        pathlight_wire::decode_with_refused(&body, encoding, req.site, limits)?;
    *counted = batch.events.len().max(1);
    validate_envelope(&batch, limits)?;
    let site = sites
        .get(&batch.site_id)
        .ok_or_else(|| IngestError::UnknownSite(batch.site_id.clone()))?;
    let key = crate::keys::admit(site, req.key, req.origin, &batch.site_id)?;
    // Events the decoder could not read keep its reason; the others are validated. In index
    // order, as `enrich` walks them.
    let mut unreadable = unreadable.into_iter().peekable();
    let rejected: Vec<(usize, WireError)> = batch
        .events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match unreadable.next_if(|(j, _)| *j == i) {
            Some(refused) => Some(refused),
            None => validate_event(e, i, batch.sent_at, req.received_at, limits)
                .err()
                .or_else(|| {
                    (!page_host_allowed(site.origins(), &e.url)).then(|| {
                        WireError::HostNotAllowed {
                            field: Field::event(i, "url"),
                            host: url_host(&e.url).to_owned(),
                        }
                    })
                })
                .map(|err| (i, err)),
        })
        .collect();
    if rejected.len() == batch.events.len() {
        // Every event was bad: the batch is refused with the first event's reason.
        let first = rejected
            .into_iter()
            .next()
            .map_or(WireError::Empty, |(_, e)| e);
        return Err(first.into());
    }
    *counted = batch.events.len() - rejected.len();
    Ok(Checked {
        batch,
        site,
        rejected,
        key,
    })
}

/// Stage 3: add what the receiver knows (`ctx`) and flatten the good events to rows.
/// `session` assigns a session to an event whose sender brought none.
pub fn enrich(
    batch: RawBatch,
    rejected: &[(usize, WireError)],
    ctx: &RequestContext,
    hasher: &VisitorHasher,
    mut session: impl FnMut(&EnrichedEvent) -> String,
) -> Vec<EventRow> {
    let mut enricher = Enricher::new(hasher, ctx);
    let mut refused = rejected.iter().map(|(i, _)| *i).peekable();
    // Sized up front: the filter hides the count from `collect`, which would regrow the Vec
    // and move every row built so far (rows are large) several times per batch.
    let mut rows = Vec::with_capacity(batch.events.len().saturating_sub(rejected.len()));
    rows.extend(
        batch
            .events
            .into_iter()
            .enumerate()
            .filter(|(i, _)| refused.next_if_eq(i).is_none())
            .map(|(_, raw)| {
                let mut e = enricher.enrich(&batch.site_id, batch.batch_id, batch.sent_at, raw);
                if e.session_id.is_empty() {
                    e.session_id = session(&e);
                }
                EventRow::from_enriched(e)
            }),
    );
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use pathlight_wire::enrich::VisitorHasher;

    struct AnyOrigin(Vec<String>);

    impl SiteRules for AnyOrigin {
        fn origins(&self) -> &[String] {
            &self.0
        }
        fn ingest_keys(&self) -> &[[u8; 32]] {
            &[]
        }
        fn require_key(&self) -> bool {
            false
        }
    }

    const DAY: i64 = 86_400_000;

    /// A simple-array batch (no `sent_at`: times as sent) of a too old, a future and a good
    /// event, checked at `now` with a 400-day window.
    fn checked_at(now: i64) -> (Vec<(usize, WireError)>, usize, Vec<EventRow>) {
        let at = |ms: i64| format!(r#"{{"type":"view","url":"/a","created_at":{ms}}}"#);
        let body = format!(
            "[{},{},{}]",
            at(now - 401 * DAY),
            at(now + 2 * DAY),
            at(now - DAY)
        );
        let sites = HashMap::from([("s".to_owned(), AnyOrigin(vec!["*".into()]))]);
        let limits = Limits {
            retention_days: 400,
            ..Limits::default()
        };
        let req = IngestRequest {
            body: body.as_bytes(),
            content_type: Some("application/json"),
            site: Some("s"),
            received_at: now,
            ..IngestRequest::default()
        };
        let mut counted = 0;
        let Checked {
            batch, rejected, ..
        } = check(&req, &limits, &sites, &mut counted).unwrap();
        let ctx = RequestContext {
            received_at: now,
            ..RequestContext::default()
        };
        let hasher = VisitorHasher::new(&[], [1; 16]);
        let rows = enrich(batch, &rejected, &ctx, &hasher, |_| "s1".into());
        (rejected, counted, rows)
    }

    #[test]
    fn events_out_of_the_window_are_refused_alone_and_the_rest_kept() {
        let now = 1_800_000_000_000;
        let (rejected, counted, rows) = checked_at(now);
        let reasons: Vec<_> = rejected.iter().map(|(i, e)| (*i, e.reason())).collect();
        assert_eq!(reasons, [(0, "too_old"), (1, "in_future")]);
        assert_eq!(counted, 1, "one event to store");
        assert_eq!(rows.len(), 1);
        assert_eq!(i64::from(rows[0].timestamp), (now - DAY) / 1000);
        // The answer lists both, with their field and reason.
        let ack = serde_json::to_value(Ack::new(rows.len(), rejected)).unwrap();
        assert_eq!(ack["accepted"], 1);
        assert_eq!(ack["rejected"][0]["index"], 0);
        assert_eq!(ack["rejected"][0]["reason"], "too_old");
        assert_eq!(ack["rejected"][0]["field"], "events[0].timestamp");
        assert!(
            ack["rejected"][0]["error"]
                .as_str()
                .unwrap()
                .contains("older than retention_days (400)"),
            "{ack}"
        );
        assert_eq!(ack["rejected"][1]["index"], 1);
        assert_eq!(ack["rejected"][1]["reason"], "in_future");
    }

    #[test]
    fn gzip_bodies_are_inflated_under_the_batch_cap() {
        use pathlight_wire::{sample, v2};
        let sites = HashMap::from([("demo".to_owned(), AnyOrigin(vec!["*".into()]))]);
        let limits = Limits::default();
        let batch = sample::typical_batch();
        let plain = v2::encode(&batch);
        let gz = crate::gzip::gzip(&plain);
        let req = |body, content_type, content_encoding| IngestRequest {
            body,
            content_type,
            content_encoding,
            received_at: batch.sent_at,
            ..IngestRequest::default()
        };
        // Raw bytes without headers, as a beacon sends them, or said by Content-Encoding;
        // the content type is the inflated body's.
        for (ct, ce) in [
            (None, None),
            (Some("application/cbor"), Some("gzip")),
            (Some("text/plain"), None),
        ] {
            let checked = check(&req(&gz, ct, ce), &limits, &sites, &mut 0);
            match ct {
                Some("text/plain") => {
                    let e = checked.err().unwrap();
                    assert_eq!((e.status().as_u16(), e.reason()), (400, "malformed"));
                }
                _ => {
                    let c = checked.unwrap();
                    assert_eq!((c.batch.version, c.good()), (2, 5), "{ct:?} {ce:?}");
                }
            }
        }
        // Inflating past the largest batch is a 413 of its own; a body said to be gzip that
        // is not, a 400.
        let small = Limits {
            max_batch_bytes: plain.len() - 1,
            ..Limits::default()
        };
        let e = check(&req(&gz, None, None), &small, &sites, &mut 0)
            .err()
            .unwrap();
        assert_eq!(
            (e.status().as_u16(), e.reason()),
            (413, "inflated_too_large")
        );
        let e = check(&req(&plain, None, Some("gzip")), &limits, &sites, &mut 0)
            .err()
            .unwrap();
        assert_eq!((e.status().as_u16(), e.reason()), (400, "corrupt_gzip"));
    }

    #[test]
    fn a_batch_of_only_events_out_of_the_window_is_refused_with_the_first_reason() {
        let sites = HashMap::from([("s".to_owned(), AnyOrigin(vec![]))]);
        let limits = Limits {
            retention_days: 30,
            ..Limits::default()
        };
        let req = IngestRequest {
            body: br#"[{"type":"view","url":"/","created_at":"2025-01-01T00:00:00Z"}]"#,
            content_type: Some("application/json"),
            site: Some("s"),
            received_at: 1_800_000_000_000,
            ..IngestRequest::default()
        };
        let err = check(&req, &limits, &sites, &mut 0).err().unwrap();
        assert_eq!((err.status().as_u16(), err.reason()), (400, "too_old"));
        assert_eq!(err.body().field.as_deref(), Some("events[0].timestamp"));
    }
}
