//! Validation: every limit is enforced and names its field; good events pass.

use super::{click_event, typical_batch};
use pathlight_wire::validate::{validate_envelope, validate_event};
use pathlight_wire::{EventKind, Limits, PropValue, WireError, json};

fn check(e: &pathlight_wire::RawEvent) -> Result<(), WireError> {
    let b = typical_batch();
    validate_event(e, 3, b.sent_at, b.sent_at + 50, &Limits::default())
}

fn field_of(r: Result<(), WireError>) -> String {
    r.expect_err("expected a validation error")
        .field()
        .unwrap_or_default()
}

#[test]
fn the_typical_batch_is_valid() {
    let b = typical_batch();
    validate_envelope(&b, &Limits::default()).unwrap();
    for (i, e) in b.events.iter().enumerate() {
        validate_event(e, i, b.sent_at, b.sent_at, &Limits::default()).unwrap();
    }
}

#[test]
fn overlong_strings_name_their_field() {
    let mut e = click_event(1);
    e.url = format!("https://x/{}", "a".repeat(3000));
    assert_eq!(field_of(check(&e)), "events[3].url");
    let mut e = click_event(1);
    if let EventKind::Click(c) = &mut e.kind {
        c.selector = "div > ".repeat(200);
    }
    assert_eq!(field_of(check(&e)), "events[3].selector");
    let mut e = click_event(1);
    e.title = Some("t".repeat(513));
    assert_eq!(field_of(check(&e)), "events[3].title");
}

#[test]
fn coordinates_and_fractions_are_range_checked() {
    for (mutate, field) in [
        (
            Box::new(|c: &mut pathlight_wire::Click| c.x = 5_000_000) as Box<dyn Fn(&mut _)>,
            "events[3].x",
        ),
        (
            Box::new(|c: &mut pathlight_wire::Click| c.rel_y = 1.5),
            "events[3].rel_y",
        ),
        (
            Box::new(|c: &mut pathlight_wire::Click| c.rel_x = f32::NAN),
            "events[3].rel_x",
        ),
        (
            Box::new(|c: &mut pathlight_wire::Click| c.element_box[2] = -1),
            "events[3].element_box",
        ),
    ] {
        let mut e = click_event(1);
        if let EventKind::Click(c) = &mut e.kind {
            mutate(c);
        }
        assert_eq!(field_of(check(&e)), field);
    }
    let mut e = click_event(1);
    e.viewport.w = 50_000;
    assert_eq!(field_of(check(&e)), "events[3].viewport.w");
    e = click_event(1);
    e.kind = EventKind::Scroll { max_depth_pct: 101 };
    assert_eq!(field_of(check(&e)), "events[3].max_depth_pct");
}

#[test]
fn clock_skew_is_bounded_relative_to_the_batch() {
    let b = typical_batch();
    let mut e = click_event(1);
    e.timestamp = b.sent_at + 10 * 60_000;
    assert_eq!(field_of(check(&e)), "events[3].timestamp");
    e.timestamp = b.sent_at - 8 * 24 * 3_600_000;
    assert_eq!(field_of(check(&e)), "events[3].timestamp");
    e.timestamp = 12;
    assert_eq!(field_of(check(&e)), "events[3].timestamp");
    // Without sent_at (simple format) old events pass without a retention window, and the
    // future is judged against the receiver's clock: up to a day ahead.
    e.timestamp = b.sent_at - 300 * DAY;
    validate_event(&e, 0, 0, b.sent_at, &Limits::default()).unwrap();
    e.timestamp = b.sent_at + 3_600_000;
    validate_event(&e, 0, 0, b.sent_at, &Limits::default()).unwrap();
    e.timestamp = b.sent_at + DAY + 1;
    let err = validate_event(&e, 0, 0, b.sent_at, &Limits::default()).unwrap_err();
    assert_eq!(
        (err.reason(), err.field().as_deref()),
        ("in_future", Some("events[0].timestamp"))
    );
}

const DAY: i64 = 86_400_000;

/// Limits with a retention window of `days`.
fn retention(days: u32) -> Limits {
    Limits {
        retention_days: days,
        ..Limits::default()
    }
}

