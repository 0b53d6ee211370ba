//! The first tier: what crosses the network, exactly as a client sent it.
//!
//! These types are shared by the tracker (which builds and encodes them), the collector and the
//! edge worker (which decode, validate and enrich them). Field docs name the CBOR key used on the
//! wire; `FORMAT.md` is the normative description. Unknown fields are ignored in both encodings, so
//! a newer client can add optional fields without a version bump.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Serialize};

/// Batch format version 1: one self-contained map per event ([`crate::cbor`]), and the JSON
/// form's version. Read forever: cached trackers keep sending it.
pub const FORMAT_VERSION: u8 = 1;

/// Batch format version 2: page contexts, a string table and time deltas ([`crate::v2`]);
/// CBOR only. A batch decoded from it says so in [`RawBatch::version`].
pub const FORMAT_VERSION_2: u8 = 2;

/// A 128-bit identifier (event id, batch id), random per event so retries are idempotent.
///
/// 16 raw bytes in CBOR; a hyphenated lowercase UUID string in JSON.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 16]);

impl Id {
    /// Parses `8-4-4-4-12` hyphenated or 32-digit plain hex.
    pub fn parse(s: &str) -> Option<Id> {
        let mut out = [0u8; 16];
        let mut nibbles = 0usize;
        for c in s.bytes() {
            if c == b'-' {
                continue;
            }
            let v = (c as char).to_digit(16)? as u8;
            if nibbles >= 32 {
                return None;
            }
            out[nibbles / 2] |= if nibbles.is_multiple_of(2) { v << 4 } else { v };
            nibbles += 1;
        }
        (nibbles == 32 && (s.len() == 32 || s.len() == 36)).then_some(Id(out))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <alloc::borrow::Cow<'de, str>>::deserialize(d)?;
        Id::parse(&s).ok_or_else(|| serde::de::Error::custom("expected a UUID (32 hex digits)"))
    }
}

/// A batch of events from one page of one site, as the tracker sends it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawBatch {
    /// Key 0. Format version: [`FORMAT_VERSION`], or [`FORMAT_VERSION_2`] when decoded from
    /// v2. The encoders write their own ([`crate::cbor::encode`] 1, [`crate::v2::encode`] 2).
    pub version: u8,
    /// Key 1. The site id the events belong to (registered in the collector's config).
    pub site_id: String,
    /// Key 2. Client clock when the batch was sent, ms since the Unix epoch; used to correct
    /// client clock skew of every event in the batch.
    pub sent_at: i64,
    /// Key 3. Random per batch; logged to tie a request to its rows.
    pub batch_id: Id,
    /// Key 4. The events, oldest first.
    pub events: Vec<RawEvent>,
}

/// One event, with the fields every kind shares and its kind-specific part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawEvent {
    /// Key 1. Unique per event; storage dedups on it.
    pub id: Id,
    /// Key 2. Client clock when the event happened, ms since the Unix epoch.
    pub timestamp: i64,
    /// Key 3. The tracker's session id (random, rolls over after 30 minutes of inactivity).
    /// Empty means "let the collector sessionize".
    #[serde(default)]
    pub session_id: String,
    /// Key 4. Full URL of the page (absolute for the tracker; may be a path for imports).
    pub url: String,
    /// Key 5. `document.referrer`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// Key 6. `document.title`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Keys 7 and 8. Viewport (layout viewport) width and height in CSS px.
    #[serde(default)]
    pub viewport: Size,
    /// Keys 9 and 10. Document (scrollable page) width and height in CSS px.
    #[serde(default)]
    pub document: Size,
    /// Key 11. The site's own user id, when the site identified the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Key 12. User-Agent of the original client, for server-side senders and imports;
    /// the tracker never sends it (the request's header is used instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Key 13. The sender's own name for what happened (`checkout`), apart from the page's
    /// `title`: the simple array form's `payload.event_title`. The tracker never sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_title: Option<String>,
    /// Key 33. Flat properties, on any kind: a custom event's (`track(name, props)`), or the
    /// payload fields of the simple array form that have no field of their own.
    #[serde(default, skip_serializing_if = "Props::is_empty")]
    pub props: Props,
    /// Key 0 (the kind code) and the kind's own keys.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl RawEvent {
    /// Stands in for an event that could not be read, so the events after it keep their
    /// index; it is always listed among the refused and never stored.
    pub fn unreadable() -> RawEvent {
        RawEvent {
            id: Id::default(),
            timestamp: 0,
            session_id: String::new(),
            url: String::new(),
            referrer: None,
            title: None,
            viewport: Size::default(),
            document: Size::default(),
            user_id: None,
            user_agent: None,
            event_title: None,
            props: Props::default(),
            kind: EventKind::Pageview,
        }
    }
}

