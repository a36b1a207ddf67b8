//! `keyvault github …` and `keyvault gitlab …`: an account's keys, and its token in the
//! OS keyring (login/logout).

use super::{Ctx, print_json};
use crate::error::{Done, Failure};
use clap::{Args, Subcommand};
use keyvault_core::{Provider, TargetSpec};
use serde_json::json;

/// `keyvault github …` / `keyvault gitlab …`.
#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// The account's keys, each marked managed (purpose, id, state) or unmanaged.
    #[command(
        after_help = "Examples:\n  keyvault github keys\n  keyvault github keys --target github-signing\n  \
keyvault gitlab keys --target gitlab:corp --json"
    )]
    Keys(ProviderArgs),
    /// Keep a token in the OS keyring (read from a prompt or standard input).
    #[command(
        after_help = "The token is never taken from the command line. GitHub: keyvault looks in GH_TOKEN, \
then GITHUB_TOKEN (a profile: its token_env), then the OS keyring, then gh's hosts.yml. GitLab: GITLAB_TOKEN \
(a profile: its token_env), then the OS keyring, then glab's config.yml.\n\nExamples:\n  keyvault github login\n  \
pass show github | keyvault github login --stdin\n  keyvault gitlab login --target gitlab:corp"
    )]
    Login(ProviderLoginArgs),
    /// Delete the token kept by `login` from the OS keyring.
    #[command(after_help = "Examples:\n  keyvault github logout\n  keyvault gitlab logout")]
    Logout(ProviderArgs),
}

/// Which account.
#[derive(Debug, Args)]
pub struct ProviderArgs {
    /// github, github:PROFILE, github-signing[:PROFILE] (GitHub), gitlab or gitlab:PROFILE
    /// (GitLab); default: the provider's default account.
    #[arg(long, value_name = "TARGET")]
    pub target: Option<TargetSpec>,
}

/// `keyvault github login` / `keyvault gitlab login`.
#[derive(Debug, Args)]
pub struct ProviderLoginArgs {
    /// github or github:PROFILE (GitHub), gitlab or gitlab:PROFILE (GitLab).
    #[arg(long, value_name = "TARGET")]
    pub target: Option<TargetSpec>,
    /// Read the token from standard input instead of a prompt.
    #[arg(long)]
    pub stdin: bool,
}

/// Runs `keyvault <provider> <command>`.
pub(crate) fn run(
    ctx: &mut Ctx<'_>,
    provider: Provider,
    c: ProviderCommand,
) -> Result<Done, Failure> {
    match c {
        ProviderCommand::Keys(a) => super::runpod::list_keys(ctx, target(provider, a.target)?),
        ProviderCommand::Login(a) => login(ctx, provider, target(provider, a.target)?, a.stdin),
        ProviderCommand::Logout(a) => logout(ctx, provider, target(provider, a.target)?),
    }
}

/// The target, checked to be one of `provider`'s accounts.
fn target(provider: Provider, spec: Option<TargetSpec>) -> Result<TargetSpec, Failure> {
    let spec = match spec {
        Some(spec) => spec,
        None => provider.as_str().parse()?,
    };
    match spec.provider() {
        Some((p, _)) if p == provider => Ok(spec),
        _ => Err(Failure::Usage(format!(
            "{spec} is not a {provider} account: use {0} or {0}:PROFILE{1}",
            provider.as_str(),
            if provider == Provider::Github {
                ", or github-signing[:PROFILE]"
            } else {
                ""
            }
        ))),
    }
}

/// The profile, which must exist in config.toml (signing keys share the account's token).
fn profile(ctx: &Ctx<'_>, spec: &TargetSpec) -> Result<Option<String>, Failure> {
    match keyvault_core::target::provider_account(spec, ctx.config) {
        Ok(account) => Ok(account.name().map(ToOwned::to_owned)),
        Err(keyvault_core::TargetError::UnknownProfile { profile, .. }) => {
            let kind = spec.provider().map_or("github", |(p, _)| p.as_str());
            Err(Failure::Usage(format!(
                "config.toml has no [{kind}.{profile}] table; add one before storing its token"
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// `keyvault github login`.
fn login(
    ctx: &mut Ctx<'_>,
    provider: Provider,
    spec: TargetSpec,
    stdin: bool,
) -> Result<Done, Failure> {
    let profile = profile(ctx, &spec)?;
    let token = super::runpod::read_secret(
        stdin,
        ctx.no_input,
        &format!("{provider} token: "),
        "a token",
    )?;
    let account = crate::providers::keyring_account(provider, profile.as_deref());
    ctx.vault.keyring()?.set(&account, token.expose())?;
    if ctx.json {
        print_json(&json!({
            "target": spec.to_string(),
            "service": keyvault_core::vault_secrets::SERVICE,
            "account": account,
        }));
    } else {
        println!(
            "{provider} token for {spec} kept in the OS keyring (service keyvault, account {account})"
        );
    }
    Ok(Done::Ok)
}

/// `keyvault github logout`.
fn logout(ctx: &mut Ctx<'_>, provider: Provider, spec: TargetSpec) -> Result<Done, Failure> {
    let profile = profile(ctx, &spec)?;
    let account = crate::providers::keyring_account(provider, profile.as_deref());
    let removed = ctx.vault.keyring()?.delete(&account)?;
    if ctx.json {
        print_json(&json!({"target": spec.to_string(), "removed": removed}));
    } else if removed {
        println!("{provider} token for {spec} deleted from the OS keyring");
    } else {
        println!("the OS keyring held no {provider} token for {spec}");
    }
    Ok(Done::Ok)
}
