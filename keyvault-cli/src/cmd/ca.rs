//! `keyvault ca …` and `keyvault agent …`.

use super::{Ctx, parse_all, print_json};
use crate::args::{AgentCommand, CaInitArgs, CaTrustArgs};
use crate::error::{Done, Failure};
use crate::render;
use keyvault_core::{NewKey, Span};
use serde_json::json;
use std::path::PathBuf;

/// `keyvault ca init`.
pub(crate) fn ca_init(ctx: &mut Ctx<'_>, a: CaInitArgs) -> Result<Done, Failure> {
    let mut request = NewKey::new(a.purpose).expiry(a.expiry.expiry()?);
    if let Some(alg) = a.algorithm {
        request = request.algorithm(alg);
    }
    let src = a.passphrase.source();
    let mut callbacks = ctx.callbacks(src.clone(), src);
    let key = ctx.vault.ca_init(&mut ctx.rng, &request, &mut callbacks)?;
    if ctx.json {
        print_json(&render::KeyJson::new(&ctx.vault, &key, ctx.vault.now()));
    } else {
        println!(
            "created certificate authority {} ({}), expires {}",
            key.id(),
            key.algorithm(),
            key.expires_at()
                .map_or_else(|| "never".to_owned(), render::time)
        );
        println!(
            "trust it with: keyvault ca trust file:/path/to/authorized_keys --principals USER"
        );
    }
    Ok(Done::Ok)
}

/// `keyvault ca trust`.
pub(crate) fn ca_trust(ctx: &mut Ctx<'_>, a: CaTrustArgs) -> Result<Done, Failure> {
    let report = ctx.vault.ca_trust(
        &a.ca.parse()?,
        parse_all(&a.principals)?,
        &a.target,
        &ctx.remote,
    )?;
    render::report(ctx.json, &report);
    Ok(Done::Ok)
}

/// `keyvault agent add` and `remove`.
pub(crate) fn agent(ctx: &mut Ctx<'_>, a: AgentCommand) -> Result<Done, Failure> {
    let socket = std::env::var_os("SSH_AUTH_SOCK")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| {
            Failure::Usage(
                "no ssh-agent: SSH_AUTH_SOCK is not set (start one with `eval $(ssh-agent)`)"
                    .to_owned(),
            )
        })?;
    match a {
        AgentCommand::Add(a) => {
            let lifetime = a.lifetime;
            let src = a.passphrase.source();
            let mut callbacks = ctx.callbacks(src.clone(), src);
            let (key, secs) = ctx.vault.agent_add(
                &a.key.parse()?,
                &socket,
                lifetime,
                a.confirm,
                &mut callbacks,
            )?;
            if ctx.json {
                print_json(
                    &json!({"key": key.id(), "fingerprint": key.fingerprint().to_string(), "lifetime_secs": secs}),
                );
            } else {
                println!(
                    "added {} to the agent for {}",
                    key.id(),
                    Span::from_secs(u64::from(secs))
                );
            }
        }
        AgentCommand::Remove(a) => {
            let key = ctx.vault.agent_remove(&a.key.parse()?, &socket)?;
            if ctx.json {
                print_json(&json!({"key": key.id(), "fingerprint": key.fingerprint().to_string()}));
            } else {
                println!("removed {} from the agent", key.id());
            }
        }
    }
    Ok(Done::Ok)
}
