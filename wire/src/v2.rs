//! Batch format v2: the same [`RawBatch`] in a fraction of the bytes. `FORMAT.md` has the CDDL.
//!
//! A v1 event is a self-contained map that repeats its page's URL, title, referrer, viewport and
//! document size, its session, its 16-byte id and its absolute time. Here the batch holds each
//! distinct page **context** once and events refer to it by index; an event's time is a delta
//! from `sent_at`; its id is derived from the batch id and its index ([`event_id`]); a string
//! used twice or more in the batch (a selector, a link) is sent once in a **string table** and
//! referred to by index; an event is an array of positional fields, trailing defaults left out;
//! a click's position is its element box plus the offset inside it in quarter pixels, which
//! stands for `x`, `y`, `rel_x` and `rel_y` at once.
//!
//! [`encode`] finds the contexts and the shared strings by itself: it lays out each event's and
//! each distinct context's fields as cells, counts the uses of every string among them, then
//! writes. It runs in the tracker, where every byte of code counts against the embed's 12 KB:
//! linear searches (a batch holds tens of events), the heads of [`crate::cbor`]'s encoder, no
//! maps, no sorting, and numbers in properties as integers or doubles (no half floats).
//!
//! The decoder is [`crate::cbor::decode_with_refused`], which recognises v2 by its first bytes
//! (a map whose first key is 0 with the value 2) and returns the same model with `version` 2,
//! so receivers change nothing. It reads with [`crate::cbor`]'s reader and keeps its rules: an
//! event it cannot read (a kind it does not know, an index out of range, a field of the wrong
//! type) is refused alone; no allocation exceeds what the body can hold; and since an index
//! lets a few bytes stand for a long string, the bytes of strings copied into events are capped
//! at [`EXPANSION`] times `max_batch_bytes` (past it the batch is refused as `too_large`).
//!
//! Decoding then encoding is exact for every field but the click's geometry, which the format
//! holds on the quarter-pixel grid: `x` and `y` come back within 1 px, `rel_x` and `rel_y` as the
//! offset's fraction of the box; [`encode`] of a decoded batch gives back the same bytes.

use crate::cbor::{Enc, Reader, major, wrong};
use crate::error::{Field, WireError};
use crate::limits::Limits;
use crate::model::{Click, EventKind, FORMAT_VERSION_2, Id, RawBatch, RawEvent, Size};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use ciborium_ll::Header;

/// Integer keys of the batch map; 0 to 3 as in v1.
mod key {
    pub const VERSION: u64 = 0;
    pub const SITE_ID: u64 = 1;
    pub const SENT_AT: u64 = 2;
    pub const BATCH_ID: u64 = 3;
    pub const EVENTS: u64 = 4;
    pub const STRINGS: u64 = 5;
    pub const CONTEXTS: u64 = 6;
}

/// Keys of an event's extras map: v1's keys for the same fields.
mod extra {
    pub const USER_AGENT: u64 = 12;
    pub const EVENT_TITLE: u64 = 13;
    pub const PROPS: u64 = 33;
}

/// How many times `max_batch_bytes` the strings copied into a batch's events may take: context
/// strings are copied into each of their events, table strings into each use.
pub const EXPANSION: usize = 8;

/// Most strings a table may hold per event a batch may hold (`max_events`): an event has at
/// most 5 string fields and its context 4, and the encoder tables only strings used twice.
const STRINGS_PER_EVENT: usize = 16;

/// Event `index`'s id in a v2 batch: the batch id with its last two bytes XORed with
/// `index + 1` (big-endian, modulo 2^16). Unique within the batch, and the same when the batch
/// is sent again, which is what storage deduplicates on.
pub fn event_id(batch_id: Id, index: usize) -> Id {
    let mut id = batch_id.0;
    let n = ((index + 1) as u16).to_be_bytes();
    id[14] ^= n[0];
    id[15] ^= n[1];
    Id(id)
}

/// Encodes a batch as v2. The events' own ids are not sent: each event gets
/// [`event_id`]`(batch_id, index)`.
pub fn encode(batch: &RawBatch) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + batch.events.len() * 24);
    encode_into(batch, &mut out);
    out
}

