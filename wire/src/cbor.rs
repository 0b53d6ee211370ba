//! The compact CBOR encoding: maps with small integer keys (one byte each), definite lengths,
//! ids as 16-byte strings, floats in their shortest lossless width. `FORMAT.md` has the CDDL.
//!
//! The decoder reads heads straight off the input slice into `ciborium-ll`'s `Header` type
//! rather than going through serde, so it can bound every allocation by the bytes actually
//! present (a length prefix larger than what is left is an error before any memory is
//! reserved), and a string costs one copy: checked in place, then owned. The encoder writes the heads itself (major type and
//! argument, RFC 8949 §3): it runs in the tracker, where ciborium's generic header code and
//! the `half` crate weighed ~2 KB of a 12 KB budget; a test checks it byte for byte against
//! `ciborium-ll` for every head it writes.

use crate::error::{Field, WireError};
use crate::limits::Limits;
use crate::model::{
    Click, EventKind, FORMAT_VERSION, FORMAT_VERSION_2, Id, PropValue, Props, RawBatch, RawEvent,
    Size,
};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use ciborium_ll::{Header, simple};

/// Integer keys of the batch map.
mod batch_key {
    pub const VERSION: u64 = 0;
    pub const SITE_ID: u64 = 1;
    pub const SENT_AT: u64 = 2;
    pub const BATCH_ID: u64 = 3;
    pub const EVENTS: u64 = 4;
}

/// Integer keys of the event map.
mod key {
    pub const KIND: u64 = 0;
    pub const ID: u64 = 1;
    pub const TIMESTAMP: u64 = 2;
    pub const SESSION_ID: u64 = 3;
    pub const URL: u64 = 4;
    pub const REFERRER: u64 = 5;
    pub const TITLE: u64 = 6;
    pub const VIEWPORT_W: u64 = 7;
    pub const VIEWPORT_H: u64 = 8;
    pub const DOCUMENT_W: u64 = 9;
    pub const DOCUMENT_H: u64 = 10;
    pub const USER_ID: u64 = 11;
    pub const USER_AGENT: u64 = 12;
    pub const EVENT_TITLE: u64 = 13;
    pub const X: u64 = 20;
    pub const Y: u64 = 21;
    pub const ELEMENT_ID: u64 = 22;
    pub const SELECTOR: u64 = 23;
    pub const TAG: u64 = 24;
    pub const TEXT: u64 = 25;
    pub const HREF: u64 = 26;
    pub const REL_X: u64 = 27;
    pub const REL_Y: u64 = 28;
    pub const ELEMENT_BOX: u64 = 29;
    pub const MAX_DEPTH_PCT: u64 = 30;
    pub const VISIBLE_MS: u64 = 31;
    pub const NAME: u64 = 32;
    pub const PROPS: u64 = 33;
    pub const FIXED: u64 = 34;
}

/// Encodes a batch to CBOR.
pub fn encode(batch: &RawBatch) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + batch.events.len() * 96);
    encode_into(batch, &mut out);
    out
}

/// Encodes a batch to CBOR, appending to `out`.
pub fn encode_into(batch: &RawBatch, out: &mut Vec<u8>) {
    let mut enc = Enc(out);
    enc.map(5);
    // The layout's own version, whatever the model says: a batch decoded from v2 (`version`
    // 2) and written again here is a v1 batch, and a 2 here would read as v2.
    enc.key(batch_key::VERSION);
    enc.uint(u64::from(FORMAT_VERSION));
    enc.key(batch_key::SITE_ID);
    enc.text(&batch.site_id);
    enc.key(batch_key::SENT_AT);
    enc.int(batch.sent_at);
    enc.key(batch_key::BATCH_ID);
    enc.bytes(&batch.batch_id.0);
    enc.key(batch_key::EVENTS);
    enc.head(major::ARRAY, batch.events.len() as u64);
    for event in &batch.events {
        encode_event(&mut enc, event);
    }
}

