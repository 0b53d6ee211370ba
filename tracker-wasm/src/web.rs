//! The browser layer: DOM listeners feed [`Core`], a timer and page-lifecycle events flush
//! it, and batches leave as raw CBOR bytes. Nothing here may throw into the host page:
//! every fallible browser call is `.ok()`-ed and counted, never unwrapped.

#![allow(unsafe_code)]

use crate::state::{self, Core, Page, Session, Settings};
use ::core::cell::RefCell;
use alloc::borrow::ToOwned;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use js_sys::{Reflect, Uint8Array};
use pathlight_wire::{Click, PropValue, Size};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{
    AddEventListenerOptions, Element, Event, MouseEvent, Response, Storage, VisibilityState, Window,
};

const SESSION_KEY: &str = "pathlight:session";
const OPT_OUT_KEY: &str = "pathlight:optout";
const QUEUE_KEY: &str = "pathlight:queue";
/// Undelivered batches kept for later: at most this many, and this many stored characters.
const QUEUE_MAX_BATCHES: usize = 30;
const QUEUE_MAX_CHARS: usize = 256 * 1024;
/// Elements a click is attributed to when it lands inside one (an icon in a button).
const INTERACTIVE: &str =
    "a,button,input,select,textarea,label,summary,[role=button],[role=link],[data-track]";
const TRACK_ATTRS: [&str; 4] = ["data-track", "data-testid", "data-test", "data-pathlight"];
const MAX_SELECTOR: usize = 256;

