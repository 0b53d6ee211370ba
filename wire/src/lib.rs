//! Pathlight's event model and wire format: the one place it is defined.
//!
//! # The path of an event through this crate
//!
//! 1. The tracker builds a [`RawBatch`] of [`RawEvent`]s and [`v2::encode`]s it: each page
//!    context and each repeated string once, events as arrays of small integers and string
//!    indexes (see `FORMAT.md`, which has the CDDL). [`cbor::encode`] writes version 1, maps
//!    with small integer keys, which older trackers send.
//! 2. A receiver (collector or edge worker) calls [`decode_with_refused`] with the body and its
//!    content type: an event it cannot read (a kind it does not know, a field of the wrong type)
//!    is set aside with its reason and the others kept; [`decode`] refuses the batch for it.
//!    CBOR goes through [`cbor::decode_with_refused`] (v1 or v2, told apart by the first key's
//!    value), JSON (full batch form or the simple array that existing senders use) through
//!    [`json::decode_with_refused`]. Decoding checks structure and types and never allocates
//!    more than the body's size allows (properties: at most `max_props` per event; v2's strings
//!    copied into events: at most 8 times the body limit); a malformed body is a [`WireError`]
//!    naming the field.
//! 3. [`validate::validate_envelope`] checks the batch, [`validate::validate_event`] each event,
//!    against explicit [`Limits`]: string lengths, coordinate ranges, clock skew, and its
//!    corrected time ([`validate::corrected_time`]) against the receipt: older than the
//!    receiver's retention window (`too_old`) or more than a day ahead (`in_future`). A bad
//!    event is refused on its own, so the good events of the same batch are kept.
//! 4. [`enrich::Enricher`] turns each valid event into an [`EnrichedEvent`]: corrected time,
//!    URL parts and UTM parameters, User-Agent facts and bot flag, a keyed visitor hash (the IP
//!    is used and dropped), and the geo data the receiver looked up. [`session::Sessionizer`]
//!    assigns sessions for senders that bring none.
//!
//! Storage rows are the receivers' (`pathlight_ingest::EventRow`); nothing here does I/O, so the
//! crate builds for `wasm32-unknown-unknown` and serves the tracker and the edge worker.

#![warn(missing_docs)]
// Without `std` (the tracker's build), the model, the CBOR encoder/decoder, the limits and
// validation need only `alloc`; JSON, enrichment and sessions need `std`.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod cbor;
#[cfg(feature = "std")]
pub mod enrich;
mod error;
#[cfg(feature = "std")]
pub mod json;
mod limits;
mod model;
pub mod sample;
#[cfg(feature = "std")]
pub mod session;
pub mod v2;
pub mod validate;

#[cfg(feature = "std")]
pub use enrich::{EnrichedEvent, Geo, RequestContext};
pub use error::{Field, WireError};
pub use limits::{Limits, MAX_AHEAD_MS, MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS};
pub use model::{
    Click, EventKind, FIXED, FORMAT_VERSION, FORMAT_VERSION_2, IN_FLOW, Id, PropValue, Props,
    RawBatch, RawEvent, STICKY, Size,
};

/// The encodings a receiver accepts, chosen by `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `application/cbor`, or no content type at all (`navigator.sendBeacon` with raw bytes).
    Cbor,
    /// `application/json` (either JSON form).
    Json,
}

impl Encoding {
    /// Picks the encoding for a `Content-Type` header value; `None` for unsupported types.
    pub fn from_content_type(content_type: Option<&str>) -> Option<Encoding> {
        let Some(ct) = content_type else {
            return Some(Encoding::Cbor);
        };
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "" | "application/cbor" | "application/octet-stream" => Some(Encoding::Cbor),
            // sendBeacon with a string body sends text/plain; senders that avoid CORS preflights
            // do the same with JSON.
            "application/json" | "text/plain" => Some(Encoding::Json),
            _ => None,
        }
    }
}

#[cfg(feature = "std")]
/// Decodes a body in the given encoding. `site` is the request's `?site=` parameter, required
/// by the simple JSON array form and checked against the batch otherwise. Any unreadable event
/// refuses the batch; [`decode_with_refused`] keeps the others.
pub fn decode(
    body: &[u8],
    encoding: Encoding,
    site: Option<&str>,
    limits: &Limits,
) -> Result<RawBatch, WireError> {
    strict(decode_with_refused(body, encoding, site, limits)?)
}

/// What the strict decoders return for a batch and the events they set aside: any event set
/// aside refuses the batch, with the first one's reason.
fn strict(
    (batch, refused): (RawBatch, alloc::vec::Vec<(usize, WireError)>),
) -> Result<RawBatch, WireError> {
    match refused.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(batch),
    }
}

#[cfg(feature = "std")]
/// [`decode`], but an event that cannot be read (a kind this build does not know, a field of
/// the wrong type) is listed by index with its reason, stands as [`RawEvent::unreadable`] in
/// the batch, and the events beside it are kept.
pub fn decode_with_refused(
    body: &[u8],
    encoding: Encoding,
    site: Option<&str>,
    limits: &Limits,
) -> Result<(RawBatch, Vec<(usize, WireError)>), WireError> {
    match encoding {
        Encoding::Cbor => {
            let (batch, refused) = cbor::decode_with_refused(body, limits)?;
            if let Some(site) = site.filter(|s| *s != batch.site_id) {
                return Err(WireError::OutOfRange {
                    field: Field::batch("site_id"),
                    detail: format!(
                        "batch is for site {:?} but was posted for {site:?}",
                        batch.site_id
                    ),
                });
            }
            Ok((batch, refused))
        }
        Encoding::Json => json::decode_with_refused(body, site, limits),
    }
}