fn encode_event(enc: &mut Enc<'_>, e: &RawEvent) {
    // Optional fields are left out rather than sent empty: most events carry half of them.
    let opt = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
    let mut n = 4; // kind, id, timestamp, url
    n += usize::from(!e.session_id.is_empty());
    n += usize::from(opt(&e.referrer)) + usize::from(opt(&e.title));
    n += usize::from(opt(&e.user_id)) + usize::from(opt(&e.user_agent));
    n += usize::from(opt(&e.event_title)) + usize::from(!e.props.is_empty());
    n += [e.viewport.w, e.viewport.h, e.document.w, e.document.h]
        .iter()
        .filter(|v| **v != 0)
        .count();
    n += match &e.kind {
        EventKind::Pageview => 0,
        EventKind::Click(c) => {
            5 + usize::from(opt(&c.element_id))
                + usize::from(!c.selector.is_empty())
                + usize::from(!c.tag.is_empty())
                + usize::from(opt(&c.text))
                + usize::from(opt(&c.href))
                + usize::from(c.fixed != 0)
        }
        EventKind::Scroll { .. } | EventKind::Engagement { .. } => 1,
        EventKind::Custom { .. } => 1,
    };
    enc.map(n);
    enc.key(key::KIND);
    enc.uint(u64::from(e.kind.code()));
    enc.key(key::ID);
    enc.bytes(&e.id.0);
    enc.key(key::TIMESTAMP);
    enc.int(e.timestamp);
    if !e.session_id.is_empty() {
        enc.key(key::SESSION_ID);
        enc.text(&e.session_id);
    }
    enc.key(key::URL);
    enc.text(&e.url);
    enc.opt_text(key::REFERRER, &e.referrer);
    enc.opt_text(key::TITLE, &e.title);
    for (k, v) in [
        (key::VIEWPORT_W, e.viewport.w),
        (key::VIEWPORT_H, e.viewport.h),
        (key::DOCUMENT_W, e.document.w),
        (key::DOCUMENT_H, e.document.h),
    ] {
        if v != 0 {
            enc.key(k);
            enc.uint(u64::from(v));
        }
    }
    enc.opt_text(key::USER_ID, &e.user_id);
    enc.opt_text(key::USER_AGENT, &e.user_agent);
    enc.opt_text(key::EVENT_TITLE, &e.event_title);
    match &e.kind {
        EventKind::Pageview => {}
        EventKind::Click(c) => {
            enc.key(key::X);
            enc.int(i64::from(c.x));
            enc.key(key::Y);
            enc.int(i64::from(c.y));
            enc.opt_text(key::ELEMENT_ID, &c.element_id);
            if !c.selector.is_empty() {
                enc.key(key::SELECTOR);
                enc.text(&c.selector);
            }
            if !c.tag.is_empty() {
                enc.key(key::TAG);
                enc.text(&c.tag);
            }
            enc.opt_text(key::TEXT, &c.text);
            enc.opt_text(key::HREF, &c.href);
            enc.key(key::REL_X);
            enc.float(f64::from(c.rel_x));
            enc.key(key::REL_Y);
            enc.float(f64::from(c.rel_y));
            enc.key(key::ELEMENT_BOX);
            enc.head(major::ARRAY, 4);
            for v in c.element_box {
                enc.int(i64::from(v));
            }
            if c.fixed != 0 {
                enc.key(key::FIXED);
                enc.uint(u64::from(c.fixed));
            }
        }
        EventKind::Scroll { max_depth_pct } => {
            enc.key(key::MAX_DEPTH_PCT);
            enc.uint(u64::from(*max_depth_pct));
        }
        EventKind::Engagement { visible_ms } => {
            enc.key(key::VISIBLE_MS);
            enc.uint(u64::from(*visible_ms));
        }
        EventKind::Custom { name } => {
            enc.key(key::NAME);
            enc.text(name);
        }
    }
    // Last, after the kind's own keys, where a custom event's properties always were: the
    // bytes of earlier batches stay the same.
    if !e.props.is_empty() {
        enc.key(key::PROPS);
        enc.props(&e.props, Enc::float);
    }
}

/// CBOR major types (RFC 8949 §3.1), as the top three bits of a head.
pub(crate) mod major {
    pub const UINT: u8 = 0;
    pub const NINT: u8 = 1 << 5;
    pub const BYTES: u8 = 2 << 5;
    pub const TEXT: u8 = 3 << 5;
    pub const ARRAY: u8 = 4 << 5;
    pub const MAP: u8 = 5 << 5;
    pub const SIMPLE: u8 = 7 << 5;
}

/// Writes into a `Vec`, which cannot fail, so its methods return nothing.
pub(crate) struct Enc<'a>(pub(crate) &'a mut Vec<u8>);

