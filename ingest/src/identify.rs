//! `identify`: who a site's signed-in user is, as the site knows them. A page's tracker
//! (`pathlight.identify(user_id, traits)`) or the site's server (`POST /v1/identify` with an
//! ingest key) names a user and their traits (`{"plan": "pro", "seats": 4}`); the collector
//! keeps the latest traits per site and user, and timelines and the session explorer show
//! them beside the user's events.
//!
//! # The path of an identify through this module
//! 1. [`decode`]: the JSON body `{"site", "user_id", "traits"}` (the site may come as `?site=`
//!    instead), each field checked on its own with the same limits as events' fields and custom
//!    properties, so a refusal names the field (`traits.plan`) as a batch's refusal does.
//! 2. [`admit`]: a browser page of one of the site's origins, or a sender with one of the site's
//!    ingest keys. Unlike a batch, a request from no allowed origin always needs a key: traits
//!    describe a person, and an open site's `require_key = false` is about page views.
//! 3. The receiver stores [`Identify::traits_json`] in its `users` table, keyed by site and
//!    user id, the latest write winning (`ReplacingMergeTree` by the time it was received).

use crate::error::IngestError;
use crate::stages::SiteRules;
use pathlight_wire::{Field, Limits, PropValue, Props, WireError};

/// Largest identify body, bytes: 100 traits of 1 KB with their names fit with room to spare.
pub const MAX_BYTES: usize = 128 * 1024;
/// Most traits in one identify. More than an event's properties: a user record (name, plan,
/// company, country, signup date, …) is wider than one event's details.
pub const MAX_TRAITS: usize = 100;

/// A validated identify.
#[derive(Clone, Debug, PartialEq)]
pub struct Identify {
    /// The site.
    pub site: String,
    /// The site's own id of the user (the `user_id` its events carry).
    pub user_id: String,
    /// The user's traits, flat scalars by name; replaced as a whole by a later identify.
    pub traits: Props,
}

impl Identify {
    /// The traits as the JSON object they are stored as.
    pub fn traits_json(&self) -> String {
        serde_json::to_string(&self.traits).unwrap_or_else(|_| "{}".into())
    }
}

/// Whether an identify with `content_type` can be read: JSON, or text (a page's `fetch` of a
/// string body sends `text/plain`, which needs no CORS preflight), or none.
pub fn readable(content_type: Option<&str>) -> Result<(), IngestError> {
    let essence = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match essence.as_str() {
        "" | "application/json" | "text/plain" => Ok(()),
        _ => Err(IngestError::UnsupportedMediaType(
            content_type.unwrap_or_default().to_owned(),
        )),
    }
}

/// The identify in `body` (JSON), for `site_param` (`?site=`) when the body names no site.
pub fn decode(
    body: &[u8],
    site_param: Option<&str>,
    limits: &Limits,
) -> Result<Identify, IngestError> {
    if body.is_empty() {
        return Err(WireError::Empty.into());
    }
    if body.len() > MAX_BYTES {
        return Err(crate::rules::too_large(body.len(), MAX_BYTES));
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| WireError::Malformed {
            format: "JSON",
            detail: e.to_string(),
        })?;
    let serde_json::Value::Object(mut obj) = value else {
        return Err(WireError::WrongType {
            field: Field::batch("identify"),
            expected: "a JSON object {\"site\", \"user_id\", \"traits\"}",
        }
        .into());
    };
    let text = |obj: &mut serde_json::Map<String, serde_json::Value>, name: &'static str| match obj
        .remove(name)
    {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(WireError::WrongType {
            field: Field::batch(name),
            expected: "a string",
        }),
    };
    let site = match (text(&mut obj, "site")?, site_param) {
        (Some(s), _) if !s.is_empty() => s,
        (_, Some(p)) if !p.is_empty() => p.to_owned(),
        _ => {
            return Err(WireError::Missing {
                field: Field::batch("site"),
            }
            .into());
        }
    };
    let user_id = text(&mut obj, "user_id")?
        .filter(|u| !u.trim().is_empty())
        .ok_or(WireError::Missing {
            field: Field::batch("user_id"),
        })?;
    at_most(&user_id, limits.max_ident_len, || Field::batch("user_id"))?;
    let traits = match obj.remove("traits") {
        None | Some(serde_json::Value::Null) => Props::default(),
        Some(serde_json::Value::Object(map)) => traits(map, limits)?,
        Some(_) => {
            return Err(WireError::WrongType {
                field: Field::batch("traits"),
                expected: "an object of names to strings, numbers, booleans or null",
            }
            .into());
        }
    };
    Ok(Identify {
        site,
        user_id,
        traits,
    })
}

