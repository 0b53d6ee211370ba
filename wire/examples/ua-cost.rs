//! Instructions per User-Agent parse and per batch enrichment, counted under valgrind
//! (deterministic where wall time on a shared machine is not): bench/bots.sh runs it with
//! 0 and N iterations and divides the difference by N.
//!
//! `ua-cost parse|enrich UA N`

use pathlight_wire::enrich::{Enricher, VisitorHasher, parse_user_agent};
use pathlight_wire::{RequestContext, sample};
use std::hint::black_box;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [what, ua, n] = &args[..] else {
        panic!("usage: ua-cost parse|enrich UA N");
    };
    let n: usize = n.parse().expect("N");
    // Whatever is built once (woothee's and the bot matcher's tables) is built before counting.
    black_box(parse_user_agent(ua));
    let mut batch = sample::typical_batch();
    let events = batch.events.clone();
    batch.events = (0..4u8)
        .flat_map(|round| {
            events.iter().cloned().map(move |mut e| {
                e.id.0[0] = round;
                e
            })
        })
        .collect();
    let hasher = VisitorHasher::new(&[], [7; 16]);
    let ctx = RequestContext {
        received_at: batch.sent_at + 40,
        ip: Some("203.0.113.7".parse().unwrap()),
        user_agent: Some(ua.clone()),
        geo: Default::default(),
    };
    for _ in 0..n {
        match what.as_str() {
            "parse" => {
                black_box(parse_user_agent(black_box(ua)));
            }
            _ => {
                let mut en = Enricher::new(&hasher, &ctx);
                for e in &batch.events {
                    black_box(en.enrich(&batch.site_id, batch.batch_id, batch.sent_at, e.clone()));
                }
            }
        }
    }
}
