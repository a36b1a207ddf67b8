//! `keyvault deploy` and `revoke`.

use super::Ctx;
use crate::args::{DeployArgs, RevokeArgs};
use crate::error::{Done, Failure};
use crate::render;
use crate::values::{DeployTo, PodsOf, source_or};

/// `keyvault deploy`.
pub(crate) fn deploy(ctx: &mut Ctx<'_>, a: DeployArgs) -> Result<Done, Failure> {
    let report = match &a.to {
        DeployTo::Pods(account) => {
            let src = a.passphrase.source();
            let login = source_or(
                "login-",
                a.login_passphrase_env.as_ref(),
                a.login_passphrase_file.as_ref(),
                &src,
            );
            let mut callbacks = ctx.callbacks(src.clone(), src).with_login(login);
            ctx.vault
                .deploy_to_pods(&a.key.parse()?, account, &ctx.remote, &mut callbacks)?
        }
        DeployTo::Target(spec) => ctx.vault.deploy(&a.key.parse()?, spec, &ctx.remote)?,
    };
    render::report(ctx.json, &report);
    Ok(pods_done(&report))
}

/// `keyvault revoke`.
pub(crate) fn revoke(ctx: &mut Ctx<'_>, a: RevokeArgs) -> Result<Done, Failure> {
    let account = a.to.map(|PodsOf(account)| account);
    let src = a.passphrase.source();
    let mut callbacks = ctx.callbacks(src.clone(), src);
    let report = ctx.vault.revoke_with(
        &a.key.parse()?,
        account.as_ref(),
        &ctx.remote,
        &mut callbacks,
    )?;
    render::report(ctx.json, &report);
    Ok(pods_done(&report))
}

/// Exit 1 when a pod could not be updated (each pod's result is listed).
pub(crate) fn pods_done(report: &keyvault_core::Report) -> Done {
    if report.pods_incomplete() {
        Done::Failed
    } else {
        Done::Ok
    }
}
