//! `pathlight`, the collector's command line: what an operator runs. Each command is one file:
//! its arguments (clap reads their doc comments as `--help`) and what it does.
//!
//! - `serve` (`serve.rs`): the collector; `load` (`load.rs`): scale-out mode's loader.
//! - `migrate`, `config`, `secret`, `hash-token`, `erase`, `sql` (`admin.rs`): one-shot
//!   operations on the schema, the configuration, secrets and stored events.
//! - `import` (`import.rs`): event files through the ingest stages, and users' traits.
//! - `gen` (`generate/command.rs`, the generator beside it in `generate/`) and `score-anomalies` (`score.rs`):
//!   synthetic traffic, and the anomaly rules measured against what it injected.
//!
//! The bench and load tools are not here: they are the `pathlight-bench` binary (`tools/`).

pub mod admin;
pub mod generate;
pub mod import;
pub mod load;
pub mod score;
pub mod serve;
pub mod user;

use crate::config::Config;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

/// Pathlight: behaviour analytics collector (heatmaps, conversion, traffic) on ClickHouse.
///
/// Configuration comes from a TOML file (`--config`) and `PATHLIGHT_*` environment variables
/// that override its keys: `PATHLIGHT_CLICKHOUSE__URL=http://db:8123` sets `[clickhouse] url`.
#[derive(Parser)]
#[command(name = "pathlight", version, propagate_version = true)]
pub struct Cli {
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
    Serve(serve::Args),
    /// Scale-out mode's loader: take rows collectors published to the JetStream stream
    /// (`[broker]`), insert them into ClickHouse in batches, ack them once inserted. Run as
    /// many as wanted; they share the work. SIGTERM finishes the batch in hand, then exits.
    Load(load::Args),
    /// Create or upgrade the ClickHouse schema, then exit.
    Migrate(admin::MigrateArgs),
    /// Check the configuration and print it with every default filled in.
    Config,
    /// Print the SHA-256 of a query-API token read from standard input (one line), for a
    /// site's `api_token_sha256`, so the config file need not hold the token.
    HashToken,
    /// Print a new random secret (32 bytes as hex), for `hash_secret` or a site's `api_token`.
    Secret,
    /// Delete every event of one person (right to erasure) and wait until ClickHouse has
    /// rewritten the data without them. Exactly one of the ids.
    Erase(admin::EraseArgs),
    /// Import events from a file (NDJSON or CSV in the simple event format) through the same
    /// stages as live traffic, streamed; bad lines are reported by number and skipped. With
    /// `--users`, a CSV of users and their traits (as identify stores them).
    Import(import::Args),
    /// Generate realistic synthetic traffic on the demo site's pages (visitors, devices,
    /// countries, funnel sessions, clicks on the real element positions, scrolls, bots, rage
    /// clicks, stuck loops): to a file for `pathlight import` (.ndjson, .csv; .cbor batches),
    /// or live to a collector. The same seed gives the same events.
    Gen(generate::command::Args),
    /// Measure the anomaly rules against the labels `pathlight gen --labels` wrote, on the
    /// generated events once imported: per kind, sessions labelled, flagged and both,
    /// precision and recall, as a Markdown table.
    ScoreAnomalies(score::Args),
    /// Print every analytics query as ClickHouse receives it, for the given API parameters.
    Sql(admin::SqlArgs),
    /// Accounts of the dashboards: `user add --email E [--admin]` (the password is read from
    /// standard input).
    #[command(subcommand)]
    User(user::Command),
}

/// Runs the command line: logs ([`init_logging`]), loads the configuration, runs the command.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    let config = Config::load(cli.config.as_deref(), std::env::vars())?;
    let rt = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Serve(args) => serve::run(&rt, config, args),
        Command::Load(args) => load::run(&rt, config, args),
        Command::Migrate(args) => admin::migrate(&rt, config, args),
        Command::Config => admin::print_config(&config),
        Command::HashToken => admin::hash_token(),
        Command::Secret => admin::secret(),
        Command::Erase(args) => admin::erase(&rt, config, args),
        Command::Import(args) => rt.block_on(import::command(config, args)),
        Command::Gen(args) => generate::command::run(&rt, config, args),
        Command::ScoreAnomalies(args) => rt.block_on(score::command(config, args)),
        Command::Sql(args) => admin::sql(&config, args),
        Command::User(command) => user::run(&rt, config, command),
    }
}

/// Logs to stderr at the level `PATHLIGHT_LOG` sets (`info` by default); stdout stays for
/// what scripts read (addresses, reports). `pathlight-bench` logs the same way.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PATHLIGHT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Exits the process once `pid` is gone (tests pass their own pid, so that a collector or a
/// loader never outlives an aborted test run).
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

/// Resolves on Ctrl-C or SIGTERM.
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
