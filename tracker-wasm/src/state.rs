//! The tracker's state machine, in plain Rust so it is tested natively: what to record for
//! each browser happening, when a batch is due, and how sessions roll over. The browser layer
//! (`web.rs`) only reads the DOM, calls in here, and delivers the bytes.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
use pathlight_wire::{Click, EventKind, FORMAT_VERSION, Id, Props, RawBatch, RawEvent, Size, cbor};

/// What the site configured.
pub struct Settings {
    /// Site id (`data-site`).
    pub site: String,
    /// Flush once this many events are buffered.
    pub max_events: usize,
    /// A session ends after this long without an event, ms.
    pub session_timeout_ms: f64,
}

/// The page view events are attributed to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    /// `location.href`.
    pub url: String,
    /// `document.referrer` (for SPA navigations: the previous URL).
    pub referrer: Option<String>,
    /// `document.title`.
    pub title: Option<String>,
    /// Viewport size.
    pub viewport: Size,
    /// Document size.
    pub document: Size,
}

/// The tab's session: a random id, kept in sessionStorage, renewed after inactivity.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    /// Random hex id.
    pub id: String,
    /// Time of the last event, ms since the epoch.
    pub last: f64,
}

impl Session {
    /// Reads `id:last` as stored.
    pub fn parse(s: &str) -> Option<Session> {
        // Bytes and `get`: a `char` pattern and indexing bring core's panic formatting.
        let colon = s.bytes().position(|b| b == b':')?;
        let (id, last) = (s.get(..colon)?, s.get(colon + 1..)?);
        // Digits by hand: `str::parse` brings its error formatting into the wasm.
        let mut ms = 0u64;
        for d in last.bytes() {
            ms = ms
                .checked_mul(10)?
                .checked_add(u64::from(d.checked_sub(b'0').filter(|d| *d < 10)?))?;
        }
        (!id.is_empty() && !last.is_empty()).then(|| Session {
            id: id.to_owned(),
            last: ms as f64,
        })
    }

    /// `id:last`, for sessionStorage.
    pub fn store(&self) -> String {
        let mut s = self.id.clone();
        s.push(':');
        push_int(&mut s, self.last as u64);
        s
    }
}

/// Random bytes for ids (the browser's `crypto.getRandomValues`). A type parameter, not a
/// boxed closure: a dynamic call keeps a function table alive in the wasm, and with it
/// core's integer formatting (~2 KB) that only the allocation-failure message refers to.
pub trait Random {
    /// 16 random bytes.
    fn bytes(&mut self) -> [u8; 16];
}

impl<F: FnMut() -> [u8; 16]> Random for F {
    fn bytes(&mut self) -> [u8; 16] {
        self()
    }
}

/// Everything the tracker remembers between browser events.
pub struct Core<R: Random> {
    settings: Settings,
    random: R,
    session: Option<Session>,
    page: Page,
    buffer: Vec<RawEvent>,
    max_depth: u8,
    reported_depth: u8,
    visible_ms: f64,
    visible_since: Option<f64>,
    /// The site's id of the signed-in user (`identify`), carried by every later event.
    user: Option<String>,
}

impl<R: Random> Core<R> {
    /// A tracker for one page load. `session` is what sessionStorage held.
    pub fn new(
        settings: Settings,
        random: R,
        session: Option<Session>,
        now: f64,
        visible: bool,
    ) -> Core<R> {
        Core {
            settings,
            random,
            session,
            page: Page::default(),
            buffer: Vec::new(),
            max_depth: 0,
            reported_depth: 0,
            visible_ms: 0.0,
            visible_since: visible.then_some(now),
            user: None,
        }
    }

    /// The user later events belong to (`identify`); none forgets it (the user signed out).
    pub fn set_user(&mut self, user: Option<String>) {
        self.user = user;
    }

