//! One error type for everything that can be wrong with a batch, naming the field.

use alloc::string::{String, ToString};
use core::fmt;

/// Why a batch or an event was refused. Each variant names the offending field where there is
/// one (`site_id`, `events[3].url`, ...), so a sender can fix its payload from the message alone.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum WireError {
    /// The body had no bytes.
    #[error("empty body")]
    Empty,
    /// The body is larger than the batch byte limit.
    #[error("batch is {size} bytes, more than the limit of {max}")]
    TooLarge {
        /// Size of the body, bytes.
        size: usize,
        /// The limit, bytes.
        max: usize,
    },
    /// The bytes are not valid CBOR or JSON, or end early.
    #[error("malformed {format}: {detail}")]
    Malformed {
        /// `CBOR` or `JSON`.
        format: &'static str,
        /// What the parser saw, with its position.
        detail: String,
    },
    /// The batch declares a format version this build does not read.
    #[error("unsupported format version {found}; the newest this receiver reads is {supported}")]
    Version {
        /// The version in the batch.
        found: u64,
        /// The newest version this crate reads in the batch's encoding.
        supported: u8,
    },
    /// A field holds a value of the wrong CBOR/JSON type.
    #[error("{field}: expected {expected}")]
    WrongType {
        /// The field path.
        field: Field,
        /// What the field must hold.
        expected: &'static str,
    },
    /// A required field is absent.
    #[error("{field}: required field is missing")]
    Missing {
        /// The field path.
        field: Field,
    },
    /// A string or map is longer than its limit.
    #[error("{field}: {len} is longer than the limit of {max}")]
    TooLong {
        /// The field path.
        field: Field,
        /// Its length (bytes for strings, entries for maps).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The batch holds more events than allowed.
    #[error("events: {count} events, more than the limit of {max}")]
    TooManyEvents {
        /// Events in the batch.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A number or timestamp is outside its valid range.
    #[error("{field}: {detail}")]
    OutOfRange {
        /// The field path.
        field: Field,
        /// The value and the range it must lie in.
        detail: String,
    },
    /// Arrays or maps are nested deeper than the decoder follows.
    #[error("nesting deeper than {max} levels")]
    TooDeep {
        /// The depth limit.
        max: usize,
    },
    /// The page URL is on a host that none of the site's origins names.
    #[error("{field}: host {host:?} is not one of the site's origins")]
    HostNotAllowed {
        /// The field path (`events[3].url`).
        field: Field,
        /// The URL's host.
        host: String,
    },
    /// The event, at its corrected time, is older than the storage keeps events: stored, it
    /// would be deleted by retention, so it is refused instead of acknowledged.
    #[error(
        "{field}: {age_days} days old, older than retention_days ({retention_days}): storage would delete it"
    )]
    TooOld {
        /// The field path (`events[3].timestamp`).
        field: Field,
        /// Whole days between the event's corrected time and its receipt.
        age_days: i64,
        /// The receiver's retention window, days.
        retention_days: u32,
    },
    /// The event, at its corrected time, lies more than
    /// [`MAX_AHEAD_MS`](crate::MAX_AHEAD_MS) after its receipt.
    #[error("{field}: {ahead_ms} ms after its receipt, more than a day in the future")]
    InFuture {
        /// The field path (`events[3].timestamp`).
        field: Field,
        /// How far ahead of the receiver's clock, ms.
        ahead_ms: i64,
    },
}

impl WireError {
    /// The field path the error is about, if it is about one field.
    pub fn field(&self) -> Option<String> {
        match self {
            WireError::WrongType { field, .. }
            | WireError::Missing { field }
            | WireError::TooLong { field, .. }
            | WireError::OutOfRange { field, .. }
            | WireError::HostNotAllowed { field, .. }
            | WireError::TooOld { field, .. }
            | WireError::InFuture { field, .. } => Some(field.to_string()),
            WireError::TooManyEvents { .. } => Some("events".into()),
            WireError::Version { .. } => Some("version".into()),
            _ => None,
        }
    }

    /// A short stable label for metrics (`rejected_total{reason=...}`).
    pub fn reason(&self) -> &'static str {
        match self {
            WireError::Empty => "empty",
            WireError::TooLarge { .. } => "too_large",
            WireError::Malformed { .. } => "malformed",
            WireError::Version { .. } => "version",
            WireError::WrongType { .. } => "wrong_type",
            WireError::Missing { .. } => "missing_field",
            WireError::TooLong { .. } => "too_long",
            WireError::TooManyEvents { .. } => "too_many_events",
            WireError::OutOfRange { .. } => "out_of_range",
            WireError::TooDeep { .. } => "too_deep",
            WireError::HostNotAllowed { .. } => "host_not_allowed",
            WireError::TooOld { .. } => "too_old",
            WireError::InFuture { .. } => "in_future",
        }
    }
}

/// A field path, built without allocating until an error is displayed:
/// `site_id`, `events[3].url`, `events[3].props.plan`.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// Index of the event in the batch, for event fields.
    pub event: Option<usize>,
    /// The field's JSON name.
    pub name: &'static str,
    /// A map key under the field (custom property names).
    pub key: Option<String>,
}

impl Field {
    /// A field of the batch envelope.
    pub const fn batch(name: &'static str) -> Field {
        Field {
            event: None,
            name,
            key: None,
        }
    }

    /// A field of event `index`.
    pub const fn event(index: usize, name: &'static str) -> Field {
        Field {
            event: Some(index),
            name,
            key: None,
        }
    }

    /// The field a JSON path names (`sent_at`, `events[3].viewport.w`, `events[0].props.plan`),
    /// if it is one of the format's fields.
    pub fn from_path(path: &str) -> Option<Field> {
        const NAMES: &[&str] = &[
            "version",
            "site_id",
            "sent_at",
            "batch_id",
            "events",
            "id",
            "timestamp",
            "session_id",
            "url",
            "referrer",
            "title",
            "viewport",
            "viewport.w",
            "viewport.h",
            "document",
            "document.w",
            "document.h",
            "user_id",
            "user_agent",
            "event_title",
            "type",
            "x",
            "y",
            "element_id",
            "selector",
            "tag",
            "text",
            "href",
            "rel_x",
            "rel_y",
            "element_box",
            "max_depth_pct",
            "visible_ms",
            "name",
            "props",
            "created_at",
            "payload",
        ];
        let (event, rest) = match path.strip_prefix("events[") {
            Some(r) => {
                let (idx, rest) = r.split_once(']')?;
                (
                    Some(idx.parse().ok()?),
                    rest.strip_prefix('.').unwrap_or(rest),
                )
            }
            None => (None, path),
        };
        if rest.is_empty() {
            return event.map(|_| Field {
                event: None,
                name: "events",
                key: None,
            });
        }
        let (name, key) = match rest.split_once("props.").filter(|(pre, _)| pre.is_empty()) {
            Some((_, key)) => ("props", Some(key)),
            None => (rest, None),
        };
        let name = NAMES.iter().find(|n| **n == name)?;
        let field = Field {
            event,
            name,
            key: None,
        };
        Some(match key {
            Some(k) => field.with_key(k),
            None => field,
        })
    }

    /// The same field, narrowed to one map key.
    pub fn with_key(mut self, key: &str) -> Field {
        self.key = Some(key.chars().take(64).collect());
        self
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(i) = self.event {
            write!(f, "events[{i}].")?;
        }
        f.write_str(self.name)?;
        if let Some(k) = &self.key {
            write!(f, ".{k}")?;
        }
        Ok(())
    }
}
