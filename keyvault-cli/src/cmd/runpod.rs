//! `keyvault runpod …`.

use super::{Ctx, print_json};
use crate::args::{RunpodArgs, RunpodLoginArgs};
use crate::error::{Done, Failure};
use crate::render;
use keyvault_core::TargetSpec;
use serde_json::json;
use std::io::IsTerminal;

/// `keyvault runpod keys`.
pub(crate) fn keys(ctx: &mut Ctx<'_>, a: RunpodArgs) -> Result<Done, Failure> {
    list_keys(ctx, a.target)
}

/// The keys an account target holds: `keyvault runpod keys`, and `keyvault github keys` /
/// `keyvault gitlab keys`.
pub(crate) fn list_keys(ctx: &mut Ctx<'_>, spec: TargetSpec) -> Result<Done, Failure> {
    let keys = ctx.vault.remote_keys(&spec, &ctx.remote)?;
    if ctx.json {
        print_json(&json!({ "target": spec.to_string(), "keys": keys }));
    } else {
        render::remote_keys(&spec, &keys);
    }
    Ok(Done::Ok)
}

/// `keyvault runpod pods`.
pub(crate) fn pods(ctx: &mut Ctx<'_>, a: RunpodArgs) -> Result<Done, Failure> {
    let spec = a.target;
    let pods = ctx.vault.pods_report(&spec, &ctx.remote)?;
    if ctx.json {
        print_json(&json!({ "target": spec.to_string(), "pods": pods }));
    } else {
        render::pods(&pods);
    }
    Ok(Done::Ok)
}

/// `keyvault runpod login`.
pub(crate) fn login(ctx: &mut Ctx<'_>, a: RunpodLoginArgs) -> Result<Done, Failure> {
    let profile = runpod_profile(&a.target, ctx.config)?;
    let key = read_api_key(a.stdin, ctx.no_input)?;
    let keyring = ctx.vault.keyring()?;
    keyring.set_runpod_api_key(profile.as_deref(), &key)?;
    let account = keyvault_core::vault_secrets::runpod_account(profile.as_deref());
    if ctx.json {
        print_json(
            &json!({"target": a.target.to_string(), "service": keyvault_core::vault_secrets::SERVICE, "account": account}),
        );
    } else {
        println!(
            "RunPod API key for {} kept in the OS keyring (service keyvault, account {account})",
            a.target
        );
    }
    Ok(Done::Ok)
}

/// `keyvault runpod logout`.
pub(crate) fn logout(ctx: &mut Ctx<'_>, a: RunpodArgs) -> Result<Done, Failure> {
    let profile = runpod_profile(&a.target, ctx.config)?;
    let removed = ctx
        .vault
        .keyring()?
        .delete_runpod_api_key(profile.as_deref())?;
    if ctx.json {
        print_json(&json!({"target": a.target.to_string(), "removed": removed}));
    } else if removed {
        println!(
            "RunPod API key for {} deleted from the OS keyring",
            a.target
        );
    } else {
        println!("the OS keyring held no RunPod API key for {}", a.target);
    }
    Ok(Done::Ok)
}

/// The profile of a `runpod` / `runpod:PROFILE` target (which must exist in config.toml).
pub(crate) fn runpod_profile(
    target: &TargetSpec,
    config: &keyvault_core::Config,
) -> Result<Option<String>, Failure> {
    match keyvault_core::target::runpod_account(target, config) {
        Ok(account) => Ok(account.name().map(ToOwned::to_owned)),
        Err(keyvault_core::TargetError::UnknownProfile { profile, .. }) => {
            Err(Failure::Usage(format!(
                "config.toml has no [runpod.{profile}] table; add one before storing its API key"
            )))
        }
        Err(_) => Err(Failure::Usage(format!(
            "{target} is not a RunPod account: use runpod or runpod:PROFILE"
        ))),
    }
}

/// A RunPod API key from standard input (`--stdin`) or a prompt that does not echo.
pub(crate) fn read_api_key(
    stdin: bool,
    no_input: bool,
) -> Result<keyvault_core::ApiToken, Failure> {
    read_secret(stdin, no_input, "RunPod API key: ", "an API key")
}

/// A token (`what`: "an API key", "a token") from standard input (`--stdin`) or a prompt
/// that does not echo.
pub(crate) fn read_secret(
    stdin: bool,
    no_input: bool,
    prompt: &str,
    what: &str,
) -> Result<keyvault_core::ApiToken, Failure> {
    use std::io::Read;
    let text = if stdin {
        let mut buf = keyvault_core::secrecy::zeroize::Zeroizing::new(Vec::new());
        std::io::stdin()
            .lock()
            .take(4097)
            .read_to_end(&mut buf)
            .map_err(|e| Failure::Usage(format!("cannot read standard input: {e}")))?;
        if buf.len() > 4096 {
            return Err(Failure::Usage(format!(
                "standard input is longer than 4096 bytes; {what} is much shorter"
            )));
        }
        keyvault_core::secrecy::zeroize::Zeroizing::new(
            String::from_utf8(buf.to_vec())
                .map_err(|_| Failure::Usage("standard input is not UTF-8 text".to_owned()))?,
        )
    } else if no_input || !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(format!(
            "no {}: pipe it in with --stdin (there is no terminal to prompt on, or --no-input is set)",
            what.trim_start_matches("an ").trim_start_matches("a ")
        )));
    } else {
        keyvault_core::secrecy::zeroize::Zeroizing::new(
            rpassword::prompt_password(prompt)
                .map_err(|e| Failure::Usage(format!("cannot read from the terminal: {e}")))?,
        )
    };
    let key = keyvault_core::ApiToken::new(text.as_str());
    if key.is_empty()
        || key
            .expose()
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Failure::Usage(format!(
            "that is not {what}: expected one line without spaces"
        )));
    }
    Ok(key)
}