/// Traits from a JSON object: flat scalars, names and texts within the custom properties'
/// limits, at most [`MAX_TRAITS`].
pub fn traits(
    map: serde_json::Map<String, serde_json::Value>,
    limits: &Limits,
) -> Result<Props, WireError> {
    if map.len() > MAX_TRAITS {
        return Err(WireError::TooLong {
            field: Field::batch("traits"),
            len: map.len(),
            max: MAX_TRAITS,
        });
    }
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        let field = || Field::batch("traits").with_key(&k);
        if k.is_empty() {
            return Err(WireError::Missing { field: field() });
        }
        at_most(&k, limits.max_ident_len, field)?;
        let value = match v {
            serde_json::Value::Null => PropValue::Null,
            serde_json::Value::Bool(b) => PropValue::Bool(b),
            serde_json::Value::Number(n) => match n.as_f64().filter(|x| x.is_finite()) {
                Some(x) => PropValue::Number(x),
                None => {
                    return Err(WireError::OutOfRange {
                        field: field(),
                        detail: "numbers must be finite".into(),
                    });
                }
            },
            serde_json::Value::String(s) => {
                at_most(&s, limits.max_prop_len, field)?;
                PropValue::Text(s)
            }
            _ => {
                return Err(WireError::WrongType {
                    field: field(),
                    expected: "a string, number, boolean or null",
                });
            }
        };
        out.push((k, value));
    }
    Ok(out.into_iter().collect())
}

fn at_most(s: &str, max: usize, field: impl Fn() -> Field) -> Result<(), WireError> {
    if s.len() > max {
        return Err(WireError::TooLong {
            field: field(),
            len: s.len(),
            max,
        });
    }
    Ok(())
}

