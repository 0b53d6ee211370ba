//! The generator's shapes, files and labels, checked on generated traffic.

use super::model::*;
use super::*;
use pathlight_wire::{EventKind, Id, RawEvent, cbor, json};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

fn opts(events: u64) -> GenOptions {
    GenOptions {
        events,
        days: 7,
        seed: 7,
        base_url: "http://127.0.0.1:8080/demo/".into(),
        end_ms: 1_767_225_600_000,
    }
}

#[test]
fn the_same_seed_gives_the_same_events_and_the_count_asked_for() {
    let a: Vec<RawEvent> = Generator::new(opts(5_000)).flat_map(|v| v.events).collect();
    let b: Vec<RawEvent> = Generator::new(opts(5_000)).flat_map(|v| v.events).collect();
    assert_eq!(a.len(), 5_000);
    assert_eq!(a, b);
    let ids: std::collections::HashSet<Id> = a.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), a.len(), "event ids are unique");
}

#[test]
fn traffic_has_the_shapes_the_dashboards_look_for() {
    let visits: Vec<Visit> = Generator::new(opts(50_000)).collect();
    let events: Vec<&RawEvent> = visits.iter().flat_map(|v| &v.events).collect();
    let count = |f: &dyn Fn(&RawEvent) -> bool| events.iter().filter(|e| f(e)).count();
    let clicks = count(&|e| matches!(e.kind, EventKind::Click(_)));
    let views = count(&|e| e.kind == EventKind::Pageview);
    assert!(
        clicks > views / 2 && views > 5_000,
        "{clicks} clicks, {views} views"
    );
    // Every click is inside its element's box, at its relative position.
    for e in &events {
        if let EventKind::Click(c) = &e.kind {
            let [x, y, w, h] = c.element_box;
            assert!(
                (x..=x + w).contains(&c.x) && (y..=y + h).contains(&c.y),
                "{c:?}"
            );
        }
    }
    // Bots, several devices and countries, purchases, rage clicks.
    assert!(count(&|e| e.user_agent.as_deref().is_some_and(|u| u.contains("bot"))) > 100);
    let devices: std::collections::HashSet<u32> = events.iter().map(|e| e.viewport.w).collect();
    assert_eq!(devices.len(), 4);
    let countries: std::collections::HashSet<&str> = visits.iter().map(|v| v.country).collect();
    assert!(countries.len() > 8);
    assert!(
        count(&|e| matches!(&e.kind, EventKind::Custom { name, .. } if name == "purchase")) > 20
    );
    let rage = visits
        .iter()
        .filter(|v| v.injected.contains(&Injected::Rage));
    assert!(rage.count() > 20);
    // Times fall in the last 7 days.
    let end = opts(0).end_ms;
    assert!(
        events
            .iter()
            .all(|e| e.timestamp <= end && e.timestamp > end - 8 * 86_400_000)
    );
}

#[test]
fn files_read_back_as_the_same_events() {
    let visits: Vec<Visit> = Generator::new(opts(2_000)).collect();
    let events: Vec<RawEvent> = visits.iter().flat_map(|v| v.events.clone()).collect();
    let limits = pathlight_wire::Limits::default();
    let mut nd = Vec::new();
    write(
        visits.clone().into_iter(),
        "demo",
        FileFormat::Ndjson,
        &mut nd,
    )
    .unwrap();
    let array = format!(
        "[{}]",
        String::from_utf8(nd).unwrap().trim_end().replace('\n', ",")
    );
    let limits_big = pathlight_wire::Limits {
        max_events: 10_000,
        max_batch_bytes: 64 << 20,
        ..limits.clone()
    };
    assert_eq!(
        json::decode(array.as_bytes(), Some("demo"), &limits_big)
            .unwrap()
            .events,
        events
    );
    // CBOR: one batch per page view, back to back.
    let mut seq = Vec::new();
    write(
        visits.clone().into_iter(),
        "demo",
        FileFormat::Cbor,
        &mut seq,
    )
    .unwrap();
    let (mut at, mut back) = (0, Vec::new());
    for v in &visits {
        let one = cbor::encode(&v.clone().batch("demo", 0));
        assert_eq!(&seq[at..at + one.len()], one.as_slice());
        back.extend(cbor::decode(&one, &limits).unwrap().events);
        at += one.len();
    }
    assert_eq!(at, seq.len());
    assert_eq!(back, events);
}

