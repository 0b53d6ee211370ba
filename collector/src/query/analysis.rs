//! `sessions/{id}/analysis`: one session's summary and its anomalies, each with a severity,
//! by rules a deployment sets globally (`[anomalies]`) and a site may override
//! (`[sites.anomalies]`).
//!
//! # Why here, in Rust
//! A session is small (its events come from one query over the days it has rows in, see
//! `sql::session_analysis_events`), so the rules run over its events in order here rather than
//! as array SQL: each threshold is a plain value, and the same code answers on 18.16 and on
//! current servers. The site-wide `anomalies` list and its rollup keep their fixed SQL rules
//! (`sql::frustration`), which scan every session of a range.

use serde::{Deserialize, Serialize};

/// How much an anomaly matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Likely a problem.
    Medium,
    /// A visitor in trouble, or not a person.
    High,
}

/// A rule with no threshold of its own.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rule {
    /// Whether the rule runs (default true).
    pub enabled: Option<bool>,
    /// Its anomalies' severity (defaults: dead clicks `low`, missing close `low`, rapid
    /// clicks `medium`).
    pub severity: Option<Severity>,
}

/// The repeated-action rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepeatedRule {
    /// Whether the rule runs (default true).
    pub enabled: Option<bool>,
    /// The same action this many times in a row is an anomaly (default 3, 2 to 100).
    pub min: Option<u32>,
    /// Repeats closer than this, ms, are one action: a double click, a rage burst
    /// (default 1000).
    pub gap_ms: Option<u32>,
    /// Default `medium`.
    pub severity: Option<Severity>,
}

/// The rage-click rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RageRule {
    /// Whether the rule runs (default true).
    pub enabled: Option<bool>,
    /// Clicks in a burst (default 3, 2 to 100) ...
    pub clicks: Option<u32>,
    /// ... within this many ms of the first (default 1000) ...
    pub ms: Option<u32>,
    /// ... and this many px of it, on one page (default 30).
    pub px: Option<u32>,
    /// Default `high`.
    pub severity: Option<Severity>,
}

/// How many times in a row an action makes `repeated` by default: retrying a third time. The
/// generated traffic's retries (3–4 times, seconds apart) are all found with it and nothing
/// else is (bench/results/anomalies.md); the behaviour seed's 5 is `min = 5`.
pub const REPEATED_MIN: u32 = 3;

/// The anomaly rules: `[anomalies]` for every site, `[sites.anomalies]` for one. A rule a
/// site names replaces the global one whole (its omitted keys take the defaults); a rule it
/// does not name is the global one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnomalyRules {
    /// The same action (a page view of a path, a click on an element, a custom event by
    /// name) done `min` times in a row, each more than `gap_ms` after the one before.
    pub repeated: Option<RepeatedRule>,
    /// Bursts of `clicks` clicks within `ms` and `px` on one page.
    pub rage: Option<RageRule>,
    /// Clicks on an element that is not interactive and not followed by a page view within
    /// a second, per element.
    pub dead: Option<Rule>,
    /// The session timed out without its page being hidden or left (no closing engagement
    /// report): the tab crashed, the browser was killed, or the report was lost.
    pub missing_close: Option<Rule>,
    /// Clicks on another element 10 to 99 ms after the click before: faster than a hand.
    pub rapid: Option<Rule>,
}

impl AnomalyRules {
    /// Why the rules cannot be used, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        let within = |name: &str, v: Option<u32>, lo: u32, hi: u32| match v {
            Some(n) if !(lo..=hi).contains(&n) => Err(format!("{name} must be {lo} to {hi}")),
            _ => Ok(()),
        };
        if let Some(r) = &self.repeated {
            within("repeated.min", r.min, 2, 100)?;
            within("repeated.gap_ms", r.gap_ms, 0, 600_000)?;
        }
        if let Some(r) = &self.rage {
            within("rage.clicks", r.clicks, 2, 100)?;
            within("rage.ms", r.ms, 1, 60_000)?;
            within("rage.px", r.px, 1, 10_000)?;
        }
        Ok(())
    }

    /// `site`'s rules over `global`'s, defaults filled in.
    pub fn resolve(site: &AnomalyRules, global: &AnomalyRules) -> Rules {
        let repeated = site.repeated.clone().or_else(|| global.repeated.clone());
        let rage = site.rage.clone().or_else(|| global.rage.clone());
        let rule = |s: &Option<Rule>, g: &Option<Rule>, severity| {
            let r = s.clone().or_else(|| g.clone()).unwrap_or_default();
            r.enabled
                .unwrap_or(true)
                .then(|| r.severity.unwrap_or(severity))
        };
        Rules {
            repeated: repeated.map_or(Some((REPEATED_MIN, 1000, Severity::Medium)), |r| {
                r.enabled.unwrap_or(true).then(|| {
                    (
                        r.min.unwrap_or(REPEATED_MIN),
                        r.gap_ms.unwrap_or(1000),
                        r.severity.unwrap_or(Severity::Medium),
                    )
                })
            }),
            rage: rage.map_or(Some((3, 1000, 30, Severity::High)), |r| {
                r.enabled.unwrap_or(true).then(|| {
                    (
                        r.clicks.unwrap_or(3),
                        r.ms.unwrap_or(1000),
                        r.px.unwrap_or(30),
                        r.severity.unwrap_or(Severity::High),
                    )
                })
            }),
            dead: rule(&site.dead, &global.dead, Severity::Low),
            missing_close: rule(&site.missing_close, &global.missing_close, Severity::Low),
            rapid: rule(&site.rapid, &global.rapid, Severity::Medium),
        }
    }
}

