//! `keyvault deploy` and `revoke`.

use super::{Ctx, source};
use crate::args::{DeployArgs, RevokeArgs};
use crate::cmd::runpod::pods_account;
use crate::error::{Done, Failure};
use crate::passphrase::Source;
use crate::render;

/// `keyvault deploy`.
pub(crate) fn deploy(ctx: &mut Ctx<'_>, a: DeployArgs) -> Result<Done, Failure> {
    let src = source(&a.passphrase);
    let login = match (&a.login_passphrase_env, &a.login_passphrase_file) {
        (None, None) => src.clone(),
        (env, file) => Source::from_flags(env.as_ref(), file.as_ref(), false),
    };
    let report = match pods_account(&a.to)? {
        Some(account) => {
            let mut callbacks = ctx.callbacks(src.clone(), src).with_login(login);
            ctx.vault
                .deploy_to_pods(&a.key, &account, &ctx.remote, &mut callbacks)?
        }
        None => ctx.vault.deploy(&a.key, &a.to.parse()?, &ctx.remote)?,
    };
    render::report(ctx.style, ctx.json, &report);
    if report.pods_incomplete() {
        return Ok(Done::Failed);
    }
    Ok(Done::Ok)
}

/// `keyvault revoke`.
pub(crate) fn revoke(ctx: &mut Ctx<'_>, a: RevokeArgs) -> Result<Done, Failure> {
    let account = match &a.to {
        Some(to) => Some(pods_account(to)?.ok_or_else(|| {
            Failure::Usage(format!(
                "revoke removes a key from every target it is deployed to; --to only takes runpod-pods[:PROFILE], not {to}"
            ))
        })?),
        None => None,
    };
    let src = source(&a.passphrase);
    let mut callbacks = ctx.callbacks(src.clone(), src);
    let report = ctx
        .vault
        .revoke_with(&a.key, account.as_ref(), &ctx.remote, &mut callbacks)?;
    render::report(ctx.style, ctx.json, &report);
    if report.pods_incomplete() {
        return Ok(Done::Failed);
    }
    Ok(Done::Ok)
}
