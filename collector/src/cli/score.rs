//! `pathlight score-anomalies`: the anomaly rules measured against known truth.
//!
//! `pathlight gen --labels FILE` writes what it put into each session (a bot, a stuck loop,
//! rage, dead and repeated clicks, rapid automation); once the events are imported, [`score`]
//! asks ClickHouse which sessions each rule flags ([`super::rule_flags`]: the API's own SQL,
//! over every session) and counts per kind the sessions both labelled and flagged, flagged
//! only (false alarms) and labelled only (misses). bench/results/anomalies.md has the figures.

use crate::cli::generate::Injected;
use crate::query::{Filters, QueryError, RuleFlags, rule_flags};
use std::collections::BTreeSet;

/// How one rule does on one kind of injected behaviour.
#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    /// What was injected.
    pub kind: Injected,
    /// The rule meant to find it, as the API names it.
    pub rule: &'static str,
    /// Sessions labelled with `kind`.
    pub labelled: usize,
    /// Sessions the rule flags.
    pub flagged: usize,
    /// Sessions both labelled and flagged.
    pub both: usize,
}

impl Score {
    /// Of the flagged sessions, the share labelled; 1 when none is flagged.
    pub fn precision(&self) -> f64 {
        if self.flagged == 0 {
            1.0
        } else {
            self.both as f64 / self.flagged as f64
        }
    }

    /// Of the labelled sessions, the share flagged; 1 when none is labelled.
    pub fn recall(&self) -> f64 {
        if self.labelled == 0 {
            1.0
        } else {
            self.both as f64 / self.labelled as f64
        }
    }
}

/// The rule that should find `kind`, and the sessions it flagged.
fn rule_of(kind: Injected, flags: &RuleFlags) -> (&'static str, &BTreeSet<String>) {
    match kind {
        Injected::Bot => ("bot (User-Agent)", &flags.bot),
        Injected::Stuck => ("loops", &flags.loops),
        Injected::Rage => ("rage", &flags.rage),
        Injected::Dead => ("dead", &flags.dead),
        Injected::Repeated => ("repeated", &flags.repeated),
        Injected::Rapid => ("rapid", &flags.rapid),
    }
}

/// Each kind's score, in [`Injected::ALL`]'s order.
pub fn score(labels: &BTreeSet<(String, Injected)>, flags: &RuleFlags) -> Vec<Score> {
    Injected::ALL
        .into_iter()
        .map(|kind| {
            let (rule, flagged) = rule_of(kind, flags);
            let labelled: BTreeSet<&String> = labels
                .iter()
                .filter(|(_, k)| *k == kind)
                .map(|(s, _)| s)
                .collect();
            Score {
                kind,
                rule,
                labelled: labelled.len(),
                flagged: flagged.len(),
                both: flagged.iter().filter(|s| labelled.contains(s)).count(),
            }
        })
        .collect()
}

/// The scores as a Markdown table.
pub fn table(scores: &[Score]) -> String {
    let mut out = String::from(
        "| injected | rule | labelled | flagged | both | precision | recall |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
    );
    for s in scores {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.1} % | {:.1} % |\n",
            s.kind.name(),
            s.rule,
            s.labelled,
            s.flagged,
            s.both,
            100.0 * s.precision(),
            100.0 * s.recall()
        ));
    }
    out
}

/// Scores the rules on every event of `site` stored through `client` (database selected)
/// against `labels`; returns the rules' flags too (`sessions` for the table's caption).
pub async fn run(
    client: &clickhouse::Client,
    site: &str,
    labels: &BTreeSet<(String, Injected)>,
) -> Result<(RuleFlags, Vec<Score>), QueryError> {
    let (n, from, to) = client
        .query(
            "SELECT count(), toString(min(toDate(timestamp))), toString(max(toDate(timestamp))) \
             FROM events WHERE site_id = ?",
        )
        .bind(site)
        .fetch_one::<(u64, String, String)>()
        .await?;
    if n == 0 {
        // Nothing stored (yet): nothing flagged, every label missed.
        let flags = RuleFlags::default();
        let scores = score(labels, &flags);
        return Ok((flags, scores));
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("site", site)
        .append_pair("from", &from)
        .append_pair("to", &to)
        .finish();
    let flags = rule_flags(client, &Filters::parse(&query)?).await?;
    let scores = score(labels, &flags);
    Ok((flags, scores))
}

/// `score-anomalies`' arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The labels file.
    #[arg(long)]
    labels: std::path::PathBuf,
    /// Site the events were imported as.
    #[arg(long, default_value = "demo")]
    site: String,
}

/// `pathlight score-anomalies`: the table, for the configured ClickHouse.
pub async fn command(config: crate::config::Config, args: Args) -> anyhow::Result<()> {
    use anyhow::Context;
    let file = std::fs::File::open(&args.labels)
        .with_context(|| format!("opening {}", args.labels.display()))?;
    let labels = crate::cli::generate::read_labels(file)?;
    let client = crate::storage::clickhouse::client(&config.clickhouse)
        .with_database(&config.clickhouse.database)
        .with_validation(false);
    let site = args.site;
    let (flags, scores) = run(&client, &site, &labels).await?;
    println!(
        "{} sessions of site {site}, {} labels\n",
        flags.sessions,
        labels.len()
    );
    print!("{}", table(&scores));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_hits_false_alarms_and_misses_per_kind() {
        let labels: BTreeSet<(String, Injected)> = [
            ("a", Injected::Rage),
            ("b", Injected::Rage),
            ("c", Injected::Stuck),
        ]
        .into_iter()
        .map(|(s, k)| (s.to_owned(), k))
        .collect();
        let set = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect();
        let flags = RuleFlags {
            sessions: 5,
            rage: set(&["a", "d"]),
            loops: set(&["c"]),
            ..RuleFlags::default()
        };
        let scores = score(&labels, &flags);
        let rage = scores.iter().find(|s| s.kind == Injected::Rage).unwrap();
        assert_eq!((rage.labelled, rage.flagged, rage.both), (2, 2, 1));
        assert_eq!((rage.precision(), rage.recall()), (0.5, 0.5));
        let stuck = scores.iter().find(|s| s.kind == Injected::Stuck).unwrap();
        assert_eq!((stuck.precision(), stuck.recall()), (1.0, 1.0));
        assert!(table(&scores).contains("| rage | rage | 2 | 2 | 1 | 50.0 % | 50.0 % |"));
    }
}
