//! `keyvault rotate`, `sweep` and `prune`.

use super::{Ctx, print_json};
use crate::args::{PruneArgs, RotateArgs, SweepArgs};
use crate::cmd::deploy::pods_done;
use crate::error::{Done, Failure};
use crate::render;
use crate::values::source_or;
use keyvault_core::RotateRequest;
use serde_json::json;
use std::io::IsTerminal;

/// `keyvault rotate` (with `--abort` and `--dry-run`).
pub(crate) fn rotate(ctx: &mut Ctx<'_>, a: RotateArgs) -> Result<Done, Failure> {
    // The old key's passphrase (to log in to pods and hosts with it), by default from the
    // same source as the new one.
    let src = a.passphrase.source();
    let old = source_or(
        "old-",
        a.old_passphrase_env.as_ref(),
        a.old_passphrase_file.as_ref(),
        &src,
    );
    if a.abort {
        if a.purposes.is_empty() {
            return Err(Failure::Usage(
                "--abort needs the purposes whose rotation to roll back".to_owned(),
            ));
        }
        // Pods of the rotation are logged in to with the old key.
        let mut callbacks = ctx.callbacks(old, src);
        let report = ctx
            .vault
            .abort_rotation(&a.purposes, &ctx.remote, &mut callbacks)?;
        render::report(ctx.json, &report);
        return Ok(pods_done(&report));
    }
    let mut request = if a.all {
        RotateRequest::all()
    } else {
        RotateRequest::purposes(a.purposes)
    };
    if let Some(g) = a.grace {
        request = request.grace(g);
    }
    request = request
        .expiry(a.expiry.expiry()?)
        .pods(a.pods)
        .passphrase_in_keyring(a.passphrase_keyring)
        .unlock_old_key(a.old_passphrase_env.is_some() || a.old_passphrase_file.is_some());
    if a.dry_run {
        let plan = ctx.vault.plan_rotation(&request)?;
        if ctx.json {
            print_json(&json!(plan));
        } else {
            render::plan(&plan);
        }
        return Ok(Done::Ok);
    }
    let mut callbacks = ctx.callbacks(old, src);
    let report = ctx
        .vault
        .rotate(&mut ctx.rng, &request, &mut callbacks, &ctx.remote)?;
    render::report(ctx.json, &report);
    Ok(Done::Ok)
}

/// `keyvault sweep` (with `--rotate-due`: [`super::due`]).
pub(crate) fn sweep(ctx: &mut Ctx<'_>, a: SweepArgs) -> Result<Done, Failure> {
    if a.rotate_due {
        return super::due::sweep_rotate_due(ctx, a.dry_run);
    }
    // passphrase_env (to log in to pods with a rotation's new key): read here, by the CLI.
    let env = |name: &str| std::env::var(name).ok();
    let report = ctx.vault.sweep_with_env(&ctx.remote, &env)?;
    render::report(ctx.json, &report);
    Ok(Done::Ok)
}

/// `keyvault prune`.
pub(crate) fn prune(ctx: &mut Ctx<'_>, a: PruneArgs) -> Result<Done, Failure> {
    let candidates = ctx.vault.prunable()?;
    if candidates.is_empty() {
        render::report(ctx.json, &keyvault_core::Report::default());
        return Ok(Done::Ok);
    }
    let ids: Vec<_> = candidates.iter().map(|k| k.id().clone()).collect();
    if !a.yes {
        let list = ids
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        if ctx.no_input || !std::io::stdin().is_terminal() {
            return Err(Failure::Usage(format!(
                "prune would delete the private key files of {list}; pass --yes to confirm without a terminal"
            )));
        }
        eprint!("Delete the private key files of {list}? Their records stay. [y/N] ");
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("nothing deleted");
            return Ok(Done::Ok);
        }
    }
    let report = ctx.vault.prune(&ids)?;
    render::report(ctx.json, &report);
    Ok(Done::Ok)
}
