//! `pathlight serve`: binds the listeners, prints where they are (scripts that start the
//! collector on port 0 read the address from stdout), and serves until SIGTERM or Ctrl-C.

use super::{exit_when_gone, shutdown_signal};
use crate::config::Config;
use anyhow::Context;
use std::net::SocketAddr;

/// `serve`'s arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Listen address, overriding `listen` in the config (port 0 picks a free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Exit when the process with this id is gone (tests that SIGKILL the collector use
    /// it, so a collector never outlives an aborted test run).
    #[arg(long, hide = true)]
    owner_pid: Option<u32>,
}

/// Runs the collector.
pub fn run(rt: &tokio::runtime::Runtime, mut config: Config, args: Args) -> anyhow::Result<()> {
    if let Some(addr) = args.listen {
        config.listen = addr;
    }
    exit_when_gone(args.owner_pid);
    rt.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // Before binding anything: a collector that would refuse to run must not seem to start.
    config.check_secrets()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let cert = if config.tls.enabled() {
        Some(crate::http::tls::Certificate::load(&config.tls)?)
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
    let demo = crate::bind_demo(&config).await?;
    if let Some(demo) = &demo {
        let scheme = if cert.is_some() { "https" } else { "http" };
        println!(
            "pathlight demo site on {scheme}://{}/demo/",
            demo.local_addr()?
        );
    }
    crate::serve_with(config, listener, demo, cert, shutdown_signal()).await
}
