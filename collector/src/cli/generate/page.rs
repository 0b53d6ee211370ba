//! One page view of a session: its page view event, the clicks on the elements the page
//! really has at the visitor's width, a scroll depth, what the session's plan injects there,
//! and the link that leads to the next page.

use super::model::*;
use super::{Act, Generator, Injected, Plan, Visitor};
use pathlight_wire::{Click, EventKind, Id, PropValue, RawEvent, Size};

impl Generator {
    /// One page view's events, how long it lasted, the link clicked to leave it and what was
    /// injected into it.
    pub(super) fn page_view(
        &mut self,
        visitor: &Visitor,
        plan: &Plan,
        view: PageView,
        referrer: Option<String>,
    ) -> (Vec<RawEvent>, i64, Option<String>, Vec<Injected>) {
        let screen = &self.layout.pages[view.page][visitor.device.screen];
        let viewport = Size {
            w: screen.viewport[0],
            h: screen.viewport[1],
        };
        let document = Size {
            w: screen.document[0],
            h: screen.document[1],
        };
        let t = view.t;
        let base = RawEvent {
            id: Id::default(),
            timestamp: t,
            session_id: view.session.to_owned(),
            url: view.url.to_owned(),
            referrer,
            title: Some(screen.title.clone()),
            viewport,
            document,
            user_id: view.user.cloned(),
            user_agent: Some(visitor.agent.to_owned()),
            event_title: None,
            props: Default::default(),
            kind: EventKind::Pageview,
        };
        let mut events = vec![RawEvent {
            id: self.rng.id(),
            ..base.clone()
        }];
        let mut injected = Vec::new();
        // A stuck visitor hurries; automation does not read.
        let mut dwell = if plan.stuck {
            self.rng.between(1_500, 3_500)
        } else if plan.rapid {
            self.rng.between(300, 900)
        } else {
            dwell_ms(&mut self.rng)
        };
        if plan.bot {
            injected.push(Injected::Bot);
            return (events, dwell, None, injected);
        }
        // How far down they read: most see the top, fewer reach the end.
        let fold = f64::from(viewport.h) / f64::from(document.h.max(1));
        let depth = if fold >= 1.0 {
            1.0
        } else {
            (fold + (1.0 - fold) * self.rng.unit().powf(1.6)).min(1.0)
        };
        let seen_to = (depth * f64::from(document.h)) as i32;
        let visible: Vec<&Element> = screen
            .elements
            .iter()
            .filter(|e| e.bounds[1] + e.bounds[3] / 2 <= seen_to)
            .collect();
        // Ordinary clicks: on things that do something without leaving the page (a link
        // elsewhere is clicked only to go where the session goes next), each once.
        let stays =
            |e: &&Element| e.interactive && e.href.as_deref().is_none_or(|h| h.starts_with('#'));
        let weighted: Vec<(&Element, u32)> = visible
            .iter()
            .filter(|e| stays(e))
            .map(|e| (*e, weight(e)))
            .collect();
        let n = if plan.stuck {
            self.rng.below(2) as usize
        } else {
            [0, 1, 1, 2, 3][self.rng.below(5) as usize]
        };
        // Each element takes part in one act of a page view: a button clicked, then rage- or
        // retry-clicked, would be both at once.
        let mut acts: Vec<Act> = Vec::new();
        let mut taken: Vec<&Element> = Vec::new();
        if plan.rage_at == Some(view.index)
            && let Some(e) = self.rng.pick(&weighted).copied()
        {
            acts.push(Act::Rage(e, self.rng.between(3, 6) as u32));
            taken.push(e);
            injected.push(Injected::Rage);
        }
        if plan.repeated_at == Some(view.index) {
            let buttons: Vec<(&Element, u32)> = weighted
                .iter()
                .copied()
                .filter(|(e, _)| e.tag == "button" && !taken.iter().any(|t| std::ptr::eq(*t, *e)))
                .collect();
            if let Some(e) = self.rng.pick(&buttons).copied() {
                acts.push(Act::Retry(e, self.rng.between(3, 4) as u32));
                taken.push(e);
                injected.push(Injected::Repeated);
            }
        }
        let rest: Vec<(&Element, u32)> = weighted
            .iter()
            .copied()
            .filter(|(e, _)| !taken.iter().any(|t| std::ptr::eq(*t, *e)))
            .collect();
        for e in self.rng.pick_distinct(&rest, n) {
            let at = self.rng.below(acts.len() as u64 + 1) as usize;
            acts.insert(at, Act::Click(e, self.rng.chance(DOUBLE_CLICK_CHANCE)));
        }
        if plan.dead_at == Some(view.index) {
            let text: Vec<(&Element, u32)> = visible
                .iter()
                .filter(|e| !e.interactive)
                .map(|e| (*e, weight(e)))
                .collect();
            let n = 1 + self.rng.below(2) as usize;
            let dead = self.rng.pick_distinct(&text, n);
            if !dead.is_empty() {
                injected.push(Injected::Dead);
            }
            for e in dead {
                let at = self.rng.below(acts.len() as u64 + 1) as usize;
                acts.insert(at, Act::Click(e, false));
            }
        }
        // The link that leads where the session goes next is the last thing clicked.
        let links: Vec<(&Element, u32)> = view
            .next
            .map(|next| {
                visible
                    .iter()
                    .filter(|e| e.href.as_deref().is_some_and(|h| h.starts_with(next)))
                    .map(|e| (*e, weight(e)))
                    .collect()
            })
            .unwrap_or_default();
        let link = self.rng.pick(&links).copied();

        // When: automation clicks everything at once, 15–80 ms apart; a person spreads the
        // acts over the visit, each at least a second after the last one ended.
        let mut clicks: Vec<(&Element, i64, bool)> = Vec::new();
        if plan.rapid {
            let all: Vec<(&Element, u32)> = screen
                .elements
                .iter()
                .filter(|e| e.interactive)
                .map(|e| (e, 1))
                .collect();
            let n = self.rng.between(3, 5) as usize;
            let burst = self.rng.pick_distinct(&all, n);
            let mut at = self.rng.between(150, 400);
            for e in &burst {
                clicks.push((e, at, false));
                at += self.rng.between(15, 80);
            }
            if burst.len() + usize::from(link.is_some()) >= 2 {
                injected.push(Injected::Rapid);
            }
            if let Some(l) = link {
                clicks.push((l, at, false));
            }
            dwell = at + 100;
        } else {
            let mut starts: Vec<i64> = (0..acts.len())
                .map(|_| self.rng.between(1_000, (dwell - 300).max(1_000)))
                .collect();
            starts.sort_unstable();
            let mut free = 0;
            for (act, start) in acts.iter().zip(starts) {
                let mut at = start.max(free);
                match *act {
                    Act::Click(e, double) => {
                        clicks.push((e, at, false));
                        if double {
                            at += self.rng.between(60, 180);
                            clicks.push((e, at, true));
                        }
                    }
                    Act::Rage(e, n) => {
                        for k in 0..n {
                            if k > 0 {
                                at += self.rng.between(80, 250);
                            }
                            clicks.push((e, at, k > 0));
                        }
                    }
                    Act::Retry(e, n) => {
                        for k in 0..n {
                            if k > 0 {
                                at += self.rng.between(1_500, 4_000);
                            }
                            clicks.push((e, at, false));
                        }
                    }
                }
                free = at + 1_000;
            }
            if let Some(l) = link {
                let at = (dwell - 200).max(free);
                clicks.push((l, at, false));
                dwell = at + 200;
            } else {
                // Leaving without a link (back button, another tab) takes a moment too: a
                // page view within a second of a click would look like that click's doing.
                dwell = dwell.max(free + 500);
            }
        }

        // Where: near the middle of the element; a click repeated at once (double click,
        // rage) lands a few pixels from the one before.
        let mut last = (0, 0);
        for &(e, at, again) in &clicks {
            let [bx, by, bw, bh] = e.bounds;
            let (x, y) = if again {
                (
                    (last.0 + self.rng.normal(0.0, 3.0) as i32).clamp(bx, bx + bw),
                    (last.1 + self.rng.normal(0.0, 3.0) as i32).clamp(by, by + bh),
                )
            } else {
                (
                    bx + (self.rng.normal(0.5, 0.17).clamp(0.02, 0.98) * f64::from(bw)) as i32,
                    by + (self.rng.normal(0.5, 0.2).clamp(0.05, 0.95) * f64::from(bh)) as i32,
                )
            };
            last = (x, y);
            let rel = |p: i32, b: i32, s: i32| {
                if s > 0 {
                    f64::from(p - b) / f64::from(s)
                } else {
                    0.5
                }
            };
            events.push(RawEvent {
                id: self.rng.id(),
                timestamp: t + at,
                kind: EventKind::Click(Click {
                    x,
                    y,
                    element_id: e.id.clone(),
                    selector: e.selector.clone(),
                    tag: e.tag.clone(),
                    text: e.text.clone(),
                    href: e.href.clone(),
                    rel_x: rel(x, bx, bw) as f32,
                    rel_y: rel(y, by, bh) as f32,
                    element_box: e.bounds,
                    fixed: 0,
                }),
                ..base.clone()
            });
            // The page's own code answers some clicks with an event of its own, at once.
            if let Some((name, props)) = custom_for(e, &mut self.rng) {
                events.push(RawEvent {
                    id: self.rng.id(),
                    timestamp: t + at + 5,
                    kind: EventKind::Custom { name: name.into() },
                    props: props.into_iter().collect(),
                    ..base.clone()
                });
            }
        }
        // Scrolled down to what was clicked, at least.
        let clicked_to = clicks
            .iter()
            .map(|(e, _, _)| e.bounds[1] + e.bounds[3])
            .max()
            .unwrap_or(0);
        let depth = depth.max(f64::from(clicked_to) / f64::from(document.h.max(1)));
        if depth > fold {
            events.push(RawEvent {
                id: self.rng.id(),
                timestamp: t + dwell - 100,
                kind: EventKind::Scroll {
                    max_depth_pct: (depth * 100.0).round().min(100.0) as u8,
                },
                ..base.clone()
            });
        }
        events.push(RawEvent {
            id: self.rng.id(),
            timestamp: t + dwell,
            kind: EventKind::Engagement {
                visible_ms: dwell as u32,
            },
            ..base
        });
        events.sort_by_key(|e| e.timestamp);
        (events, dwell, link.and_then(|l| l.href.clone()), injected)
    }
}

