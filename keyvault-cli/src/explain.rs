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
        RequestError::Pruned { id } => format!(
            "key {id}'s private file was pruned, so keyvault cannot log in to the pods that still \
trust it; redeploy them"
        ),
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

#[cfg(test)]
mod tests {
    use super::{message, next_step};
    use keyvault_core::backup::BackupError;
    use keyvault_core::error::Incomplete;
    use keyvault_core::{
        Error, InputError, NextStep, Operation, RequestError, StoreError, TargetError, WorkItem,
    };

    fn s(v: &str) -> String {
        v.to_owned()
    }

    /// The CLI says what keyvault-core said before its errors became data, word for word
    /// (the texts below are the library's former messages).
    #[test]
    fn messages_read_as_before() {
        let cases: Vec<(Error, &str)> = vec![
            (
                RequestError::AlreadyPromoted {
                    purpose: s("personal"),
                    old: s("personal-1"),
                    new: s("personal-2"),
                }
                .into(),
                "the rotation of personal already made personal-2 active, so it cannot be rolled back; finish it with `keyvault sweep`, or remove personal-1 now with `keyvault revoke personal-1`",
            ),
            (
                RequestError::InRotation {
                    id: s("personal-1"),
                    purpose: s("personal"),
                }
                .into(),
                "key personal-1 is part of a rotation in progress; finish it with `keyvault rotate personal` or roll it back with `keyvault rotate --abort personal`",
            ),
            (
                RequestError::AlreadyRevoked { id: s("ci-1") }.into(),
                "key ci-1 is already revoked (add --to runpod-pods to remove it from running pods)",
            ),
            (
                RequestError::Pruned { id: s("ci-1") }.into(),
                "key ci-1's private file was pruned, so keyvault cannot log in to the pods that still trust it; redeploy them",
            ),
            (
                RequestError::NotCertificateAuthority {
                    id: s("ca-1"),
                    trusting: true,
                }
                .into(),
                "key ca-1 is not a live certificate authority (make one with `keyvault ca init`)",
            ),
            (
                RequestError::NotCertificateAuthority {
                    id: s("ca-1"),
                    trusting: false,
                }
                .into(),
                "key ca-1 is not a live certificate authority",
            ),
            (
                RequestError::NoPrincipals.into(),
                "a certificate needs at least one principal (--principals)",
            ),
            (
                RequestError::NothingToRotate.into(),
                "nothing to rotate: no purpose has an active key",
            ),
            (
                RequestError::NotDeployable {
                    id: s("ci-1"),
                    state: "expired",
                }
                .into(),
                "key ci-1 is expired; deploy a live key",
            ),
            (
                InputError::SourcePattern { value: s("a b") }.into(),
                "invalid --from entry \"a b\": expected an address, a CIDR or a host pattern",
            ),
            (
                InputError::ForceCommand {
                    reason: "it must be one line of at most 1024 characters",
                }
                .into(),
                "invalid --force-command: it must be one line of at most 1024 characters",
            ),
            (
                StoreError::Contended {
                    purposes: vec![s("personal")],
                }
                .into(),
                "other keyvault processes keep changing these purposes; nothing was written, run the command again",
            ),
            (
                TargetError::ListTooLong {
                    target: s("runpod"),
                    len: 70000,
                    limit: 65535,
                    sweepable: Some(vec![s("old-1"), s("old-2")]),
                }
                .into(),
                "runpod: the key list would be 70000 characters, over RunPod's limit of about 65535; `keyvault sweep` would remove these expired keys: old-1, old-2",
            ),
            (
                TargetError::ListTooLong {
                    target: s("runpod"),
                    len: 70000,
                    limit: 65535,
                    sweepable: Some(vec![]),
                }
                .into(),
                "runpod: the key list would be 70000 characters, over RunPod's limit of about 65535; remove keys you no longer use from the account",
            ),
            (
                BackupError::WrongSecretKind {
                    archive: s("b.age"),
                    to_recipients: true,
                }
                .into(),
                "cannot decrypt b.age: it is encrypted to recipients, not a passphrase; use --identity",
            ),
            (
                BackupError::WrongSecretKind {
                    archive: s("b.age"),
                    to_recipients: false,
                }
                .into(),
                "cannot decrypt b.age: it is encrypted with a passphrase; use a passphrase source instead of --identity",
            ),
            (
                Incomplete {
                    operation: Operation::Revoke {
                        keys: vec![s("ci-1")],
                    },
                    cause: RequestError::AlreadyRevoked { id: s("ci-1") }.into(),
                    done: vec![],
                    pending: vec![WorkItem::StillAt {
                        key: s("ci-1"),
                        target: s("runpod"),
                    }],
                    next: NextStep::RetryRevoke,
                }
                .into(),
                "revoke of ci-1 stopped: key ci-1 is already revoked (add --to runpod-pods to remove it from running pods); done: nothing; not done: ci-1 still at runpod",
            ),
        ];
        for (e, text) in cases {
            assert_eq!(message(&e), text, "{e:?}");
        }
    }

    #[test]
    fn next_steps_read_as_before() {
        let (p, k) = (s("personal"), s("ci-1"));
        let cases = [
            (NextStep::Sweep, "run `keyvault sweep` to finish"),
            (
                NextStep::FinishOrRollBack {
                    purposes: vec![p.clone(), s("work")],
                },
                "run `keyvault rotate personal work` to finish, or `keyvault rotate --abort personal work` to roll back",
            ),
            (
                NextStep::RetryRollBack {
                    purpose: p.clone(),
                    target: s("runpod"),
                    or_finish: true,
                },
                "run `keyvault rotate --abort personal` again once runpod is reachable, or `keyvault rotate personal` to finish the rotation",
            ),
            (
                NextStep::RetryRollBack {
                    purpose: p,
                    target: s("runpod"),
                    or_finish: false,
                },
                "run `keyvault rotate --abort personal` again once runpod is reachable",
            ),
            (
                NextStep::RetryRevoke,
                "run `keyvault revoke` again once the target is reachable",
            ),
            (
                NextStep::RetrySweep,
                "run `keyvault sweep` again once the target is reachable",
            ),
            (
                NextStep::DeployOrRevoke {
                    key: k.clone(),
                    target: s("runpod"),
                },
                "run `keyvault deploy ci-1 --to runpod`, or `keyvault revoke ci-1`",
            ),
            (
                NextStep::RevokeThenRetry { key: k },
                "`keyvault revoke ci-1` removes the key everywhere; then mint again",
            ),
        ];
        for (next, text) in cases {
            assert_eq!(next_step(&next), text, "{next:?}");
        }
    }
}
