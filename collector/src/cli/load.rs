//! `pathlight load`: scale-out mode's loader (`storage/broker/load.rs`) as a process, and,
//! unless `[broker] input_subject` is empty, the input stream's consumer beside it
//! (`source/nats.rs`), both until SIGTERM, reporting what they did.

use super::{exit_when_gone, shutdown_signal};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::storage::broker::load::{self, LoadOptions};
use std::net::SocketAddr;
use std::sync::Arc;

/// `load`'s arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Exit when the process with this id is gone (as for `serve`).
    #[arg(long, hide = true)]
    owner_pid: Option<u32>,
    /// Crash tests: exit right after this many inserts, before acking their messages.
    #[arg(long, hide = true)]
    exit_after_inserts: Option<u64>,
    /// Crash tests: exit once this many input messages were stored, before acking them.
    #[arg(long, hide = true)]
    exit_after_input: Option<u64>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
}

/// Loads until SIGTERM or Ctrl-C.
pub fn run(rt: &tokio::runtime::Runtime, config: Config, args: Args) -> anyhow::Result<()> {
    exit_when_gone(args.owner_pid);
    let (loaded, sourced) = rt.block_on(async {
        let (stop, stopping) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            stop.send_replace(true);
        });
        let metrics = Arc::new(Metrics::new());
        // The input's events go through a collector's stages, published to the rows' stream
        // as a collector's are. NATS's publish permissions stand for ingest keys here.
        let source = if config.broker.enabled() && !config.broker.input_subject.is_empty() {
            let mut cfg = config.clone();
            cfg.spool.dir = None;
            for s in &mut cfg.sites {
                s.require_key = false;
            }
            let (pipeline, sink) = Pipeline::start(&cfg, metrics.clone()).await?;
            let task = tokio::spawn(crate::source::nats::run(
                pipeline.clone(),
                cfg.broker.clone(),
                stopping.clone(),
                args.exit_after_input,
            ));
            Some((task, pipeline, sink))
        } else {
            None
        };
        let listener = match args.metrics_listen {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
            None => None,
        };
        let opts = LoadOptions {
            exit_after_inserts: args.exit_after_inserts,
            metrics: listener,
            shared_metrics: Some(metrics),
        };
        let mut stopped = stopping.clone();
        let loaded = load::run(&config.broker, &config.clickhouse, opts, async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await;
        let sourced = match source {
            Some((task, pipeline, sink)) => {
                let report = task.await?;
                pipeline.drain();
                drop(pipeline);
                let _ = sink.await;
                Some(report?)
            }
            None => None,
        };
        anyhow::Ok((loaded?, sourced))
    })?;
    let r = loaded;
    println!(
        "{} messages loaded: {} rows in {} inserts; {} redelivered rows were already stored; {} messages moved to {}.dead",
        r.messages, r.rows, r.inserts, r.already_stored, r.dead, config.broker.subject
    );
    if let Some(s) = sourced {
        println!(
            "{} input messages stored, {} moved to {}, {} left for redelivery",
            s.stored,
            s.dead,
            config.broker.input_dead_of("<site>"),
            s.retried
        );
    }
    Ok(())
}
