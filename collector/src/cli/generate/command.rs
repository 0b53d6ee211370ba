//! `pathlight gen`: the traffic generator (`generate/`) to a file, or live to a collector or
//! to scale-out mode's stream, and the labels of what it injected.

use super::{self as generate, Destination, FileFormat, GenOptions, Generator, SendOptions};
use crate::config::Config;
use anyhow::Context;
use std::path::PathBuf;
use std::time::Duration;

/// `gen`'s arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Events in all.
    #[arg(long, default_value_t = 10_000)]
    events: u64,
    /// Spread sessions over this many days before now (files; live sending uses now).
    #[arg(long, default_value_t = 14)]
    days: u32,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// End of the time range (RFC 3339); default now. With it, a file is reproducible.
    #[arg(long)]
    end: Option<String>,
    /// Site id of the batches.
    #[arg(long, default_value = "demo")]
    site: String,
    /// Address of the demo site the page URLs start with.
    #[arg(long, default_value = "http://127.0.0.1:8080/demo/")]
    base_url: String,
    /// Write to this file; the extension gives the format.
    #[arg(long, group = "to_where")]
    out: Option<PathBuf>,
    /// Send live: to a collector's batch endpoint (http://…/v1/batch), or to the JetStream
    /// of scale-out mode (nats://host:4222), through this process's own collector stages
    /// with the config's sites, ClickHouse (for the day's salts) and [broker] stream.
    #[arg(long, group = "to_where")]
    to: Option<String>,
    /// Live: events per second at most (0: as fast as answered).
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Live: stop after this many seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Also write what was injected into each session (bot, stuck, rage, dead, repeated,
    /// rapid) to this CSV file (`session_id,kind`), for `pathlight score-anomalies`.
    #[arg(long)]
    labels: Option<PathBuf>,
}

/// Generates.
pub fn run(rt: &tokio::runtime::Runtime, mut config: Config, args: Args) -> anyhow::Result<()> {
    let live = args.to.is_some();
    let injected = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let generator = Generator::new(GenOptions {
        events: args.events,
        days: if live { 0 } else { args.days },
        seed: args.seed,
        base_url: args.base_url,
        end_ms: match &args.end {
            Some(t) => pathlight_wire::json::parse_rfc3339_ms(t)
                .with_context(|| format!("--end {t}: not an RFC 3339 time"))?,
            None => crate::dates::now_ms(),
        },
    });
    let visits = generator.inspect(|v| injected.borrow_mut().extend(generate::labels(v)));
    let site = args.site;
    match (args.out, args.to) {
        (Some(path), None) => {
            let format = FileFormat::of(&path)?;
            let file = std::fs::File::create(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            let n = generate::write(visits, &site, format, file)?;
            println!("{}: {n} events", path.display());
        }
        (None, Some(url)) => rt.block_on(async {
            // To JetStream: published to the site's input subject as any producer would, for
            // the loaders to run through the stages.
            let to = if url.starts_with("nats://") {
                config.broker.url = url.clone();
                config.validate()?;
                let (js, _) = config.broker.connect_input("pathlight-gen").await?;
                Destination::Input(Box::new((js, config.broker.clone())))
            } else {
                Destination::Collector(url)
            };
            let opts = SendOptions {
                to,
                rate: args.rate,
                duration: Duration::from_secs(args.seconds),
            };
            let r = generate::send(visits, &site, &opts).await?;
            println!(
                "{} events stored in {} batches; refused or unanswered batches by status: {:?}",
                r.events, r.batches, r.failed
            );
            anyhow::Ok(())
        })?,
        _ => anyhow::bail!("give --out FILE or --to URL"),
    }
    if let Some(path) = args.labels {
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let injected = injected.into_inner();
        generate::write_labels(&injected, file)?;
        println!("{}: {} labels", path.display(), injected.len());
    }
    Ok(())
}
