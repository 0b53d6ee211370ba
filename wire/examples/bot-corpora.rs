//! The bot flag and the device against public User-Agent corpora (bench/bots.sh writes them as
//! `label<TAB>User-Agent` lines, one file per corpus; the label is `bot` for a crawler corpus,
//! `desktop`, `mobile`, `tablet` or `-` for a browser corpus). Prints a Markdown table: for
//! crawler corpora the share flagged (recall), for browser corpora the share flagged (false
//! bots) and the share whose device equals the label, each for `parse_user_agent` as built and
//! for the rules it replaced (woothee's crawler category plus the hand-written markers of
//! commit 50097f9), so both come from one run; and how many User-Agents changed device other
//! than by becoming or ceasing to be a bot.
//!
//! `cargo run --release -p pathlight-wire --example bot-corpora -- FILE.tsv...`
//! (`SHOW=name` lists that corpus's User-Agents on which the two disagree with the label.)

use pathlight_wire::enrich::{Device, bots::BotMatcher, parse_user_agent};
use std::time::Instant;

/// The markers `parse_user_agent` used before the compiled list, as they were.
const OLD_MARKERS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "headless",
    "phantomjs",
    "lighthouse",
    "pingdom",
    "curl/",
    "wget/",
    "python-",
    "python/",
    "go-http-client",
    "java/",
    "okhttp",
    "axios/",
    "node-fetch",
    "undici",
    "libwww",
    "httpclient",
    "scrapy",
    "puppeteer",
    "playwright",
    "selenium",
    "preview",
    "monitor",
    "uptime",
    "facebookexternalhit",
    "embedly",
];

/// The device as `parse_user_agent` of commit 50097f9 said it.
fn old_device(ua: &str) -> Device {
    let lower = ua.to_ascii_lowercase();
    let category = woothee::parser::Parser::new()
        .parse(ua)
        .map_or("", |r| r.category);
    let tablet = lower.contains("ipad")
        || lower.contains("tablet")
        || (lower.contains("android") && !lower.contains("mobile"));
    if ua.is_empty() || category == "crawler" || OLD_MARKERS.iter().any(|m| lower.contains(m)) {
        Device::Bot
    } else if tablet {
        Device::Tablet
    } else {
        match category {
            "pc" => Device::Desktop,
            "smartphone" | "mobilephone" => Device::Mobile,
            _ => Device::Unknown,
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let show = std::env::var("SHOW").ok();
    let t = Instant::now();
    let _ = BotMatcher::builtin();
    let compile = t.elapsed();

    println!(
        "| corpus | kind | User-Agents | flagged as bots, before | flagged as bots, now | device = label, before | device = label, now | device changed, bot flag aside |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for path in std::env::args().skip(1) {
        let name = std::path::Path::new(&path)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(&path)
            .to_owned();
        let text = std::fs::read_to_string(&path)?;
        let rows: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once('\t')).collect();
        let crawlers = rows.iter().all(|(label, _)| *label == "bot");
        let (mut before, mut now, mut labelled, mut dev_before, mut dev_now, mut changed) =
            (0, 0, 0, 0, 0, 0);
        for (label, ua) in &rows {
            let old = old_device(ua);
            let new = parse_user_agent(ua).device;
            before += usize::from(old == Device::Bot);
            changed += usize::from(old != new && old != Device::Bot && new != Device::Bot);
            now += usize::from(new == Device::Bot);
            if !crawlers && *label != "-" {
                labelled += 1;
                dev_before += usize::from(old.name() == *label);
                dev_now += usize::from(new.name() == *label);
            }
            let wrong = |d: Device| (d == Device::Bot) != crawlers;
            if show.as_deref() == Some(name.as_str()) && (wrong(old) || wrong(new)) {
                println!("<!-- before {} now {}: {ua} -->", old.name(), new.name());
            }
        }
        let pct = |k: usize, n: usize| {
            if n == 0 {
                "–".to_owned()
            } else {
                format!("{k} ({:.2} %)", 100.0 * k as f64 / n as f64)
            }
        };
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {changed} |",
            if crawlers { "crawlers" } else { "browsers" },
            rows.len(),
            pct(before, rows.len()),
            pct(now, rows.len()),
            pct(dev_before, labelled),
            pct(dev_now, labelled),
        );
    }

    // What the flag costs per distinct User-Agent (the enricher parses each once per batch).
    let all: Vec<String> = std::env::args()
        .skip(1)
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter_map(|l| l.split_once('\t').map(|(_, ua)| ua.to_owned()))
        .collect();
    let m = BotMatcher::builtin();
    let t = Instant::now();
    let flagged = all.iter().filter(|ua| m.is_match(ua)).count();
    let per = t.elapsed() / all.len().max(1) as u32;
    println!();
    println!(
        "Matcher: compiled in {:.1} ms on first use, automaton {} KiB; {per:?} per User-Agent over all {} lines ({flagged} matched).",
        compile.as_secs_f64() * 1e3,
        m.memory_usage() / 1024,
        all.len()
    );
    Ok(())
}
