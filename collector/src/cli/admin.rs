//! The one-shot operations: `migrate` (the schema, or its SQL for a dialect), `config` (the
//! configuration with its defaults), `secret` and `hash-token` (secrets that need not be
//! written in the config file), `erase` (one person's events), `sql` (every analytics query
//! as ClickHouse receives it).

use crate::config::Config;
use crate::storage::clickhouse::{self, Dialect, migrations};
use clap::ValueEnum;
use std::time::Duration;

/// `migrate`'s arguments.
#[derive(clap::Args)]
pub struct MigrateArgs {
    /// Print the SQL for a server dialect instead of connecting.
    #[arg(long, value_name = "DIALECT")]
    print: Option<DialectArg>,
}

#[derive(Clone, Copy, ValueEnum)]
enum DialectArg {
    /// ClickHouse 18.x (no LowCardinality, no TTL).
    Legacy,
    /// Current ClickHouse.
    Modern,
}

/// Migrates the configured database, or prints the migrations' SQL.
pub fn migrate(
    rt: &tokio::runtime::Runtime,
    config: Config,
    args: MigrateArgs,
) -> anyhow::Result<()> {
    if let Some(d) = args.print {
        let dialect = match d {
            DialectArg::Legacy => Dialect::LEGACY,
            DialectArg::Modern => Dialect::MODERN,
        };
        print!("{}", migrations::script(dialect, &config.clickhouse));
        return Ok(());
    }
    rt.block_on(async {
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
    })
}

/// Prints the configuration with every default filled in.
pub fn print_config(config: &Config) -> anyhow::Result<()> {
    print!("{}", toml::to_string_pretty(config)?);
    Ok(())
}

/// Prints a new random secret.
pub fn secret() -> anyhow::Result<()> {
    println!("{}", crate::config::random_secret()?);
    Ok(())
}

/// Prints the SHA-256 of the token on standard input.
pub fn hash_token() -> anyhow::Result<()> {
    let mut token = String::new();
    std::io::stdin().read_line(&mut token)?;
    let token = token.trim_end_matches(['\n', '\r']);
    anyhow::ensure!(!token.is_empty(), "no token on standard input");
    println!("{}", crate::query::auth::digest_hex(token));
    Ok(())
}

/// `erase`'s arguments.
#[derive(clap::Args)]
pub struct EraseArgs {
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
}

/// Erases one person's events and waits until ClickHouse has rewritten the data.
pub fn erase(rt: &tokio::runtime::Runtime, config: Config, args: EraseArgs) -> anyhow::Result<()> {
    use crate::storage::clickhouse::erasure::{Subject, erase};
    let who = match (args.user_id, args.session_id, args.visitor_id) {
        (Some(u), None, None) => Subject::UserId(u),
        (None, Some(s), None) => Subject::SessionId(s),
        (None, None, Some(v)) => Subject::VisitorId(v),
        _ => anyhow::bail!("give exactly one of --user-id, --session-id, --visitor-id"),
    };
    let site = args.site;
    let n = rt.block_on(erase(
        &config.clickhouse,
        &site,
        &who,
        Duration::from_secs(600),
    ))?;
    println!("erased {n} events of {who:?} on site {site}");
    Ok(())
}

/// `sql`'s arguments.
#[derive(clap::Args)]
pub struct SqlArgs {
    /// Query-API parameters, as in `/api/v1/heatmap?...`.
    #[arg(long, default_value = "site=demo&path=/&from=2026-01-01&to=2026-12-31")]
    params: String,
}

/// Prints every analytics query for the parameters.
pub fn sql(config: &Config, args: SqlArgs) -> anyhow::Result<()> {
    let mut filters = crate::query::Filters::parse(&args.params)?;
    if let Some(site) = config.sites.iter().find(|s| s.id == filters.site) {
        filters.search = site.search.clone();
    }
    let timeout_ms = config.session_timeout_secs.saturating_mul(1000);
    for (name, sql) in crate::query::catalogue(&filters, timeout_ms) {
        println!("-- {name}\n{sql};");
    }
    Ok(())
}
