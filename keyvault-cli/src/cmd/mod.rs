//! One function per command; helpers they share.

pub(crate) mod backup;
pub(crate) mod ca;
pub(crate) mod deploy;
pub(crate) mod due;
pub(crate) mod keys;
pub(crate) mod man;
pub(crate) mod mint;
pub(crate) mod monitoring;
pub(crate) mod providers;
pub(crate) mod rotate;
pub(crate) mod runpod;
pub(crate) mod schedule;
pub(crate) mod status;
pub(crate) mod store;

use crate::args::{Cli, CompletionsArgs};
use crate::env::{actor, home, host};
use crate::error::{Done, Failure};
use crate::passphrase::{CliCallbacks, Source};
use crate::targets;
use clap::CommandFactory;
use keyvault_core::ssh_key::getrandom::SysRng;
use keyvault_core::ssh_key::rand_core::UnwrapErr;
use keyvault_core::{Config, Vault};
use std::io::IsTerminal;
use std::path::PathBuf;

/// What every command works with: the open vault, how to reach targets, whether to print
/// JSON, prompt or show progress.
pub(crate) struct Ctx<'a> {
    pub vault: Vault,
    pub config: &'a Config,
    pub remote: keyvault_core::StandardTargets<'a>,
    pub rng: UnwrapErr<SysRng>,
    pub json: bool,
    pub no_input: bool,
    /// Progress on stderr: only for a person at a terminal, never with --json.
    pub show_progress: bool,
}

/// The vault the global flags name, opened, with the actor and the test hooks.
pub(crate) fn open_vault(cli: &Cli) -> Result<Vault, Failure> {
    let cli_home = explicit_home(cli.home.as_ref());
    // A vault at the default home names keyring entries by key id alone; others qualify them.
    let default_home = cli_home.as_ref().is_none_or(|h| h.as_os_str().is_empty());
    let mut vault = Vault::open_with_store(home(cli_home)?, store_from_env()?)?
        .with_actor(actor())
        .with_machine(host())
        .with_default_home(default_home);
    // Test-only; compiled out of release builds (see targets::fault_hook).
    #[cfg(debug_assertions)]
    if let Some(hook) = targets::fault_hook() {
        vault = vault.with_fault_hook(hook);
    }
    #[cfg(debug_assertions)]
    {
        vault = crate::test_hooks::with_test_clock(vault).map_err(Failure::Usage)?;
    }
    if !cli.json && std::io::stderr().is_terminal() {
        // Live per-pod progress for people; none of it on a pipe or with --json.
        vault = vault.with_pod_progress(crate::progress::pod_lines());
    }
    if matches!(
        vault.config().store(),
        keyvault_core::StoreLocation::Postgres(_)
    ) && let Some(ignored) = keyvault_core::postgres_password_file_ignored()
    {
        // libpq's warning, without the file's contents.
        eprintln!(
            "warning: {}",
            crate::explain::password_file_ignored(&ignored)
        );
    }
    // Agent directories of keyvault runs that were killed go with the next run.
    keyvault_core::agent::remove_stale(std::path::Path::new(keyvault_core::agent::PARENT));
    Ok(vault)
}

/// The store KEYVAULT_STORE names, if set (it overrides `store` in config.toml). The
/// error never repeats the value: it may carry a password.
fn store_from_env() -> Result<Option<keyvault_core::StoreLocation>, Failure> {
    let Some(value) = std::env::var_os("KEYVAULT_STORE").filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let invalid = |message: String| {
        Failure::Core(
            keyvault_core::ConfigError::Env {
                variable: "KEYVAULT_STORE",
                message,
            }
            .into(),
        )
    };
    let text = value
        .into_string()
        .map_err(|_| invalid("not valid UTF-8".to_owned()))?;
    text.parse()
        .map(Some)
        .map_err(|e: keyvault_core::LocationError| invalid(e.to_string()))
}

/// The home named by --home or KEYVAULT_HOME, if any (empty counts as none later).
pub(crate) fn explicit_home(flag: Option<&PathBuf>) -> Option<PathBuf> {
    // KEYVAULT_HOME is read here, not by clap: clap would show `--home <DIR>` in the usage
    // line of every error as if it were required.
    flag.cloned()
        .filter(|h| !h.as_os_str().is_empty())
        .or_else(|| std::env::var_os("KEYVAULT_HOME").map(PathBuf::from))
}

impl<'a> Ctx<'a> {
    /// The context of one command over `vault`, whose configuration is `config`.
    pub(crate) fn new(cli: &Cli, vault: Vault, config: &'a Config) -> Self {
        let json = cli.json;
        let remote = keyvault_core::StandardTargets::new(config, vault.home().join("known_hosts"))
            .allow_non_key_lines(cli.allow_non_key_lines)
            .with_env(targets::child_env(config))
            .with_runpod(targets::EnvCredentials)
            .with_providers(crate::providers::EnvProviderCredentials);
        Ctx {
            vault,
            config,
            remote,
            rng: UnwrapErr(SysRng),
            json,
            no_input: cli.no_input,
            show_progress: !json && std::io::stderr().is_terminal(),
        }
    }

    /// Passphrases for existing keys from `existing`, for new ones from `new`.
    pub(crate) fn callbacks(&self, existing: Source, new: Source) -> CliCallbacks {
        CliCallbacks::new(existing, new, self.no_input, self.show_progress)
    }
}

/// `keyvault completions`: needs no vault.
pub(crate) fn completions(c: &CompletionsArgs) -> Result<Done, Failure> {
    use std::io::Write;
    // Generated whole, then written once: a reader that stops early is not an error.
    let mut script = Vec::new();
    clap_complete::generate(c.shell, &mut Cli::command(), "keyvault", &mut script);
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(&script).and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(Failure::Usage(format!("cannot write standard output: {e}")));
    }
    Ok(Done::Ok)
}

/// Pretty JSON on stdout; a closed pipe is not an error.
pub(crate) fn print_json(value: &impl serde::Serialize) {
    use std::io::Write;
    // Buffered: a 10,000-key list is megabytes, and stdout alone writes line by line.
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let written = serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush());
    if let Err(e) = written
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: cannot write standard output: {e}");
    }
}

/// Every value of a repeated flag, converted to its core type; the first bad one is the
/// error (worded by the CLI like any other core error).
pub(crate) fn parse_all<T: std::str::FromStr>(values: &[String]) -> Result<Vec<T>, Failure>
where
    keyvault_core::Error: From<T::Err>,
{
    values
        .iter()
        .map(|v| v.parse::<T>().map_err(|e| Failure::Core(e.into())))
        .collect()
}