/// A site's rules, resolved: each `None` when disabled.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    /// (min, gap ms, severity).
    pub repeated: Option<(u32, u32, Severity)>,
    /// (clicks, ms, px, severity).
    pub rage: Option<(u32, u32, u32, Severity)>,
    /// Severity of dead clicks.
    pub dead: Option<Severity>,
    /// Severity of a missing close.
    pub missing_close: Option<Severity>,
    /// Severity of rapid clicks.
    pub rapid: Option<Severity>,
}

impl Rules {
    /// The `repeated` rule as the SQL of the site-wide lists reads it (`Filters::repeat`):
    /// (min, gap ms), a min never reached when the rule is off.
    pub fn repeat(&self) -> (u32, u32) {
        self.repeated
            .map_or((u32::MAX, 0), |(min, gap, _)| (min, gap))
    }
}

impl Default for Rules {
    fn default() -> Rules {
        AnomalyRules::resolve(&AnomalyRules::default(), &AnomalyRules::default())
    }
}

/// One event of the session, as the analysis reads it.
#[derive(Clone, Debug, Default, Deserialize, clickhouse::Row)]
pub struct Step {
    /// Kind.
    pub event_type: String,
    /// Time, ms since the epoch.
    pub ts: u64,
    /// Page.
    pub path: String,
    /// Clicked element.
    pub selector: String,
    /// Its tag.
    pub tag: String,
    /// Click position.
    pub x: i32,
    /// See `x`.
    pub y: i32,
    /// Custom event name.
    pub name: String,
}

/// Tags a click on does something by itself.
const INTERACTIVE: [&str; 8] = [
    "a", "button", "input", "select", "textarea", "label", "summary", "option",
];

/// One anomaly found in a session.
#[derive(Debug, Serialize, PartialEq)]
pub struct Found {
    /// `repeated`, `rage`, `dead`, `missing_close` or `rapid`.
    pub rule: &'static str,
    /// How much it matters.
    pub severity: Severity,
    /// When it began, ms since the epoch.
    pub at_ms: u64,
    /// On which page.
    pub path: String,
    /// What: the action repeated (`click #buy`), the element clicked; empty for a missing
    /// close.
    pub what: String,
    /// How many: repeats, clicks in the burst, dead clicks, rapid clicks; 1 for a missing
    /// close.
    pub count: u64,
}

/// A session's summary.
#[derive(Debug, Serialize, PartialEq)]
pub struct Summary {
    /// First and last event, ms since the epoch.
    pub start_ms: u64,
    /// See `start_ms`.
    pub end_ms: u64,
    /// `end_ms - start_ms`, seconds.
    pub duration_secs: f64,
    /// Distinct pages viewed.
    pub pages: u64,
    /// Events by kind, and all (`total`).
    pub events: std::collections::BTreeMap<String, u64>,
    /// First and last page viewed (empty without page views).
    pub entry: String,
    /// See `entry`.
    pub exit: String,
    /// `closed` (its last event was the page being hidden or left), `timed_out` or `active`,
    /// as `sessions` says.
    pub ended: &'static str,
}

/// The action a step is, for the repeated-action rule: none for a custom event sent within
/// 100 ms of the event before (the page's answer to a click or load, not the visitor's).
fn action(s: &Step, before: Option<&Step>) -> Option<String> {
    match s.event_type.as_str() {
        "pageview" => Some(format!("pageview {}", s.path)),
        "click" => Some(format!("click {} {}", s.path, s.selector)),
        "custom" if before.is_none_or(|b| s.ts.saturating_sub(b.ts) >= 100) => {
            Some(format!("custom {}", s.name))
        }
        _ => None,
    }
}

