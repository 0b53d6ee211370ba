//! The receiving side of Pathlight without I/O, shared by every receiver: the collector
//! (hyper, HTTP/3, `pathlight import`) and the edge worker (Cloudflare Workers, wasm32).
//!
//! # The path of an event through this crate
//!
//! 1. The receiver describes the request as an [`IngestRequest`] (body, content type and
//!    encoding, origin, client address) and calls [`check`]: *inflate* a gzip body under the
//!    batch size cap ([`gzip`]: a zip bomb is a 413, broken gzip a 400), *decode* by content
//!    type (`pathlight_wire::decode_with_refused`, CBOR v1 or v2, or JSON: an event it cannot
//!    read is refused alone), *authorize* (envelope, known site, allowed origin), *validate*
//!    each event on its own (its fields, and its page on one of the site's hosts).
//!    A batch whose every event is bad is refused with the first event's reason.
//! 2. The receiver applies what is its own (the collector's rate limits), then [`enrich`]
//!    turns the good events into [`EventRow`]s with `pathlight_wire::enrich` and the
//!    receiver's [`RequestContext`](pathlight_wire::RequestContext) (geo from a MaxMind file or
//!    from Cloudflare's `request.cf`).
//! 3. [`EventRow::write_row_binary`] is the storage encoding everywhere: the collector's spool,
//!    the worker's queue messages and relay bodies, ClickHouse inserts.
//! 4. Any refusal is an [`IngestError`]; [`IngestError::status`] and [`IngestError::body`] are
//!    the one map to an HTTP answer, so both receivers answer bad input alike.

#![warn(missing_docs)]

pub mod delivery;
pub mod error;
pub mod gzip;
pub mod hex;
pub mod identify;
pub mod keys;
pub mod retry;
pub mod row;
pub mod rules;
pub mod salts;
mod stages;

pub use delivery::Delivery;
pub use error::{ErrorBody, IngestError};
pub use row::{
    COLUMNS, EventRow, LAYOUT_HEADER, Layout, RowError, USERS_INSERT, UserRow, insert_settings,
    insert_sql, read_rows, read_rows_of, read_user_rows, upgrade, write_rows, write_user_rows,
};
pub use stages::{
    Ack, Checked, IngestRequest, Rejected, SiteRules, check, enrich, origin_matches,
    page_host_allowed,
};
