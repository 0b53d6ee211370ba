//! `pathlight`: the collector's command line. See `pathlight --help`.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use pathlight_collector::config::Config;
use pathlight_collector::storage::clickhouse::{self, Dialect, migrations};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Pathlight: behaviour analytics collector (heatmaps, conversion, traffic) on ClickHouse.
///
/// Configuration comes from a TOML file (`--config`) and `PATHLIGHT_*` environment variables
/// that override its keys: `PATHLIGHT_CLICKHOUSE__URL=http://db:8123` sets `[clickhouse] url`.
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    /// Config file (TOML). Without one, defaults plus environment overrides are used.
    #[arg(long, short, global = true, env = "PATHLIGHT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector: migrate, then accept batches on `POST /v1/batch`, serve `/metrics`,
    /// `/healthz`, the dashboards at `/` and the demo site at `/demo/` on `demo_listen`.
    Serve {
        /// Listen address, overriding `listen` in the config (port 0 picks a free port).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Exit when the process with this id is gone (tests that SIGKILL the collector use
        /// it, so a collector never outlives an aborted test run).
        #[arg(long, hide = true)]
        owner_pid: Option<u32>,
    },
    /// Scale-out mode's loader: take rows collectors published to the JetStream stream
    /// (`[broker]`), insert them into ClickHouse in batches, ack them once inserted. Run as
    /// many as wanted; they share the work. SIGTERM finishes the batch in hand, then exits.
    Load {
        /// Exit when the process with this id is gone (as for `serve`).
        #[arg(long, hide = true)]
        owner_pid: Option<u32>,
        /// Crash tests: exit right after this many inserts, before acking their messages.
        #[arg(long, hide = true)]
        exit_after_inserts: Option<u64>,
        /// Serve Prometheus metrics at http://ADDR/metrics.
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<SocketAddr>,
    },
    /// Create or upgrade the ClickHouse schema, then exit.
    Migrate {
        /// Print the SQL for a server dialect instead of connecting.
        #[arg(long, value_name = "DIALECT")]
        print: Option<DialectArg>,
    },
    /// Check the configuration and print it with every default filled in.
    Config,
    /// Print the SHA-256 of a query-API token read from standard input (one line), for a
    /// site's `api_token_sha256`, so the config file need not hold the token.
    HashToken,
    /// Print a new random secret (32 bytes as hex), for `hash_secret` or a site's `api_token`.
    Secret,
    /// Delete every event of one person (right to erasure) and wait until ClickHouse has
    /// rewritten the data without them. Exactly one of the ids.
    Erase {
        /// Site whose events to erase.
        #[arg(long)]
        site: String,
        /// The site's user id.
        #[arg(long, group = "who")]
        user_id: Option<String>,
        /// A session id.
        #[arg(long, group = "who")]
        session_id: Option<String>,
        /// A visitor id as stored (it rotates daily: one day's events).
        #[arg(long, group = "who")]
        visitor_id: Option<u64>,
    },
    /// Import events from a file (NDJSON or CSV in the simple event format) through the same
    /// stages as live traffic, streamed; bad lines are reported by number and skipped.
    Import {
        /// The file; `.csv` is read as CSV with a header row, anything else as NDJSON.
        file: PathBuf,
        /// Site the events belong to (must be in `[[sites]]`).
        #[arg(long)]
        site: String,
        /// Override the format the file name implies.
        #[arg(long, value_parser = ["csv", "ndjson"])]
        format: Option<String>,
    },
    /// Generate realistic synthetic traffic on the demo site's pages (visitors, devices,
    /// countries, funnel sessions, clicks on the real element positions, scrolls, bots, rage
    /// clicks, stuck loops): to a file for `pathlight import` (.ndjson, .csv; .cbor batches),
    /// or live to a collector. The same seed gives the same events.
    Gen {
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
    },
    /// Measure the anomaly rules against the labels `pathlight gen --labels` wrote, on the
    /// generated events once imported: per kind, sessions labelled, flagged and both,
    /// precision and recall, as a Markdown table.
    ScoreAnomalies {
        /// The labels file.
        #[arg(long)]
        labels: PathBuf,
        /// Site the events were imported as.
        #[arg(long, default_value = "demo")]
        site: String,
    },
    /// Print every analytics query as ClickHouse receives it, for the given API parameters.
    Sql {
        /// Query-API parameters, as in `/api/v1/heatmap?...`.
        #[arg(long, default_value = "site=demo&path=/&from=2026-01-01&to=2026-12-31")]
        params: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum DialectArg {
    /// ClickHouse 18.x (no LowCardinality, no TTL).
    Legacy,
    /// Current ClickHouse.
    Modern,
}

// Ingest allocates a few dozen short-lived strings per event on tokio's threads and frees them
// on the same ones: with mimalloc's per-thread free lists the collector spent 13–18 % less CPU
// per event at full rate than with glibc's arenas (bench/results/limits.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PATHLIGHT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut config = Config::load(cli.config.as_deref(), std::env::vars())?;
    let rt = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Serve { listen, owner_pid } => {
            if let Some(addr) = listen {
                config.listen = addr;
            }
            exit_when_gone(owner_pid);
            rt.block_on(serve(config))
        }
        Command::Load {
            owner_pid,
            exit_after_inserts,
            metrics_listen,
        } => {
            exit_when_gone(owner_pid);
            let r = rt.block_on(async {
                let metrics = match metrics_listen {
                    Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
                    None => None,
                };
                let opts = pathlight_collector::storage::broker::load::LoadOptions {
                    exit_after_inserts,
                    metrics,
                };
                pathlight_collector::storage::broker::load::run(
                    &config.broker,
                    &config.clickhouse,
                    opts,
                    shutdown_signal(),
                )
                .await
            })?;
            println!(
                "{} messages loaded: {} rows in {} inserts; {} redelivered rows were already stored; {} messages moved to {}.dead",
                r.messages, r.rows, r.inserts, r.already_stored, r.dead, config.broker.subject
            );
            Ok(())
        }
        Command::Migrate { print: Some(d) } => {
            let dialect = match d {
                DialectArg::Legacy => Dialect::LEGACY,
                DialectArg::Modern => Dialect::MODERN,
            };
            print!("{}", migrations::script(dialect, &config.clickhouse));
            Ok(())
        }
        Command::Migrate { print: None } => rt.block_on(async {
            let dialect = clickhouse::connect(&config.clickhouse, Duration::from_secs(30)).await?;
            let base = clickhouse::client(&config.clickhouse).with_validation(false);
            let applied = migrations::run(&base, &config.clickhouse, dialect).await?;
            println!(
                "ClickHouse {}.{}: database {} up to date ({} migration(s) applied)",
                dialect.version.0,
                dialect.version.1,
                config.clickhouse.database,
                applied.len()
            );
            Ok(())
        }),
        Command::Erase {
            site,
            user_id,
            session_id,
            visitor_id,
        } => rt.block_on(async {
            use pathlight_collector::storage::clickhouse::erasure::{Subject, erase};
            let who = match (user_id, session_id, visitor_id) {
                (Some(u), None, None) => Subject::UserId(u),
                (None, Some(s), None) => Subject::SessionId(s),
                (None, None, Some(v)) => Subject::VisitorId(v),
                _ => anyhow::bail!("give exactly one of --user-id, --session-id, --visitor-id"),
            };
            let n = erase(
                &config.clickhouse,
                &site,
                &who,
                std::time::Duration::from_secs(600),
            )
            .await?;
            println!("erased {n} events of {who:?} on site {site}");
            Ok(())
        }),
        Command::Import { file, site, format } => rt.block_on(async {
            use pathlight_collector::cli::import::{self, Format};
            let format = match format.as_deref() {
                Some("csv") => Format::Csv,
                Some(_) => Format::Ndjson,
                None => Format::of(&file),
            };
            // An operator's import is history, not traffic to police: no rate limits.
            config.ip_events_per_sec = 0;
            // Straight to ClickHouse: no client waits for a durability promise (a rerun adds
            // what is missing), and the spool's directory may be a running collector's.
            config.spool.dir = None;
            for s in &mut config.sites {
                s.max_events_per_sec = 0;
            }
            let metrics = std::sync::Arc::new(pathlight_collector::metrics::Metrics::new());
            let (pipeline, sink) =
                pathlight_collector::pipeline::Pipeline::start(&config, metrics).await?;
            // No live traffic to gather: write each chunk at once, not at the flush interval.
            pipeline.drain();
            let started = std::time::Instant::now();
            let mut last = 0;
            let report = import::run(&pipeline, &site, &file, format, |r| {
                if r.lines >= last + 10_000 {
                    last = r.lines;
                    eprintln!(
                        "{} lines, {} events stored, {} refused",
                        r.lines, r.stored, r.rejected
                    );
                }
            })
            .await;
            drop(pipeline);
            sink.await?;
            let report = report?;
            for (line, reason) in &report.errors {
                eprintln!("{}:{line}: {reason}", file.display());
            }
            println!(
                "{}: {} lines, {} events stored, {} lines refused, {:.1} s",
                file.display(),
                report.lines,
                report.stored,
                report.rejected,
                started.elapsed().as_secs_f64()
            );
            if report.stored == 0 && report.lines > 0 {
                anyhow::bail!("nothing imported");
            }
            Ok(())
        }),
        Command::Gen {
            events,
            days,
            seed,
            end,
            site,
            base_url,
            out,
            to,
            rate,
            seconds,
            labels,
        } => {
            use pathlight_collector::cli::generate;
            let live = to.is_some();
            let injected = std::cell::RefCell::new(std::collections::BTreeSet::new());
            let generator = generate::Generator::new(generate::GenOptions {
                events,
                days: if live { 0 } else { days },
                seed,
                base_url,
                end_ms: match end {
                    Some(t) => pathlight_wire::json::parse_rfc3339_ms(&t)
                        .with_context(|| format!("--end {t}: not an RFC 3339 time"))?,
                    None => pathlight_collector::dates::now_ms(),
                },
            });
            let visits = generator.inspect(|v| injected.borrow_mut().extend(generate::labels(v)));
            let written: anyhow::Result<()> = match (out, to) {
                (Some(path), None) => {
                    let format = generate::FileFormat::of(&path)?;
                    let file = std::fs::File::create(&path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    let n = generate::write(visits, &site, format, file)?;
                    println!("{}: {n} events", path.display());
                    Ok(())
                }
                (None, Some(url)) => rt.block_on(async {
                    // To JetStream: this process runs a collector's stages and publishes as
                    // one would, with the config's sites, ClickHouse (salts) and [broker].
                    let pipeline = if url.starts_with("nats://") {
                        config.broker.url = url.clone();
                        config.validate()?;
                        let metrics = std::sync::Arc::new(pathlight_collector::metrics::Metrics::new());
                        Some(pathlight_collector::pipeline::Pipeline::start(&config, metrics).await?)
                    } else {
                        None
                    };
                    let to = match &pipeline {
                        Some((p, _)) => generate::Destination::Pipeline(p.clone()),
                        None => generate::Destination::Collector(url),
                    };
                    let opts = generate::SendOptions {
                        to,
                        rate,
                        duration: Duration::from_secs(seconds),
                    };
                    let r = generate::send(visits, &site, &opts).await?;
                    drop(opts);
                    if let Some((p, task)) = pipeline {
                        p.drain();
                        drop(p);
                        let _ = task.await;
                    }
                    println!(
                        "{} events stored in {} batches; refused or unanswered batches by status: {:?}",
                        r.events, r.batches, r.failed
                    );
                    Ok(())
                }),
                _ => anyhow::bail!("give --out FILE or --to URL"),
            };
            written?;
            if let Some(path) = labels {
                let file = std::fs::File::create(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                let injected = injected.into_inner();
                generate::write_labels(&injected, file)?;
                println!("{}: {} labels", path.display(), injected.len());
            }
            Ok(())
        }
        Command::ScoreAnomalies { labels, site } => rt.block_on(async {
            use pathlight_collector::cli::{generate, score};
            let file = std::fs::File::open(&labels)
                .with_context(|| format!("opening {}", labels.display()))?;
            let labels = generate::read_labels(file)?;
            let client = clickhouse::client(&config.clickhouse)
                .with_database(&config.clickhouse.database)
                .with_validation(false);
            let (flags, scores) = score::run(&client, &site, &labels).await?;
            println!(
                "{} sessions of site {site}, {} labels\n",
                flags.sessions,
                labels.len()
            );
            print!("{}", score::table(&scores));
            Ok(())
        }),
        Command::Sql { params } => {
            let filters = pathlight_collector::query::Filters::parse(&params)?;
            let timeout_ms = config.session_timeout_secs.saturating_mul(1000);
            for (name, sql) in pathlight_collector::query::catalogue(&filters, timeout_ms) {
                println!("-- {name}\n{sql};");
            }
            Ok(())
        }
        Command::Config => {
            print!("{}", toml::to_string_pretty(&config)?);
            Ok(())
        }
        Command::Secret => {
            println!("{}", pathlight_collector::config::random_secret()?);
            Ok(())
        }
        Command::HashToken => {
            let mut token = String::new();
            std::io::stdin().read_line(&mut token)?;
            let token = token.trim_end_matches(['\n', '\r']);
            anyhow::ensure!(!token.is_empty(), "no token on standard input");
            println!("{}", pathlight_collector::query::auth::digest_hex(token));
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // Before binding anything: a collector that would refuse to run must not seem to start.
    config.check_secrets()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let cert = if config.tls.enabled() {
        Some(pathlight_collector::http::tls::Certificate::load(
            &config.tls,
        )?)
    } else {
        None
    };
    tracing::info!(%addr, tls = cert.is_some(), http3 = config.tls.http3, "listening");
    // On stdout, for scripts that start us on port 0 (and browsers that must trust a
    // self-signed certificate: `--ignore-certificate-errors-spki-list=<hash>`).
    match &cert {
        Some(cert) => {
            println!("pathlight listening on https://{addr}");
            println!(
                "pathlight TLS certificate SPKI SHA-256: {}",
                cert.spki_sha256
            );
        }
        None => println!("pathlight listening on http://{addr}"),
    }
    let demo = pathlight_collector::bind_demo(&config).await?;
    if let Some(demo) = &demo {
        let scheme = if cert.is_some() { "https" } else { "http" };
        println!(
            "pathlight demo site on {scheme}://{}/demo/",
            demo.local_addr()?
        );
    }
    pathlight_collector::serve_with(config, listener, demo, cert, shutdown_signal()).await
}

/// Exits the process once `pid` is gone (tests pass their own pid).
fn exit_when_gone(pid: Option<u32>) {
    if let Some(pid) = pid {
        std::thread::spawn(move || {
            while Path::new(&format!("/proc/{pid}")).exists() {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            std::process::exit(1);
        });
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: finishing requests and flushing queued events");
}
