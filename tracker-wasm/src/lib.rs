//! Pathlight's browser tracker, compiled to WebAssembly.
//!
//! # The path of an event through the tracker
//!
//! 1. `web.rs` listens once on the document (clicks: capture phase, passive), on scroll
//!    (throttled), on visibility and page-lifecycle events; SPA navigations reach [`web::page`]
//!    from the loader's `history` hooks. A listener reads only what it needs from the DOM
//!    (element, its box, a stable selector, short text unless masked) and hands plain values
//!    to [`state::Core`].
//! 2. `state.rs` turns them into `pathlight_wire::RawEvent`s with random ids, the tab's session
//!    (sessionStorage, renewed after 30 minutes of inactivity) and the current page, and
//!    buffers them; scroll depth and visible time are reported per page view.
//! 3. At a flush (N events, every T ms, page hidden or left) the buffer becomes one batch,
//!    `pathlight_wire::cbor::encode`d, and leaves as raw bytes: `fetch(keepalive)` while the
//!    page lives (its answer decides whether to keep the batch in a bounded localStorage queue
//!    retried with backoff), `sendBeacon` when the page goes away. Event ids make every retry
//!    idempotent in storage.
//!
//! Nothing reaches the host page: no exceptions (fallible calls are swallowed and counted in
//! [`web::errors`]), no cookies, nothing when Do-Not-Track/GPC is on or the visitor opted out.

// In the browser the tracker is `no_std` + `alloc`: std's panic and formatting machinery
// alone would be most of the size budget. Native builds (its unit tests) use std.
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

pub mod state;
#[cfg(target_arch = "wasm32")]
pub mod web;
