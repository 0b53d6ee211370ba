//! Example events and batches, as the tracker sends them: the fixtures' source, and the seed
//! for tests and load generators elsewhere in the workspace.

use crate::model::{Click, EventKind, Id, PropValue, Props, RawBatch, RawEvent, Size};
use alloc::string::{String, ToString};
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

/// One visit to a documentation page as the tracker records it: a page view, `clicks` clicks
/// 4 s apart on 8 elements of the page, some clicked again (links in the sidebar with deep
/// selectors, in the table of contents and in the article; "Copy" and "Run" buttons of its code
/// examples), then the scroll depth and the engagement at leave. The realistic case of
/// `bench/results/wire-size.md` (issue 28 measured 375 B of v1 per click on such a page).
pub fn docs_visit(clicks: u8) -> RawBatch {
    const PAGE: &str = "https://docs.example.org/en-US/docs/Web/API/Document/querySelectorAll?utm_source=newsletter";
    const API: &str = "https://docs.example.org/en-US/docs/Web/API/";
    // (selector, tag, text, href, element box)
    let elements: [(&str, &str, &str, String, [i32; 4]); 8] = [
        (
            "#sidebar > scrollbox > ol > li:nth-of-type(7) > ol > li:nth-of-type(3) > span > a",
            "a",
            "Element.querySelector()",
            alloc::format!("{API}Element/querySelector"),
            [24, 496, 236, 22],
        ),
        (
            "#sidebar > scrollbox > ol > li:nth-of-type(7) > ol > li:nth-of-type(9) > span > a",
            "a",
            "Document.getElementById()",
            alloc::format!("{API}Document/getElementById"),
            [24, 664, 236, 22],
        ),
        (
            "main > article > section:nth-of-type(3) > div.code-example > div > button",
            "button",
            "Copy",
            String::new(),
            [1108, 2210, 52, 24],
        ),
        (
            "#toc > ol > li:nth-of-type(2) > a",
            "a",
            "Syntax",
            alloc::format!("{API}Document/querySelectorAll#syntax"),
            [1180, 180, 160, 20],
        ),
        (
            "main > article > section:nth-of-type(5) > div.code-example > div > button",
            "button",
            "Copy",
            String::new(),
            [1108, 3490, 52, 24],
        ),
        (
            "main > article > section:nth-of-type(2) > p:nth-of-type(3) > a > code",
            "code",
            "NodeList",
            alloc::format!("{API}NodeList"),
            [402, 1630, 64, 19],
        ),
        (
            "#toc > ol > li:nth-of-type(5) > a",
            "a",
            "Examples",
            alloc::format!("{API}Document/querySelectorAll#examples"),
            [1180, 260, 160, 20],
        ),
        (
            "main > article > section:nth-of-type(1) > interactive-example > div > button.run",
            "button",
            "Run",
            String::new(),
            [826, 1012, 64, 32],
        ),
    ];
    const ORDER: [usize; 20] = [0, 3, 2, 7, 2, 4, 5, 2, 6, 7, 3, 2, 4, 1, 5, 6, 2, 7, 1, 3];
    let t0 = 1_767_261_600_000;
    let page = RawEvent {
        id: Id([0x5a; 16]),
        timestamp: t0,
        session_id: "3f9c2b7e1d4a6c08".into(),
        url: PAGE.into(),
        referrer: Some("https://www.google.com/".into()),
        title: Some("Document: querySelectorAll() method - Web APIs | Example Docs".into()),
        viewport: Size { w: 1440, h: 900 },
        document: Size { w: 1440, h: 8214 },
        user_id: None,
        user_agent: None,
        event_title: None,
        props: Props::default(),
        kind: EventKind::Pageview,
    };
    let mut events = vec![page.clone()];
    for i in 0..clicks {
        let n = usize::from(i);
        let at = ORDER.get(n % ORDER.len()).copied().unwrap_or_default();
        let Some((selector, tag, text, href, element_box)) = elements.get(at).cloned() else {
            continue;
        };
        let [bx, by, bw, bh] = element_box;
        // Where on the element: varied, as hands are.
        let (rel_x, rel_y) = (0.2 + 0.07 * (n % 9) as f32, 0.3 + 0.1 * (n % 5) as f32);
        events.push(RawEvent {
            id: Id([i; 16]),
            timestamp: t0 + 4_000 * (i64::from(i) + 1),
            kind: EventKind::Click(Click {
                x: bx + (rel_x * bw as f32) as i32,
                y: by + (rel_y * bh as f32) as i32,
                element_id: None,
                selector: selector.into(),
                tag: tag.into(),
                text: Some(text.into()),
                href: (!href.is_empty()).then_some(href),
                rel_x,
                rel_y,
                element_box,
                fixed: 0,
            }),
            ..page.clone()
        });
    }
    let end = t0 + 4_000 * (i64::from(clicks) + 1);
    events.push(RawEvent {
        id: Id([0xe0; 16]),
        timestamp: end,
        kind: EventKind::Scroll { max_depth_pct: 64 },
        ..page.clone()
    });
    events.push(RawEvent {
        id: Id([0xe1; 16]),
        timestamp: end,
        kind: EventKind::Engagement {
            visible_ms: 4_000 * (u32::from(clicks) + 1),
        },
        ..page
    });
    RawBatch {
        version: 1,
        site_id: "docs".into(),
        sent_at: end + 20,
        batch_id: Id([0xd0; 16]),
        events,
    }
}
