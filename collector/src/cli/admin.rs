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
        return emit(&migrations::script(dialect, &config.clickhouse));
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

/// Prints the configuration with every default filled in, its secrets left empty: the output
/// gets pasted into tickets and chats, and a secret there must be replaced everywhere. A first
/// line names the secrets that are set.
pub fn print_config(config: &Config) -> anyhow::Result<()> {
    let mut value = toml::Value::try_from(config)?;
    let mut hidden = Vec::new();
    hide_secrets(&mut value, "", &mut hidden);
    let mut text = String::new();
    if !hidden.is_empty() {
        text.push_str("# Set but not printed: ");
        text.push_str(&hidden.join(", "));
        text.push('\n');
    }
    text.push_str(&toml::to_string_pretty(&value)?);
    emit(&text)
}

/// Config keys whose values are secrets, wherever they appear.
const SECRET_KEYS: [&str; 3] = ["hash_secret", "password", "api_token"];

/// Empties every non-empty secret under `value`, listing where it was (`sites[0].api_token`).
fn hide_secrets(value: &mut toml::Value, path: &str, hidden: &mut Vec<String>) {
    match value {
        toml::Value::Table(table) => {
            for (key, v) in table.iter_mut() {
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if SECRET_KEYS.contains(&key.as_str()) && v.as_str().is_some_and(|s| !s.is_empty())
                {
                    *v = toml::Value::String(String::new());
                    hidden.push(at);
                } else {
                    hide_secrets(v, &at, hidden);
                }
            }
        }
        toml::Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                hide_secrets(v, &format!("{path}[{i}]"), hidden);
            }
        }
        _ => {}
    }
}

/// Writes to standard output. A reader that went away (`pathlight sql | head`) ends the
/// command quietly, as it does other Unix tools, where `print!` would panic.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => Ok(written?),
    }
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
    let mut text = String::new();
    for (name, sql) in crate::query::catalogue(&filters, timeout_ms) {
        text.push_str(&format!("-- {name}\n{sql};\n"));
    }
    emit(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_emptied_and_named() {
        let mut value: toml::Value = toml::from_str(
            "hash_secret = \"s3cret-s3cret-s3cret\"\n[clickhouse]\npassword = \"pw\"\nuser = \"u\"\n\
             [[sites]]\nid = \"a\"\napi_token = \"\"\n[[sites]]\nid = \"b\"\napi_token = \"t\"\n",
        )
        .unwrap();
        let mut hidden = Vec::new();
        hide_secrets(&mut value, "", &mut hidden);
        hidden.sort();
        assert_eq!(
            hidden,
            ["clickhouse.password", "hash_secret", "sites[1].api_token"]
        );
        let text = toml::to_string(&value).unwrap();
        assert!(!text.contains("s3cret") && !text.contains("\"pw\"") && !text.contains("\"t\""));
        assert!(text.contains("user = \"u\""), "{text}");
    }
}