struct Tracker {
    core: Core,
    window: Window,
    endpoint: String,
    /// Errors swallowed so far (exported for tests and debugging).
    errors: u32,
    last_scroll: f64,
    scroll_pending: bool,
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

/// `f64::round` lives in std; this is its positive/negative-aware equivalent.
fn round(x: f64) -> f64 {
    if x >= 0.0 {
        (x + 0.5) as i64 as f64
    } else {
        (x - 0.5) as i64 as f64
    }
}

fn now() -> f64 {
    js_sys::Date::now()
}

/// Starts tracking. `respect_dnt`: stay off when Do-Not-Track or Global Privacy Control is set.
/// Returns false when tracking stays off (opted out, DNT/GPC, or no browser window).
#[wasm_bindgen]
pub fn start(
    site: &str,
    endpoint: &str,
    respect_dnt: bool,
    flush_events: u32,
    flush_ms: u32,
) -> bool {
    let Some(window) = web_sys::window() else {
        return false;
    };
    if opted_out(&window) || (respect_dnt && privacy_signal(&window)) {
        return false;
    }
    let session = storage(&window, false)
        .and_then(|s| s.get_item(SESSION_KEY).ok().flatten())
        .and_then(|s| Session::parse(&s));
    let crypto = window.crypto().ok();
    let random: state::Random = Box::new(move || {
        let mut b = [0u8; 16];
        if let Some(c) = &crypto {
            let _ = c.get_random_values_with_u8_array(&mut b);
        }
        b
    });
    let visible = window
        .document()
        .is_some_and(|d| d.visibility_state() == VisibilityState::Visible);
    let settings = Settings {
        site: site.to_owned(),
        max_events: flush_events.clamp(1, 500) as usize,
        session_timeout_ms: 30.0 * 60_000.0,
    };
    let core = Core::new(settings, random, session, now(), visible);
    let tracker = Tracker {
        core,
        window: window.clone(),
        endpoint: endpoint.to_owned(),
        errors: 0,
        last_scroll: 0.0,
        scroll_pending: false,
        retry_at: 0.0,
        backoff_ms: 1_000.0,
        sending_queue: false,
    };
    if let Ok(mut t) = TRACKER.0.try_borrow_mut() {
        *t = Some(tracker);
    }
    listen(&window, flush_ms.max(250));
    page();
    true
}

/// Records a page view if the URL changed (call after SPA navigations; the loader does so
/// for `history.pushState`/`replaceState`, `popstate` and `hashchange`).
#[wasm_bindgen]
pub fn page() {
    with(|t| {
        let referrer = match t.core.page().url.as_str() {
            "" => t
                .window
                .document()
                .map(|d| d.referrer())
                .filter(|r| !r.is_empty()),
            previous => Some(previous.to_owned()),
        };
        let page = Page {
            url: t.window.location().href().unwrap_or_default(),
            referrer,
            title: t
                .window
                .document()
                .map(|d| d.title())
                .filter(|s| !s.is_empty()),
            viewport: viewport(&t.window),
            document: document_size(&t.window),
        };
        t.settle_scroll();
        if t.core.pageview(now(), page) {
            t.save_session();
            t.flush_if_full();
        }
    });
}

/// A custom event. `props` is a flat object of strings, numbers, booleans and nulls; other
/// values are skipped.
#[wasm_bindgen]
pub fn track(name: &str, props: JsValue) {
    let mut map = BTreeMap::new();
    if let Some(obj) = props.dyn_ref::<js_sys::Object>() {
        for entry in js_sys::Object::entries(obj).iter() {
            let key = Reflect::get_u32(&entry, 0).ok().and_then(|k| k.as_string());
            let value = Reflect::get_u32(&entry, 1).unwrap_or(JsValue::UNDEFINED);
            let value = if value.is_null() {
                Some(PropValue::Null)
            } else if let Some(b) = value.as_bool() {
                Some(PropValue::Bool(b))
            } else if let Some(n) = value.as_f64().filter(|n| n.is_finite()) {
                Some(PropValue::Number(n))
            } else {
                value.as_string().map(PropValue::Text)
            };
            if let (Some(k), Some(v)) = (key, value) {
                map.insert(k, v);
            }
        }
    }
    with(|t| {
        t.core.custom(now(), name.to_owned(), map);
        t.save_session();
        t.flush_if_full();
    });
}

/// Sends what is buffered now.
#[wasm_bindgen]
pub fn flush() {
    with(|t| t.flush(false));
}

/// Stops tracking in this browser, persistently, and drops what was not sent.
#[wasm_bindgen(js_name = optOut)]
pub fn opt_out() {
    let Some(window) = web_sys::window() else {
        return;
    };
    if let Some(s) = storage(&window, true) {
        let _ = s.set_item(OPT_OUT_KEY, "1");
        let _ = s.remove_item(QUEUE_KEY);
    }
    with(|t| t.core.clear());
    if let Ok(mut t) = TRACKER.0.try_borrow_mut() {
        *t = None;
    }
}

/// Undoes [`opt_out`]; tracking resumes on the next page load (or `start`).
#[wasm_bindgen(js_name = optIn)]
pub fn opt_in() {
    if let Some(s) = web_sys::window().and_then(|w| storage(&w, true)) {
        let _ = s.remove_item(OPT_OUT_KEY);
    }
}

/// Errors swallowed so far.
#[wasm_bindgen]
pub fn errors() -> u32 {
    with(|t| t.errors).unwrap_or(0)
}

fn opted_out(window: &Window) -> bool {
    storage(window, true)
        .and_then(|s| s.get_item(OPT_OUT_KEY).ok().flatten())
        .is_some()
}

fn privacy_signal(window: &Window) -> bool {
    let nav = window.navigator();
    // Read untyped: `doNotTrack` is null when unset, which web-sys's `String` getter would
    // turn into an exception.
    let get = |name: &str| Reflect::get(&nav, &name.into()).unwrap_or(JsValue::UNDEFINED);
    get("doNotTrack").as_string().as_deref() == Some("1")
        || get("globalPrivacyControl").as_bool() == Some(true)
}

fn storage(window: &Window, local: bool) -> Option<Storage> {
    if local {
        window.local_storage()
    } else {
        window.session_storage()
    }
    .ok()
    .flatten()
}

fn viewport(window: &Window) -> Size {
    let dim = |v: Result<JsValue, JsValue>| {
        v.ok().and_then(|v| v.as_f64()).unwrap_or(0.0).max(0.0) as u32
    };
    Size {
        w: dim(window.inner_width()),
        h: dim(window.inner_height()),
    }
}

fn document_size(window: &Window) -> Size {
    window
        .document()
        .and_then(|d| d.document_element())
        .map(|e| Size {
            w: e.scroll_width().max(0) as u32,
            h: e.scroll_height().max(0) as u32,
        })
        .unwrap_or_default()
}

fn listen(window: &Window, flush_ms: u32) {
    let Some(doc) = window.document() else { return };
    let opts = AddEventListenerOptions::new();
    opts.set_capture(true);
    opts.set_passive(true);
    let on = |target: &web_sys::EventTarget, name: &str, f: Box<dyn FnMut(Event)>| {
        let cb = Closure::<dyn FnMut(Event)>::wrap(f);
        let _ = target.add_event_listener_with_callback_and_add_event_listener_options(
            name,
            cb.as_ref().unchecked_ref(),
            &opts,
        );
        // Listeners live as long as the page.
        cb.forget();
    };
    on(
        &doc,
        "click",
        Box::new(|e| {
            with(|t| t.click(&e));
        }),
    );
    on(
        window,
        "scroll",
        Box::new(|_| {
            with(|t| t.scroll());
        }),
    );
    on(
        &doc,
        "visibilitychange",
        Box::new(|_| {
            with(|t| {
                let visible = t
                    .window
                    .document()
                    .is_some_and(|d| d.visibility_state() == VisibilityState::Visible);
                t.settle_scroll();
                t.core.set_visible(now(), visible);
                if !visible {
                    t.flush(true);
                }
            });
        }),
    );
    on(
        window,
        "pagehide",
        Box::new(|_| {
            with(|t| {
                t.settle_scroll();
                t.core.set_visible(now(), false);
                t.flush(true);
            });
        }),
    );
    on(
        window,
        "online",
        Box::new(|_| {
            with(|t| {
                t.retry_at = 0.0;
                t.send_queued();
            });
        }),
    );
    let tick = Closure::<dyn FnMut()>::new(|| {
        with(|t| {
            t.flush(false);
            t.send_queued();
        });
    });
    let _ = window.set_interval_with_callback_and_timeout_and_arguments_0(
        tick.as_ref().unchecked_ref(),
        flush_ms as i32,
    );
    tick.forget();
}

fn number(event: &Event, name: &str) -> f64 {
    Reflect::get(event, &JsValue::from_str(name))
        .ok()
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0)
}