#[test]
fn events_older_than_the_retention_window_are_too_old() {
    let now = typical_batch().sent_at;
    let mut e = click_event(1);
    e.timestamp = now - 400 * DAY - 1;
    let err = validate_event(&e, 2, 0, now, &retention(400)).unwrap_err();
    assert_eq!(
        (err.reason(), err.field().as_deref()),
        ("too_old", Some("events[2].timestamp"))
    );
    assert_eq!(
        err.to_string(),
        "events[2].timestamp: 400 days old, older than retention_days (400): storage would delete it"
    );
    // On the window's edge it is kept, and 0 keeps any age.
    e.timestamp = now - 400 * DAY;
    validate_event(&e, 2, 0, now, &retention(400)).unwrap();
    e.timestamp = now - 4000 * DAY;
    validate_event(&e, 2, 0, now, &retention(0)).unwrap();
}

#[test]
fn the_window_judges_the_time_corrected_to_the_receivers_clock() {
    let b = typical_batch();
    let mut e = click_event(1);
    // Five days before the batch was sent, by the client's clock.
    e.timestamp = b.sent_at - 5 * DAY;
    // A client clock that is right: five days old, over a three-day window.
    let err = validate_event(&e, 0, b.sent_at, b.sent_at, &retention(3)).unwrap_err();
    assert_eq!(err.reason(), "too_old");
    // A client clock five days slow, an event a minute before the send: by that clock five
    // days old, on the receiver's a minute.
    e.timestamp = b.sent_at - 60_000;
    validate_event(&e, 0, b.sent_at, b.sent_at + 5 * DAY, &retention(3)).unwrap();
    // A client clock two days fast sends its events from "the future": corrected, they are
    // not, and the batch-relative skew rule does not see the clock either.
    e.timestamp = b.sent_at;
    validate_event(&e, 0, b.sent_at, b.sent_at - 2 * DAY, &retention(3)).unwrap();
    // The corrected time is what enrichment stores.
    assert_eq!(
        pathlight_wire::validate::corrected_time(e.timestamp, b.sent_at, b.sent_at - 2 * DAY),
        b.sent_at - 2 * DAY
    );
    assert_eq!(
        pathlight_wire::validate::corrected_time(e.timestamp, 0, b.sent_at - 2 * DAY),
        e.timestamp,
        "no sent_at: as sent"
    );
}

#[test]
fn properties_are_bounded_on_any_kind() {
    // A click's properties (the simple form's extra payload fields) as a custom event's.
    let mut e = click_event(1);
    e.props = (0..40)
        .map(|i| (format!("k{i}"), PropValue::Bool(true)))
        .collect();
    assert_eq!(field_of(check(&e)), "events[3].props");
    let mut e = click_event(1);
    e.kind = EventKind::Custom { name: "n".into() };
    e.props = [("plan".to_string(), PropValue::Number(f64::INFINITY))]
        .into_iter()
        .collect();
    assert_eq!(field_of(check(&e)), "events[3].props.plan");
    let mut e = click_event(1);
    e.event_title = Some("t".repeat(513));
    assert_eq!(field_of(check(&e)), "events[3].event_title");

    // Properties at every per-value limit pass; the same count and lengths of control
    // characters, six bytes each once stored as JSON, are refused as a whole.
    let custom = |fill: char| {
        let mut e = click_event(1);
        e.props = (0..32)
            .map(|i| {
                (
                    format!("k{i:0>250}"),
                    PropValue::Text(fill.to_string().repeat(1024)),
                )
            })
            .collect();
        e.kind = EventKind::Custom { name: "n".into() };
        e
    };
    assert_eq!(check(&custom('a')), Ok(()));
    assert_eq!(field_of(check(&custom('\u{1}'))), "events[3].props");
}

#[test]
fn envelope_needs_a_site_and_a_plausible_send_time() {
    let mut b = typical_batch();
    b.site_id.clear();
    assert_eq!(
        validate_envelope(&b, &Limits::default())
            .unwrap_err()
            .field()
            .unwrap(),
        "site_id"
    );
    let mut b = typical_batch();
    b.sent_at = 99_999_999_999_999;
    assert_eq!(
        validate_envelope(&b, &Limits::default())
            .unwrap_err()
            .field()
            .unwrap(),
        "sent_at"
    );
}