/// Per session of `visits`: its page views' URLs, its clicks (time, selector, tag),
/// whether a bot sent it, its visitor's address, its first and last event, and its labels.
#[derive(Default)]
struct Seen {
    pages: Vec<String>,
    clicks: Vec<(i64, String, String)>,
    bot: bool,
    ip: Option<IpAddr>,
    span: (i64, i64),
    labels: BTreeSet<Injected>,
}

fn sessions(visits: &[Visit]) -> BTreeMap<String, Seen> {
    let mut out: BTreeMap<String, Seen> = BTreeMap::new();
    for v in visits {
        let s = out.entry(v.events[0].session_id.clone()).or_default();
        s.ip = Some(v.ip);
        s.labels.extend(v.injected.iter().copied());
        for e in &v.events {
            s.bot |= e.user_agent.as_deref().is_some_and(|u| u.contains("bot"));
            s.span = if s.span == (0, 0) {
                (e.timestamp, e.timestamp)
            } else {
                (s.span.0.min(e.timestamp), s.span.1.max(e.timestamp))
            };
            match &e.kind {
                EventKind::Pageview => s.pages.push(e.url.clone()),
                EventKind::Click(c) => {
                    s.clicks
                        .push((e.timestamp, c.selector.clone(), c.tag.clone()))
                }
                _ => {}
            }
        }
    }
    out
}

fn median<T: Ord + Copy>(mut v: Vec<T>) -> T {
    v.sort_unstable();
    v[v.len() / 2]
}

#[test]
fn sessions_dwell_and_returns_follow_the_published_shapes() {
    let visits: Vec<Visit> = Generator::new(GenOptions {
        days: 14,
        ..opts(100_000)
    })
    .collect();
    let all = sessions(&visits);
    let people: Vec<&Seen> = all.values().filter(|s| !s.bot).collect();
    let pages: Vec<usize> = people.iter().map(|s| s.pages.len()).collect();
    let share = |f: &dyn Fn(usize) -> bool| {
        pages.iter().filter(|&&p| f(p)).count() as f64 / pages.len() as f64
    };
    let bounce = share(&|p| p == 1);
    assert!((0.40..=0.60).contains(&bounce), "bounce rate {bounce}");
    let mid = median(pages.clone());
    assert!((2..=3).contains(&mid), "median session {mid} pages");
    // Heavy-tailed: a few sessions go on for many pages.
    let long = share(&|p| p > 10);
    assert!(
        (0.02..=0.15).contains(&long),
        "{long} of sessions past 10 pages"
    );
    assert!(pages.iter().any(|&p| p >= 30));

    let dwell: Vec<u32> = visits
        .iter()
        .flat_map(|v| &v.events)
        .filter_map(|e| match e.kind {
            EventKind::Engagement { visible_ms } => Some(visible_ms),
            _ => None,
        })
        .collect();
    let (mid, p99) = (median(dwell.clone()), {
        let mut d = dwell.clone();
        d.sort_unstable();
        d[d.len() * 99 / 100]
    });
    assert!((10_000..=30_000).contains(&mid), "median dwell {mid} ms");
    assert!(p99 > 10 * mid, "p99 dwell {p99} ms: a heavy tail");

    // Returns: a visitor's next session comes after the 30-minute timeout at least,
    // usually within hours, sometimes days later.
    let mut by_visitor: BTreeMap<IpAddr, Vec<(i64, i64)>> = BTreeMap::new();
    for s in all.values() {
        by_visitor.entry(s.ip.unwrap()).or_default().push(s.span);
    }
    let mut gaps = Vec::new();
    for spans in by_visitor.values_mut() {
        spans.sort_unstable();
        gaps.extend(spans.windows(2).map(|w| w[1].0 - w[0].1));
    }
    let per_visitor = all.len() as f64 / by_visitor.len() as f64;
    assert!(
        (1.3..=2.5).contains(&per_visitor),
        "{per_visitor} sessions per visitor"
    );
    assert!(gaps.iter().all(|&g| g >= 1_800_000));
    let mid = median(gaps.clone());
    assert!(
        (3_600_000..=4 * 3_600_000).contains(&mid),
        "median return after {mid} ms"
    );
    let days = gaps.iter().filter(|&&g| g > 86_400_000).count() as f64 / gaps.len() as f64;
    assert!(days > 0.03, "{days} of returns after a day or more");
}

