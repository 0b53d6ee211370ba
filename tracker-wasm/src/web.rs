//! The browser boundary. `js/host.js` listens to the page and reads the DOM; it calls the
//! exports below with plain numbers and strings, and the few imports below are all the wasm
//! asks of the browser: a clock, random bytes, storage, and a way to send bytes.
//!
//! Why the DOM is read in JS and not through web-sys: every web-sys binding is an import plus
//! glue on both sides, and closures for listeners bring wasm-bindgen's closure tables. With
//! web-sys reading the DOM the embed build weighed 26.3 KB gzip (bench/results/tracker-size.md);
//! the same behaviour with a coarse boundary fits the 12 KB budget. The decisions stay here:
//! what is recorded, sessions, batching, encoding, and the retry policy of undelivered
//! batches (which answers mean "keep it", when to retry, one at a time); the host only stores
//! the bytes of kept batches in a bounded localStorage queue. Nothing may throw into the host
//! page: a failed browser call is counted in [`errors`], never unwrapped.

#![allow(unsafe_code)]

use crate::state::{self, Core, Page, Session, Settings};
use ::core::cell::RefCell;
use alloc::borrow::ToOwned;
use alloc::string::String;
use pathlight_wire::{Click, PropValue, Props, Size};
use wasm_bindgen::prelude::*;

/// The sessionStorage key of this tab's session (the host reads it for [`start`]).
pub const SESSION_KEY: &str = "pathlight:session";
/// The first retry of an undelivered batch waits this long; each failure doubles it.
const BACKOFF_MIN_MS: f64 = 1_000.0;
const BACKOFF_MAX_MS: f64 = 60_000.0;

// The glue imports these from `./host.js` beside it (the build puts them side by side).
#[wasm_bindgen(raw_module = "./host.js")]
extern "C" {
    fn now() -> f64;
    fn random(buf: &mut [u8]);
    /// Stores `value` (an empty value removes the key); false when storage refused.
    fn save(key: &str, value: &str, local: bool) -> bool;
    /// Sends a batch: `sendBeacon` when `beacon` (the page is going away) and the browser
    /// takes it, else `fetch(keepalive)`, whose status comes back through [`answered`].
    fn send(bytes: &[u8], beacon: bool);
    /// Sends the oldest kept batch the same way; false when none is kept.
    fn resend() -> bool;
}

/// The browser's `crypto.getRandomValues`.
struct Crypto;

impl state::Random for Crypto {
    fn bytes(&mut self) -> [u8; 16] {
        let mut b = [0u8; 16];
        random(&mut b);
        b
    }
}

struct Tracker {
    core: Core<Crypto>,
    /// Errors swallowed so far (exported for tests and debugging).
    errors: u32,
    /// Custom-event properties given by [`prop`] for the next [`track`].
    props: Props,
    retry_at: f64,
    backoff_ms: f64,
    sending_queue: bool,
}

#[global_allocator]
// SAFETY: wasm32-unknown-unknown without the atomics feature runs on one thread.
static ALLOCATOR: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };

/// A panic cannot be reported anywhere useful; trapping aborts the wasm call, which the JS
/// layer catches, so the page never sees it.
#[panic_handler]
fn panic(_: &::core::panic::PanicInfo) -> ! {
    ::core::arch::wasm32::unreachable()
}

/// The tracker of this page.
struct Global(RefCell<Option<Tracker>>);
// SAFETY: as for the allocator: one thread, so the RefCell is never shared across threads.
unsafe impl Sync for Global {}
static TRACKER: Global = Global(RefCell::new(None));

fn with<R>(f: impl FnOnce(&mut Tracker) -> R) -> Option<R> {
    TRACKER.0.try_borrow_mut().ok()?.as_mut().map(f)
}

