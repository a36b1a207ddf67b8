//! `keyvault store …`: the PostgreSQL store's password in the OS keyring (login/logout).

use super::{Ctx, print_json};
use crate::error::{Done, Failure};
use clap::{Args, Subcommand};
use serde_json::json;

/// `keyvault store …`.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Keep the PostgreSQL store's password in the OS keyring (read from a prompt or
    /// standard input).
    #[command(
        after_help = "The password is never taken from the command line or config.toml, and a \
store URL with a password in it is refused. keyvault looks for it in PGPASSWORD, then in libpq's \
password file (PGPASSFILE, else ~/.pgpass), then in the OS keyring (service keyvault, account \
postgres:USER@HOST:PORT/DB), which this command fills.\n\n\
Examples:\n  keyvault store login\n  pass show kv-db | keyvault store login --stdin"
    )]
    Login(StoreLoginArgs),
    /// Delete the password kept by `store login` from the OS keyring.
    #[command(
        after_help = "For a URL with several hosts, ports or a hostaddr, the entry an older keyvault kept \
under the first server's account (postgres:USER@HOST:PORT/DB) is deleted too.\n\n\
Examples:\n  keyvault store logout"
    )]
    Logout,
}

/// `keyvault store login`.
#[derive(Debug, Args)]
pub struct StoreLoginArgs {
    /// Read the password from standard input instead of a prompt.
    #[arg(long)]
    pub stdin: bool,
}

/// Runs `keyvault store <command>`.
pub(crate) fn run(ctx: &mut Ctx<'_>, c: StoreCommand) -> Result<Done, Failure> {
    let (url, account) = account(ctx.config)?;
    let keyring = ctx.vault.keyring()?;
    match c {
        StoreCommand::Login(a) => {
            let password = super::runpod::read_secret(
                a.stdin,
                ctx.no_input,
                "PostgreSQL password: ",
                "a password",
            )?;
            keyring.set(&account, password.expose())?;
            if ctx.json {
                print_json(
                    &json!({"store": url, "service": keyvault_core::vault_secrets::SERVICE, "account": account}),
                );
            } else {
                println!(
                    "password for {url} kept in the OS keyring (service keyvault, account {account})"
                );
            }
        }
        StoreCommand::Logout => {
            let mut removed = keyring.delete(&account)?;
            // An older keyvault kept a URL with several servers under the first one's
            // account; this store's password is gone only once that entry is too.
            if let Some(legacy) = keyvault_core::postgres_legacy_password_account(&url)
                .map_err(keyvault_core::Error::from)?
            {
                removed |= keyring.delete(&legacy)?;
            }
            if ctx.json {
                print_json(&json!({"store": url, "removed": removed}));
            } else if removed {
                println!("password for {url} deleted from the OS keyring");
            } else {
                println!("the OS keyring held no password for {url}");
            }
        }
    }
    Ok(Done::Ok)
}

/// The configured PostgreSQL store's URL and keyring account; a usage error for any other
/// store.
fn account(config: &keyvault_core::Config) -> Result<(String, String), Failure> {
    match config.store() {
        keyvault_core::StoreLocation::Postgres(url) => {
            let account = keyvault_core::postgres_password_account(&url)
                .map_err(keyvault_core::Error::from)?;
            Ok((url, account))
        }
        other => Err(Failure::Usage(format!(
            "this vault's store is {other}, which needs no password: set `store = \"postgres://USER@HOST:PORT/DB\"` in config.toml or KEYVAULT_STORE first"
        ))),
    }
}
