//! keyvault-core's errors in the CLI's words: where an error's message names a command or
//! a flag, the CLI says it here; the library returns the data (see also `hint()`).

use keyvault_core::backup::BackupError;
use keyvault_core::error::describe;
use keyvault_core::{Error, InputError, NextStep, RequestError, StoreError, TargetError};

/// The message of `e` as the CLI prints it after `error: `.
pub fn message(e: &Error) -> String {
    match e {
        Error::Request(r) => request(r),
        Error::Input(InputError::SourcePattern { value }) => {
            format!("invalid --from entry {value:?}: expected an address, a CIDR or a host pattern")
        }
        Error::Input(InputError::ForceCommand { reason }) => {
            format!("invalid --force-command: {reason}")
        }
        Error::Store(StoreError::Contended { .. }) => {
            "other keyvault processes keep changing these \
purposes; nothing was written, run the command again"
                .to_owned()
        }
        Error::Target(TargetError::ListTooLong {
            target,
            len,
            limit,
            sweepable: Some(expired),
        }) if !expired.is_empty() => format!(
            "{target}: the key list would be {len} characters, over RunPod's limit of about \
{limit}; `keyvault sweep` would remove these expired keys: {}",
            expired.join(", ")
        ),
        Error::Backup(BackupError::WrongSecretKind {
            archive,
            to_recipients: true,
        }) => format!(
            "cannot decrypt {archive}: it is encrypted to recipients, not a passphrase; use --identity"
        ),
        Error::Backup(BackupError::WrongSecretKind {
            archive,
            to_recipients: false,
        }) => format!(
            "cannot decrypt {archive}: it is encrypted with a passphrase; use a passphrase source \
instead of --identity"
        ),
        Error::Incomplete(i) => format!(
            "{} stopped: {}; done: {}; not done: {}",
            i.operation,
            message(&i.cause),
            describe(&i.done),
            describe(&i.pending)
        ),
        other => other.to_string(),
    }
}

/// A request the vault's state refused, with the commands that get past it.
fn request(r: &RequestError) -> String {
    match r {
        RequestError::AlreadyPromoted { old, .. } => format!(
            "{r}; finish it with `keyvault sweep`, or remove {old} now with `keyvault revoke {old}`"
        ),
        RequestError::InRotation { purpose, .. } => format!(
            "{r}; finish it with `keyvault rotate {purpose}` or roll it back with `keyvault rotate \
--abort {purpose}`"
        ),
        RequestError::AlreadyRevoked { .. } => {
            format!("{r} (add --to runpod-pods to remove it from running pods)")
        }
        RequestError::NotCertificateAuthority { trusting: true, .. } => {
            format!("{r} (make one with `keyvault ca init`)")
        }
        RequestError::NoPrincipals => format!("{r} (--principals)"),
        other => other.to_string(),
    }
}

/// What finishes an interrupted operation: the hint under its message.
pub fn next_step(next: &NextStep) -> String {
    match next {
        NextStep::Sweep => "run `keyvault sweep` to finish".to_owned(),
        NextStep::FinishOrRollBack { purposes } => format!(
            "run `keyvault rotate {0}` to finish, or `keyvault rotate --abort {0}` to roll back",
            purposes.join(" ")
        ),
        NextStep::RetryRollBack {
            purpose,
            target,
            or_finish: true,
        } => format!(
            "run `keyvault rotate --abort {purpose}` again once {target} is reachable, or \
`keyvault rotate {purpose}` to finish the rotation"
        ),
        NextStep::RetryRollBack {
            purpose, target, ..
        } => format!("run `keyvault rotate --abort {purpose}` again once {target} is reachable"),
        NextStep::RetryRevoke => {
            "run `keyvault revoke` again once the target is reachable".to_owned()
        }
        NextStep::RetrySweep => {
            "run `keyvault sweep` again once the target is reachable".to_owned()
        }
        NextStep::DeployOrRevoke { key, target } => {
            format!("run `keyvault deploy {key} --to {target}`, or `keyvault revoke {key}`")
        }
        NextStep::RevokeThenRetry { key } => {
            format!("`keyvault revoke {key}` removes the key everywhere; then mint again")
        }
        _ => "run the command again".to_owned(),
    }
}