#[test]
fn labels_name_what_the_events_show() {
    let visits: Vec<Visit> = Generator::new(opts(100_000)).collect();
    let all = sessions(&visits);
    let has = |k: Injected| all.values().filter(move |s| s.labels.contains(&k));
    // Each kind in about the share it is drawn with.
    let n = all.len() as f64;
    for (kind, share) in [
        (Injected::Bot, 0.03),
        (Injected::Stuck, STUCK_CHANCE),
        (Injected::Rage, RAGE_CHANCE),
        (Injected::Dead, DEAD_CHANCE),
        (Injected::Repeated, REPEATED_CHANCE),
        (Injected::Rapid, RAPID_CHANCE),
    ] {
        let got = has(kind).count() as f64 / n;
        assert!(
            got > share * 0.5 && got < share * 1.5,
            "{kind:?}: {got} of sessions, drawn with {share}"
        );
    }
    for s in has(Injected::Bot) {
        assert!(s.bot && s.clicks.is_empty() && s.labels.len() == 1);
    }
    // Stuck: six page views or more, two addresses taking turns.
    for s in has(Injected::Stuck) {
        assert!(
            s.pages.windows(6).any(|w| w[0] != w[1]
                && w.iter().step_by(2).all(|p| *p == w[0])
                && w.iter().skip(1).step_by(2).all(|p| *p == w[1])),
            "{:?}",
            s.pages
        );
    }
    // Rage: three clicks on one element within a second.
    for s in has(Injected::Rage) {
        assert!(
            s.clicks
                .windows(3)
                .any(|w| w[2].0 - w[0].0 <= 1_000 && w[0].1 == w[1].1 && w[1].1 == w[2].1)
        );
    }
    // Rapid: two elements clicked less than 100 ms apart; never by a person.
    let rapid = |s: &Seen| {
        s.clicks
            .windows(2)
            .any(|w| w[1].0 - w[0].0 < 100 && w[0].1 != w[1].1)
    };
    for s in all.values() {
        assert_eq!(
            rapid(s),
            s.labels.contains(&Injected::Rapid),
            "{:?}",
            s.clicks
        );
    }
    // Repeated: one element three times in a row, seconds apart.
    for s in has(Injected::Repeated) {
        assert!(s.clicks.windows(3).any(|w| w[0].1 == w[1].1
            && w[1].1 == w[2].1
            && w[1].0 - w[0].0 > 1_000
            && w[2].0 - w[1].0 > 1_000));
    }
    // Dead: text clicked; nobody else clicks text.
    for s in all.values() {
        let text = s
            .clicks
            .iter()
            .any(|c| ["p", "h1", "h2"].contains(&c.2.as_str()));
        assert_eq!(text, s.labels.contains(&Injected::Dead), "{:?}", s.clicks);
    }
}

#[test]
fn labels_files_read_back() {
    let visits: Vec<Visit> = Generator::new(opts(20_000)).collect();
    let labels: BTreeSet<(String, Injected)> = visits.iter().flat_map(labels).collect();
    assert!(labels.len() > 50);
    let mut file = Vec::new();
    write_labels(&labels, &mut file).unwrap();
    assert!(file.starts_with(b"session_id,kind\n"));
    assert_eq!(read_labels(&file[..]).unwrap(), labels);
    let bad = read_labels(&b"session_id,kind\nabc,slow\n"[..]).unwrap_err();
    assert!(bad.to_string().contains("line 2"), "{bad}");
}
