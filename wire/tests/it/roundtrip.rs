//! Property tests: any batch the model can hold survives CBOR and JSON unchanged.

use pathlight_wire::{
    Click, EventKind, Id, Limits, PropValue, Props, RawBatch, RawEvent, Size, cbor, json,
};
use proptest::prelude::*;

fn opt_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of("\\PC{1,40}")
}

fn kind() -> impl Strategy<Value = EventKind> {
    let click = (
        (
            any::<i32>(),
            any::<i32>(),
            opt_text(),
            "\\PC{0,60}",
            "[a-z]{0,8}",
        ),
        (
            opt_text(),
            opt_text(),
            0f32..=1.0,
            0f32..=1.0,
            any::<[i32; 4]>(),
            0u8..=2,
        ),
    )
        .prop_map(
            |(
                (x, y, element_id, selector, tag),
                (text, href, rel_x, rel_y, element_box, fixed),
            )| {
                EventKind::Click(Click {
                    x,
                    y,
                    element_id,
                    selector,
                    tag,
                    text,
                    href,
                    rel_x,
                    rel_y,
                    element_box,
                    fixed,
                })
            },
        );
    prop_oneof![
        Just(EventKind::Pageview),
        click,
        any::<u8>().prop_map(|max_depth_pct| EventKind::Scroll { max_depth_pct }),
        any::<u32>().prop_map(|visible_ms| EventKind::Engagement { visible_ms }),
        "\\PC{1,20}".prop_map(|name| EventKind::Custom { name }),
    ]
}

/// Properties, which any kind may carry.
fn props() -> impl Strategy<Value = Props> {
    let prop_value = prop_oneof![
        Just(PropValue::Null),
        any::<bool>().prop_map(PropValue::Bool),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(PropValue::Number),
        "\\PC{0,20}".prop_map(PropValue::Text),
    ];
    prop::collection::btree_map("\\PC{1,10}", prop_value, 0..5)
        .prop_map(|props| props.into_iter().collect())
}

fn event() -> impl Strategy<Value = RawEvent> {
    (
        (
            any::<[u8; 16]>(),
            any::<i64>(),
            "[a-z0-9]{0,12}",
            "\\PC{1,80}",
            opt_text(),
            opt_text(),
        ),
        (
            any::<(u32, u32, u32, u32)>(),
            opt_text(),
            opt_text(),
            opt_text(),
            props(),
            kind(),
        ),
    )
        .prop_map(
            |(
                (id, timestamp, session_id, url, referrer, title),
                ((vw, vh, dw, dh), user_id, user_agent, event_title, props, kind),
            )| {
                RawEvent {
                    id: Id(id),
                    timestamp,
                    session_id,
                    url,
                    referrer,
                    title,
                    viewport: Size { w: vw, h: vh },
                    document: Size { w: dw, h: dh },
                    user_id,
                    user_agent,
                    event_title,
                    props,
                    kind,
                }
            },
        )
}

fn batch() -> impl Strategy<Value = RawBatch> {
    (
        "\\PC{1,20}",
        any::<i64>(),
        any::<[u8; 16]>(),
        prop::collection::vec(event(), 0..8),
    )
        .prop_map(|(site_id, sent_at, batch_id, events)| RawBatch {
            version: 1,
            site_id,
            sent_at,
            batch_id: Id(batch_id),
            events,
        })
}

/// Empty optional strings are not sent, so they come back as absent.
fn normalise(mut b: RawBatch) -> RawBatch {
    let clear = |s: &mut Option<String>| {
        if s.as_deref() == Some("") {
            *s = None;
        }
    };
    for e in &mut b.events {
        clear(&mut e.referrer);
        clear(&mut e.title);
        clear(&mut e.user_id);
        clear(&mut e.user_agent);
        if let EventKind::Click(c) = &mut e.kind {
            clear(&mut c.element_id);
            clear(&mut c.text);
            clear(&mut c.href);
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn cbor_round_trip(b in batch()) {
        let limits = Limits { max_events: 10, ..Limits::default() };
        let b = normalise(b);
        prop_assert_eq!(cbor::decode(&cbor::encode(&b), &limits).unwrap(), b);
    }

    #[test]
    fn json_round_trip(b in batch()) {
        let b = normalise(b);
        prop_assert_eq!(json::decode(&json::encode(&b), None, &Limits::default()).unwrap(), b);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = cbor::decode(&bytes, &Limits::default());
        let _ = json::decode(&bytes, Some("demo"), &Limits::default());
    }
}
