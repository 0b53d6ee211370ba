//! Pathlight's browser tracker, compiled to WebAssembly.
//!
//! # The path of an event through the tracker
//!
//! 1. `js/host.js` listens once on the document (clicks: capture phase, passive), on scroll
//!    (throttled), on visibility and page-lifecycle events, and hooks `history` for SPA
//!    navigations. It reads what the browser knows (the element a click is attributed to, its
//!    box, a stable selector, short text unless masked, sizes, URL and title) and calls the
//!    exports of [`web`] with plain numbers and strings.
//! 2. `state.rs` turns them into `pathlight_wire::RawEvent`s with random ids, the tab's session
//!    (sessionStorage, renewed after 30 minutes of inactivity), the current page and the
//!    user the site named (`identify`; the host posts their traits itself), and buffers them; scroll depth and visible time are reported per page view.
//! 3. At a flush (N events, every T ms, page hidden or left) the buffer becomes one batch,
//!    `pathlight_wire::cbor::encode`d, and leaves through the host as raw bytes:
//!    `fetch(keepalive)` while the page lives, `sendBeacon` when it goes away. The answer
//!    comes back to [`web::answered`], which decides whether the host keeps the batch in its
//!    bounded localStorage queue and when it is retried (backoff, one at a time). Event ids
//!    make every retry idempotent in storage.
//!
//! Nothing reaches the host page: no exceptions (the host wraps every call; failures are
//! counted in [`web::errors`]), no cookies, nothing when Do-Not-Track/GPC is on or the
//! visitor opted out (the host checks both before starting the wasm).

// In the browser the tracker is `no_std` + `alloc`: std's panic and formatting machinery
// alone would be most of the size budget. Native builds (its unit tests) use std.
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

pub mod state;
#[cfg(target_arch = "wasm32")]
pub mod web;