/// Where one page view is in its session.
pub(super) struct PageView<'a> {
    pub(super) session: &'a str,
    pub(super) page: &'a str,
    pub(super) url: &'a str,
    pub(super) next: Option<&'a str>,
    pub(super) t: i64,
    /// Its place in the session, from 0.
    pub(super) index: u32,
    pub(super) user: Option<&'a String>,
}

/// How often an element is clicked, relative to the others on its page.
pub(super) fn weight(e: &Element) -> u32 {
    let id = e.id.as_deref().unwrap_or("");
    match (e.interactive, e.tag.as_str()) {
        _ if ["hero-cta", "buy-now", "place-order", "add-1", "load-more"].contains(&id) => 30,
        (true, "button") => 12,
        (true, "input" | "select") => 10,
        (true, _) => 6,
        (false, "img") => 3,
        (false, _) => 1,
    }
}

/// The custom event the demo site sends for a click on `e`, if any.
pub(super) fn custom_for(
    e: &Element,
    rng: &mut Rng,
) -> Option<(&'static str, Vec<(String, PropValue)>)> {
    let id = e.id.as_deref().unwrap_or("");
    // `#add-1`, `[data-track="add-chair"]`: the catalog's add-to-cart buttons.
    if id == "buy-now" || e.selector.contains("add-") {
        return Some((
            "add_to_cart",
            vec![(
                "product".into(),
                PropValue::Text(format!("p{}", 1 + rng.below(4))),
            )],
        ));
    }
    (id == "place-order").then(|| {
        (
            "purchase",
            vec![(
                "value".into(),
                PropValue::Number((20 + rng.below(180)) as f64),
            )],
        )
    })
}