/// Encodes a batch as v2, appending to `out`.
pub fn encode_into(batch: &RawBatch, out: &mut Vec<u8>) {
    // Each event's fields, and its page's: the distinct contexts by first use.
    let mut contexts: Vec<[Cell<'_>; 9]> = Vec::new();
    let mut events = Vec::with_capacity(batch.events.len());
    for e in &batch.events {
        let c = [
            S(&e.url),
            S(opt(&e.referrer)),
            S(opt(&e.title)),
            I(e.viewport.w.into()),
            I(e.viewport.h.into()),
            I(e.document.w.into()),
            I(e.document.h.into()),
            S(&e.session_id),
            S(opt(&e.user_id)),
        ];
        let at = contexts
            .iter()
            .position(|x| *x == c)
            .unwrap_or(contexts.len());
        if at == contexts.len() {
            contexts.push(c);
        }
        events.push(fields(e, batch.sent_at, at));
    }
    // Every string and its uses, in the order they are written: those used twice or more are
    // the table.
    let mut strings: Vec<(&str, usize)> = Vec::new();
    for c in &contexts {
        count(&mut strings, c);
    }
    for e in &events {
        count(&mut strings, e);
    }
    let mut enc = Enc(out);
    let shared = strings.iter().filter(|(_, uses)| *uses > 1).count();
    enc.map(6 + usize::from(shared > 0));
    enc.key(key::VERSION);
    enc.uint(u64::from(FORMAT_VERSION_2));
    enc.key(key::SITE_ID);
    enc.text(&batch.site_id);
    enc.key(key::SENT_AT);
    enc.int(batch.sent_at);
    enc.key(key::BATCH_ID);
    enc.bytes(&batch.batch_id.0);
    if shared > 0 {
        enc.key(key::STRINGS);
        enc.head(major::ARRAY, shared as u64);
        for (s, uses) in &strings {
            if *uses > 1 {
                enc.text(s);
            }
        }
    }
    enc.key(key::CONTEXTS);
    enc.head(major::ARRAY, contexts.len() as u64);
    for c in &contexts {
        row(&mut enc, c, &strings, false);
    }
    enc.key(key::EVENTS);
    enc.head(major::ARRAY, events.len() as u64);
    for (e, cells) in batch.events.iter().zip(&events) {
        let extras = usize::from(!opt(&e.user_agent).is_empty())
            + usize::from(!opt(&e.event_title).is_empty())
            + usize::from(!e.props.is_empty());
        row(&mut enc, cells, &strings, extras > 0);
        if extras > 0 {
            enc.map(extras);
            enc.opt_text(extra::USER_AGENT, &e.user_agent);
            enc.opt_text(extra::EVENT_TITLE, &e.event_title);
            if !e.props.is_empty() {
                enc.key(extra::PROPS);
                enc.props(&e.props, Enc::number);
            }
        }
    }
}

/// A field of a context or an event.
#[derive(Clone, Copy, PartialEq)]
enum Cell<'a> {
    I(i64),
    S(&'a str),
}
use Cell::{I, S};

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

/// An event's fields: kind, time, context and the kind's own, padded with defaults.
fn fields(e: &RawEvent, sent_at: i64, ctx: usize) -> [Cell<'_>; 15] {
    let mut f = [I(0); 15];
    let [kind, t, at, rest @ ..] = &mut f;
    *kind = I(e.kind.code().into());
    *t = I(e.timestamp.wrapping_sub(sent_at));
    *at = I(ctx as i64);
    match &e.kind {
        EventKind::Pageview => {}
        EventKind::Click(c) => {
            let [bx, by, bw, bh] = c.element_box;
            *rest = [
                S(&c.selector),
                S(&c.tag),
                S(opt(&c.text)),
                S(opt(&c.href)),
                I(bx.into()),
                I(by.into()),
                I(bw.into()),
                I(bh.into()),
                I(offset(c.x, bx, bw, c.rel_x)),
                I(offset(c.y, by, bh, c.rel_y)),
                I(c.fixed.into()),
                S(opt(&c.element_id)),
            ];
        }
        EventKind::Scroll { max_depth_pct } => rest[0] = I((*max_depth_pct).into()),
        EventKind::Engagement { visible_ms } => rest[0] = I((*visible_ms).into()),
        EventKind::Custom { name } => rest[0] = S(name),
    }
    f
}

/// Counts the uses of the strings among `cells`, in first-use order. Not inlined: one copy
/// serves contexts and events.
#[inline(never)]
fn count<'a>(strings: &mut Vec<(&'a str, usize)>, cells: &[Cell<'a>]) {
    for cell in cells {
        if let S(s) = *cell
            && !s.is_empty()
        {
            match strings.iter_mut().find(|(t, _)| *t == s) {
                Some((_, uses)) => *uses += 1,
                None => strings.push((s, 1)),
            }
        }
    }
}