#[test]
fn the_simple_array_format_maps_to_the_model() {
    let body = br##"[{"type":"click","session_id":"user-session-1001","user_id":1001,"url":"/catalog?foo=bar",
        "created_at":"2025-01-01T10:00:00Z","user_agent":"Mozilla/5.0 (X11; Linux x86_64)",
        "payload":{"event_title":"checkout","element_id":"#submit-button","x":445,"y":315}},
        {"type":"view","session_id":"user-session-1001","url":"/catalog","created_at":"2025-01-01T10:00:01+01:00"}]"##;
    let b = json::decode(body, Some("demo"), &Limits::default()).unwrap();
    assert_eq!(b.site_id, "demo");
    assert_eq!(b.events.len(), 2);
    let click = &b.events[0];
    assert_eq!(click.timestamp, 1_735_725_600_000);
    assert_eq!(click.user_id.as_deref(), Some("1001"));
    assert_eq!(click.event_title.as_deref(), Some("checkout"));
    assert_eq!(click.title, None, "the page's title is another field");
    assert!(click.props.is_empty(), "every payload field has its own");
    assert_eq!(
        click.user_agent.as_deref(),
        Some("Mozilla/5.0 (X11; Linux x86_64)")
    );
    let EventKind::Click(c) = &click.kind else {
        panic!("not a click")
    };
    assert_eq!((c.x, c.y), (445, 315));
    assert_eq!(c.selector, "#submit-button");
    assert_eq!(c.element_id.as_deref(), Some("submit-button"));
    assert_eq!(b.events[1].kind, EventKind::Pageview);
    assert_eq!(b.events[1].timestamp, 1_735_725_601_000 - 3_600_000);
    // Same bytes, same ids: a resend is deduplicated downstream.
    let again = json::decode(body, Some("demo"), &Limits::default()).unwrap();
    assert_eq!(again.events[0].id, click.id);
    assert_ne!(b.events[0].id, b.events[1].id);
    // The site must come from the query.
    assert_eq!(
        json::decode(body, None, &Limits::default())
            .unwrap_err()
            .field()
            .unwrap(),
        "site"
    );
    // A wrong type names the element and field.
    let bad = br#"[{"type":"click","url":"/","created_at":true}]"#;
    let err = json::decode(bad, Some("demo"), &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("events[0]") && err.contains("created_at"),
        "{err}"
    );
}

#[test]
fn the_simple_form_carries_what_heatmaps_and_scroll_maps_need() {
    let body = br##"[{"type":"click","url":"/p","created_at":1735725600000,
        "payload":{"x":700,"y":1210,"viewport_w":1440,"viewport_h":900,"document_w":1440,"document_h":3200,
        "element_id":"#buy","tag":"button","text":"Buy","rel_x":0.25,"rel_y":0.5,"element_box":[600,1190,400,40]}},
        {"type":"scroll","url":"/p","created_at":1735725600001,"payload":{"max_depth_pct":75}},
        {"type":"engagement","url":"/p","created_at":1735725600002,"payload":{"visible_ms":4200}},
        {"type":"scroll","url":"/p","created_at":1735725600003,"payload":{"direction":"down"}}]"##;
    let b = json::decode(body, Some("demo"), &Limits::default()).unwrap();
    let click = &b.events[0];
    assert_eq!((click.viewport.w, click.viewport.h), (1440, 900));
    assert_eq!((click.document.w, click.document.h), (1440, 3200));
    let EventKind::Click(c) = &click.kind else {
        panic!("not a click")
    };
    assert_eq!(
        (c.rel_x, c.rel_y, c.element_box),
        (0.25, 0.5, [600, 1190, 400, 40])
    );
    assert_eq!((c.tag.as_str(), c.text.as_deref()), ("button", Some("Buy")));
    assert_eq!(b.events[1].kind, EventKind::Scroll { max_depth_pct: 75 });
    assert_eq!(b.events[2].kind, EventKind::Engagement { visible_ms: 4200 });
    // Without its field, a "scroll" stays the custom event senders meant.
    assert!(matches!(&b.events[3].kind, EventKind::Custom { name, .. } if name == "scroll"));
    let bad = br#"[{"type":"click","url":"/","created_at":1,"payload":{"x":1,"y":1,"rel_x":2}}]"#;
    let err = json::decode(bad, Some("demo"), &Limits::default()).unwrap_err();
    assert_eq!(err.field().unwrap(), "events[0].rel_x");
}

