//! What the generator put into the traffic for the anomaly rules to find, and the labels
//! files (`pathlight gen --labels`) that `pathlight score-anomalies` measures the rules by.

use super::Visit;
use std::collections::BTreeSet;
use std::io::Write;

/// What the generator put into a session that an anomaly rule should find: the truth the
/// rules are measured against (`pathlight gen --labels`, `pathlight score-anomalies`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Injected {
    /// A crawler that says so in its User-Agent: the collector's bot flag.
    Bot,
    /// Back and forth between the catalog and one product page, in a hurry, at least three
    /// round trips: the `loops` rule.
    Stuck,
    /// A burst of 3–6 clicks on one element, 80–250 ms apart, a few pixels from each other:
    /// rage clicks.
    Rage,
    /// One or two clicks on text that does nothing: dead clicks.
    Dead,
    /// One button clicked 3–4 times in a row, seconds apart (retrying): `repeated`.
    Repeated,
    /// Automation with a browser's User-Agent: clicks on different elements 15–80 ms apart,
    /// faster than a hand moves: `rapid`.
    Rapid,
}

impl Injected {
    /// Every kind, in the order tables list them.
    pub const ALL: [Injected; 6] = [
        Injected::Bot,
        Injected::Stuck,
        Injected::Rage,
        Injected::Dead,
        Injected::Repeated,
        Injected::Rapid,
    ];

    /// Its name in a labels file.
    pub fn name(self) -> &'static str {
        match self {
            Injected::Bot => "bot",
            Injected::Stuck => "stuck",
            Injected::Rage => "rage",
            Injected::Dead => "dead",
            Injected::Repeated => "repeated",
            Injected::Rapid => "rapid",
        }
    }

    /// The kind a labels file names.
    pub fn parse(name: &str) -> Option<Injected> {
        Injected::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// What was injected into `visit`, with its session: the labels `--labels` writes.
pub fn labels(visit: &Visit) -> impl Iterator<Item = (String, Injected)> + '_ {
    let session = visit
        .events
        .first()
        .map(|e| e.session_id.clone())
        .unwrap_or_default();
    visit.injected.iter().map(move |k| (session.clone(), *k))
}

/// Writes labels as CSV, `session_id,kind` (kinds as [`Injected::name`]), each pair once.
pub fn write_labels(labels: &BTreeSet<(String, Injected)>, out: impl Write) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(["session_id", "kind"])?;
    for (session, kind) in labels {
        w.write_record([session.as_str(), kind.name()])?;
    }
    w.flush()?;
    Ok(())
}

/// Reads labels written by [`write_labels`].
pub fn read_labels(input: impl std::io::Read) -> anyhow::Result<BTreeSet<(String, Injected)>> {
    let mut out = BTreeSet::new();
    for (i, row) in csv::Reader::from_reader(input).records().enumerate() {
        let row = row?;
        let kind = row.get(1).and_then(Injected::parse).ok_or_else(|| {
            anyhow::anyhow!(
                "labels line {}: the kind is not one of {:?}",
                i + 2,
                Injected::ALL.map(Injected::name)
            )
        })?;
        out.insert((row.get(0).unwrap_or_default().to_owned(), kind));
    }
    Ok(out)
}
