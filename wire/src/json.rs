//! The JSON forms: the same model as CBOR with full field names (for debugging and third-party
//! senders), and the simple array format that existing senders already produce.

use crate::error::{Field, WireError};
use crate::limits::Limits;
use crate::model::{Click, EventKind, FORMAT_VERSION, Id, PropValue, RawBatch, RawEvent, Size};
use serde::Deserialize;
use serde_json::value::RawValue;
use siphasher::sip128::{Hasher128, SipHasher13};
use std::collections::BTreeMap;
use std::hash::Hasher;

/// Encodes a batch as JSON with full field names.
pub fn encode(batch: &RawBatch) -> Vec<u8> {
    // Serializing plain data to a Vec cannot fail.
    serde_json::to_vec(batch).unwrap_or_default()
}

/// Decodes either JSON form. A bare array is the simple format and takes its site id from
/// `site` (the request's `?site=` parameter); an object is a full batch, whose `site_id` must
/// agree with `site` when both are given. Any unreadable event refuses the batch;
/// [`decode_with_refused`] keeps the others.
pub fn decode(bytes: &[u8], site: Option<&str>, limits: &Limits) -> Result<RawBatch, WireError> {
    crate::strict(decode_with_refused(bytes, site, limits)?)
}

/// Decodes either JSON form, refusing one event at a time where the form allows: an element of
/// the simple array that is not a readable event is listed by index with its reason and
/// stands as [`RawEvent::unreadable`] in the batch. The full form is read in one piece, as
/// the tracker's CBOR twin for debugging: any unreadable event refuses it.
pub fn decode_with_refused(
    bytes: &[u8],
    site: Option<&str>,
    limits: &Limits,
) -> Result<(RawBatch, Vec<(usize, WireError)>), WireError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(WireError::Empty);
    }
    if bytes.len() > limits.max_batch_bytes {
        return Err(WireError::TooLarge {
            size: bytes.len(),
            max: limits.max_batch_bytes,
        });
    }
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => decode_simple(bytes, site, limits),
        _ => {
            let batch = decode_full(bytes, limits)?;
            if let Some(site) = site.filter(|s| *s != batch.site_id) {
                return Err(WireError::OutOfRange {
                    field: Field::batch("site_id"),
                    detail: format!(
                        "batch is for site {:?} but was posted for {site:?}",
                        batch.site_id
                    ),
                });
            }
            Ok((batch, Vec::new()))
        }
    }
}

/// A serde error as a [`WireError`]: type mismatches and missing fields name their field, so
/// a JSON sender learns as much as a CBOR one; syntax errors are [`WireError::Malformed`].
/// `event` is the index of the event being read on its own (simple array form).
fn json_error(e: serde_path_to_error::Error<serde_json::Error>, event: Option<usize>) -> WireError {
    let mut path = e.path().to_string();
    if let Some(i) = event {
        path = if path == "." {
            format!("events[{i}]")
        } else {
            format!("events[{i}].{path}")
        };
    }
    let inner = e.into_inner();
    if inner.classify() == serde_json::error::Category::Data {
        let msg = inner.to_string();
        let missing = msg
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
            .map(|name| {
                if path == "." {
                    name.to_owned()
                } else {
                    format!("{path}.{name}")
                }
            });
        let field = Field::from_path(missing.as_deref().unwrap_or(&path));
        match (field, missing) {
            (Some(field), Some(_)) => return WireError::Missing { field },
            (Some(field), None) => {
                return WireError::WrongType {
                    field,
                    expected: expected_of(&msg),
                };
            }
            _ => {}
        }
    }
    let detail = if path.is_empty() || path == "." {
        inner.to_string()
    } else {
        format!("{path}: {inner}")
    };
    WireError::Malformed {
        format: "JSON",
        detail,
    }
}

/// What serde says a field should have held, in the words of the JSON form.
fn expected_of(msg: &str) -> &'static str {
    let Some(exp) = msg.split("expected ").nth(1) else {
        return "a value of another type";
    };
    let word = exp.split([' ', ',']).next().unwrap_or("");
    match word {
        "a" if exp.starts_with("a string") => "a string",
        "a" if exp.starts_with("a boolean") => "a boolean",
        "a" if exp.starts_with("a sequence") => "an array",
        "a" if exp.starts_with("a map") => "an object",
        "u8" | "u16" | "u32" | "u64" | "i8" | "i16" | "i32" | "i64" => "an integer",
        "f32" | "f64" => "a number",
        "struct" | "internally" => "an object",
        "one" => "one of pageview, click, scroll, engagement, custom",
        _ => "a value of another type",
    }
}