/// Writes `cells` as an array without its trailing defaults (0 and ""), counting the extras
/// map that follows it when `extras`; a string shared in the batch as its table index.
fn row(enc: &mut Enc<'_>, mut cells: &[Cell<'_>], strings: &[(&str, usize)], extras: bool) {
    while let [rest @ .., I(0) | S("")] = cells {
        cells = rest;
    }
    enc.head(major::ARRAY, (cells.len() + usize::from(extras)) as u64);
    for cell in cells {
        match *cell {
            I(v) => enc.int(v),
            S(s) => match strings
                .iter()
                .filter(|(_, uses)| *uses > 1)
                .position(|(t, _)| *t == s)
            {
                Some(i) => enc.uint(i as u64),
                None => enc.text(s),
            },
        }
    }
}

/// Offsets beyond this many quarter pixels (about a million px) are not taken from the
/// fraction: there an `f32` fraction no longer gives the same quarter pixel back.
const EXACT_OFFSET: u64 = 1 << 22;

/// The click's offset inside its box on one axis, in quarter pixels: taken from the fraction
/// `rel` of the box's `size` where that puts the decoded position within 1 px of `pos`, else
/// from `pos` itself.
fn offset(pos: i32, start: i32, size: i32, rel: f32) -> i64 {
    let q = f64::from(rel) * 4.0 * f64::from(size);
    // Rounded half away from zero (`f64::round` is not in `core`); NaN becomes 0.
    let q = (if q < 0.0 { q - 0.5 } else { q + 0.5 }) as i64;
    if q.unsigned_abs() < EXACT_OFFSET && position(start, q).is_some_and(|p| p.abs_diff(pos) <= 1) {
        q
    } else {
        (i64::from(pos) - i64::from(start)) * 4
    }
}

/// The page position of a box's `start` plus `q` quarter pixels, rounded half up to a pixel.
fn position(start: i32, q: i64) -> Option<i32> {
    let px = q.div_euclid(4) + i64::from(q.rem_euclid(4) >= 2);
    i32::try_from(i64::from(start) + px).ok()
}

/// The fraction of the box's `size` that `q` quarter pixels are; 0 for an empty box.
fn fraction(q: i64, size: i32) -> f32 {
    if size == 0 {
        0.0
    } else {
        (q as f64 / (4.0 * f64::from(size))) as f32
    }
}

/// Whether `bytes` start as a v2 batch: a map whose first key is 0 with the value 2.
pub(crate) fn detect(bytes: &[u8]) -> bool {
    let mut r = Reader::new(bytes, &Limits::default());
    matches!(r.header(), Ok(Header::Map(_)))
        && matches!(r.header(), Ok(Header::Positive(key::VERSION)))
        && matches!(r.header(), Ok(Header::Positive(2)))
}