/// Starts tracking for `site`; the host has already checked opt-out and DNT/GPC, and read
/// `stored`, this tab's session as [`Session::store`] wrote it to sessionStorage under
/// [`SESSION_KEY`] (empty when none): passed in rather than read through an import, whose
/// glue for a returned string costs more of the budget.
#[wasm_bindgen]
pub fn start(site: &str, visible: bool, flush_events: u32, stored: &str) {
    let session = Session::parse(stored);
    let settings = Settings {
        site: site.to_owned(),
        max_events: flush_events.clamp(1, 500) as usize,
        session_timeout_ms: 30.0 * 60_000.0,
    };
    let tracker = Tracker {
        core: Core::new(settings, Crypto, session, now(), visible),
        errors: 0,
        props: Props::default(),
        retry_at: 0.0,
        backoff_ms: BACKOFF_MIN_MS,
        sending_queue: false,
    };
    if let Ok(mut t) = TRACKER.0.try_borrow_mut() {
        *t = Some(tracker);
    }
}

/// A page view, unless the URL is the current one (initial load, then after every SPA
/// navigation). `page` is the URL, the referrer and the title joined by NULs, one string for
/// the reason of [`click`]'s. An empty referrer means none; after the first page the previous
/// URL is the referrer.
#[wasm_bindgen]
pub fn page(page: &str, vw: u32, vh: u32, dw: u32, dh: u32) {
    let [url, referrer, title, _] = state::fields(page);
    with(|t| {
        let referrer = match t.core.page().url.as_str() {
            "" => some(referrer),
            previous => Some(previous.to_owned()),
        };
        let page = Page {
            url: url.to_owned(),
            referrer,
            title: some(title),
            viewport: Size { w: vw, h: vh },
            document: Size { w: dw, h: dh },
        };
        if t.core.pageview(now(), page) {
            t.recorded();
        }
    });
}

/// A click: page position, the element it is attributed to (`element`: its selector, tag,
/// short text as the host cut it and link, joined by NULs), where on that element (fractions
/// of its box) and the element's box on the page; in a fixed or sticky context (`fixed`,
/// wire's `Click::fixed`), position and box on screen. The four strings come as one because
/// each string argument costs glue on both sides of the 12 KB budget.
#[wasm_bindgen]
#[allow(clippy::too_many_arguments)]
pub fn click(
    x: i32,
    y: i32,
    element: &str,
    rel_x: f32,
    rel_y: f32,
    bx: i32,
    by: i32,
    bw: i32,
    bh: i32,
    vw: u32,
    vh: u32,
    dw: u32,
    dh: u32,
    fixed: u8,
) {
    let [selector, tag, text, href] = state::fields(element);
    let click = Click {
        x,
        y,
        // Storage takes the id from the selector (`#id`), which is the id when there is one.
        element_id: None,
        selector: selector.to_owned(),
        tag: tag.to_owned(),
        text: some(text),
        href: some(href),
        rel_x: rel_x.clamp(0.0, 1.0),
        rel_y: rel_y.clamp(0.0, 1.0),
        element_box: [bx, by, bw, bh],
        fixed,
    };
    with(|t| {
        let (viewport, document) = (Size { w: vw, h: vh }, Size { w: dw, h: dh });
        t.core.click(now(), click, viewport, document);
        t.recorded();
    });
}

/// The bottom of the viewport is `seen` px down a document `height` px tall.
#[wasm_bindgen]
pub fn scroll(seen: f64, height: f64) {
    with(|t| t.core.scroll(state::depth_pct(seen, height)));
}

/// One property of the next [`track`]: `kind` 0 null, 1 boolean (`num` ≠ 0), 2 number,
/// 3 text. Kind [`USER`] is no property: `text` is the user id later events carry (the
/// host's `identify`; empty forgets it), passed here because an export of its own would
/// cost more of the 12 KB budget than this branch.
#[wasm_bindgen]
pub fn prop(key: &str, kind: u8, num: f64, text: &str) {
    let value = match kind {
        0 => PropValue::Null,
        1 => PropValue::Bool(num != 0.0),
        2 if num.is_finite() => PropValue::Number(num),
        3 => PropValue::Text(text.to_owned()),
        USER => {
            with(|t| t.core.set_user(some(text)));
            return;
        }
        _ => return,
    };
    with(|t| t.props.insert(key.to_owned(), value));
}