fn decode_full(bytes: &[u8], limits: &Limits) -> Result<RawBatch, WireError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let batch: RawBatch = serde_path_to_error::deserialize(de).map_err(|e| json_error(e, None))?;
    if batch.version != FORMAT_VERSION {
        return Err(WireError::Version {
            found: batch.version.into(),
            supported: FORMAT_VERSION,
        });
    }
    if batch.events.len() > limits.max_events {
        return Err(WireError::TooManyEvents {
            count: batch.events.len(),
            max: limits.max_events,
        });
    }
    Ok(batch)
}

/// One element of the simple array format:
/// `{"type":"click","session_id":"s1","user_id":1001,"url":"/catalog","created_at":"2025-01-01T10:00:00Z",
///   "user_agent":"Mozilla/5.0 …","payload":{"event_title":"checkout","element_id":"#submit-button","x":445,"y":315}}`
#[derive(Deserialize)]
struct SimpleEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<StringOrNumber>,
    #[serde(default)]
    session_id: Option<StringOrNumber>,
    #[serde(default)]
    user_id: Option<StringOrNumber>,
    url: String,
    #[serde(default)]
    referrer: Option<String>,
    /// The page's title (the model's `title`); `payload.event_title` is the event's own.
    #[serde(default)]
    title: Option<String>,
    created_at: Timestamp,
    #[serde(default)]
    user_agent: Option<String>,
    #[serde(default)]
    payload: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    Text(String),
    Number(serde_json::Number),
}

