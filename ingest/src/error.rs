//! The one error type of the ingest path, and the one place it becomes an HTTP answer
//! (status + `{"error": ..., "field": ...}`), whichever transport the batch came by.

use http::StatusCode;
use pathlight_wire::WireError;
use serde::Serialize;
use std::time::Duration;

/// Why a batch was not (or not entirely) accepted.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body or an event breaks the format or a limit.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// `Content-Type` is neither CBOR nor JSON.
    #[error("unsupported content type {0:?}; send application/cbor or application/json")]
    UnsupportedMediaType(String),
    /// `Content-Encoding` other than identity, and for batches gzip: no other compression is
    /// inflated.
    #[error("unsupported content encoding {0:?}; send the body uncompressed or as gzip")]
    UnsupportedEncoding(String),
    /// A gzip body inflates to more than the largest batch: refused as soon as it passes the
    /// cap, so that a small request cannot expand into a large one (decompression bomb).
    #[error("the gzip body inflates to more than {max} bytes")]
    InflatedTooLarge {
        /// The cap, bytes: the largest batch.
        max: usize,
    },
    /// A gzip body is broken: its header, its deflate data, the CRC-32 or length in its
    /// trailer, or it ends early.
    #[error("corrupt gzip body: {0}")]
    CorruptGzip(String),
    /// The body did not arrive within `http.body_timeout_ms` (a slow or stalled client).
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// The batch names a site this collector does not serve.
    #[error("unknown site {0:?}")]
    UnknownSite(String),
    /// A browser page on an origin the site does not allow sent the batch.
    #[error("origin {origin:?} is not allowed for site {site:?}")]
    OriginNotAllowed {
        /// The `Origin` header.
        origin: String,
        /// The site.
        site: String,
    },
    /// The request carried an ingest key that is none of the site's.
    #[error("the ingest key is not one of site {0:?}'s")]
    InvalidKey(String),
    /// The site takes requests from no allowed origin only with an ingest key.
    #[error("site {0:?} takes events from servers only with an ingest key (X-API-Key)")]
    KeyRequired(String),
    /// The site is over its configured event rate.
    #[error("site {site:?} is over its rate limit")]
    RateLimited {
        /// The site.
        site: String,
        /// When to try again.
        retry_after: Duration,
    },
    /// Too many events are waiting for storage; the batch was not queued.
    #[error("the collector is overloaded; retry later")]
    QueueFull,
    /// The spool is at its size cap (storage has been away for long) or its disk refused the
    /// write; nothing was acknowledged.
    #[error("the collector cannot take more events now; retry later")]
    SpoolFull,
    /// Storage did not confirm the write in time. The events are still queued and will be
    /// written; a retry is deduplicated by event id.
    #[error("storage did not confirm the write in time; retry later")]
    StorageTimeout,
    /// Storage refused the rows for good.
    #[error("storage refused the events: {0}")]
    StorageRejected(String),
    /// The collector is shutting down.
    #[error("the collector is shutting down; retry later")]
    ShuttingDown,
    /// Scale-out mode: the message broker did not take the rows (unreachable, no answer in
    /// time, or its stream is full). Nothing was acknowledged.
    #[error("the message broker did not take the events; retry later")]
    BrokerUnavailable,
    /// The request body could not be read.
    #[error("could not read the request body: {0}")]
    Body(String),
    /// The same batch (a sender's retry whose first try is still being stored) is in flight;
    /// answered so the sender tries again shortly and learns the first try's outcome.
    #[error("the same batch is being stored by another request; retry shortly")]
    InFlight,
}

/// The JSON body of an error answer.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// Human-readable reason.
    pub error: String,
    /// The field at fault, when there is one (`events[3].url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Stable machine-readable reason, as in the `reason` label of the metrics.
    pub reason: &'static str,
}

impl IngestError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::Wire(WireError::TooLarge { .. })
            | IngestError::InflatedTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::Wire(_) | IngestError::Body(_) | IngestError::CorruptGzip(_) => {
                StatusCode::BAD_REQUEST
            }
            IngestError::UnsupportedMediaType(_) | IngestError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            IngestError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            IngestError::InvalidKey(_) | IngestError::KeyRequired(_) => StatusCode::UNAUTHORIZED,
            IngestError::UnknownSite(_) | IngestError::OriginNotAllowed { .. } => {
                StatusCode::FORBIDDEN
            }
            IngestError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            IngestError::QueueFull
            | IngestError::SpoolFull
            | IngestError::StorageTimeout
            | IngestError::ShuttingDown
            | IngestError::BrokerUnavailable
            | IngestError::InFlight => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::StorageRejected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `Retry-After` seconds for answers the sender should retry.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            IngestError::RateLimited { retry_after, .. } => Some(retry_after.as_secs().max(1)),
            IngestError::QueueFull
            | IngestError::SpoolFull
            | IngestError::StorageTimeout
            | IngestError::ShuttingDown
            | IngestError::BrokerUnavailable => Some(5),
            IngestError::InFlight => Some(1),
            _ => None,
        }
    }

    /// A short stable label for metrics and the JSON `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::Wire(e) => e.reason(),
            IngestError::UnsupportedMediaType(_) => "unsupported_media_type",
            IngestError::UnsupportedEncoding(_) => "unsupported_encoding",
            IngestError::InflatedTooLarge { .. } => "inflated_too_large",
            IngestError::CorruptGzip(_) => "corrupt_gzip",
            IngestError::BodyTimeout => "body_timeout",
            IngestError::UnknownSite(_) => "unknown_site",
            IngestError::OriginNotAllowed { .. } => "origin_not_allowed",
            IngestError::InvalidKey(_) => "invalid_key",
            IngestError::KeyRequired(_) => "key_required",
            IngestError::RateLimited { .. } => "rate_limited",
            IngestError::QueueFull => "queue_full",
            IngestError::SpoolFull => "spool_full",
            IngestError::StorageTimeout => "storage_timeout",
            IngestError::StorageRejected(_) => "storage_rejected",
            IngestError::ShuttingDown => "shutting_down",
            IngestError::BrokerUnavailable => "broker_unavailable",
            IngestError::Body(_) => "body",
            IngestError::InFlight => "in_flight",
        }
    }

    /// The JSON body for this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.to_string(),
            field: match self {
                IngestError::Wire(e) => e.field(),
                IngestError::UnknownSite(_) => Some("site_id".into()),
                _ => None,
            },
            reason: self.reason(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pathlight_wire::Field;

    #[test]
    fn statuses_follow_the_error_class() {
        let too_large = IngestError::Wire(WireError::TooLarge { size: 2, max: 1 });
        assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let missing = IngestError::Wire(WireError::Missing {
            field: Field::event(3, "url"),
        });
        assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
        assert_eq!(missing.body().field.as_deref(), Some("events[3].url"));
        assert_eq!(
            IngestError::UnknownSite("x".into()).status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(IngestError::QueueFull.retry_after(), Some(5));
        let limited = IngestError::RateLimited {
            site: "s".into(),
            retry_after: Duration::from_millis(10),
        };
        assert_eq!(
            (limited.status().as_u16(), limited.retry_after()),
            (429, Some(1))
        );
    }
}
