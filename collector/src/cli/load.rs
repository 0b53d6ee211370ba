//! `pathlight load`: scale-out mode's loader (`storage/broker/load.rs`) as a process, until
//! SIGTERM, reporting what it loaded.

use super::{exit_when_gone, shutdown_signal};
use crate::config::Config;
use crate::storage::broker::load::{self, LoadOptions};
use std::net::SocketAddr;

/// `load`'s arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Exit when the process with this id is gone (as for `serve`).
    #[arg(long, hide = true)]
    owner_pid: Option<u32>,
    /// Crash tests: exit right after this many inserts, before acking their messages.
    #[arg(long, hide = true)]
    exit_after_inserts: Option<u64>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
}

/// Loads until SIGTERM or Ctrl-C.
pub fn run(rt: &tokio::runtime::Runtime, config: Config, args: Args) -> anyhow::Result<()> {
    exit_when_gone(args.owner_pid);
    let r = rt.block_on(async {
        let metrics = match args.metrics_listen {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
            None => None,
        };
        let opts = LoadOptions {
            exit_after_inserts: args.exit_after_inserts,
            metrics,
        };
        load::run(&config.broker, &config.clickhouse, opts, shutdown_signal()).await
    })?;
    println!(
        "{} messages loaded: {} rows in {} inserts; {} redelivered rows were already stored; {} messages moved to {}.dead",
        r.messages, r.rows, r.inserts, r.already_stored, r.dead, config.broker.subject
    );
    Ok(())
}