impl Tracker {
    fn click(&mut self, event: &Event) {
        let Some(target) = event.target().and_then(|t| t.dyn_into::<Element>().ok()) else {
            return;
        };
        if event.dyn_ref::<MouseEvent>().is_none() {
            return;
        }
        let el = target.closest(INTERACTIVE).ok().flatten().unwrap_or(target);
        let rect = el.get_bounding_client_rect();
        let (cx, cy) = (number(event, "clientX"), number(event, "clientY"));
        let scroll = (
            self.window.scroll_x().unwrap_or(0.0),
            self.window.scroll_y().unwrap_or(0.0),
        );
        let frac = |v: f64, size: f64| {
            if size > 0.0 {
                (v / size).clamp(0.0, 1.0) as f32
            } else {
                0.0
            }
        };
        let tag = el.tag_name().to_ascii_lowercase();
        let masked = el.closest("[data-pathlight-mask]").ok().flatten().is_some();
        let text = if masked || matches!(tag.as_str(), "input" | "textarea" | "select") {
            None
        } else {
            el.text_content().and_then(|t| state::short_text(&t))
        };
        let click = Click {
            x: round(number(event, "pageX")) as i32,
            y: round(number(event, "pageY")) as i32,
            element_id: Some(el.id()).filter(|s| !s.is_empty()),
            selector: selector(&el),
            href: el
                .get_attribute("href")
                .and_then(|_| Reflect::get(&el, &"href".into()).ok()?.as_string()),
            tag,
            text,
            rel_x: frac(cx - rect.left(), rect.width()),
            rel_y: frac(cy - rect.top(), rect.height()),
            element_box: [
                round(rect.left() + scroll.0) as i32,
                round(rect.top() + scroll.1) as i32,
                round(rect.width()) as i32,
                round(rect.height()) as i32,
            ],
        };
        self.core.click(
            now(),
            click,
            viewport(&self.window),
            document_size(&self.window),
        );
        self.save_session();
        self.flush_if_full();
    }