/// [`prop`]: the user id, not a property.
pub const USER: u8 = 4;

/// A custom event with the properties given since the last one.
#[wasm_bindgen]
pub fn track(name: &str) {
    with(|t| {
        let props = ::core::mem::take(&mut t.props);
        t.core.custom(now(), name.to_owned(), props);
        t.recorded();
    });
}

/// [`life`]: the periodic timer.
pub const TICK: u8 = 0;
/// [`life`]: the site asked to send what is buffered.
pub const FLUSH: u8 = 1;
/// [`life`]: the page became visible.
pub const SHOWN: u8 = 2;
/// [`life`]: the page was hidden or is being left.
pub const HIDDEN: u8 = 3;

/// The page's lifecycle, one export for what were three (each export costs glue on both sides
/// of the 12 KB budget): the timer ([`TICK`]) sends the buffer, then an undelivered batch once
/// its backoff passed; [`FLUSH`] sends the buffer; [`SHOWN`] and [`HIDDEN`] account visible
/// time, and hiding sends what is buffered, as the page may be going away (the host queues
/// that batch until it is answered).
#[wasm_bindgen]
pub fn life(what: u8) {
    with(|t| match what {
        TICK => {
            t.flush(false);
            t.send_queued();
        }
        FLUSH => t.flush(false),
        _ => {
            let visible = what == SHOWN;
            t.core.set_visible(now(), visible);
            if !visible {
                t.flush(true);
            }
        }
    });
}

/// The answer to a batch's `fetch`: its HTTP status, 0 for a network error; `queued` when it
/// was a kept batch sent again. Returns whether the host should keep the batch for a retry:
/// after a network error, 429 or 5xx; anything else is final (a 4xx will not improve).
#[wasm_bindgen]
pub fn answered(status: u16, queued: bool) -> bool {
    with(|t| {
        if queued {
            t.sending_queue = false;
        }
        let keep = status == 0 || status == 429 || status >= 500;
        if keep {
            t.retry_at = now() + t.backoff_ms;
            t.backoff_ms = (t.backoff_ms * 2.0).min(BACKOFF_MAX_MS);
        } else {
            t.backoff_ms = BACKOFF_MIN_MS;
            if queued {
                t.send_queued();
            }
        }
        keep
    })
    .unwrap_or(false)
}

/// Stops tracking and drops what was not sent (the host persists the opt-out and empties its
/// queue).
#[wasm_bindgen]
pub fn stop() {
    if let Ok(mut t) = TRACKER.0.try_borrow_mut() {
        *t = None;
    }
}

/// Errors swallowed so far.
#[wasm_bindgen]
pub fn errors() -> u32 {
    with(|t| t.errors).unwrap_or(0)
}

fn some(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

impl Tracker {
    /// After an event was recorded: persist the session, send if the buffer is full.
    fn recorded(&mut self) {
        if let Some(s) = self.core.session()
            && !save(SESSION_KEY, &s.store(), false)
        {
            self.errors += 1;
        }
        if self.core.wants_flush() {
            self.flush(false);
        }
    }

    /// Sends the buffer. While the page lives, with `fetch(keepalive)`, whose answer tells
    /// whether to keep the batch for later; when the page is going away, with `sendBeacon`,
    /// the one request the browser promises to finish after the page is gone.
    fn flush(&mut self, leaving: bool) {
        if let Some(bytes) = self.core.take_batch(now()) {
            send(&bytes, leaving);
        }
    }

    /// Sends the oldest kept batch once the backoff has passed; its success sends the next.
    fn send_queued(&mut self) {
        if !self.sending_queue && now() >= self.retry_at {
            self.sending_queue = resend();
        }
    }
}