/// A width and height in CSS pixels; 0 means unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    /// Width in CSS px.
    pub w: u32,
    /// Height in CSS px.
    pub h: u32,
}

/// What happened. The CBOR kind code is in brackets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// (1) A page was shown: initial load or an SPA navigation.
    Pageview,
    /// (2) A click (or tap) on an element.
    Click(Click),
    /// (3) The deepest point of the document seen so far on this page view.
    Scroll {
        /// Key 30. Percent of the document height that has been inside the viewport, 0–100.
        max_depth_pct: u8,
    },
    /// (4) Time the page was visible, reported when the page is hidden or left.
    Engagement {
        /// Key 31. Visible time since the previous engagement event of this page view, ms.
        visible_ms: u32,
    },
    /// (5) An event the site sends itself with `track(name, props)`; its properties are the
    /// event's [`RawEvent::props`].
    Custom {
        /// Key 32. Event name, e.g. `signup` or `search`.
        name: String,
    },
}

impl EventKind {
    /// The kind's name as stored and as in JSON's `type`.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Pageview => "pageview",
            EventKind::Click(_) => "click",
            EventKind::Scroll { .. } => "scroll",
            EventKind::Engagement { .. } => "engagement",
            EventKind::Custom { .. } => "custom",
        }
    }

    /// The name of the kind with CBOR/storage code `code`, if there is one.
    pub fn name_of_code(code: u8) -> Option<&'static str> {
        const NAMES: [&str; 5] = ["pageview", "click", "scroll", "engagement", "custom"];
        NAMES.get(usize::from(code).checked_sub(1)?).copied()
    }

    /// The kind's code on the CBOR wire (key 0) and in storage (`Enum8`).
    pub fn code(&self) -> u8 {
        match self {
            EventKind::Pageview => 1,
            EventKind::Click(_) => 2,
            EventKind::Scroll { .. } => 3,
            EventKind::Engagement { .. } => 4,
            EventKind::Custom { .. } => 5,
        }
    }
}

/// The click-specific part of an event. Page coordinates locate the click on the document;
/// the element-relative fractions locate it on the element, so a heatmap can re-anchor the
/// point to the element after the page reflows at another width.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Click {
    /// Key 20. `pageX`, CSS px from the document's left edge.
    pub x: i32,
    /// Key 21. `pageY`, CSS px from the document's top edge.
    pub y: i32,
    /// Key 22. The element's `id` attribute, if any. Storage takes it from a `#id` selector
    /// when it is left out ([`Click::id_in_selector`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element_id: Option<String>,
    /// Key 23. A stable CSS selector for the element (id, then `data-*` attributes, then a
    /// tag + `:nth-of-type` path).
    #[serde(default)]
    pub selector: String,
    /// Key 24. Lowercase tag name.
    #[serde(default)]
    pub tag: String,
    /// Key 25. Short visible text (never for inputs or masked elements).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Key 26. `href` of the link clicked, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    /// Key 27. Click position inside the element box, as a fraction of its width (0–1).
    pub rel_x: f32,
    /// Key 28. Click position inside the element box, as a fraction of its height (0–1).
    pub rel_y: f32,
    /// Key 29. The element's box in page coordinates, `[x, y, w, h]` in CSS px.
    #[serde(default)]
    pub element_box: [i32; 4],
    /// Key 34. Whether the element scrolls with the page: [`IN_FLOW`] (0), or it or an
    /// ancestor is `position:` [`FIXED`] (1) or [`STICKY`] (2): a menu bar, cookie banner or
    /// chat button stays put on screen while the document moves under it. In a fixed or
    /// sticky context `x`, `y` and `element_box` are viewport coordinates, which is where the
    /// element is on screen however far the page was scrolled; page coordinates would smear
    /// one header's clicks down the whole document.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fixed: u8,
}

