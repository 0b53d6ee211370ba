//! Pathlight's browser tracker, compiled to WebAssembly (issue 3 fills it in).
//!
//! # The path of an event through the tracker
//!
//! A DOM listener (one per event type, on the document, capture phase, passive) records what
//! happened into a small buffer without encoding anything; at a flush (N events, T seconds,
//! `visibilitychange` → hidden, `pagehide`) the buffer becomes a `pathlight_wire::RawBatch`,
//! `pathlight_wire::cbor::encode` turns it into bytes, and `navigator.sendBeacon` sends them
//! as a raw `Uint8Array` (no CORS preflight), with `fetch(keepalive)` and a bounded
//! localStorage queue behind it. The format itself lives in `wire`, never here.