/// The summary of `steps` (in time order) and how the session ended, given by `ended` from
/// its last engagement report and its last event.
pub fn summary(steps: &[Step], ended: impl Fn(u64, u64) -> &'static str) -> Summary {
    let (start_ms, end_ms) = (
        steps.first().map_or(0, |s| s.ts),
        steps.last().map_or(0, |s| s.ts),
    );
    let mut events = std::collections::BTreeMap::new();
    for s in steps {
        *events.entry(s.event_type.clone()).or_insert(0) += 1;
    }
    events.insert("total".into(), steps.len() as u64);
    let views: Vec<&Step> = steps
        .iter()
        .filter(|s| s.event_type == "pageview")
        .collect();
    let mut pages: Vec<&str> = views.iter().map(|s| s.path.as_str()).collect();
    pages.sort_unstable();
    pages.dedup();
    let left = steps
        .iter()
        .filter(|s| s.event_type == "engagement")
        .map(|s| s.ts)
        .max()
        .unwrap_or(0);
    Summary {
        start_ms,
        end_ms,
        duration_secs: end_ms.saturating_sub(start_ms) as f64 / 1000.0,
        pages: pages.len() as u64,
        events,
        entry: views.first().map_or(String::new(), |s| s.path.clone()),
        exit: views.last().map_or(String::new(), |s| s.path.clone()),
        ended: ended(left, end_ms),
    }
}

/// The anomalies of a session's `steps` (in time order) by `rules`, in time order; `ended` is
/// its summary's.
pub fn anomalies(steps: &[Step], ended: &str, rules: &Rules) -> Vec<Found> {
    let mut found = Vec::new();
    let clicks: Vec<&Step> = steps.iter().filter(|s| s.event_type == "click").collect();
    if let Some((min, gap, severity)) = rules.repeated {
        // Runs of one action, repeats within `gap` of the one before folded into it.
        let mut run: Option<(String, &Step, u64, u64)> = None;
        let close = |run: Option<(String, &Step, u64, u64)>, found: &mut Vec<Found>| {
            if let Some((what, first, n, _)) = run
                && n >= u64::from(min)
            {
                found.push(Found {
                    rule: "repeated",
                    severity,
                    at_ms: first.ts,
                    path: first.path.clone(),
                    what,
                    count: n,
                });
            }
        };
        let mut before = None;
        for s in steps {
            let Some(a) = action(s, before) else {
                before = Some(s);
                continue;
            };
            before = Some(s);
            match &mut run {
                Some((what, _, n, last)) if *what == a => {
                    if s.ts.saturating_sub(*last) > u64::from(gap) {
                        *n += 1;
                    }
                    *last = s.ts;
                }
                _ => {
                    close(run.take(), &mut found);
                    run = Some((a, s, 1, s.ts));
                }
            }
        }
        close(run, &mut found);
    }
    if let Some((n, ms, px, severity)) = rules.rage {
        let mut i = 0;
        while i < clicks.len() {
            let a = clicks[i];
            let burst = clicks[i..]
                .iter()
                .take_while(|c| {
                    c.path == a.path
                        && c.ts - a.ts <= u64::from(ms)
                        && c.x.abs_diff(a.x) <= px
                        && c.y.abs_diff(a.y) <= px
                })
                .count();
            if burst >= n as usize {
                found.push(Found {
                    rule: "rage",
                    severity,
                    at_ms: a.ts,
                    path: a.path.clone(),
                    what: a.selector.clone(),
                    count: burst as u64,
                });
                i += burst;
            } else {
                i += 1;
            }
        }
    }
    if let Some(severity) = rules.dead {
        // Per element, at its first dead click.
        let mut dead: Vec<Found> = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            let navigated = steps[i + 1..]
                .iter()
                .find(|n| matches!(n.event_type.as_str(), "click" | "pageview"))
                .is_some_and(|n| n.event_type == "pageview" && n.ts - s.ts <= 1000);
            if s.event_type != "click"
                || s.selector.is_empty()
                || INTERACTIVE.contains(&s.tag.as_str())
                || navigated
            {
                continue;
            }
            match dead
                .iter_mut()
                .find(|d| d.path == s.path && d.what == s.selector)
            {
                Some(d) => d.count += 1,
                None => dead.push(Found {
                    rule: "dead",
                    severity,
                    at_ms: s.ts,
                    path: s.path.clone(),
                    what: s.selector.clone(),
                    count: 1,
                }),
            }
        }
        found.extend(dead);
    }
    if let Some(severity) = rules.rapid {
        let fast: Vec<&Step> = clicks
            .windows(2)
            .filter(|w| {
                let gap = w[1].ts - w[0].ts;
                (10..100).contains(&gap) && w[1].selector != w[0].selector && w[0].tag != "label"
            })
            .map(|w| w[1])
            .collect();
        if let Some(first) = fast.first() {
            found.push(Found {
                rule: "rapid",
                severity,
                at_ms: first.ts,
                path: first.path.clone(),
                what: first.selector.clone(),
                count: fast.len() as u64,
            });
        }
    }
    if let Some(severity) = rules.missing_close
        && ended == "timed_out"
        && let Some(last) = steps.last()
    {
        found.push(Found {
            rule: "missing_close",
            severity,
            at_ms: last.ts,
            path: last.path.clone(),
            what: String::new(),
            count: 1,
        });
    }
    found.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then(a.rule.cmp(b.rule)));
    found
}

