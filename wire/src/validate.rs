//! Value checks on a decoded batch. The envelope is checked as a whole; each event on its own,
//! so that one bad event does not cost the good ones beside it.

use crate::error::{Field, WireError};
use crate::limits::{Limits, MAX_AHEAD_MS, MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS};
use crate::model::{EventKind, PropValue, Props, RawBatch, RawEvent};
use alloc::format;
use alloc::string::String;

/// Checks the envelope: site id and send time. `sent_at == 0` means "unknown" (simple format).
pub fn validate_envelope(batch: &RawBatch, limits: &Limits) -> Result<(), WireError> {
    let site = Field::batch("site_id");
    if batch.site_id.is_empty() {
        return Err(WireError::Missing { field: site });
    }
    len(&batch.site_id, limits.max_ident_len, || site.clone())?;
    if batch.sent_at != 0 {
        timestamp(batch.sent_at, || Field::batch("sent_at"))?;
    }
    Ok(())
}

/// An event's time on the receiver's clock: the client's time shifted by the client clock's
/// offset (`received_at - sent_at`), or as sent when the batch has no `sent_at` (0).
/// Enrichment stores this time, so validation judges it.
pub fn corrected_time(timestamp: i64, sent_at: i64, received_at: i64) -> i64 {
    if sent_at == 0 {
        timestamp
    } else {
        timestamp.saturating_add(received_at.saturating_sub(sent_at))
    }
}

/// Checks one event (at `index` in its batch) against the limits. Its time is judged twice:
/// against the batch's `sent_at` (same clock: a tracker's skew between its own events), and,
/// corrected to the receiver's clock, against `received_at`: at most [`MAX_AHEAD_MS`] ahead
/// (`in_future`), and within `limits.retention_days` (`too_old`), since storage would delete
/// an older event after it was acknowledged. Without `sent_at` (simple form, imports) only
/// the second applies, to the time as sent.
pub fn validate_event(
    e: &RawEvent,
    index: usize,
    sent_at: i64,
    received_at: i64,
    limits: &Limits,
) -> Result<(), WireError> {
    let f = |name| move || Field::event(index, name);
    timestamp(e.timestamp, f("timestamp"))?;
    if sent_at != 0 {
        let ahead = e.timestamp - sent_at;
        if ahead > limits.max_future_skew_ms {
            return Err(range(
                f("timestamp"),
                format!("{ahead} ms after the batch's sent_at"),
            ));
        }
        if -ahead > limits.max_event_age_ms {
            return Err(range(
                f("timestamp"),
                format!(
                    "{} ms older than the batch's sent_at (limit {})",
                    -ahead, limits.max_event_age_ms
                ),
            ));
        }
    }
    let at = corrected_time(e.timestamp, sent_at, received_at);
    let ahead = at.saturating_sub(received_at);
    if ahead > MAX_AHEAD_MS {
        return Err(WireError::InFuture {
            field: f("timestamp")(),
            ahead_ms: ahead,
        });
    }
    let age = received_at.saturating_sub(at);
    if limits.retention_days > 0 && age > i64::from(limits.retention_days) * DAY_MS {
        return Err(WireError::TooOld {
            field: f("timestamp")(),
            age_days: age / DAY_MS,
            retention_days: limits.retention_days,
        });
    }
    if e.url.is_empty() {
        return Err(WireError::Missing { field: f("url")() });
    }
    len(&e.url, limits.max_url_len, f("url"))?;
    opt_len(&e.referrer, limits.max_url_len, f("referrer"))?;
    opt_len(&e.title, limits.max_title_len, f("title"))?;
    len(&e.session_id, limits.max_ident_len, f("session_id"))?;
    opt_len(&e.user_id, limits.max_ident_len, f("user_id"))?;
    opt_len(&e.user_agent, limits.max_user_agent_len, f("user_agent"))?;
    opt_len(&e.event_title, limits.max_title_len, f("event_title"))?;
    at_most(
        e.viewport.w.into(),
        limits.max_viewport.into(),
        f("viewport.w"),
    )?;
    at_most(
        e.viewport.h.into(),
        limits.max_viewport.into(),
        f("viewport.h"),
    )?;
    at_most(
        e.document.w.into(),
        limits.max_coordinate.into(),
        f("document.w"),
    )?;
    at_most(
        e.document.h.into(),
        limits.max_coordinate.into(),
        f("document.h"),
    )?;
    match &e.kind {
        EventKind::Pageview => {}
        EventKind::Click(c) => {
            let max = i64::from(limits.max_coordinate);
            for (v, name) in [(c.x, "x"), (c.y, "y")] {
                within(v.into(), -max, max, f(name))?;
            }
            for (v, name) in [(c.rel_x, "rel_x"), (c.rel_y, "rel_y")] {
                if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                    return Err(range(
                        f(name),
                        format!("{v} is not a fraction between 0 and 1"),
                    ));
                }
            }
            let [bx, by, bw, bh] = c.element_box;
            within(bx.into(), -max, max, f("element_box"))?;
            within(by.into(), -max, max, f("element_box"))?;
            within(bw.into(), 0, max, f("element_box"))?;
            within(bh.into(), 0, max, f("element_box"))?;
            within(c.fixed.into(), 0, crate::model::STICKY.into(), f("fixed"))?;
            opt_len(&c.element_id, limits.max_ident_len, f("element_id"))?;
            len(&c.selector, limits.max_selector_len, f("selector"))?;
            len(&c.tag, limits.max_ident_len, f("tag"))?;
            opt_len(&c.text, limits.max_text_len, f("text"))?;
            opt_len(&c.href, limits.max_url_len, f("href"))?;
        }
        EventKind::Scroll { max_depth_pct } => {
            at_most((*max_depth_pct).into(), 100, f("max_depth_pct"))?;
        }
        EventKind::Engagement { visible_ms } => {
            // A page view cannot be visible for longer than a day between two reports.
            at_most((*visible_ms).into(), 86_400_000, f("visible_ms"))?;
        }
        EventKind::Custom { name } => {
            if name.is_empty() {
                return Err(WireError::Missing { field: f("name")() });
            }
            len(name, limits.max_ident_len, f("name"))?;
        }
    }
    props(&e.props, index, limits)?;
    Ok(())
}

