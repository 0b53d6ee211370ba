//! Integration tests of the wire format: golden fixtures, chunking, round trips, validation.

mod enrich;
mod fixtures;
mod roundtrip;
mod validate;

pub use pathlight_wire::sample::{click_event, typical_batch};
