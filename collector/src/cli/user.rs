//! `pathlight user add`: makes an account from the command line, the first admin's way in on a
//! server whose dashboards are not on this machine (the first-start form answers only on
//! loopback). The password comes from one line of standard input, never from an argument
//! (which `ps` and shell histories show) nor from a `PATHLIGHT_*` variable (those are the
//! configuration's).

use crate::accounts::Accounts;
use crate::config::Config;
use crate::storage::clickhouse::{self, migrations};
use std::io::BufRead;
use std::time::Duration;

/// `user`'s subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Make an account (the schema is migrated first).
    Add(AddArgs),
}

/// `user add`'s arguments.
#[derive(clap::Args)]
pub struct AddArgs {
    /// The account's email, its sign-in name.
    #[arg(long)]
    email: String,
    /// Manages every site, account and key.
    #[arg(long)]
    admin: bool,
}

/// Runs `user …`.
pub fn run(rt: &tokio::runtime::Runtime, config: Config, command: Command) -> anyhow::Result<()> {
    let Command::Add(args) = command;
    eprintln!("Password for {} (one line on standard input):", args.email);
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    rt.block_on(async {
        let dialect = clickhouse::connect(&config.clickhouse, Duration::from_secs(30)).await?;
        let base = clickhouse::client(&config.clickhouse).with_validation(false);
        migrations::run(&base, &config.clickhouse, dialect).await?;
        let accounts = Accounts::new(crate::accounts_client(&config), config.accounts.clone());
        let made = accounts.add(&args.email, &password, args.admin).await?;
        println!(
            "account {} made{}",
            made.email,
            if args.admin { " (admin)" } else { "" }
        );
        anyhow::Ok(())
    })
}