/// Whether a request for `site` may identify its users: the index of the ingest key it
/// carried, none when it came from a page of one of the site's origins. From anywhere else a
/// key is required, whether the site requires one for batches or not.
pub fn admit<S: SiteRules>(
    site: &S,
    key: Option<&str>,
    origin: Option<&str>,
    site_id: &str,
) -> Result<Option<usize>, IngestError> {
    struct KeyRequired<'a, S>(&'a S);
    impl<S: SiteRules> SiteRules for KeyRequired<'_, S> {
        fn origins(&self) -> &[String] {
            self.0.origins()
        }
        fn ingest_keys(&self) -> &[[u8; 32]] {
            self.0.ingest_keys()
        }
        fn require_key(&self) -> bool {
            true
        }
    }
    crate::keys::admit(&KeyRequired(site), key, origin, site_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(body: &str) -> Result<Identify, (&'static str, Option<String>)> {
        decode(body.as_bytes(), None, &Limits::default()).map_err(|e| (e.reason(), e.body().field))
    }

    #[test]
    fn an_identify_names_a_site_a_user_and_flat_traits() {
        let id = decoded(
            r#"{"site": "shop", "user_id": "u-42", "traits": {"plan": "pro", "seats": 4, "trial": false, "team": null}, "later": 1}"#,
        )
        .unwrap();
        assert_eq!((id.site.as_str(), id.user_id.as_str()), ("shop", "u-42"));
        assert_eq!(
            id.traits_json(),
            r#"{"plan":"pro","seats":4.0,"team":null,"trial":false}"#
        );
        // The site may come as `?site=`, and traits may be left out.
        let id = decode(br#"{"user_id": "u-42"}"#, Some("shop"), &Limits::default()).unwrap();
        assert_eq!((id.site.as_str(), id.traits_json()), ("shop", "{}".into()));
    }

    #[test]
    fn each_bad_field_is_named() {
        let long = "x".repeat(300);
        let huge = "x".repeat(2000);
        let many: String = (0..=MAX_TRAITS)
            .map(|i| format!("\"t{i}\": 1"))
            .collect::<Vec<_>>()
            .join(",");
        for (body, reason, field) in [
            ("", "empty", None),
            ("{", "malformed", None),
            ("[]", "wrong_type", Some("identify")),
            (r#"{"user_id": "u"}"#, "missing_field", Some("site")),
            (r#"{"site": "s"}"#, "missing_field", Some("user_id")),
            (
                r#"{"site": "s", "user_id": " "}"#,
                "missing_field",
                Some("user_id"),
            ),
            (
                r#"{"site": "s", "user_id": 42}"#,
                "wrong_type",
                Some("user_id"),
            ),
            (
                &format!(r#"{{"site": "s", "user_id": "{long}"}}"#),
                "too_long",
                Some("user_id"),
            ),
            (
                r#"{"site": "s", "user_id": "u", "traits": []}"#,
                "wrong_type",
                Some("traits"),
            ),
            (
                r#"{"site": "s", "user_id": "u", "traits": {"address": {"city": "Oslo"}}}"#,
                "wrong_type",
                Some("traits.address"),
            ),
            (
                r#"{"site": "s", "user_id": "u", "traits": {"tags": ["a"]}}"#,
                "wrong_type",
                Some("traits.tags"),
            ),
            (
                &format!(r#"{{"site": "s", "user_id": "u", "traits": {{"bio": "{huge}"}}}}"#),
                "too_long",
                Some("traits.bio"),
            ),
            (
                &format!(r#"{{"site": "s", "user_id": "u", "traits": {{"{long}": 1}}}}"#),
                "too_long",
                Some(&format!("traits.{}", &long[..64]) as &str),
            ),
            (
                &format!(r#"{{"site": "s", "user_id": "u", "traits": {{{many}}}}}"#),
                "too_long",
                Some("traits"),
            ),
        ] {
            assert_eq!(
                decoded(body).unwrap_err(),
                (reason, field.map(str::to_owned)),
                "{body}"
            );
        }
        let big = vec![b' '; MAX_BYTES + 1];
        let e = decode(&big, None, &Limits::default()).unwrap_err();
        assert_eq!((e.reason(), e.status().as_u16()), ("too_large", 413));
    }

    #[test]
    fn json_and_text_bodies_are_read() {
        for ok in [
            None,
            Some("application/json"),
            Some("text/plain;charset=UTF-8"),
        ] {
            assert!(readable(ok).is_ok(), "{ok:?}");
        }
        let e = readable(Some("application/cbor")).unwrap_err();
        assert_eq!(e.status().as_u16(), 415);
    }

    #[test]
    fn from_no_allowed_origin_a_key_is_always_required() {
        struct Open(Vec<String>);
        impl SiteRules for Open {
            fn origins(&self) -> &[String] {
                &self.0
            }
            fn ingest_keys(&self) -> &[[u8; 32]] {
                &[]
            }
            fn require_key(&self) -> bool {
                false
            }
        }
        let open = Open(vec!["https://shop.example".into()]);
        let reason = |key, origin| admit(&open, key, origin, "shop").map_err(|e| e.reason());
        assert_eq!(reason(None, Some("https://shop.example")), Ok(None));
        assert_eq!(reason(None, None), Err("key_required"));
        assert_eq!(
            reason(None, Some("https://else.example")),
            Err("key_required")
        );
        assert_eq!(reason(Some("guess"), None), Err("invalid_key"));
    }
}