    /// Throttled: layout is read at most every 100 ms. A skipped event leaves the measurement
    /// pending, taken before anything is reported ([`Tracker::measure_scroll`]), so the last
    /// position of a fast scroll is never lost.
    fn scroll(&mut self) {
        let t = now();
        if t - self.last_scroll < 100.0 {
            self.scroll_pending = true;
            return;
        }
        self.last_scroll = t;
        self.measure_scroll();
    }

    fn settle_scroll(&mut self) {
        if self.scroll_pending {
            self.measure_scroll();
        }
    }

    fn measure_scroll(&mut self) {
        self.scroll_pending = false;
        let doc = document_size(&self.window).h as f64;
        let seen = self.window.scroll_y().unwrap_or(0.0) + viewport(&self.window).h as f64;
        if doc > 0.0 {
            self.core
                .scroll(round(seen / doc * 100.0).clamp(0.0, 100.0) as u8);
        }
    }

    fn save_session(&mut self) {
        let Some(s) = self.core.session() else { return };
        let stored =
            storage(&self.window, false).and_then(|st| st.set_item(SESSION_KEY, &s.store()).ok());
        if stored.is_none() {
            self.errors += 1;
        }
    }

    fn flush_if_full(&mut self) {
        if self.core.wants_flush() {
            self.flush(false);
        }
    }

    /// Sends the buffer. While the page lives, with `fetch(keepalive)`, whose answer tells
    /// whether to keep the batch for later; when the page is going away, with `sendBeacon`,
    /// the one request the browser promises to finish after the page is gone.
    fn flush(&mut self, leaving: bool) {
        self.settle_scroll();
        let Some(bytes) = self.core.take_batch(now()) else {
            return;
        };
        if leaving {
            let sent = self
                .window
                .navigator()
                .send_beacon_with_opt_u8_array(&self.endpoint, Some(&mut bytes.clone()))
                .unwrap_or(false);
            if !sent {
                self.post(bytes, true);
            }
        } else {
            self.post(bytes, false);
        }
    }

    /// `fetch` with the raw bytes: no Content-Type, so no CORS preflight. A network error, 429
    /// or 5xx puts the batch in the offline queue (unless `fire_and_forget`); 4xx are final.
    fn post(&mut self, bytes: Vec<u8>, fire_and_forget: bool) {
        let body = Uint8Array::from(bytes.as_slice());
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_body(&body);
        let _ = Reflect::set(&init, &"keepalive".into(), &JsValue::TRUE);
        let promise = self.window.fetch_with_str_and_init(&self.endpoint, &init);
        if fire_and_forget {
            return;
        }
        let keep = Rc::new(RefCell::new(Some(bytes)));
        let keep2 = keep.clone();
        let on_answer = Closure::once(move |resp: JsValue| {
            let status = resp.dyn_ref::<Response>().map_or(0, |r| r.status());
            let retry = status == 429 || status >= 500;
            with(|t| {
                if retry {
                    t.enqueue(keep.borrow_mut().take(), true);
                } else {
                    t.delivered();
                }
            });
        });
        let on_error = Closure::once(move |_: JsValue| {
            with(|t| t.enqueue(keep2.borrow_mut().take(), true));
        });
        let _ = promise.then2(&on_answer, &on_error);
        on_answer.forget();
        on_error.forget();
    }