/// Reads a v2 batch (its first key already known to be the version 2) into the model;
/// events it cannot read are listed in `refused`, as in v1.
pub(crate) fn batch(
    r: &mut Reader<'_>,
    limits: &Limits,
    refused: &mut Vec<(usize, WireError)>,
) -> Result<RawBatch, WireError> {
    // Where each known key's value starts: the table and contexts are needed before the
    // events, whatever order a sender wrote them in. The last of a repeated key wins.
    let n = r.map_len(|| Field::batch("batch"))?;
    let mut at = [None; 7];
    for _ in 0..n {
        let k = r.key()?;
        if let Some(slot) = usize::try_from(k).ok().and_then(|k| at.get_mut(k)) {
            *slot = Some(r.pos);
        }
        r.skip(1)?;
    }
    let end = r.pos;
    let seek = |r: &mut Reader<'_>, k: u64, name| match at.get(k as usize).copied().flatten() {
        Some(p) => {
            r.pos = p;
            Ok(())
        }
        None => Err(WireError::Missing {
            field: Field::batch(name),
        }),
    };
    seek(r, key::SITE_ID, "site_id")?;
    let site_id = r.text(|| Field::batch("site_id"))?;
    seek(r, key::SENT_AT, "sent_at")?;
    let sent_at = r.int(|| Field::batch("sent_at"))?;
    seek(r, key::BATCH_ID, "batch_id")?;
    let batch_id = r.id(|| Field::batch("batch_id"))?;
    let mut strings = Vec::new();
    if seek(r, key::STRINGS, "strings").is_ok() {
        let f = || Field::batch("strings");
        let len = bounded(
            r.array_len(f)?,
            limits.max_events.saturating_mul(STRINGS_PER_EVENT),
            f,
        )?;
        strings.reserve_exact(len);
        for _ in 0..len {
            let h = r.header()?;
            strings.push(r.text_ref(h, f)?);
        }
    }
    seek(r, key::CONTEXTS, "contexts")?;
    let f = || Field::batch("contexts");
    let len = bounded(r.array_len(f)?, limits.max_events, f)?;
    let mut contexts = Vec::with_capacity(len);
    for _ in 0..len {
        contexts.push(r.pos);
        r.skip(1)?;
    }
    seek(r, key::EVENTS, "events")?;
    let count = r.array_len(|| Field::batch("events"))?;
    if count > limits.max_events {
        return Err(WireError::TooManyEvents {
            count,
            max: limits.max_events,
        });
    }
    let mut d = Decoder {
        r,
        strings,
        contexts,
        sent_at,
        left: 0,
        spent: 0,
        cap: limits.max_batch_bytes.saturating_mul(EXPANSION),
    };
    let mut events = Vec::with_capacity(count);
    for i in 0..count {
        let start = d.r.pos;
        match d.event(i, event_id(batch_id, i)) {
            Ok(e) => events.push(e),
            Err(e @ WireError::TooLarge { .. }) => return Err(e),
            Err(e) => {
                d.r.pos = start;
                d.r.skip(1)?;
                refused.push((i, e));
                events.push(RawEvent::unreadable());
            }
        }
    }
    d.r.pos = end;
    Ok(RawBatch {
        version: FORMAT_VERSION_2,
        site_id,
        sent_at,
        batch_id,
        events,
    })
}

/// `len`, or the batch's refusal when it is more than `max`.
fn bounded(len: usize, max: usize, field: impl FnOnce() -> Field) -> Result<usize, WireError> {
    if len > max {
        return Err(WireError::TooLong {
            field: field(),
            len,
            max,
        });
    }
    Ok(len)
}

struct Decoder<'r, 'a> {
    r: &'r mut Reader<'a>,
    strings: Vec<&'a str>,
    /// Where each context starts in the input: read again for each event that refers to it,
    /// so that a fault in it is its events' own, under their field names.
    contexts: Vec<usize>,
    sent_at: i64,
    /// Elements left in the array being read.
    left: usize,
    /// Bytes of strings copied into events so far, and their cap.
    spent: usize,
    cap: usize,
}