    /// The current session, to persist after events were recorded.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// The page events are attributed to.
    pub fn page(&self) -> &Page {
        &self.page
    }

    /// A new page view: initial load or SPA route change. Reports what the previous page view
    /// accumulated (scroll depth, visible time) first. Returns false when the URL did not
    /// change (`replaceState` with the same URL, a hash-only change already seen).
    pub fn pageview(&mut self, now: f64, page: Page) -> bool {
        if !self.page.url.is_empty() && self.page.url == page.url {
            return false;
        }
        self.checkpoint(now);
        self.page = page;
        self.max_depth = 0;
        self.reported_depth = 0;
        self.push(now, EventKind::Pageview, Props::default());
        true
    }

    /// A click, with the page and viewport sizes at that moment.
    pub fn click(&mut self, now: f64, click: Click, viewport: Size, document: Size) {
        self.page.viewport = viewport;
        self.page.document = document;
        self.push(now, EventKind::Click(click), Props::default());
    }

    /// The deepest point seen so far, percent; reported at the next checkpoint.
    pub fn scroll(&mut self, depth_pct: u8) {
        self.max_depth = self.max_depth.max(depth_pct.min(100));
    }

    /// A custom event from the site's `track(name, props)`.
    pub fn custom(&mut self, now: f64, name: String, props: Props) {
        self.push(now, EventKind::Custom { name }, props);
    }

    /// The page became visible or hidden. Hiding reports scroll depth and visible time.
    pub fn set_visible(&mut self, now: f64, visible: bool) {
        if visible {
            self.visible_since.get_or_insert(now);
        } else {
            self.checkpoint(now);
            self.visible_since = None;
        }
    }

    /// Records the scroll depth reached and the visible time since the last checkpoint.
    pub fn checkpoint(&mut self, now: f64) {
        if self.page.url.is_empty() {
            return;
        }
        if self.max_depth > self.reported_depth {
            self.reported_depth = self.max_depth;
            self.push(
                now,
                EventKind::Scroll {
                    max_depth_pct: self.max_depth,
                },
                Props::default(),
            );
        }
        if let Some(since) = self.visible_since.as_mut() {
            self.visible_ms += (now - *since).max(0.0);
            *since = now;
        }
        if self.visible_ms >= 1.0 {
            let visible_ms = self.visible_ms.min(86_400_000.0) as u32;
            self.visible_ms = 0.0;
            self.push(now, EventKind::Engagement { visible_ms }, Props::default());
        }
    }

    /// Whether enough events are buffered for a batch.
    pub fn wants_flush(&self) -> bool {
        self.buffer.len() >= self.settings.max_events
    }

    /// Buffered events.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Drops everything buffered (opt-out).
    pub fn clear(&mut self) {
        self.buffer.clear();
    }

    /// The buffered events as an encoded batch, or none.
    pub fn take_batch(&mut self, now: f64) -> Option<Vec<u8>> {
        if self.buffer.is_empty() {
            return None;
        }
        let batch = RawBatch {
            version: FORMAT_VERSION,
            site_id: self.settings.site.clone(),
            sent_at: now as i64,
            batch_id: Id(self.random.bytes()),
            events: core::mem::take(&mut self.buffer),
        };
        Some(cbor::encode(&batch))
    }

    fn session_id(&mut self, now: f64) -> String {
        let timeout = self.settings.session_timeout_ms;
        match &mut self.session {
            Some(s) if now - s.last <= timeout => s.last = s.last.max(now),
            _ => {
                let bytes = self.random.bytes();
                self.session = Some(Session {
                    id: hex(bytes.get(..8).unwrap_or(&bytes)),
                    last: now,
                });
            }
        }
        self.session
            .as_ref()
            .map(|s| s.id.clone())
            .unwrap_or_default()
    }