    fn delivered(&mut self) {
        self.backoff_ms = 1_000.0;
        if self.sending_queue {
            self.sending_queue = false;
            self.send_queued();
        }
    }

    /// Keeps an undelivered batch in localStorage (oldest dropped past the bounds) and backs off.
    fn enqueue(&mut self, bytes: Option<Vec<u8>>, failed: bool) {
        self.sending_queue = false;
        if failed {
            self.retry_at = now() + self.backoff_ms;
            self.backoff_ms = (self.backoff_ms * 2.0).min(60_000.0);
        }
        let (Some(bytes), Some(store)) = (bytes, storage(&self.window, true)) else {
            return;
        };
        let mut queue = read_queue(&store);
        queue.push(state::hex(&bytes));
        while queue.len() > QUEUE_MAX_BATCHES
            || queue.iter().map(String::len).sum::<usize>() > QUEUE_MAX_CHARS
        {
            queue.remove(0);
            self.errors += 1;
        }
        if store
            .set_item(QUEUE_KEY, &state::comma_join(&queue))
            .is_err()
        {
            self.errors += 1;
        }
    }

    /// Sends the oldest queued batch once the backoff has passed; its success sends the next.
    fn send_queued(&mut self) {
        if self.sending_queue || now() < self.retry_at {
            return;
        }
        let Some(store) = storage(&self.window, true) else {
            return;
        };
        let mut queue = read_queue(&store);
        if queue.is_empty() {
            return;
        }
        let first = queue.remove(0);
        let _ = if queue.is_empty() {
            store.remove_item(QUEUE_KEY)
        } else {
            store.set_item(QUEUE_KEY, &state::comma_join(&queue))
        };
        match state::unhex(&first) {
            Some(bytes) => {
                self.sending_queue = true;
                self.post(bytes, false);
            }
            None => self.errors += 1,
        }
    }
}

fn read_queue(store: &Storage) -> Vec<String> {
    store
        .get_item(QUEUE_KEY)
        .ok()
        .flatten()
        .map(|s| {
            s.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A stable selector: the element's id; else a tracking/test attribute; else a tag +
/// `:nth-of-type` path up to the nearest ancestor with an id (or `body`).
fn selector(el: &Element) -> String {
    let mut steps = Vec::new();
    let mut cur = Some(el.clone());
    while let Some(e) = cur {
        let id = e.id();
        if !id.is_empty() {
            steps.push(state::id_selector(&id));
            break;
        }
        if let Some((name, v)) = TRACK_ATTRS
            .iter()
            .find_map(|a| e.get_attribute(a).map(|v| (*a, v)))
        {
            steps.push(state::attr_selector(name, &v));
            break;
        }
        let tag = e.tag_name().to_ascii_lowercase();
        if tag == "body" || tag == "html" {
            steps.push(tag);
            break;
        }
        steps.push(nth_of_type(&e, tag));
        cur = e.parent_element();
    }
    state::join_selector(&steps, MAX_SELECTOR)
}

fn nth_of_type(e: &Element, tag: String) -> String {
    let same = |o: &Element| o.tag_name().eq_ignore_ascii_case(&tag);
    let mut index = 1;
    let mut prev = e.previous_element_sibling();
    while let Some(p) = prev {
        index += usize::from(same(&p));
        prev = p.previous_element_sibling();
    }
    let mut next = e.next_element_sibling();
    let mut alone = index == 1;
    while let (true, Some(n)) = (alone, next) {
        alone = !same(&n);
        next = n.next_element_sibling();
    }
    if alone {
        return tag;
    }
    let mut s = tag;
    s.push_str(":nth-of-type(");
    state::push_int(&mut s, index as u64);
    s.push(')');
    s
}