impl Enc<'_> {
    /// A head: the major type and its argument in the shortest form (RFC 8949 §3, preferred
    /// serialization), as `ciborium-ll` writes it.
    pub(crate) fn head(&mut self, major: u8, v: u64) {
        let be = v.to_be_bytes();
        let (info, width) = match v {
            0..=23 => (v as u8, 0),
            24..=0xff => (24, 1),
            0x100..=0xffff => (25, 2),
            0x1_0000..=0xffff_ffff => (26, 4),
            _ => (27, 8),
        };
        self.0.push(major | info);
        self.0
            .extend_from_slice(be.get(8 - width..).unwrap_or_default());
    }
    pub(crate) fn map(&mut self, n: usize) {
        self.head(major::MAP, n as u64);
    }
    pub(crate) fn key(&mut self, k: u64) {
        self.head(major::UINT, k);
    }
    pub(crate) fn uint(&mut self, v: u64) {
        self.head(major::UINT, v);
    }
    pub(crate) fn int(&mut self, v: i64) {
        // CBOR negative integers carry -1 - n.
        if v >= 0 {
            self.head(major::UINT, v as u64);
        } else {
            self.head(major::NINT, !(v as u64));
        }
    }
    /// The shortest of half, single and double precision that holds `x` exactly.
    pub(crate) fn float(&mut self, x: f64) {
        let single = x as f32;
        if let Some(half) = f16_bits(x) {
            self.0.push(major::SIMPLE | 25);
            self.0.extend_from_slice(&half.to_be_bytes());
        } else if f64::from(single).to_bits() == x.to_bits() {
            self.0.push(major::SIMPLE | 26);
            self.0.extend_from_slice(&single.to_be_bytes());
        } else {
            self.0.push(major::SIMPLE | 27);
            self.0.extend_from_slice(&x.to_be_bytes());
        }
    }
    pub(crate) fn text(&mut self, s: &str) {
        self.head(major::TEXT, s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.head(major::BYTES, b.len() as u64);
        self.0.extend_from_slice(b);
    }
    pub(crate) fn opt_text(&mut self, k: u64, s: &Option<String>) {
        if let Some(s) = s.as_deref().filter(|s| !s.is_empty()) {
            self.key(k);
            self.text(s);
        }
    }
    /// A number as v2 writes it: an integer when it is a whole one that fits 32 bits (not
    /// -0), else a double. Smaller code than [`Enc::float`]'s shortest width for the tracker,
    /// and integers, what custom properties mostly hold, are shorter still.
    pub(crate) fn number(&mut self, x: f64) {
        let i = x as i32;
        if f64::from(i) == x && (i != 0 || x.is_sign_positive()) {
            self.int(i.into());
        } else {
            self.0.push(major::SIMPLE | 27);
            self.0.extend_from_slice(&x.to_be_bytes());
        }
    }
    /// A properties map (key 33's value), numbers written by `number`.
    pub(crate) fn props(&mut self, props: &Props, number: fn(&mut Self, f64)) {
        self.map(props.len());
        for (k, v) in props {
            self.text(k);
            match v {
                PropValue::Null => self.head(major::SIMPLE, u64::from(simple::NULL)),
                PropValue::Bool(b) => self.head(
                    major::SIMPLE,
                    u64::from(if *b { simple::TRUE } else { simple::FALSE }),
                ),
                PropValue::Number(x) => number(self, *x),
                PropValue::Text(s) => self.text(s),
            }
        }
    }
}

/// The IEEE half-precision bits of `x` when converting to half and back gives the same f64
/// bits (the test `ciborium-ll` applies with the `half` crate), else none.
fn f16_bits(x: f64) -> Option<u16> {
    let bits = x.to_bits();
    let sign = ((bits >> 48) & 0x8000) as u16;
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let man = bits & ((1 << 52) - 1);
    let low42 = man & ((1 << 42) - 1);
    match exp {
        // Zero exactly; an f64 subnormal is far below the smallest half.
        0 => (man == 0).then_some(sign),
        // Infinity; a NaN survives only quiet with its payload in the top 10 bits.
        0x7ff if man == 0 => Some(sign | 0x7c00),
        0x7ff => (man >> 51 == 1 && low42 == 0).then_some(sign | 0x7c00 | (man >> 42) as u16),
        _ => {
            let e = exp - 1023;
            if (-14..=15).contains(&e) {
                // A normal half: 10 fraction bits.
                (low42 == 0).then(|| sign | (((e + 15) as u16) << 10) | (man >> 42) as u16)
            } else if (-24..-14).contains(&e) {
                // A subnormal half: the value in units of 2^-24, with nothing lost.
                let full = (1u64 << 52) | man;
                let shift = (52 - (e + 24)) as u32;
                (full & ((1 << shift) - 1) == 0).then_some(sign | (full >> shift) as u16)
            } else {
                None
            }
        }
    }
}