impl Click {
    /// The id a selector names when it is `#id` alone, as the tracker's selector of an element
    /// with a plain id is (the tracker then leaves `element_id` out; storage fills it from here).
    pub fn id_in_selector(selector: &str) -> Option<&str> {
        selector
            .strip_prefix('#')
            .filter(|id| !id.contains([' ', '.', '>', '[', ':']))
    }
}

/// [`Click::fixed`]: the element moves with the document.
pub const IN_FLOW: u8 = 0;
/// [`Click::fixed`]: the element or an ancestor is `position: fixed`.
pub const FIXED: u8 = 1;
/// [`Click::fixed`]: the element or an ancestor is `position: sticky`.
pub const STICKY: u8 = 2;

fn is_zero(v: &u8) -> bool {
    *v == 0
}

/// A custom event's properties: a map from name to scalar, kept as a vector sorted by name
/// with unique names. Not a `BTreeMap`: its node code alone was ~2.5 KB of the tracker's
/// 12 KB budget, and events carry a handful of properties (`Limits::max_props`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Props(Vec<(String, PropValue)>);

impl Props {
    /// Sets `key` to `value`, replacing an earlier value of the same name. Linear: for the
    /// few properties of one event (decoders collect many with [`FromIterator`]).
    pub fn insert(&mut self, key: String, value: PropValue) {
        let at = self.0.iter().filter(|(k, _)| *k < key).count();
        match self.0.get_mut(at) {
            Some(slot) if slot.0 == key => slot.1 = value,
            _ => {
                self.0.push((key, value));
                // Rotated into place by two reversals: `Vec::insert` formats its bounds panic
                // and `rotate_right` is large, both in the tracker's wasm.
                if let Some(tail) = self.0.get_mut(at..) {
                    tail.reverse();
                    if let Some(rest) = tail.get_mut(1..) {
                        rest.reverse();
                    }
                }
            }
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&PropValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Number of properties.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Name and value pairs, by name.
    pub fn iter(&self) -> core::slice::Iter<'_, (String, PropValue)> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a Props {
    type Item = &'a (String, PropValue);
    type IntoIter = core::slice::Iter<'a, (String, PropValue)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Collects pairs in O(n log n) whatever their number (decoders see untrusted counts); of a
/// repeated name the last value wins, as with a map.
impl FromIterator<(String, PropValue)> for Props {
    fn from_iter<I: IntoIterator<Item = (String, PropValue)>>(iter: I) -> Props {
        let mut pairs: Vec<_> = iter.into_iter().collect();
        // Reversed then stably sorted, so the first of equal names is the last given.
        pairs.reverse();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|later, first| later.0 == first.0);
        Props(pairs)
    }
}

impl Serialize for Props {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de> Deserialize<'de> for Props {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BTreeMap::<String, PropValue>::deserialize(d).map(|m| Props(m.into_iter().collect()))
    }
}

/// A custom property value: flat, JSON-compatible scalars only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PropValue {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// Any finite number.
    Number(f64),
    /// A string.
    Text(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_codes_and_names_agree() {
        let kinds = [
            EventKind::Pageview,
            EventKind::Click(Click::default()),
            EventKind::Scroll { max_depth_pct: 0 },
            EventKind::Engagement { visible_ms: 0 },
            EventKind::Custom {
                name: String::new(),
            },
        ];
        for k in &kinds {
            assert_eq!(EventKind::name_of_code(k.code()), Some(k.name()));
        }
        assert_eq!(EventKind::name_of_code(0), None);
        assert_eq!(EventKind::name_of_code(6), None);
    }

    #[test]
    fn props_stay_sorted_and_unique_with_the_last_value_winning() {
        let text = |s: &str| PropValue::Text(s.into());
        let mut p = Props::default();
        for (k, v) in [("b", "1"), ("a", "2"), ("c", "3"), ("b", "4")] {
            p.insert(k.into(), text(v));
        }
        let keys: Vec<_> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(p.get("b"), Some(&text("4")));
        let collected: Props = [("b", "1"), ("a", "2"), ("c", "3"), ("b", "4")]
            .into_iter()
            .map(|(k, v)| (k.into(), text(v)))
            .collect();
        assert_eq!(collected, p);
    }
}