const DAY_MS: i64 = 86_400_000;

/// The properties of event `index`, of any kind: their number, each name and value, and their
/// size as the JSON they are stored as.
fn props(props: &Props, index: usize, limits: &Limits) -> Result<(), WireError> {
    let f = || Field::event(index, "props");
    if props.len() > limits.max_props {
        return Err(WireError::TooLong {
            field: f(),
            len: props.len(),
            max: limits.max_props,
        });
    }
    for (k, v) in props {
        let field = || f().with_key(k);
        len(k, limits.max_ident_len, field)?;
        match v {
            PropValue::Text(s) => len(s, limits.max_prop_len, field)?,
            PropValue::Number(x) if !x.is_finite() => {
                return Err(range(field, "numbers must be finite".into()));
            }
            _ => {}
        }
    }
    let json: usize = props
        .iter()
        .map(|(k, v)| {
            json_len(k)
                + 2
                + match v {
                    PropValue::Text(s) => json_len(s),
                    // The longest number, `true`/`false` or `null`.
                    _ => 24,
                }
        })
        .sum();
    if json > limits.max_props_json_bytes {
        return Err(WireError::TooLong {
            field: f(),
            len: json,
            max: limits.max_props_json_bytes,
        });
    }
    Ok(())
}

/// `s` as a JSON string, quotes included: serde_json writes control characters as `\uXXXX`
/// (six bytes) except the five with short escapes, and `"` and `\` as two.
fn json_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..0x20 => 6,
            _ => 1,
        })
        .sum::<usize>()
}

fn range(field: impl FnOnce() -> Field, detail: String) -> WireError {
    WireError::OutOfRange {
        field: field(),
        detail,
    }
}

fn timestamp(ms: i64, field: impl FnOnce() -> Field) -> Result<(), WireError> {
    if !(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&ms) {
        return Err(range(
            field,
            format!("{ms} is not a plausible time in ms since the epoch (2015 to 2100)"),
        ));
    }
    Ok(())
}

fn len(s: &str, max: usize, field: impl FnOnce() -> Field) -> Result<(), WireError> {
    if s.len() > max {
        return Err(WireError::TooLong {
            field: field(),
            len: s.len(),
            max,
        });
    }
    Ok(())
}

fn opt_len(s: &Option<String>, max: usize, field: impl FnOnce() -> Field) -> Result<(), WireError> {
    s.as_deref().map_or(Ok(()), |s| len(s, max, field))
}

fn at_most(v: i64, max: i64, field: impl FnOnce() -> Field) -> Result<(), WireError> {
    within(v, 0, max, field)
}

fn within(v: i64, min: i64, max: i64, field: impl FnOnce() -> Field) -> Result<(), WireError> {
    if !(min..=max).contains(&v) {
        return Err(range(field, format!("{v} is outside {min}..={max}")));
    }
    Ok(())
}