/// Decodes a CBOR batch. Checks structure, types and the envelope's version and event count;
/// field values are checked afterwards by [`crate::validate`]. Any unreadable event refuses
/// the batch; [`decode_with_refused`] keeps the others.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<RawBatch, WireError> {
    crate::strict(decode_with_refused(bytes, limits)?)
}

/// Decodes a CBOR batch, refusing one event at a time: an event of a kind this build does not
/// know (a newer tracker's), or with a field of the wrong type, is listed by index with its
/// reason and stands as [`RawEvent::unreadable`] in the batch, so the good events beside it
/// are kept. A batch whose CBOR is broken (an event that cannot even be skipped) is refused.
pub fn decode_with_refused(
    bytes: &[u8],
    limits: &Limits,
) -> Result<(RawBatch, Vec<(usize, WireError)>), WireError> {
    if bytes.is_empty() {
        return Err(WireError::Empty);
    }
    if bytes.len() > limits.max_batch_bytes {
        return Err(WireError::TooLarge {
            size: bytes.len(),
            max: limits.max_batch_bytes,
        });
    }
    let mut r = Reader::new(bytes, limits);
    let mut refused = Vec::new();
    let read = if crate::v2::detect(bytes) {
        crate::v2::batch(&mut r, limits, &mut refused)
    } else {
        r.batch(limits, &mut refused)
    };
    let read = read.and_then(|batch| {
        if r.pos != bytes.len() {
            return Err(malformed(format!(
                "{} bytes of trailing data after the batch",
                bytes.len() - r.pos
            )));
        }
        Ok(batch)
    });
    match read {
        Ok(batch) => Ok((batch, refused)),
        // Once an event could not be read, a later break in the structure is most likely its
        // doing (a wrong header shifts everything after it): the first refusal says where.
        // Other refusals of the batch (its version, a missing envelope field) say their own.
        Err(e @ WireError::Malformed { .. }) => {
            Err(refused.into_iter().next().map_or(e, |(_, first)| first))
        }
        Err(e) => Err(e),
    }
}

pub(crate) fn malformed(detail: String) -> WireError {
    WireError::Malformed {
        format: "CBOR",
        detail,
    }
}

/// Reads CBOR items off a slice, for both versions of the batch.
pub(crate) struct Reader<'a> {
    pub(crate) input: &'a [u8],
    pub(crate) pos: usize,
    max_depth: usize,
    /// Checked while reading, not only by validation afterwards: a 512 KiB body could
    /// otherwise declare and fill some 250 000 two-byte properties, ~14 MB once decoded.
    max_props: usize,
}