impl Decoder<'_, '_> {
    fn event(&mut self, i: usize, id: Id) -> Result<RawEvent, WireError> {
        let f = |name| move || Field::event(i, name);
        self.left = self.r.array_len(f("event"))?;
        let code = self.int(f("type"))?;
        let t = self.int(f("timestamp"))?;
        let ctx = self.int(f("context"))?;
        let kind = match code {
            1 => EventKind::Pageview,
            2 => {
                let selector = self.str(f("selector"))?;
                let tag = self.str(f("tag"))?;
                let text = some(self.str(f("text"))?);
                let href = some(self.str(f("href"))?);
                let mut element_box = [0; 4];
                for v in &mut element_box {
                    *v = self.int_as(f("element_box"))?;
                }
                let [bx, by, bw, bh] = element_box;
                let (ox, oy) = (self.int(f("x"))?, self.int(f("y"))?);
                let out = |name| move || range(f(name)(), "lies outside the page");
                EventKind::Click(Click {
                    x: position(bx, ox).ok_or_else(out("x"))?,
                    y: position(by, oy).ok_or_else(out("y"))?,
                    rel_x: fraction(ox, bw),
                    rel_y: fraction(oy, bh),
                    element_box,
                    fixed: self.int_as(f("fixed"))?,
                    element_id: some(self.str(f("element_id"))?),
                    selector,
                    tag,
                    text,
                    href,
                })
            }
            3 => EventKind::Scroll {
                max_depth_pct: self.int_as(f("max_depth_pct"))?,
            },
            4 => EventKind::Engagement {
                visible_ms: self.int_as(f("visible_ms"))?,
            },
            5 => EventKind::Custom {
                name: self.str(f("name"))?,
            },
            other => {
                return Err(range(
                    f("type")(),
                    &format!("unknown event type code {other}"),
                ));
            }
        };
        // Fields of a later version are skipped; a map as the last element is the extras.
        while self.next() {
            self.r.skip(1)?;
        }
        let (mut user_agent, mut event_title, mut props) = (None, None, Vec::new());
        if self.left == 1 {
            for _ in 0..self.r.map_len(f("event"))? {
                match self.r.key()? {
                    extra::USER_AGENT => user_agent = Some(self.r.text(f("user_agent"))?),
                    extra::EVENT_TITLE => event_title = Some(self.r.text(f("event_title"))?),
                    extra::PROPS => self.r.props(&mut props, f("props"))?,
                    _ => self.r.skip(1)?,
                }
            }
        }
        // The context, read where it lies, then back to the next event.
        let end = self.r.pos;
        self.r.pos = usize::try_from(ctx)
            .ok()
            .and_then(|c| self.contexts.get(c).copied())
            .ok_or_else(|| {
                range(
                    f("context")(),
                    &format!(
                        "context {ctx} is not one of the batch's {}",
                        self.contexts.len()
                    ),
                )
            })?;
        self.left = self.r.array_len(f("context"))?;
        let url = self.str(f("url"))?;
        let referrer = some(self.str(f("referrer"))?);
        let title = some(self.str(f("title"))?);
        let viewport = Size {
            w: self.int_as(f("viewport.w"))?,
            h: self.int_as(f("viewport.h"))?,
        };
        let document = Size {
            w: self.int_as(f("document.w"))?,
            h: self.int_as(f("document.h"))?,
        };
        let session_id = self.str(f("session_id"))?;
        let user_id = some(self.str(f("user_id"))?);
        self.r.pos = end;
        Ok(RawEvent {
            id,
            timestamp: self.sent_at.wrapping_add(t),
            session_id,
            url,
            referrer,
            title,
            viewport,
            document,
            user_id,
            user_agent,
            event_title,
            props: props.into_iter().collect(),
            kind,
        })
    }

    /// Whether the array being read has another field (the last element, when it is a map, is
    /// an event's extras and not a field); consumes its count.
    fn next(&mut self) -> bool {
        let extras =
            self.left == 1 && self.r.input.get(self.r.pos).map(|b| b & 0xe0) == Some(major::MAP);
        let more = self.left > 0 && !extras;
        self.left -= usize::from(more);
        more
    }

    /// An integer field; 0 when left out.
    fn int(&mut self, field: impl FnOnce() -> Field) -> Result<i64, WireError> {
        if self.next() {
            self.r.int(field)
        } else {
            Ok(0)
        }
    }

    fn int_as<T: TryFrom<i64>>(&mut self, field: impl Fn() -> Field) -> Result<T, WireError> {
        let v = self.int(&field)?;
        T::try_from(v).map_err(|_| range(field(), &format!("{v} does not fit the field's type")))
    }

    /// A string field, inline or from the table; "" when left out.
    fn str(&mut self, field: impl Fn() -> Field) -> Result<String, WireError> {
        if !self.next() {
            return Ok(String::new());
        }
        let s = match self.r.header()? {
            Header::Positive(i) => *usize::try_from(i)
                .ok()
                .and_then(|i| self.strings.get(i))
                .ok_or_else(|| {
                    range(
                        field(),
                        &format!(
                            "string {i} is not in the batch's table of {}",
                            self.strings.len()
                        ),
                    )
                })?,
            h @ Header::Text(_) => self.r.text_ref(h, &field)?,
            _ => return Err(wrong(field(), "text or a string table index")),
        };
        self.spent += s.len();
        if self.spent > self.cap {
            return Err(WireError::TooLarge {
                size: self.spent,
                max: self.cap,
            });
        }
        Ok(s.into())
    }
}

