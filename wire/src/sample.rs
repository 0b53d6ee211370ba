//! Example events and batches, as the tracker sends them: the fixtures' source, and the seed
//! for tests and load generators elsewhere in the workspace.

use crate::model::{Click, EventKind, Id, PropValue, Props, RawBatch, RawEvent, Size};
use alloc::string::ToString;
use alloc::vec;

/// A click as the tracker sends it; `n` fills its id and offsets its time by `n` ms.
pub fn click_event(n: u8) -> RawEvent {
    RawEvent {
        id: Id([n; 16]),
        timestamp: 1_767_261_600_000 + i64::from(n),
        session_id: "k3v9q2m8x1".into(),
        url: "https://shop.example/catalog?utm_source=newsletter&utm_campaign=winter".into(),
        referrer: Some("https://www.google.com/".into()),
        title: Some("Catalog · Example Shop".into()),
        viewport: Size { w: 1440, h: 900 },
        document: Size { w: 1440, h: 3200 },
        user_id: None,
        user_agent: None,
        event_title: None,
        props: Props::default(),
        kind: EventKind::Click(Click {
            x: 642,
            y: 1187,
            element_id: Some("add-to-cart".into()),
            selector: "#add-to-cart".into(),
            tag: "button".into(),
            text: Some("Add to cart".into()),
            href: None,
            rel_x: 0.25,
            rel_y: 0.5,
            element_box: [560, 1167, 328, 40],
            fixed: 0,
        }),
    }
}

/// A batch with one event of every kind.
pub fn typical_batch() -> RawBatch {
    let base = click_event(1);
    let with = |n: u8, kind: EventKind| RawEvent {
        id: Id([n; 16]),
        kind,
        ..base.clone()
    };
    let mut props = Props::default();
    props.insert("plan".to_string(), PropValue::Text("pro".into()));
    props.insert("seats".to_string(), PropValue::Number(3.0));
    props.insert("trial".to_string(), PropValue::Bool(false));
    props.insert("coupon".to_string(), PropValue::Null);
    RawBatch {
        version: 1,
        site_id: "demo".into(),
        sent_at: 1_767_261_605_000,
        batch_id: Id([0xab; 16]),
        events: vec![
            with(10, EventKind::Pageview),
            base.clone(),
            with(11, EventKind::Scroll { max_depth_pct: 62 }),
            with(12, EventKind::Engagement { visible_ms: 48_250 }),
            RawEvent {
                props,
                ..with(
                    13,
                    EventKind::Custom {
                        name: "signup".into(),
                    },
                )
            },
        ],
    }
}
