//! The second stage of parsing: flag values and flag groups as keyvault-core types.
//!
//! clap turns single values into core types through their `FromStr` (`Purpose`, `Span`,
//! `TargetSpec`, `Algorithm`, `Severity`) and the CLI's own below; groups of flags
//! (`--ttl`/`--expires`, the passphrase sources) become core values here. Every usage error
//! of a value is reported from here or by clap, before the vault is opened.

use crate::args::{ExpiryArgs, NewPassphraseSource, PassphraseSource};
use crate::error::Failure;
use crate::passphrase::Source;
use keyvault_core::{Expiry, InputError, TargetSpec};
use std::path::PathBuf;
use std::str::FromStr;

/// Where `deploy --to` puts a key: a target, or the running pods of a RunPod account
/// (`runpod-pods[:PROFILE]`).
#[derive(Debug, Clone)]
pub enum DeployTo {
    /// runpod, runpod:PROFILE, file:/path or ssh://….
    Target(TargetSpec),
    /// The account whose running pods are meant.
    Pods(TargetSpec),
}

impl FromStr for DeployTo {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match TargetSpec::pods_of(s) {
            Some(account) => Ok(DeployTo::Pods(account?)),
            None => Ok(DeployTo::Target(s.parse()?)),
        }
    }
}

/// `revoke --to`: only `runpod-pods[:PROFILE]`, the RunPod account whose pods are meant.
#[derive(Debug, Clone)]
pub struct PodsOf(pub TargetSpec);

impl FromStr for PodsOf {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match TargetSpec::pods_of(s) {
            Some(account) => Ok(PodsOf(account.map_err(|e| e.to_string())?)),
            None => Err(format!(
                "revoke removes a key from every target it is deployed to; --to only takes runpod-pods[:PROFILE], not {s}"
            )),
        }
    }
}

impl ExpiryArgs {
    /// `--ttl` or `--expires`, else the purpose's policy.
    pub fn expiry(&self) -> Result<Expiry, Failure> {
        Ok(match (&self.ttl, &self.expires) {
            (Some(t), _) => Expiry::After(*t),
            (_, Some(d)) => Expiry::At(keyvault_core::parse_date(d)?),
            _ => Expiry::PolicyDefault,
        })
    }
}

impl PassphraseSource {
    /// Where the passphrase comes from (a prompt without any of the flags).
    pub fn source(&self) -> Source {
        Source::from_flags(
            "",
            self.passphrase_env.as_ref(),
            self.passphrase_file.as_ref(),
            self.passphrase_stdin,
        )
    }
}

impl NewPassphraseSource {
    /// Where `passwd`'s new passphrase comes from.
    pub fn source(&self) -> Source {
        Source::from_flags(
            "new-",
            self.new_passphrase_env.as_ref(),
            self.new_passphrase_file.as_ref(),
            self.new_passphrase_stdin,
        )
    }
}

/// A passphrase from `--*-passphrase-env VAR` or `--*-passphrase-file FILE`, else from
/// `fallback` (the old key's in `rotate`, the login key's in `deploy`).
/// `flags` is the flags' prefix (`"old-"`, `"login-"`), for errors that name them.
pub fn source_or(
    flags: &'static str,
    env: Option<&String>,
    file: Option<&PathBuf>,
    fallback: &Source,
) -> Source {
    match (env, file) {
        (None, None) => fallback.clone(),
        (env, file) => Source::from_flags(flags, env, file, false),
    }
}