    fn push(&mut self, now: f64, kind: EventKind, props: Props) {
        let session_id = self.session_id(now);
        let p = &self.page;
        self.buffer.push(RawEvent {
            id: Id(self.random.bytes()),
            timestamp: now as i64,
            session_id,
            url: p.url.clone(),
            referrer: p.referrer.clone(),
            title: p.title.clone(),
            viewport: p.viewport,
            document: p.document,
            user_id: self.user.clone(),
            user_agent: None,
            event_title: None,
            props,
            kind,
        });
    }
}

/// The first four of `s`'s NUL-separated fields (missing ones empty): a click's selector, tag,
/// text and link, or a page's URL, referrer and title, as the host passes them (`web.rs`).
/// On bytes: `str` slicing checks char boundaries, and `split` with a `char` costs far more of
/// the wasm budget.
#[allow(unsafe_code)]
pub fn fields(s: &str) -> [&str; 4] {
    let mut out = [""; 4];
    let mut rest = s.as_bytes();
    for slot in &mut out {
        let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        let (field, tail) = rest.split_at_checked(end).unwrap_or((rest, &[]));
        // SAFETY: NUL is a whole UTF-8 character, so the bytes of a `str` between NULs (or its
        // ends) are UTF-8.
        *slot = unsafe { ::core::str::from_utf8_unchecked(field) };
        rest = tail.get(1..).unwrap_or(&[]);
    }
    out
}

