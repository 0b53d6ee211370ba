//! Property tests: any batch the model can hold survives CBOR v1 and JSON unchanged, and v2
//! as v2 holds it ([`as_v2`]), with v2's encoding a fixed point.

use pathlight_wire::{
    Click, EventKind, FORMAT_VERSION_2, Id, Limits, PropValue, Props, RawBatch, RawEvent, Size,
    cbor, json, v2,
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

/// `b` as format v2 holds it, checked against `decoded`, what v2 gave back: version 2, event
/// ids derived from the batch id, empty optional strings absent, and each click's geometry on
/// the quarter-pixel grid. Its `x` and `y` must be within 1 px of the model's, and its offset
/// inside the box (`rel_x` × 4 × width, quarter px) the model's fraction rounded, or, where
/// that would move the click by more than a pixel, `x` itself; `decoded`'s geometry is then
/// taken as the expected one.
pub fn as_v2(b: &RawBatch, decoded: &RawBatch) -> RawBatch {
    let mut want = normalise(b.clone());
    want.version = FORMAT_VERSION_2;
    for (i, e) in want.events.iter_mut().enumerate() {
        e.id = v2::event_id(b.batch_id, i);
        let got = decoded.events.get(i).map(|e| &e.kind);
        if let (EventKind::Click(c), Some(EventKind::Click(got))) = (&mut e.kind, got) {
            let [bx, by, bw, bh] = c.element_box;
            assert!(
                c.x.abs_diff(got.x) <= 1 && c.y.abs_diff(got.y) <= 1,
                "event {i}: ({}, {}) came back as ({}, {})",
                c.x,
                c.y,
                got.x,
                got.y
            );
            on_the_grid(c.rel_x, got.rel_x, c.x, bx, bw);
            on_the_grid(c.rel_y, got.rel_y, c.y, by, bh);
            (c.x, c.y, c.rel_x, c.rel_y) = (got.x, got.y, got.rel_x, got.rel_y);
        }
    }
    want
}

/// One axis of [`as_v2`]'s check of a click.
fn on_the_grid(rel: f32, got_rel: f32, pos: i32, start: i32, size: i32) {
    if size == 0 {
        assert_eq!(got_rel, 0.0, "an empty box has no fraction");
        return;
    }
    let sent = f64::from(got_rel) * 4.0 * f64::from(size);
    let from_rel = f64::from(rel) * 4.0 * f64::from(size);
    let from_pos = (f64::from(pos) - f64::from(start)) * 4.0;
    // Half a quarter pixel of rounding, and the f32 the fraction comes back as.
    let slack = 0.5 + sent.abs() * 1e-6;
    assert!(
        (sent - from_rel).abs() <= slack || (sent - from_pos).abs() <= slack,
        "offset {sent} is neither {from_rel} (rel {rel}) nor {from_pos} (pos {pos}, box {start}+{size})"
    );
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
    fn v2_round_trip(b in batch()) {
        let limits = Limits { max_events: 10, ..Limits::default() };
        let bytes = v2::encode(&b);
        let back = cbor::decode(&bytes, &limits).unwrap();
        prop_assert_eq!(&back, &as_v2(&b, &back));
        prop_assert_eq!(v2::encode(&back), bytes);
    }

    #[test]
    fn v2_of_a_batch_from_v1_is_the_same(b in batch()) {
        let limits = Limits { max_events: 10, ..Limits::default() };
        let from_v1 = cbor::decode(&cbor::encode(&b), &limits).unwrap();
        prop_assert_eq!(v2::encode(&from_v1), v2::encode(&b));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = cbor::decode(&bytes, &Limits::default());
        let _ = json::decode(&bytes, Some("demo"), &Limits::default());
    }

    #[test]
    fn arbitrary_v2_bodies_never_panic(keys in 0u8..8, bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        // A v2 head (a map whose first key is 0 => 2), so the rest is read as v2.
        let body = [&[0xa0 | keys, 0x00, 0x02][..], &bytes].concat();
        let _ = cbor::decode_with_refused(&body, &Limits::default());
    }
}
