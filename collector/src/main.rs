//! `pathlight`: the collector's command line. See `pathlight --help`.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use pathlight_collector::config::Config;
use pathlight_collector::sinks::clickhouse::{self, Dialect, migrations};
use std::net::SocketAddr;
use std::path::PathBuf;
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
    /// `/healthz`, the dashboards at `/` and the demo site at `/demo/`.
    Serve {
        /// Listen address, overriding `listen` in the config (port 0 picks a free port).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Create or upgrade the ClickHouse schema, then exit.
    Migrate {
        /// Print the SQL for a server dialect instead of connecting.
        #[arg(long, value_name = "DIALECT")]
        print: Option<DialectArg>,
    },
    /// Check the configuration and print it with every default filled in.
    Config,
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
        Command::Serve { listen } => {
            if let Some(addr) = listen {
                config.listen = addr;
            }
            rt.block_on(serve(config))
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
        Command::Sql { params } => {
            let filters = pathlight_collector::query::Filters::parse(&params)?;
            for (name, sql) in pathlight_collector::query::catalogue(&filters) {
                println!("-- {name}\n{sql};");
            }
            Ok(())
        }
        Command::Config => {
            print!("{}", toml::to_string_pretty(&config)?);
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening");
    // On stdout, for scripts that start us on port 0.
    println!("pathlight listening on http://{addr}");
    pathlight_collector::serve(config, listener, shutdown_signal()).await
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