/// Appends the decimal digits of `v` (no `format!`: it pulls core::fmt into the wasm).
pub fn push_int(out: &mut String, v: u64) {
    // Most significant digit first, by recursion: no digit buffer to index (a bounds check
    // would bring core's panic formatting into the wasm).
    if v >= 10 {
        push_int(out, v / 10);
    }
    out.push(char::from(b'0' + (v % 10) as u8));
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Percent of a document `height` px tall seen when the viewport's bottom is `seen` px down.
pub fn depth_pct(seen: f64, height: f64) -> u8 {
    if height > 0.0 {
        // `f64::round` lives in std; a non-negative value rounds by adding a half.
        ((seen / height * 100.0).clamp(0.0, 100.0) + 0.5) as u8
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core(now: f64) -> Core<impl Random> {
        let mut n = 0u8;
        let random = move || {
            n = n.wrapping_add(1);
            [n; 16]
        };
        Core::new(
            Settings {
                site: "demo".into(),
                max_events: 3,
                session_timeout_ms: 30.0 * 60_000.0,
            },
            random,
            None,
            now,
            true,
        )
    }

    fn page(url: &str) -> Page {
        Page {
            url: url.into(),
            viewport: Size { w: 375, h: 700 },
            ..Page::default()
        }
    }

    fn decode(bytes: &[u8]) -> RawBatch {
        cbor::decode(bytes, &pathlight_wire::Limits::default()).unwrap()
    }

    #[test]
    fn route_changes_report_depth_and_time_of_the_page_left() {
        let mut c = core(1_000.0);
        assert!(c.pageview(1_000.0, page("https://s/a")));
        c.scroll(40);
        c.scroll(75);
        c.scroll(60);
        assert!(
            !c.pageview(2_000.0, page("https://s/a")),
            "same URL is not a new view"
        );
        assert!(c.pageview(5_000.0, page("https://s/b")));
        let b = decode(&c.take_batch(5_001.0).unwrap());
        let kinds: Vec<_> = b.events.iter().map(|e| e.kind.clone()).collect();
        assert_eq!(
            kinds,
            [
                EventKind::Pageview,
                EventKind::Scroll { max_depth_pct: 75 },
                EventKind::Engagement { visible_ms: 4_000 },
                EventKind::Pageview
            ]
        );
        assert_eq!(b.events[2].url, "https://s/a", "reported for the page left");
        assert_eq!(b.events[3].url, "https://s/b");
        assert_eq!(b.sent_at, 5_001);
        assert!(c.take_batch(5_002.0).is_none());
    }

    #[test]
    fn hidden_time_is_not_engagement_and_depth_is_reported_once() {
        let mut c = core(0.0);
        c.pageview(0.0, page("https://s/"));
        c.scroll(50);
        c.set_visible(1_000.0, false);
        c.set_visible(61_000.0, true);
        c.set_visible(63_000.0, false);
        let b = decode(&c.take_batch(63_000.0).unwrap());
        let kinds: Vec<_> = b.events.iter().map(|e| e.kind.clone()).collect();
        assert_eq!(
            kinds,
            [
                EventKind::Pageview,
                EventKind::Scroll { max_depth_pct: 50 },
                EventKind::Engagement { visible_ms: 1_000 },
                EventKind::Engagement { visible_ms: 2_000 },
            ]
        );
    }

    #[test]
    fn sessions_roll_over_after_inactivity_and_survive_reloads() {
        let mut c = core(0.0);
        c.pageview(0.0, page("https://s/"));
        let first = c.session().unwrap().clone();
        c.custom(29.0 * 60_000.0, "x".into(), Props::default());
        assert_eq!(c.session().unwrap().id, first.id);
        c.custom(60.0 * 60_000.0, "y".into(), Props::default());
        let second = c.session().unwrap().clone();
        assert_ne!(second.id, first.id);
        assert_eq!(Session::parse(&second.store()), Some(second.clone()));
        let reloaded = Core::new(
            Settings {
                site: "demo".into(),
                max_events: 3,
                session_timeout_ms: 1e9,
            },
            || [9; 16],
            Some(second.clone()),
            0.0,
            true,
        );
        assert_eq!(reloaded.session().unwrap().id, second.id);
    }

    #[test]
    fn flush_is_due_at_max_events() {
        let mut c = core(0.0);
        c.pageview(0.0, page("https://s/"));
        c.click(1.0, Click::default(), Size::default(), Size::default());
        assert!(!c.wants_flush());
        c.click(
            2.0,
            Click::default(),
            Size { w: 1, h: 2 },
            Size { w: 3, h: 4 },
        );
        assert!(c.wants_flush());
        let b = decode(&c.take_batch(3.0).unwrap());
        assert_eq!(b.events[2].viewport, Size { w: 1, h: 2 });
        assert_eq!(
            b.events
                .iter()
                .map(|e| e.id)
                .collect::<std::collections::HashSet<_>>()
                .len(),
            3
        );
    }

    #[test]
    fn a_clicks_strings_come_joined() {
        assert_eq!(
            fields("#buy\0button\0Buy\0/cart"),
            ["#buy", "button", "Buy", "/cart"]
        );
        assert_eq!(fields("#a\0a\0\0"), ["#a", "a", "", ""]);
        assert_eq!(fields("only"), ["only", "", "", ""]);
    }

    #[test]
    fn events_after_identify_carry_the_user_until_it_is_forgotten() {
        let mut c = core(0.0);
        c.pageview(0.0, page("https://s/"));
        c.set_user(Some("u-42".into()));
        c.custom(1.0, "signup".into(), Props::default());
        c.set_user(None);
        c.custom(2.0, "signout".into(), Props::default());
        let b = decode(&c.take_batch(3.0).unwrap());
        let users: Vec<_> = b.events.iter().map(|e| e.user_id.as_deref()).collect();
        assert_eq!(users, [None, Some("u-42"), None]);
    }

    #[test]
    fn helpers() {
        assert_eq!(hex(&[0, 1, 254, 255]), "0001feff");
        assert_eq!(depth_pct(800.0, 1600.0), 50);
        assert_eq!(depth_pct(1601.0, 1600.0), 100);
        assert_eq!(depth_pct(0.0, 0.0), 0);
        assert_eq!(Session::parse("ab:123").map(|s| s.last), Some(123.0));
        assert_eq!(Session::parse("ab:12x"), None);
        assert_eq!(Session::parse("ab:"), None);
    }
}