/// The f64 of IEEE half-precision bits (exact: every half is a double).
fn f16_to_f64(h: u16) -> f64 {
    let sign = u64::from(h >> 15) << 63;
    let exp = u64::from((h >> 10) & 0x1f);
    let man = u64::from(h & 0x3ff);
    match exp {
        // Subnormal: man × 2^-24, exact in a double.
        0 => {
            let v = man as f64 * 5.960_464_477_539_063e-8;
            if sign != 0 { -v } else { v }
        }
        // Infinity or NaN, payload kept in the top fraction bits.
        0x1f => f64::from_bits(sign | 0x7ff << 52 | man << 42),
        _ => f64::from_bits(sign | (exp + 1023 - 15) << 52 | man << 42),
    }
}

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8], limits: &Limits) -> Reader<'a> {
        Reader {
            input,
            pos: 0,
            max_depth: limits.max_depth,
            max_props: limits.max_props,
        }
    }

    fn remaining(&mut self) -> usize {
        self.input.len() - self.pos
    }

    /// `n` bytes of the input, consumed.
    fn take(&mut self, n: usize, at: usize) -> Result<&'a [u8], WireError> {
        let input = self.input;
        let bytes = input
            .get(self.pos..self.pos.saturating_add(n))
            .ok_or_else(|| malformed(format!("truncated at byte {at}")))?;
        self.pos += n;
        Ok(bytes)
    }

    /// One head (RFC 8949 §3): major type and argument.
    pub(crate) fn header(&mut self) -> Result<Header, WireError> {
        let at = self.pos;
        let first = *self.take(1, at)?.first().unwrap_or(&0);
        let (major, info) = (first >> 5, first & 0x1f);
        let arg = match info {
            0..=23 => Some(u64::from(info)),
            24..=27 => Some(
                self.take(1 << (info - 24), at)?
                    .iter()
                    .fold(0u64, |a, b| a << 8 | u64::from(*b)),
            ),
            31 => None,
            _ => return Err(malformed(format!("invalid header at byte {at}"))),
        };
        let len = |arg: Option<u64>| arg.map(|v| usize::try_from(v).unwrap_or(usize::MAX));
        Ok(match (major, arg) {
            (0, Some(v)) => Header::Positive(v),
            (1, Some(v)) => Header::Negative(v),
            (2, a) => Header::Bytes(len(a)),
            (3, a) => Header::Text(len(a)),
            (4, a) => Header::Array(len(a)),
            (5, a) => Header::Map(len(a)),
            (6, Some(v)) => Header::Tag(v),
            (7, None) => Header::Break,
            (7, Some(v)) => match info {
                25 => Header::Float(f16_to_f64(v as u16)),
                26 => Header::Float(f64::from(f32::from_bits(v as u32))),
                27 => Header::Float(f64::from_bits(v)),
                _ => Header::Simple(v as u8),
            },
            _ => return Err(malformed(format!("invalid header at byte {at}"))),
        })
    }

    /// Checks a definite length against the bytes left, since every item takes at least one.
    fn length(&mut self, len: Option<usize>, what: &str) -> Result<usize, WireError> {
        let at = self.pos;
        let len = len.ok_or_else(|| {
            malformed(format!(
                "indefinite-length {what} at byte {at} is not used by this format"
            ))
        })?;
        if len > self.remaining() {
            return Err(malformed(format!(
                "{what} at byte {at} claims {len} items or bytes, more than remain"
            )));
        }
        Ok(len)
    }

    pub(crate) fn map_len(&mut self, field: impl FnOnce() -> Field) -> Result<usize, WireError> {
        match self.header()? {
            Header::Map(len) => self.length(len, "map"),
            _ => Err(wrong(field(), "a map")),
        }
    }

    pub(crate) fn array_len(&mut self, field: impl FnOnce() -> Field) -> Result<usize, WireError> {
        match self.header()? {
            Header::Array(len) => self.length(len, "array"),
            _ => Err(wrong(field(), "an array")),
        }
    }

    pub(crate) fn key(&mut self) -> Result<u64, WireError> {
        match self.header()? {
            Header::Positive(k) => Ok(k),
            _ => Err(malformed(format!(
                "map key before byte {} is not an unsigned integer",
                self.pos
            ))),
        }
    }

    pub(crate) fn text(&mut self, field: impl FnOnce() -> Field) -> Result<String, WireError> {
        let h = self.header()?;
        self.text_from(h, field)
    }

    /// The text whose head `h` was just read.
    pub(crate) fn text_from(
        &mut self,
        h: Header,
        field: impl FnOnce() -> Field,
    ) -> Result<String, WireError> {
        self.text_ref(h, field).map(String::from)
    }

    /// The text whose head `h` was just read, in place.
    pub(crate) fn text_ref(
        &mut self,
        h: Header,
        field: impl FnOnce() -> Field,
    ) -> Result<&'a str, WireError> {
        match h {
            Header::Text(len) => {
                let len = self.length(len, "text")?;
                let at = self.pos;
                let bytes = self.take(len, at)?;
                core::str::from_utf8(bytes).map_err(|_| wrong(field(), "valid UTF-8 text"))
            }
            _ => Err(wrong(field(), "text")),
        }
    }

    /// A properties map (key 33's value), added to `props`: the key may come more than once.
    pub(crate) fn props(
        &mut self,
        props: &mut Vec<(String, PropValue)>,
        f: impl Fn() -> Field,
    ) -> Result<(), WireError> {
        let count = self.map_len(&f)?;
        // Counted with the ones read so far: the key may come more than once.
        if props.len() + count > self.max_props {
            return Err(WireError::TooLong {
                field: f(),
                len: props.len() + count,
                max: self.max_props,
            });
        }
        for _ in 0..count {
            let k = self.text(&f)?;
            let v = match self.header()? {
                Header::Simple(simple::NULL) => PropValue::Null,
                Header::Simple(simple::TRUE) => PropValue::Bool(true),
                Header::Simple(simple::FALSE) => PropValue::Bool(false),
                Header::Float(x) => PropValue::Number(x),
                Header::Positive(x) => PropValue::Number(x as f64),
                Header::Negative(x) => PropValue::Number(-1.0 - x as f64),
                h @ Header::Text(_) => PropValue::Text(self.text_from(h, || f().with_key(&k))?),
                _ => {
                    return Err(wrong(f().with_key(&k), "null, a boolean, a number or text"));
                }
            };
            props.push((k, v));
        }
        Ok(())
    }

    pub(crate) fn id(&mut self, field: impl Fn() -> Field) -> Result<Id, WireError> {
        match self.header()? {
            Header::Bytes(Some(16)) => {
                let at = self.pos;
                let mut id = [0u8; 16];
                id.copy_from_slice(self.take(16, at)?);
                Ok(Id(id))
            }
            _ => Err(wrong(field(), "16 bytes")),
        }
    }

    pub(crate) fn int(&mut self, field: impl FnOnce() -> Field) -> Result<i64, WireError> {
        match self.header()? {
            Header::Positive(v) => i64::try_from(v).map_err(|_| out_of_range_int(field())),
            Header::Negative(v) => i64::try_from(v)
                .map(|v| -1 - v)
                .map_err(|_| out_of_range_int(field())),
            _ => Err(wrong(field(), "an integer")),
        }
    }

    pub(crate) fn int_as<T: TryFrom<i64>>(
        &mut self,
        field: impl Fn() -> Field,
    ) -> Result<T, WireError> {
        let v = self.int(&field)?;
        T::try_from(v).map_err(|_| WireError::OutOfRange {
            field: field(),
            detail: format!("{v} does not fit the field's type"),
        })
    }

    fn number(&mut self, field: impl FnOnce() -> Field) -> Result<f64, WireError> {
        match self.header()? {
            Header::Float(v) => Ok(v),
            Header::Positive(v) => Ok(v as f64),
            Header::Negative(v) => Ok(-1.0 - v as f64),
            _ => Err(wrong(field(), "a number")),
        }
    }

    /// Skips one value of any type, for keys this version does not know.
    pub(crate) fn skip(&mut self, depth: usize) -> Result<(), WireError> {
        if depth > self.max_depth {
            return Err(WireError::TooDeep {
                max: self.max_depth,
            });
        }
        match self.header()? {
            Header::Positive(_) | Header::Negative(_) | Header::Float(_) | Header::Simple(_) => {
                Ok(())
            }
            Header::Bytes(len) | Header::Text(len) => {
                let len = self.length(len, "string")?;
                let at = self.pos;
                self.take(len, at)?;
                Ok(())
            }
            Header::Array(len) => {
                for _ in 0..self.length(len, "array")? {
                    self.skip(depth + 1)?;
                }
                Ok(())
            }
            Header::Map(len) => {
                for _ in 0..self.length(len, "map")? {
                    self.skip(depth + 1)?;
                    self.skip(depth + 1)?;
                }
                Ok(())
            }
            Header::Tag(_) => self.skip(depth + 1),
            Header::Break => Err(malformed("unexpected break".into())),
        }
    }

    fn batch(
        &mut self,
        limits: &Limits,
        refused: &mut Vec<(usize, WireError)>,
    ) -> Result<RawBatch, WireError> {
        let n = self.map_len(|| Field::batch("batch"))?;
        let (mut version, mut site_id, mut sent_at, mut batch_id, mut events) =
            (None, None, None, None, None);
        for _ in 0..n {
            match self.key()? {
                batch_key::VERSION => {
                    let v = self.int(|| Field::batch("version"))?;
                    if v != i64::from(FORMAT_VERSION) {
                        return Err(WireError::Version {
                            found: v as u64,
                            supported: FORMAT_VERSION_2,
                        });
                    }
                    version = Some(FORMAT_VERSION);
                }
                batch_key::SITE_ID => site_id = Some(self.text(|| Field::batch("site_id"))?),
                batch_key::SENT_AT => sent_at = Some(self.int(|| Field::batch("sent_at"))?),
                batch_key::BATCH_ID => batch_id = Some(self.id(|| Field::batch("batch_id"))?),
                batch_key::EVENTS => {
                    let count = self.array_len(|| Field::batch("events"))?;
                    if count > limits.max_events {
                        return Err(WireError::TooManyEvents {
                            count,
                            max: limits.max_events,
                        });
                    }
                    let mut list = Vec::with_capacity(count);
                    // A second `events` key replaces the first array: so do its refusals,
                    // which must stay in index order for the stages that merge them.
                    refused.clear();
                    for i in 0..count {
                        let start = self.pos;
                        match self.event(i) {
                            Ok(e) => list.push(e),
                            Err(e) => {
                                self.pos = start;
                                self.skip(1)?;
                                refused.push((i, e));
                                list.push(RawEvent::unreadable());
                            }
                        }
                    }
                    events = Some(list);
                }
                _ => self.skip(1)?,
            }
        }
        let missing = |name| WireError::Missing {
            field: Field::batch(name),
        };
        Ok(RawBatch {
            version: version.ok_or_else(|| missing("version"))?,
            site_id: site_id.ok_or_else(|| missing("site_id"))?,
            sent_at: sent_at.ok_or_else(|| missing("sent_at"))?,
            batch_id: batch_id.ok_or_else(|| missing("batch_id"))?,
            events: events.ok_or_else(|| missing("events"))?,
        })
    }

    fn event(&mut self, i: usize) -> Result<RawEvent, WireError> {
        let f = |name| move || Field::event(i, name);
        let n = self.map_len(f("event"))?;
        let mut kind_code = None;
        let (mut id, mut timestamp, mut url) = (None, None, None);
        let mut session_id = String::new();
        let (mut referrer, mut title, mut user_id, mut user_agent) = (None, None, None, None);
        let mut event_title = None;
        let (mut viewport, mut document) = (Size::default(), Size::default());
        let mut click = Click::default();
        let (mut has_x, mut has_y) = (false, false);
        let (mut depth, mut visible, mut name) = (None, None, None);
        let mut props = Vec::new();
        for _ in 0..n {
            match self.key()? {
                key::KIND => kind_code = Some(self.int(f("type"))?),
                key::ID => id = Some(self.id(f("id"))?),
                key::TIMESTAMP => timestamp = Some(self.int(f("timestamp"))?),
                key::SESSION_ID => session_id = self.text(f("session_id"))?,
                key::URL => url = Some(self.text(f("url"))?),
                key::REFERRER => referrer = Some(self.text(f("referrer"))?),
                key::TITLE => title = Some(self.text(f("title"))?),
                key::VIEWPORT_W => viewport.w = self.int_as(f("viewport.w"))?,
                key::VIEWPORT_H => viewport.h = self.int_as(f("viewport.h"))?,
                key::DOCUMENT_W => document.w = self.int_as(f("document.w"))?,
                key::DOCUMENT_H => document.h = self.int_as(f("document.h"))?,
                key::USER_ID => user_id = Some(self.text(f("user_id"))?),
                key::USER_AGENT => user_agent = Some(self.text(f("user_agent"))?),
                key::EVENT_TITLE => event_title = Some(self.text(f("event_title"))?),
                key::X => {
                    click.x = self.int_as(f("x"))?;
                    has_x = true;
                }
                key::Y => {
                    click.y = self.int_as(f("y"))?;
                    has_y = true;
                }
                key::ELEMENT_ID => click.element_id = Some(self.text(f("element_id"))?),
                key::SELECTOR => click.selector = self.text(f("selector"))?,
                key::TAG => click.tag = self.text(f("tag"))?,
                key::TEXT => click.text = Some(self.text(f("text"))?),
                key::HREF => click.href = Some(self.text(f("href"))?),
                key::REL_X => click.rel_x = self.number(f("rel_x"))? as f32,
                key::REL_Y => click.rel_y = self.number(f("rel_y"))? as f32,
                key::ELEMENT_BOX => {
                    if self.array_len(f("element_box"))? != 4 {
                        return Err(wrong(f("element_box")(), "an array of 4 integers"));
                    }
                    for slot in &mut click.element_box {
                        *slot = self.int_as(f("element_box"))?;
                    }
                }
                key::FIXED => click.fixed = self.int_as(f("fixed"))?,
                key::MAX_DEPTH_PCT => depth = Some(self.int_as(f("max_depth_pct"))?),
                key::VISIBLE_MS => visible = Some(self.int_as(f("visible_ms"))?),
                key::NAME => name = Some(self.text(f("name"))?),
                key::PROPS => self.props(&mut props, f("props"))?,
                _ => self.skip(1)?,
            }
        }
        let missing = |name| WireError::Missing {
            field: Field::event(i, name),
        };
        let kind = match kind_code.ok_or_else(|| missing("type"))? {
            1 => EventKind::Pageview,
            2 => {
                if !has_x {
                    return Err(missing("x"));
                }
                if !has_y {
                    return Err(missing("y"));
                }
                EventKind::Click(click)
            }
            3 => EventKind::Scroll {
                max_depth_pct: depth.ok_or_else(|| missing("max_depth_pct"))?,
            },
            4 => EventKind::Engagement {
                visible_ms: visible.ok_or_else(|| missing("visible_ms"))?,
            },
            5 => EventKind::Custom {
                name: name.ok_or_else(|| missing("name"))?,
            },
            other => {
                return Err(WireError::OutOfRange {
                    field: Field::event(i, "type"),
                    detail: format!("unknown event type code {other}"),
                });
            }
        };
        Ok(RawEvent {
            id: id.ok_or_else(|| missing("id"))?,
            timestamp: timestamp.ok_or_else(|| missing("timestamp"))?,
            session_id,
            url: url.ok_or_else(|| missing("url"))?,
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
}

pub(crate) fn wrong(field: Field, expected: &'static str) -> WireError {
    WireError::WrongType { field, expected }
}

fn out_of_range_int(field: Field) -> WireError {
    WireError::OutOfRange {
        field,
        detail: "integer does not fit 64 bits".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::{Enc, major};
    use ciborium_ll::{Encoder, Header};
    use proptest::prelude::*;

    fn ours(f: impl FnOnce(&mut Enc<'_>)) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut Enc(&mut out));
        out
    }

    fn ciborium(h: Header) -> Vec<u8> {
        let mut out = Vec::new();
        Encoder::from(&mut out).push(h).unwrap();
        out
    }

    fn same_float(x: f64) {
        assert_eq!(
            ours(|e| e.float(x)),
            ciborium(Header::Float(x)),
            "{x:e} ({:#x})",
            x.to_bits()
        );
    }

    #[test]
    fn float_edges_match_ciborium() {
        let halves = [
            0.0,
            -0.0,
            1.0,
            0.5,
            0.25,
            65504.0,
            65520.0,
            6.1e-5,
            2f64.powi(-14),
        ];
        let subnormal = [
            2f64.powi(-24),
            3.0 * 2f64.powi(-24),
            2f64.powi(-25),
            1023.0 * 2f64.powi(-24),
        ];
        let others = [
            0.1,
            1.0 / 3.0,
            1e300,
            f64::MIN_POSITIVE,
            5e-324,
            16777217.0,
            0.3f32 as f64,
        ];
        let special = [
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -f64::NAN,
            f64::from_bits(0x7ff0_0000_0000_0001),
        ];
        for x in halves
            .into_iter()
            .chain(subnormal)
            .chain(others)
            .chain(special)
        {
            same_float(x);
            same_float(-x);
        }
    }

    proptest! {
        #[test]
        fn floats_match_ciborium(bits in any::<u64>(), half in any::<u16>(), single in any::<u32>()) {
            same_float(f64::from_bits(bits));
            // Values exact in the narrower widths, which random f64 bits almost never are.
            same_float(f64::from(f32::from_bits(single)));
            let h = half::f16::from_bits(half);
            same_float(f64::from(h));
        }

        #[test]
        fn halves_decode_as_the_half_crate_does(h in any::<u16>()) {
            let ours = super::f16_to_f64(h);
            let theirs = f64::from(half::f16::from_bits(h));
            prop_assert!(ours.to_bits() == theirs.to_bits() || ours.is_nan() && theirs.is_nan(), "{h:#x}");
        }

        #[test]
        fn heads_read_back_as_ciborium_wrote_them(v in any::<u64>(), simple in 0u8..24, bits in any::<u64>()) {
            for h in [
                Header::Positive(v),
                Header::Negative(v),
                Header::Bytes(Some(v as usize)),
                Header::Text(None),
                Header::Array(Some(v as usize)),
                Header::Map(Some(v as usize)),
                Header::Tag(v),
                Header::Simple(simple),
                Header::Break,
                Header::Float(f64::from_bits(bits)),
            ] {
                let bytes = ciborium(h);
                let mut r = super::Reader { input: &bytes, pos: 0, max_depth: 16, max_props: 32 };
                let got = r.header().unwrap();
                let same = match (got, h) {
                    (Header::Float(a), Header::Float(b)) => a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan(),
                    (a, b) => a == b,
                };
                prop_assert!(same, "{h:?} read back as {got:?}");
                prop_assert_eq!(r.pos, bytes.len());
            }
        }

        #[test]
        fn heads_match_ciborium(v in prop_oneof![0u64..30, 0u64..70_000, any::<u32>().prop_map(u64::from), any::<u64>()]) {
            for (m, h) in [
                (major::UINT, Header::Positive(v)),
                (major::NINT, Header::Negative(v)),
                (major::BYTES, Header::Bytes(Some(v as usize))),
                (major::TEXT, Header::Text(Some(v as usize))),
                (major::ARRAY, Header::Array(Some(v as usize))),
                (major::MAP, Header::Map(Some(v as usize))),
            ] {
                prop_assert_eq!(ours(|e| e.head(m, v)), ciborium(h));
            }
        }
    }
}