/// `sessions/{id}/analysis`.
#[derive(Debug, Serialize)]
pub struct Analysis {
    /// The session.
    pub session_id: String,
    /// Its summary; null when the range has no event of it.
    pub summary: Option<Summary>,
    /// Its anomalies, in time order.
    pub anomalies: Vec<Found>,
    /// The highest severity among them; null without any.
    pub severity: Option<Severity>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(kind: &str, ts: u64, path: &str, selector: &str, tag: &str) -> Step {
        Step {
            event_type: kind.into(),
            ts,
            path: path.into(),
            selector: selector.into(),
            tag: tag.into(),
            ..Step::default()
        }
    }

    #[test]
    fn rules_are_the_sites_over_the_global_over_the_defaults() {
        let d = Rules::default();
        assert_eq!(d.repeated, Some((3, 1000, Severity::Medium)));
        assert_eq!(d.rage, Some((3, 1000, 30, Severity::High)));
        let global = AnomalyRules {
            repeated: Some(RepeatedRule {
                min: Some(4),
                ..RepeatedRule::default()
            }),
            dead: Some(Rule {
                enabled: Some(false),
                severity: None,
            }),
            ..AnomalyRules::default()
        };
        let site = AnomalyRules {
            repeated: Some(RepeatedRule {
                severity: Some(Severity::High),
                ..RepeatedRule::default()
            }),
            ..AnomalyRules::default()
        };
        let r = AnomalyRules::resolve(&site, &global);
        // The site's rule replaces the global one whole: min back to its default.
        assert_eq!(r.repeated, Some((3, 1000, Severity::High)));
        assert_eq!(r.dead, None);
        assert_eq!(
            AnomalyRules::resolve(&AnomalyRules::default(), &global).repeated,
            Some((4, 1000, Severity::Medium))
        );
        assert!(
            AnomalyRules {
                rage: Some(RageRule {
                    clicks: Some(1),
                    ..RageRule::default()
                }),
                ..AnomalyRules::default()
            }
            .check()
            .is_err()
        );
    }

    #[test]
    fn each_rule_finds_its_anomaly() {
        // Five clicks on #save a second and more apart, then a double click folded into the
        // last; a rage burst; a dead click; two rapid clicks; no close.
        let mut s: Vec<Step> = vec![step("pageview", 0, "/f", "", "")];
        s.extend((1..=5).map(|i| step("click", i * 2000, "/f", "#save", "button")));
        s.push(step("click", 10_200, "/f", "#save", "button"));
        s.extend([0, 100, 200].map(|ms| step("click", 20_000 + ms, "/f", "#img", "img")));
        s.push(step("click", 30_000, "/f", "#x", "button"));
        s.push(step("click", 30_050, "/f", "#y", "button"));
        let ended = summary(&s, |_, _| "timed_out").ended;
        let found = anomalies(&s, ended, &Rules::default());
        let got: Vec<(&str, Severity, u64, &str, u64)> = found
            .iter()
            .map(|f| (f.rule, f.severity, f.at_ms, f.what.as_str(), f.count))
            .collect();
        assert_eq!(
            got,
            [
                ("repeated", Severity::Medium, 2000, "click /f #save", 5),
                ("dead", Severity::Low, 20_000, "#img", 3),
                ("rage", Severity::High, 20_000, "#img", 3),
                ("missing_close", Severity::Low, 30_050, "", 1),
                ("rapid", Severity::Medium, 30_050, "#y", 1),
            ]
        );
        // Two repeats are not three; a close report ends the session cleanly.
        let two: Vec<Step> = s[..3].to_vec();
        assert!(anomalies(&two, "closed", &Rules::default()).is_empty());
    }

    #[test]
    fn the_summary_counts_kinds_pages_and_ends() {
        let s = vec![
            step("pageview", 1000, "/a", "", ""),
            step("click", 2000, "/a", "#b", "a"),
            step("pageview", 2500, "/b", "", ""),
            step("pageview", 3000, "/a", "", ""),
            step("engagement", 4000, "/a", "", ""),
        ];
        let sum = summary(
            &s,
            |left, end| if left >= end { "closed" } else { "timed_out" },
        );
        assert_eq!(
            (sum.start_ms, sum.end_ms, sum.duration_secs, sum.pages),
            (1000, 4000, 3.0, 2)
        );
        assert_eq!(
            (sum.entry.as_str(), sum.exit.as_str(), sum.ended),
            ("/a", "/a", "closed")
        );
        assert_eq!(sum.events["pageview"], 3);
        assert_eq!(sum.events["total"], 5);
    }
}