#[test]
fn every_payload_field_of_the_simple_form_is_kept() {
    let body = br##"[{"type":"view","url":"/p","title":"Pricing - Shop","created_at":1735725600000,
        "payload":{"event_title":"landing","viewport_w":1440,"plan":"pro","seats":3,"trial":false,
        "coupon":null,"ab":{"arm":"b"}}},
        {"type":"click","url":"/p","created_at":1735725600001,
        "payload":{"event_title":"checkout","element_id":"#buy","x":445,"y":315,"tag":"button",
        "campaign":"winter","position":2,"text":["not","text"]}}]"##;
    let b = json::decode(body, Some("demo"), &Limits::default()).unwrap();
    let (view, click) = (&b.events[0], &b.events[1]);
    assert_eq!(view.kind, EventKind::Pageview);
    assert_eq!(view.title.as_deref(), Some("Pricing - Shop"));
    assert_eq!(view.event_title.as_deref(), Some("landing"));
    assert_eq!(
        view.viewport.w, 1440,
        "a field of its own is not a property"
    );
    let text = |s: &str| PropValue::Text(s.into());
    let view_props: Vec<_> = view.props.iter().cloned().collect();
    assert_eq!(
        view_props,
        [
            ("ab".into(), text(r#"{"arm":"b"}"#)),
            ("coupon".into(), PropValue::Null),
            ("plan".into(), text("pro")),
            ("seats".into(), PropValue::Number(3.0)),
            ("trial".into(), PropValue::Bool(false)),
        ]
    );
    assert_eq!(click.event_title.as_deref(), Some("checkout"));
    assert_eq!(click.title, None);
    let EventKind::Click(c) = &click.kind else {
        panic!("not a click")
    };
    assert_eq!(
        (c.x, c.tag.as_str(), c.text.as_deref()),
        (445, "button", None)
    );
    let click_props: Vec<_> = click.props.iter().cloned().collect();
    assert_eq!(
        click_props,
        [
            ("campaign".into(), text("winter")),
            ("position".into(), PropValue::Number(2.0)),
            // Not text: kept as a property rather than lost.
            ("text".into(), text(r#"["not","text"]"#)),
        ]
    );
    // They pass validation, and they cross CBOR (the import's path) unchanged.
    for (i, e) in b.events.iter().enumerate() {
        validate_event(e, i, 0, 1_735_725_600_000, &Limits::default()).unwrap();
    }
    let cbor = pathlight_wire::cbor::encode(&b);
    assert_eq!(
        pathlight_wire::cbor::decode(&cbor, &Limits::default()).unwrap(),
        b
    );
}

#[test]
fn every_kind_survives_the_simple_form_both_ways() {
    let mut events = typical_batch().events;
    for (i, e) in events.iter_mut().enumerate() {
        // The simple form has no place for an event without a session of its own.
        e.session_id = format!("s{i}");
    }
    // The event's own title and properties beside the page's title, on any kind.
    events[0].event_title = Some("landing".into());
    events[1].event_title = Some("add to cart".into());
    events[1]
        .props
        .insert("campaign".into(), PropValue::Text("winter".into()));
    let array: Vec<serde_json::Value> = events.iter().map(json::to_simple).collect();
    let body = serde_json::to_vec(&array).unwrap();
    let back = json::decode(&body, Some("demo"), &Limits::default()).unwrap();
    assert_eq!(back.events, events);
}

#[test]
fn decode_errors_are_specific() {
    let limits = Limits::default();
    use pathlight_wire::cbor;
    assert_eq!(cbor::decode(&[], &limits).unwrap_err(), WireError::Empty);
    // The encoder writes its layout's version (`a5 00 01 …`): a newer one, by hand.
    let mut bytes = cbor::encode(&typical_batch());
    bytes[2] = 3;
    assert!(matches!(
        cbor::decode(&bytes, &limits),
        Err(WireError::Version {
            found: 3,
            supported: 2
        })
    ));
    let mut b = typical_batch();
    b.events = (0..501).map(click_event_n).collect();
    assert!(matches!(
        cbor::decode(&cbor::encode(&b), &limits),
        Err(WireError::TooManyEvents { count: 501, .. })
    ));
    // A URL that is a number, not text.
    let mut bytes = cbor::encode(&typical_batch());
    let url = b"https://shop.example/catalog";
    let at = bytes.windows(url.len()).position(|w| w == url).unwrap() - 2;
    assert_eq!(bytes[at], 0x78, "text header with a 1-byte length");
    bytes[at] = 0x18; // unsigned int, 1-byte argument
    bytes[at + 1] = 0; // ...so the URL's bytes now follow as junk keys
    let err = cbor::decode(&bytes, &limits).unwrap_err();
    assert_eq!(err.field().as_deref(), Some("events[0].url"), "{err}");
    // Deep nesting in an unknown key is refused, not followed.
    let mut deep = vec![0xa1, 0x18, 0x63];
    deep.extend(std::iter::repeat_n(0x81, 10_000));
    deep.push(0x00);
    assert!(matches!(
        cbor::decode(&deep, &limits),
        Err(WireError::TooDeep { .. })
    ));
    // A length prefix larger than the body is refused before allocating.
    let huge = [
        0xa1, 0x01, 0x7b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];
    assert!(matches!(
        cbor::decode(&huge, &limits),
        Err(WireError::Malformed { .. })
    ));
}

fn click_event_n(i: usize) -> pathlight_wire::RawEvent {
    click_event((i % 250) as u8)
}

#[test]
fn json_type_errors_and_missing_fields_name_their_field() {
    let limits = Limits::default();
    let err = |body: &str| json::decode(body.as_bytes(), None, &limits).unwrap_err();
    let e = err(
        r#"{"version":1,"site_id":"s","sent_at":"yesterday","batch_id":"00000000000000000000000000000001","events":[]}"#,
    );
    assert_eq!(
        (e.reason(), e.field().as_deref()),
        ("wrong_type", Some("sent_at")),
        "{e}"
    );
    assert!(e.to_string().contains("an integer"), "{e}");
    let e = err(
        r#"{"version":1,"sent_at":1,"batch_id":"00000000000000000000000000000001","events":[]}"#,
    );
    assert_eq!(
        (e.reason(), e.field().as_deref()),
        ("missing_field", Some("site_id")),
        "{e}"
    );
    let simple =
        r#"[{"type":"click","url":"/","created_at":"2025-01-01T10:00:00Z","user_id":[1]}]"#;
    let e = json::decode(simple.as_bytes(), Some("s"), &limits).unwrap_err();
    assert_eq!(
        (e.reason(), e.field().as_deref()),
        ("wrong_type", Some("events[0].user_id")),
        "{e}"
    );
    let e = err("{not json");
    assert_eq!(e.reason(), "malformed");
}

#[test]
fn an_unreadable_event_is_refused_alone() {
    use pathlight_wire::{Encoding, cbor, decode, decode_with_refused};
    let limits = Limits::default();
    let sent = typical_batch();
    // Event 1 (the click, id [1; 16]) becomes a kind this build does not know, as a newer
    // tracker's would: its map starts with the kind (key 0, value 2), then the id (key 1).
    let mut bytes = cbor::encode(&sent);
    let mut start = vec![0x00, 0x02, 0x01, 0x50];
    start.extend([1; 16]);
    let at = bytes.windows(start.len()).position(|w| w == start).unwrap();
    bytes[at + 1] = 0x06;

    let (got, refused) = decode_with_refused(&bytes, Encoding::Cbor, None, &limits).unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, 1);
    assert_eq!(
        refused[0].1.field().as_deref(),
        Some("events[1].type"),
        "{}",
        refused[0].1
    );
    assert_eq!(got.events.len(), sent.events.len(), "indexes kept");
    for i in [0, 2, 3, 4] {
        assert_eq!(got.events[i], sent.events[i]);
    }
    assert_eq!(
        decode(&bytes, Encoding::Cbor, None, &limits).unwrap_err(),
        refused[0].1,
        "the strict decoder refuses the batch for it"
    );

    // The simple form, the same way: a coordinate sent as text spoils only its own event.
    let body = br#"[{"type":"view","url":"/a","created_at":1767261600000},
        {"type":"click","url":"/a","created_at":1767261600001,"payload":{"x":"445","y":1}},
        {"type":"view","url":"/b","created_at":1767261600002}]"#;
    let (got, refused) = decode_with_refused(body, Encoding::Json, Some("demo"), &limits).unwrap();
    assert_eq!(refused.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1]);
    assert_eq!(
        refused[0].1.field().as_deref(),
        Some("events[1].x"),
        "{}",
        refused[0].1
    );
    assert_eq!(
        (got.events[0].url.as_str(), got.events[2].url.as_str()),
        ("/a", "/b")
    );

    // Broken CBOR after an unreadable event still refuses the batch, with the first reason.
    bytes.truncate(bytes.len() - 3);
    assert_eq!(
        decode_with_refused(&bytes, Encoding::Cbor, None, &limits)
            .unwrap_err()
            .field()
            .as_deref(),
        Some("events[1].type")
    );
}

#[test]
fn the_decoder_stops_at_too_many_properties() {
    use pathlight_wire::{Encoding, cbor, decode_with_refused};
    let mut b = typical_batch();
    b.events[4].props = (0..33)
        .map(|i| (format!("k{i}"), PropValue::Null))
        .collect();
    let limits = Limits::default();
    let (got, refused) =
        decode_with_refused(&cbor::encode(&b), Encoding::Cbor, None, &limits).unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, 4);
    assert!(
        matches!(
            &refused[0].1,
            WireError::TooLong {
                len: 33,
                max: 32,
                ..
            }
        ),
        "{}",
        refused[0].1
    );
    assert_eq!(got.events[..4], typical_batch().events[..4]);
}