fn some(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn range(field: Field, detail: &str) -> WireError {
    WireError::OutOfRange {
        field,
        detail: detail.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbor::{decode, decode_with_refused};
    use crate::sample::{click_event, typical_batch};

    fn limits() -> Limits {
        Limits::default()
    }

    /// `b` as v2 gives it back: ids derived from the batch id, empty options absent.
    fn as_decoded(mut b: RawBatch) -> RawBatch {
        b.version = FORMAT_VERSION_2;
        for (i, e) in b.events.iter_mut().enumerate() {
            e.id = event_id(b.batch_id, i);
        }
        b
    }

    /// Bytes written by hand with the encoder's heads.
    fn cbor(f: impl FnOnce(&mut Enc<'_>)) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut Enc(&mut out));
        out
    }

    /// A v2 envelope around `contexts` and `events` (each written by `f`), with `strings`.
    fn batch_of(strings: &[&str], f: impl FnOnce(&mut Enc<'_>)) -> Vec<u8> {
        cbor(|e| {
            e.map(6 + usize::from(!strings.is_empty()));
            e.key(0);
            e.uint(2);
            e.key(1);
            e.text("demo");
            e.key(2);
            e.int(1_767_261_605_000);
            e.key(3);
            e.bytes(&[0xab; 16]);
            if !strings.is_empty() {
                e.key(5);
                e.head(major::ARRAY, strings.len() as u64);
                for s in strings {
                    e.text(s);
                }
            }
            f(e);
        })
    }

    #[test]
    fn typical_batch_round_trips_with_derived_ids() {
        let b = typical_batch();
        let bytes = encode(&b);
        assert_eq!(decode(&bytes, &limits()).unwrap(), as_decoded(b));
        let again = encode(&decode(&bytes, &limits()).unwrap());
        assert_eq!(again, bytes);
    }

    #[test]
    fn event_ids_differ_in_the_last_two_bytes() {
        let b = Id([0xab; 16]);
        assert_eq!(event_id(b, 0).0[..14], b.0[..14]);
        assert_eq!(event_id(b, 0).0[14..], [0xab, 0xaa]);
        assert_eq!(event_id(b, 0x1233).0[14..], [0xab ^ 0x12, 0xab ^ 0x34]);
        let ids: Vec<Id> = (0..500).map(|i| event_id(b, i)).collect();
        assert!(
            ids.iter()
                .enumerate()
                .all(|(i, a)| ids[..i].iter().all(|x| x != a))
        );
    }

    #[test]
    fn pages_and_repeated_strings_are_sent_once() {
        let mut b = typical_batch();
        b.events.truncate(2);
        for n in 2..20 {
            b.events.push(click_event(n));
        }
        let mut other = click_event(30);
        other.url = "https://shop.example/cart".into();
        b.events.push(other);
        let bytes = encode(&b);
        let count = |needle: &[u8]| bytes.windows(needle.len()).filter(|w| *w == needle).count();
        assert_eq!(count(b"https://shop.example/catalog"), 1);
        assert_eq!(count(b"https://shop.example/cart"), 1);
        assert_eq!(count(b"#add-to-cart"), 1);
        assert_eq!(count(b"Add to cart"), 1);
        // A click on a page already in the batch, with strings already in the table: kind, t
        // (3 B), context, 3 indexes (selector, tag, text), an empty href, the box (11 B), the
        // offsets (5 B), `fixed` and the element id's index.
        let size = |n: usize| {
            encode(&RawBatch {
                events: b.events[..n].to_vec(),
                ..b.clone()
            })
            .len()
        };
        let one = size(5) - size(4);
        assert!(one <= 28, "a repeated click takes {one} B");
        assert_eq!(decode(&bytes, &limits()).unwrap(), as_decoded(b));
    }

    #[test]
    fn trailing_defaults_are_left_out_and_filled_in() {
        let mut b = typical_batch();
        b.events.truncate(1);
        let e = &mut b.events[0];
        e.timestamp = b.sent_at;
        (e.referrer, e.title, e.session_id) = (None, None, String::new());
        (e.viewport, e.document) = (Size::default(), Size::default());
        let bytes = encode(&b);
        // [url] as the context, [1] as the event (t 0 and context 0 left out).
        let url = &b.events[0].url;
        let tail = cbor(|e| {
            e.key(6);
            e.head(major::ARRAY, 1);
            e.head(major::ARRAY, 1);
            e.text(url);
            e.key(4);
            e.head(major::ARRAY, 1);
            e.head(major::ARRAY, 1);
            e.uint(1);
        });
        assert!(bytes.ends_with(&tail), "{bytes:02x?}");
        assert_eq!(decode(&bytes, &limits()).unwrap(), as_decoded(b));
    }

    #[test]
    fn extras_and_unknown_trailing_fields() {
        let mut b = typical_batch();
        b.events[1].user_agent = Some("curl/8".into());
        b.events[2].event_title = Some("deep".into());
        let bytes = encode(&b);
        assert_eq!(decode(&bytes, &limits()).unwrap(), as_decoded(b.clone()));
        // A later version's fields after the known ones, before the extras, are skipped, in
        // contexts and events alike; so are unknown keys in the extras.
        let bytes = batch_of(&[], |e| {
            e.key(6);
            e.head(major::ARRAY, 1);
            e.head(major::ARRAY, 10);
            e.text("https://a.example/");
            e.text("");
            e.text("");
            for _ in 0..4 {
                e.uint(0);
            }
            e.text("");
            e.text("");
            e.float(1.5);
            e.key(4);
            e.head(major::ARRAY, 1);
            e.head(major::ARRAY, 6);
            e.uint(3);
            e.int(-5);
            e.uint(0);
            e.uint(40);
            e.text("later");
            e.map(2);
            e.key(99);
            e.head(major::ARRAY, 0);
            e.opt_text(12, &Some("ua".into()));
        });
        let got = decode(&bytes, &limits()).unwrap();
        let e = &got.events[0];
        assert_eq!(e.kind, EventKind::Scroll { max_depth_pct: 40 });
        assert_eq!(
            (e.url.as_str(), e.timestamp),
            ("https://a.example/", 1_767_261_604_995)
        );
        assert_eq!(e.user_agent.as_deref(), Some("ua"));
    }

    #[test]
    fn keys_in_any_order() {
        // Events before the contexts and the table, and a key of a later version.
        let bytes = cbor(|e| {
            e.map(8);
            e.key(0);
            e.uint(2);
            e.key(9);
            e.map(0);
            e.key(4);
            e.head(major::ARRAY, 1);
            e.head(major::ARRAY, 4);
            e.uint(5);
            e.uint(0);
            e.uint(0);
            e.uint(0);
            e.key(6);
            e.head(major::ARRAY, 1);
            e.head(major::ARRAY, 1);
            e.uint(0);
            e.key(5);
            e.head(major::ARRAY, 1);
            e.text("same");
            e.key(3);
            e.bytes(&[1; 16]);
            e.key(2);
            e.int(1_767_261_605_000);
            e.key(1);
            e.text("demo");
        });
        let got = decode(&bytes, &limits()).unwrap();
        assert_eq!(got.events[0].url, "same");
        assert_eq!(
            got.events[0].kind,
            EventKind::Custom {
                name: "same".into()
            }
        );
    }

    #[test]
    fn bad_events_are_refused_alone() {
        let bytes = batch_of(&["https://a.example/"], |e| {
            e.key(6);
            e.head(major::ARRAY, 2);
            e.head(major::ARRAY, 1);
            e.uint(0);
            // A context whose URL is not text: its events are refused, not the batch.
            e.head(major::ARRAY, 1);
            e.float(2.5);
            e.key(4);
            e.head(major::ARRAY, 6);
            for ev in [
                &[1, 0, 0][..], // good
                &[9, 0, 0],     // a kind this build does not know
                &[1, 0, 7],     // no such context
                &[5, 0, 0, 3],  // no such string
                &[1, 0, 1],     // the broken context
                &[3, 0, 0],     // good
            ] {
                e.head(major::ARRAY, ev.len() as u64);
                for v in ev {
                    e.uint(*v);
                }
            }
        });
        let (batch, refused) = decode_with_refused(&bytes, &limits()).unwrap();
        assert_eq!(batch.events.len(), 6);
        let reasons: Vec<_> = refused.iter().map(|(i, e)| (*i, e.to_string())).collect();
        assert_eq!(
            reasons,
            [
                (1, "events[1].type: unknown event type code 9".into()),
                (
                    2,
                    "events[2].context: context 7 is not one of the batch's 2".into()
                ),
                (
                    3,
                    "events[3].name: string 3 is not in the batch's table of 1".into()
                ),
                (
                    4,
                    "events[4].url: expected text or a string table index".into()
                ),
            ]
        );
        assert_eq!(batch.events[5].kind, EventKind::Scroll { max_depth_pct: 0 });
        assert_eq!(batch.events[0].url, "https://a.example/");
    }

    #[test]
    fn lengths_are_checked_before_allocating() {
        // A table that claims more strings than bytes remain.
        let mut bytes = batch_of(&[], |_| {});
        bytes[0] = 0xa5;
        bytes.extend([0x05, 0x9a, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            decode(&bytes, &limits()),
            Err(WireError::Malformed { .. })
        ));
        // More strings or contexts than a batch of max_events could use.
        let small = Limits {
            max_events: 2,
            ..limits()
        };
        let many = ["x"; 33];
        let bytes = batch_of(&many, |e| {
            e.key(6);
            e.head(major::ARRAY, 3);
            for _ in 0..3 {
                e.head(major::ARRAY, 0);
            }
            e.key(4);
            e.head(major::ARRAY, 0);
        });
        let err = decode(&bytes, &small).unwrap_err();
        assert_eq!(
            err.to_string(),
            "strings: 33 is longer than the limit of 32"
        );
        let bytes = batch_of(&many[..1], |e| {
            e.key(6);
            e.head(major::ARRAY, 3);
            for _ in 0..3 {
                e.head(major::ARRAY, 0);
            }
            e.key(4);
            e.head(major::ARRAY, 0);
        });
        let err = decode(&bytes, &small).unwrap_err();
        assert_eq!(err.to_string(), "contexts: 3 is longer than the limit of 2");
    }

    #[test]
    fn expanded_strings_are_capped() {
        // One 1000-byte string used 6 times by each of 300 events: 1.8 MB from a 4 KB body.
        let long = "x".repeat(1000);
        let bytes = batch_of(&[&long], |e| {
            e.key(6);
            e.head(major::ARRAY, 1);
            e.head(major::ARRAY, 1);
            e.uint(0);
            e.key(4);
            e.head(major::ARRAY, 300);
            for _ in 0..300 {
                e.head(major::ARRAY, 8);
                for v in [2, 0, 0, 0, 0, 0, 0, 0] {
                    e.uint(v);
                }
            }
        });
        let small = Limits {
            max_batch_bytes: 64 * 1024,
            ..limits()
        };
        assert!(bytes.len() < 4000);
        assert_eq!(
            decode_with_refused(&bytes, &small).unwrap_err(),
            WireError::TooLarge {
                size: 525_000,
                max: 524_288
            }
        );
        assert_eq!(decode(&bytes, &limits()).unwrap().events.len(), 300);
    }

    #[test]
    fn click_positions_stay_within_a_pixel() {
        // (x, box start, box size, rel): consistent, rounding, inconsistent, empty box, extremes.
        let cases = [
            (642, 560, 328, 0.25, 642, 0.25),
            (700, 560, 328, 0.427, 700, 0.42682928),
            (-12, 560, 328, 1.0 / 3.0, -12, -1.7439024),
            (5, 3, 0, 0.5, 5, 0.0),
            (4, 3, 0, 0.5, 3, 0.0),
            (i32::MAX, i32::MAX - 10, 20, 1.0, i32::MAX, 0.5),
            (i32::MIN, i32::MAX, 1, 0.0, i32::MIN, -4294967295.0),
            (0, 0, 2_000_000, 0.75, 0, 0.0),
        ];
        for (x, start, size, rel, want_x, want_rel) in cases {
            let q = offset(x, start, size, rel);
            let got = position(start, q).unwrap();
            assert!(got.abs_diff(x) <= 1, "{x} {start} {size} {rel}: {got}");
            assert_eq!(
                (got, fraction(q, size)),
                (want_x, want_rel),
                "{x} {start} {size} {rel}"
            );
            // And the decoded values give the same offset again.
            assert_eq!(offset(got, start, size, fraction(q, size)), q);
        }
    }

    #[test]
    fn v1_is_not_mistaken_for_v2() {
        let b = typical_batch();
        assert!(!detect(&crate::cbor::encode(&b)));
        assert!(detect(&encode(&b)));
        assert_eq!(decode(&crate::cbor::encode(&b), &limits()).unwrap(), b);
        // A v1 encoding of a decoded v2 batch says version 1.
        let mut two = b.clone();
        two.version = 2;
        assert_eq!(crate::cbor::encode(&two), crate::cbor::encode(&b));
        let mut three = crate::cbor::encode(&b);
        three[2] = 3;
        assert_eq!(
            decode(&three, &limits()).unwrap_err().to_string(),
            "unsupported format version 3; the newest this receiver reads is 2"
        );
        assert!(decode(&[0xa0], &limits()).is_err());
    }
}
