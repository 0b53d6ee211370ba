//! `pathlight-bench`: the command line of the bench tools (the library's doc says what each
//! measures and which bench script runs it). See `pathlight-bench --help`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use pathlight_bench::{discard, fanout, insert_limit, loadgen};
use pathlight_collector::config::Config;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Pathlight's load and limit tools, for the scripts in bench/ (not part of the collector).
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send load to a collector: realistic CBOR batches, bounded in time and count; prints a
    /// Markdown table of throughput and latency. Loopback or your own collector only.
    Loadgen {
        /// Batch endpoint.
        #[arg(long, default_value = "http://127.0.0.1:8080/v1/batch")]
        url: String,
        /// Site id in the batches.
        #[arg(long, default_value = "demo")]
        site: String,
        /// Events per batch.
        #[arg(long, default_value_t = 20)]
        batch: usize,
        /// Requests in flight.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Requests per second (0: as fast as answers come).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Seconds to run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Most requests to send.
        #[arg(long, default_value_t = 1_000_000)]
        max_requests: u64,
        /// HTTP/2 (prior knowledge over cleartext, ALPN over TLS) instead of HTTP/1.1.
        #[arg(long, conflicts_with = "http3")]
        http2: bool,
        /// HTTP/3 over QUIC (needs an https:// URL).
        #[arg(long)]
        http3: bool,
        /// TLS: accept any certificate (a self-signed collector on loopback).
        #[arg(long)]
        insecure: bool,
    },
    /// The transport limit: a minimal HTTP server that reads and discards batch bodies
    /// (`bench/limits.sh`).
    Discard {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// The storage limit: ClickHouse ingesting pre-built rows through the collector's insert
    /// (`bench/limits.sh`); prints rows per second.
    InsertLimit {
        /// The collector's config file (TOML): its `[clickhouse]` and first site. `PATHLIGHT_*`
        /// environment variables override its keys, as for `pathlight`.
        #[arg(long, short, env = "PATHLIGHT_CONFIG")]
        config: Option<PathBuf>,
        /// Events per batch the rows are built from.
        #[arg(long, default_value_t = 20)]
        batch: usize,
        /// Rows per insert.
        #[arg(long, default_value_t = 100_000)]
        rows_per_insert: usize,
        /// How long.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Write `--files` inserts' rows (RowBinary, in `events` column order, ids distinct
        /// across files) to PREFIX-0.bin, PREFIX-1.bin... and print the column list, instead
        /// of inserting (`bench/modern-storage.sh`).
        #[arg(long, value_name = "PREFIX")]
        write: Option<PathBuf>,
        /// How many files `--write` writes.
        #[arg(long, default_value_t = 1)]
        files: u64,
    },
    /// The live feed's fan-out: `clients` WebSocket viewers of a site, one event posted per
    /// batch; prints a Markdown table of arrival latency (`bench/websocket.sh`).
    WsFanout {
        /// The collector the viewers connect to.
        #[arg(long, default_value = "127.0.0.1:8080")]
        viewers: String,
        /// The collector events are posted to (default: the viewers').
        #[arg(long)]
        post: Option<String>,
        /// Site.
        #[arg(long, default_value = "demo")]
        site: String,
        /// The site's API token.
        #[arg(long, env = "PATHLIGHT_BENCH_TOKEN")]
        token: String,
        /// Viewers.
        #[arg(long, default_value_t = 50)]
        clients: usize,
        /// Events posted.
        #[arg(long, default_value_t = 200)]
        events: usize,
        /// Between posts, ms.
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
    },
}

// The collector's allocator: the generator shares core 1 with ClickHouse and the limits run on
// the collector's core, so each must cost what it cost when it was part of `pathlight`
// (bench/results/generator.md, limits.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    pathlight_collector::cli::init_logging();
    let rt = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Loadgen {
            url,
            site,
            batch,
            concurrency,
            rate,
            seconds,
            max_requests,
            http2,
            http3,
            insecure,
        } => rt.block_on(async {
            let opts = loadgen::LoadOptions {
                url,
                site,
                batch: batch.clamp(1, 500),
                concurrency: concurrency.clamp(1, 1024),
                rate,
                duration: Duration::from_secs(seconds.clamp(1, 3600)),
                max_requests,
                http2,
                http3,
                insecure,
                // Distinct events per run.
                seed: pathlight_collector::dates::now_ms() as u32,
            };
            let report = loadgen::run(opts).await?;
            println!("{}", loadgen::LoadReport::HEADER);
            println!("{}", report.row());
            eprintln!("answers by status: {:?}", report.statuses);
            Ok(())
        }),
        Command::Discard { listen } => rt.block_on(async {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            println!(
                "pathlight-bench discard listening on http://{}",
                listener.local_addr()?
            );
            discard::run(listener).await
        }),
        Command::InsertLimit {
            config,
            batch,
            rows_per_insert,
            seconds,
            write,
            files,
        } => {
            let config = Config::load(config.as_deref(), std::env::vars())?;
            let batch = batch.clamp(1, 500);
            let rows_per_insert = rows_per_insert.max(1);
            match write {
                Some(prefix) => {
                    for n in 0..files.min(1_000) {
                        // One file at a time: 100 k rows are ~38 MB.
                        let rows =
                            insert_limit::limit_rows(&config, batch, rows_per_insert, n..n + 1)?;
                        let file = format!("{}-{n}.bin", prefix.display());
                        std::fs::write(&file, &rows[0])
                            .with_context(|| format!("writing {file}"))?;
                    }
                    println!("{}", pathlight_ingest::COLUMNS);
                    Ok(())
                }
                None => rt.block_on(async {
                    let duration = Duration::from_secs(seconds.clamp(1, 600));
                    let rate = insert_limit::run(&config, batch, rows_per_insert, duration).await?;
                    println!("{rate:.0} rows/s");
                    Ok(())
                }),
            }
        }
        Command::WsFanout {
            viewers,
            post,
            site,
            token,
            clients,
            events,
            interval_ms,
        } => rt.block_on(async {
            let opts = fanout::FanoutOptions {
                post: post.unwrap_or_else(|| viewers.clone()),
                viewers,
                site,
                token,
                clients: clients.clamp(1, 10_000),
                events: events.clamp(1, 100_000),
                interval_ms,
            };
            let report = fanout::run(opts.clone()).await?;
            println!("{}", report.table(&opts));
            Ok(())
        }),
    }
}