impl StringOrNumber {
    fn into_string(self) -> String {
        match self {
            StringOrNumber::Text(s) => s,
            StringOrNumber::Number(n) => n.to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Timestamp {
    Millis(i64),
    Text(String),
}

/// Parses an RFC 3339 timestamp (`2025-01-01T10:00:00Z`, with any offset) to ms since the epoch.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Derives a stable id from an event's exact bytes, so a sender without event ids that posts
/// the same event twice still gets it stored once.
fn content_id(site: &str, raw: &str) -> Id {
    let mut h = SipHasher13::new_with_keys(0x7061_7468_6c69_6768, 0x745f_6576_656e_7473);
    h.write(site.as_bytes());
    h.write_u8(0);
    h.write(raw.as_bytes());
    let v = h.finish128();
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&v.h1.to_le_bytes());
    out[8..].copy_from_slice(&v.h2.to_le_bytes());
    Id(out)
}

/// One event in the simple array form, the inverse of what [`decode`] reads: for exports and
/// generated files (`pathlight gen`). The id is kept, so importing the output twice stores it
/// once. A custom event whose name is one of the tracker's kinds would read back as that kind.
pub fn to_simple(e: &RawEvent) -> serde_json::Value {
    use serde_json::{Map, Value, json};
    let mut payload = Map::new();
    let mut put = |k: &str, v: Value| {
        payload.insert(k.to_owned(), v);
    };
    if let Some(t) = &e.event_title {
        put("event_title", json!(t));
    }
    for (prefix, size) in [("viewport", e.viewport), ("document", e.document)] {
        if size != Size::default() {
            put(&format!("{prefix}_w"), json!(size.w));
            put(&format!("{prefix}_h"), json!(size.h));
        }
    }
    let kind = match &e.kind {
        EventKind::Pageview => "pageview",
        EventKind::Click(c) => {
            put("element_id", json!(c.selector));
            put("x", json!(c.x));
            put("y", json!(c.y));
            put("tag", json!(c.tag));
            for (k, v) in [("text", &c.text), ("href", &c.href)] {
                if let Some(v) = v {
                    put(k, json!(v));
                }
            }
            // The shortest decimal that reads back as the same f32, not its f64 widening.
            let short = |f: f32| {
                f.to_string()
                    .parse::<serde_json::Number>()
                    .map_or(Value::Null, Value::Number)
            };
            put("rel_x", short(c.rel_x));
            put("rel_y", short(c.rel_y));
            put("element_box", json!(c.element_box));
            if c.fixed != 0 {
                put("fixed", json!(c.fixed));
            }
            "click"
        }
        EventKind::Scroll { max_depth_pct } => {
            put("max_depth_pct", json!(max_depth_pct));
            "scroll"
        }
        EventKind::Engagement { visible_ms } => {
            put("visible_ms", json!(visible_ms));
            "engagement"
        }
        EventKind::Custom { name } => name,
    };
    // Properties beside the kind's own fields, as the decoder keeps them; a property named
    // like one of those fields would read back as that field.
    for (k, v) in &e.props {
        payload.entry(k.clone()).or_insert(match v {
            PropValue::Null => Value::Null,
            PropValue::Bool(b) => json!(b),
            PropValue::Number(n) => json!(n),
            PropValue::Text(t) => json!(t),
        });
    }
    let mut out = Map::new();
    out.insert("id".into(), json!(e.id.to_string()));
    out.insert("type".into(), json!(kind));
    out.insert("created_at".into(), json!(e.timestamp));
    out.insert("session_id".into(), json!(e.session_id));
    out.insert("url".into(), json!(e.url));
    for (k, v) in [
        ("referrer", &e.referrer),
        ("title", &e.title),
        ("user_id", &e.user_id),
        ("user_agent", &e.user_agent),
    ] {
        if let Some(v) = v {
            out.insert(k.into(), json!(v));
        }
    }
    out.insert("payload".into(), Value::Object(payload));
    Value::Object(out)
}

fn decode_simple(
    bytes: &[u8],
    site: Option<&str>,
    limits: &Limits,
) -> Result<(RawBatch, Vec<(usize, WireError)>), WireError> {
    let site = site.filter(|s| !s.is_empty()).ok_or(WireError::Missing {
        field: Field::batch("site"),
    })?;
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let items: Vec<&RawValue> =
        serde_path_to_error::deserialize(de).map_err(|e| json_error(e, None))?;
    if items.len() > limits.max_events {
        return Err(WireError::TooManyEvents {
            count: items.len(),
            max: limits.max_events,
        });
    }
    let mut events = Vec::with_capacity(items.len());
    let mut refused = Vec::new();
    for (i, raw) in items.into_iter().enumerate() {
        let de = &mut serde_json::Deserializer::from_str(raw.get());
        let read = serde_path_to_error::deserialize(de)
            .map_err(|e| json_error(e, Some(i)))
            .and_then(|e: SimpleEvent| simple_to_raw(i, e, site, raw.get()));
        match read {
            Ok(e) => events.push(e),
            Err(e) => {
                refused.push((i, e));
                events.push(RawEvent::unreadable());
            }
        }
    }
    let batch = RawBatch {
        version: FORMAT_VERSION,
        site_id: site.to_owned(),
        // No send time in this format: timestamps are taken as they are, without skew correction.
        sent_at: 0,
        batch_id: content_id(site, std::str::from_utf8(bytes).unwrap_or_default()),
        events,
    };
    Ok((batch, refused))
}

fn simple_to_raw(i: usize, e: SimpleEvent, site: &str, raw: &str) -> Result<RawEvent, WireError> {
    let timestamp = match e.created_at {
        Timestamp::Millis(ms) => ms,
        // CSV has no numbers: its cells arrive as text.
        Timestamp::Text(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map_err(|_| WireError::WrongType {
                field: Field::event(i, "created_at"),
                expected: "an RFC 3339 timestamp or ms since the epoch",
            })?
        }
        Timestamp::Text(s) => parse_rfc3339_ms(&s).ok_or_else(|| WireError::WrongType {
            field: Field::event(i, "created_at"),
            expected: "an RFC 3339 timestamp or ms since the epoch",
        })?,
    };
    let id = match e.id.map(StringOrNumber::into_string) {
        Some(s) => Id::parse(&s).unwrap_or_else(|| content_id(site, &s)),
        None => content_id(site, raw),
    };
    let mut payload = e.payload;
    // A text field of its own, taken from the payload when it holds text (or a number: CSV
    // and some senders write ids as numbers) or null; any other value stays among the
    // properties rather than being lost.
    let text = |p: &mut BTreeMap<String, serde_json::Value>, k: &str| match p.get(k)? {
        serde_json::Value::String(_) | serde_json::Value::Number(_) | serde_json::Value::Null => {
            match p.remove(k)? {
                serde_json::Value::String(s) => Some(s),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        }
        _ => None,
    };
    // A payload number within `valid`, or a wrong-type error naming what was expected.
    let number = |p: &mut BTreeMap<String, serde_json::Value>,
                  k: &'static str,
                  valid: fn(f64) -> bool,
                  expected: &'static str| {
        p.remove(k)
            .map(|v| {
                v.as_f64()
                    .filter(|x| valid(*x))
                    .ok_or(WireError::WrongType {
                        field: Field::event(i, k),
                        expected,
                    })
            })
            .transpose()
    };
    let int = |p: &mut BTreeMap<String, serde_json::Value>, k: &'static str| {
        let valid = |x: f64| x.is_finite() && x.abs() <= f64::from(i32::MAX);
        number(p, k, valid, "a number").map(|x| x.map(|x| x.round() as i32))
    };
    let fraction = |p: &mut BTreeMap<String, serde_json::Value>, k: &'static str| {
        let valid = |x: f64| (0.0..=1.0).contains(&x);
        number(p, k, valid, "a number from 0 to 1").map(|x| x.map(|x| x as f32))
    };
    let event_title = text(&mut payload, "event_title");
    let mut size = |w: &'static str, h: &'static str| -> Result<Size, WireError> {
        Ok(Size {
            w: int(&mut payload, w)?.unwrap_or(0).max(0) as u32,
            h: int(&mut payload, h)?.unwrap_or(0).max(0) as u32,
        })
    };
    let viewport = size("viewport_w", "viewport_h")?;
    let document = size("document_w", "document_h")?;
    let kind = match e.kind.as_str() {
        "view" | "pageview" => EventKind::Pageview,
        "click" => {
            // Senders put a selector such as `#submit-button` in `element_id`.
            let selector = text(&mut payload, "element_id").unwrap_or_default();
            let element_id = Click::id_in_selector(&selector).map(str::to_owned);
            EventKind::Click(Click {
                x: int(&mut payload, "x")?.ok_or(WireError::Missing {
                    field: Field::event(i, "payload.x"),
                })?,
                y: int(&mut payload, "y")?.ok_or(WireError::Missing {
                    field: Field::event(i, "payload.y"),
                })?,
                element_id,
                selector,
                tag: text(&mut payload, "tag").unwrap_or_default(),
                text: text(&mut payload, "text"),
                href: text(&mut payload, "href"),
                rel_x: fraction(&mut payload, "rel_x")?.unwrap_or(0.0),
                rel_y: fraction(&mut payload, "rel_y")?.unwrap_or(0.0),
                element_box: match payload.remove("element_box") {
                    None => [0; 4],
                    Some(v) => serde_json::from_value(v).map_err(|_| WireError::WrongType {
                        field: Field::event(i, "element_box"),
                        expected: "an array of 4 integers [x, y, w, h]",
                    })?,
                },
                fixed: match int(&mut payload, "fixed")? {
                    None => 0,
                    Some(v) => u8::try_from(v).map_err(|_| WireError::WrongType {
                        field: Field::event(i, "fixed"),
                        expected: "0 (in flow), 1 (fixed) or 2 (sticky)",
                    })?,
                },
            })
        }
        // The tracker's own kinds, when the payload carries their field; without it they stay
        // custom events of that name, as senders used them before.
        "scroll" if payload.contains_key("max_depth_pct") => EventKind::Scroll {
            max_depth_pct: int(&mut payload, "max_depth_pct")?
                .unwrap_or(0)
                .clamp(0, 100) as u8,
        },
        "engagement" if payload.contains_key("visible_ms") => EventKind::Engagement {
            visible_ms: int(&mut payload, "visible_ms")?.unwrap_or(0).max(0) as u32,
        },
        name => EventKind::Custom {
            name: name.to_owned(),
        },
    };
    // What is left of the payload, whatever the kind: nested values as their JSON text.
    let props = payload
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::Null => PropValue::Null,
                serde_json::Value::Bool(b) => PropValue::Bool(b),
                serde_json::Value::Number(n) => PropValue::Number(n.as_f64().unwrap_or(0.0)),
                serde_json::Value::String(s) => PropValue::Text(s),
                other => PropValue::Text(other.to_string()),
            };
            (k, v)
        })
        .collect();
    Ok(RawEvent {
        id,
        timestamp,
        session_id: e
            .session_id
            .map(StringOrNumber::into_string)
            .unwrap_or_default(),
        url: e.url,
        referrer: e.referrer,
        title: e.title,
        viewport,
        document,
        user_id: e.user_id.map(StringOrNumber::into_string),
        user_agent: e.user_agent,
        event_title,
        props,
        kind,
    })
}
