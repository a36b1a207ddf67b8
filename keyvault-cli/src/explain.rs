//! keyvault-core's errors in the CLI's words: where an error's message names a command or
//! a flag, the CLI says it here; the library returns the data (see also `hint()`).

use keyvault_core::backup::BackupError;
use keyvault_core::error::describe;
use keyvault_core::{
    Error, InputError, NextStep, PodOutcome, PodOutcomeKind, PodRetry, Remedy, RequestError,
    ScanFinding, ScanFix, ScanReport, StoreError, StoreLocation, TargetError,
};

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
        Error::Store(StoreError::Unread { found, store }) => unread(found, store),
        Error::Store(StoreError::NotRegular { path }) if sqlite_companion(path).is_some() => {
            format!(
                "{} is a symlink or not a regular file where SQLite keeps the database's {}; \
keyvault does not open the database through it",
                path.display(),
                sqlite_companion(path).unwrap_or_default()
            )
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

/// What SQLite keeps at `path`, when it is one of the files it makes beside a database.
pub fn sqlite_companion(path: &std::path::Path) -> Option<&'static str> {
    let name = path.file_name()?.to_string_lossy();
    [
        ("-wal", "write-ahead log"),
        ("-shm", "shared-memory index"),
        ("-journal", "rollback journal"),
    ]
    .into_iter()
    .find(|(suffix, _)| name.ends_with(suffix))
    .map(|(_, what)| what)
}

/// A home holding vault state the store in use does not read: what that file is, and what
/// keyvault would otherwise have done.
fn unread(found: &std::path::Path, store: &StoreLocation) -> String {
    let name = found.file_name().unwrap_or_default().to_string_lossy();
    let shown = found.display();
    let store = match store {
        StoreLocation::Files => "the files store (store = \"files\")".to_owned(),
        other => format!("the store in use ({other})"),
    };
    if name.ends_with(".migrated") {
        format!(
            "{shown} shows that this vault's records were moved into a database, and {store} \
has none of them; keyvault will not start an empty vault in their place"
        )
    } else if name == "vault.db" {
        format!(
            "this vault's records are in the database {shown}, which {store} does not read; \
keyvault will not start a second, empty vault beside it"
        )
    } else {
        format!(
            "{shown} holds this home's own vault, which {store} does not read; keyvault will \
not go on without its records"
        )
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

/// What to do about a `status` finding, in words: the commands to run.
pub fn remedy(remedy: &Remedy) -> String {
    match remedy {
        Remedy::Replace { purpose } => format!("replace it: keyvault rotate {purpose}"),
        Remedy::RotateBeforeExpiry { purpose } => {
            format!("rotate it before then: keyvault rotate {purpose}")
        }
        Remedy::Chmod { mode, path } => format!("chmod {mode:o} {}", path.display()),
        Remedy::RestoreKeyFile => "restore it from a backup, or revoke the key".to_owned(),
        Remedy::InspectAuditLog => {
            "find out who changed the log; keyvault log --verify shows where".to_owned()
        }
        Remedy::Relink => "keyvault sweep (it re-points the link)".to_owned(),
        Remedy::RestoreKeyringPassphrase { purpose } => format!(
            "restore it with `keyvault restore` from an export made with \
--include-keyring-secrets, or rotate {purpose} away"
        ),
        Remedy::FinishRotation { purpose } => format!(
            "finish it: keyvault rotate {purpose} (or roll back: keyvault rotate --abort {purpose})"
        ),
        Remedy::RetryPods => "keyvault sweep (it retries the pods, and drops pods that are \
gone); redeploy pods that cannot be reached"
            .to_owned(),
        Remedy::Deploy { key, target } => format!("keyvault deploy {key} --to {target}"),
        Remedy::Revoke { key } => format!("keyvault revoke {key}"),
        Remedy::CheckLine { target } => {
            format!("check the line in {target} and rewrite or remove it")
        }
        Remedy::RemoveFromPod { user, host, port } => format!(
            "remove the key from ~/.ssh/authorized_keys on the pod (ssh {user}@{host} -p \
{port}), or redeploy it"
        ),
        Remedy::RedeployPod => "redeploy the pod: it is not reachable over direct SSH".to_owned(),
        Remedy::RedeployPodEnv => "redeploy the pod without the key in its PUBLIC_KEY, or \
terminate it: a restart undoes what was removed over SSH"
            .to_owned(),
        Remedy::RotateDue { purpose } => format!(
            "keyvault sweep --rotate-due rotates it when it next runs, or now: keyvault rotate {purpose}"
        ),
        Remedy::RotateNow { purpose } => {
            format!("rotate it now, the next scheduled run is too late: keyvault rotate {purpose}")
        }
        Remedy::RotateByHand { purpose } => format!(
            "keyvault sweep --rotate-due cannot rotate it (its passphrase needs a person; keep it in the \
OS keyring or set passphrase_env / passphrase_file in config.toml); run: keyvault rotate {purpose}"
        ),
        _ => "see `keyvault status --help`".to_owned(),
    }
}

/// The command a person runs to rotate a due key `sweep --rotate-due` could not.
pub fn rotate_command(purpose: &keyvault_core::Purpose, pods: bool) -> String {
    if pods {
        format!("keyvault rotate {purpose} --pods")
    } else {
        format!("keyvault rotate {purpose}")
    }
}

/// Why the PostgreSQL password file was not read, as libpq words it.
pub fn password_file_ignored(ignored: &keyvault_core::PostgresPasswordFileIgnored) -> String {
    use keyvault_core::PostgresPasswordFileIgnored as Ignored;
    match ignored {
        Ignored::Insecure { path, mode } => format!(
            "password file \"{}\" has group or world access (mode {mode:04o}); permissions should be u=rw (0600) or less: ignored",
            crate::render::clean(&path.display().to_string())
        ),
        Ignored::NotAFile { path } => format!(
            "password file \"{}\" is not a plain file: ignored",
            crate::render::clean(&path.display().to_string())
        ),
        _ => "the password file was ignored".to_owned(),
    }
}

/// Why a key is due, in words.
pub fn due_reason(reason: keyvault_core::DueReason) -> &'static str {
    match reason {
        keyvault_core::DueReason::Age => "older than rotate_every",
        keyvault_core::DueReason::NearExpiry => "within rotate_before_expiry of its expiry",
        keyvault_core::DueReason::Expired => "expired",
        _ => "due",
    }
}

/// What to do about a `scan` finding, in words: the commands to run on its file.
pub fn scan_fix(finding: &ScanFinding) -> String {
    let file = finding.file.display();
    match &finding.fix {
        ScanFix::CloseDirectory => format!("chmod 700 {file}"),
        ScanFix::CloseAuthorizedKeys => format!("chmod 600 {file}"),
        ScanFix::CloseAndReplaceKey => {
            format!("chmod 600 {file}, and treat the key as exposed: replace it")
        }
        ScanFix::Import => {
            format!("keyvault import {file} --purpose NAME (encrypts it on the way in)")
        }
        ScanFix::ImportOrAddRounds => {
            format!("keyvault import {file} --purpose NAME, or ssh-keygen -p -a 100 -f {file}")
        }
        ScanFix::RewriteThenImport => format!(
            "ssh-keygen -p -f {file} (rewrites it in OpenSSH format with bcrypt-pbkdf), then \
keyvault import {file} --purpose NAME"
        ),
        ScanFix::ReplaceWithNew => {
            "replace it: keyvault new --purpose NAME, then remove this key where it is trusted"
                .to_owned()
        }
        ScanFix::ReplaceWithEd25519 => {
            "replace it: keyvault new --purpose NAME (Ed25519)".to_owned()
        }
        ScanFix::ImportThenRotate => {
            "replace it: keyvault import it, then keyvault rotate its purpose".to_owned()
        }
        ScanFix::Rotate { purpose } => format!("keyvault rotate {purpose}"),
        ScanFix::UseCurrent { purpose } => format!(
            "point IdentityFile at keyvault's current/{purpose} (it follows rotations) and \
delete this copy"
        ),
        ScanFix::OneKeyEach => {
            "give each purpose its own key: keyvault new --purpose NAME, and delete the copies"
                .to_owned()
        }
        ScanFix::RestrictOrImport => "restrict it, or bring it under keyvault: keyvault import \
its private key --purpose NAME"
            .to_owned(),
        ScanFix::CheckHiddenKey => {
            "check who added the line; remove it unless you mean to trust that key".to_owned()
        }
        ScanFix::CheckLine => "check the line and rewrite or remove it".to_owned(),
        ScanFix::CheckFile => "check the file; remove it if it is not a key you use".to_owned(),
        ScanFix::CheckPath => "check the path".to_owned(),
        _ => "see `keyvault scan --help`".to_owned(),
    }
}

/// The `--to` that names the pods of a RunPod account.
fn pods_target(account: &keyvault_core::TargetSpec) -> String {
    match account.runpod_profile() {
        Some(Some(profile)) => format!("runpod-pods:{profile}"),
        Some(None) | None => "runpod-pods".to_owned(),
    }
}

/// A pod's detail in a report, with the command that retries its failed step.
pub fn pod_detail(pod: &PodOutcome) -> String {
    match &pod.retry {
        Some(PodRetry::RevokeAtPods { key, account }) => format!(
            "{}; retry with `keyvault revoke {key} --to {}`{}",
            pod.detail,
            pods_target(account),
            if pod.outcome == PodOutcomeKind::Pending {
                " once it runs"
            } else {
                ""
            }
        ),
        Some(PodRetry::DeployAtPods { key, account }) => format!(
            "{}; retry with `keyvault deploy {key} --to {}` once it runs",
            pod.detail,
            pods_target(account)
        ),
        Some(PodRetry::ResumeRotation { purpose, old }) => format!(
            "{}; {}finish it with `keyvault rotate {purpose} --pods`, which asks for the \
passphrase of {old} to log in there",
            pod.detail,
            if pod.outcome == PodOutcomeKind::Pending {
                "once it runs, "
            } else {
                ""
            }
        ),
        Some(PodRetry::FinishRotation { purpose, key }) => format!(
            "{}; finish it with `keyvault rotate {purpose}`{}, which asks for the passphrase of {key}",
            pod.detail,
            if pod.outcome == PodOutcomeKind::Pending {
                " once it runs"
            } else {
                ""
            }
        ),
        _ => pod.detail.clone(),
    }
}

/// A scan report as `scan --json` prints it: the report's data, each fix in words.
pub fn scan_json(report: &ScanReport) -> serde_json::Value {
    let mut value = serde_json::json!(report);
    if let Some(findings) = value["findings"].as_array_mut() {
        for (json, finding) in findings.iter_mut().zip(&report.findings) {
            json["fix"] = serde_json::Value::String(scan_fix(finding));
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::{message, next_step, remedy};
    use keyvault_core::Remedy;
    use keyvault_core::backup::BackupError;
    use keyvault_core::error::Incomplete;
    use keyvault_core::{
        Error, InputError, NextStep, Operation, RequestError, StoreError, TargetError, WorkItem,
    };

    fn s(v: &str) -> String {
        v.to_owned()
    }

    /// A pod the rollback could not reach: its detail ends with the revoke that retries it,
    /// naming the pods of the rotation's own RunPod account.
    #[test]
    fn pod_detail_names_the_retry() {
        let pod = |account: &str| keyvault_core::PodOutcome {
            pod: s("poda"),
            outcome: keyvault_core::PodOutcomeKind::Failed,
            detail: s("personal-2 may still be there (x); it keeps personal-1"),
            retry: Some(keyvault_core::PodRetry::RevokeAtPods {
                key: "personal-2".parse().expect("id"),
                account: account.parse().expect("target"),
            }),
            survives_restart: None,
        };
        assert_eq!(
            super::pod_detail(&pod("runpod")),
            "personal-2 may still be there (x); it keeps personal-1; retry with \
`keyvault revoke personal-2 --to runpod-pods`"
        );
        assert!(super::pod_detail(&pod("runpod:work")).ends_with("--to runpod-pods:work`"));
        let mut done = pod("runpod");
        done.retry = None;
        assert_eq!(super::pod_detail(&done), done.detail);
        // A pod a sweep could not finish: the rotation that asks for the new passphrase.
        let mut waiting = pod("runpod");
        waiting.detail = s("the old key was left in place");
        waiting.retry = Some(keyvault_core::PodRetry::FinishRotation {
            purpose: "personal".parse().expect("purpose"),
            key: "personal-2".parse().expect("id"),
        });
        assert_eq!(
            super::pod_detail(&waiting),
            "the old key was left in place; finish it with `keyvault rotate personal`, which \
asks for the passphrase of personal-2"
        );
        // A starting pod: each retry is for once it runs.
        let mut starting = pod("runpod:work");
        starting.outcome = keyvault_core::PodOutcomeKind::Pending;
        starting.detail = s("STARTING: cannot be logged in to yet");
        assert_eq!(
            super::pod_detail(&starting),
            "STARTING: cannot be logged in to yet; retry with `keyvault revoke personal-2 --to \
runpod-pods:work` once it runs"
        );
        starting.retry = Some(keyvault_core::PodRetry::DeployAtPods {
            key: "personal-2".parse().expect("id"),
            account: "runpod".parse().expect("target"),
        });
        assert_eq!(
            super::pod_detail(&starting),
            "STARTING: cannot be logged in to yet; retry with `keyvault deploy personal-2 --to \
runpod-pods` once it runs"
        );
        starting.retry = Some(keyvault_core::PodRetry::ResumeRotation {
            purpose: "personal".parse().expect("purpose"),
            old: "personal-1".parse().expect("id"),
        });
        assert_eq!(
            super::pod_detail(&starting),
            "STARTING: cannot be logged in to yet; once it runs, finish it with `keyvault rotate \
personal --pods`, which asks for the passphrase of personal-1 to log in there"
        );
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

    #[test]
    fn remedies_read_as_before() {
        let purpose: keyvault_core::Purpose = "team".parse().expect("purpose");
        let key: keyvault_core::KeyId = "team-2".parse().expect("id");
        let target: keyvault_core::TargetSpec = "runpod:gpu".parse().expect("target");
        let cases = [
            (
                Remedy::Replace {
                    purpose: purpose.clone(),
                },
                "replace it: keyvault rotate team",
            ),
            (
                Remedy::RotateBeforeExpiry {
                    purpose: purpose.clone(),
                },
                "rotate it before then: keyvault rotate team",
            ),
            (
                Remedy::Chmod {
                    mode: 0o600,
                    path: "/v/keys/team-2".into(),
                },
                "chmod 600 /v/keys/team-2",
            ),
            (
                Remedy::Chmod {
                    mode: 0o700,
                    path: "/v".into(),
                },
                "chmod 700 /v",
            ),
            (
                Remedy::RestoreKeyFile,
                "restore it from a backup, or revoke the key",
            ),
            (
                Remedy::InspectAuditLog,
                "find out who changed the log; keyvault log --verify shows where",
            ),
            (Remedy::Relink, "keyvault sweep (it re-points the link)"),
            (
                Remedy::RestoreKeyringPassphrase {
                    purpose: purpose.clone(),
                },
                "restore it with `keyvault restore` from an export made with --include-keyring-secrets, or rotate team away",
            ),
            (
                Remedy::FinishRotation { purpose },
                "finish it: keyvault rotate team (or roll back: keyvault rotate --abort team)",
            ),
            (
                Remedy::RetryPods,
                "keyvault sweep (it retries the pods, and drops pods that are gone); redeploy pods that cannot be reached",
            ),
            (
                Remedy::Deploy {
                    key: key.clone(),
                    target: target.clone(),
                },
                "keyvault deploy team-2 --to runpod:gpu",
            ),
            (Remedy::Revoke { key }, "keyvault revoke team-2"),
            (
                Remedy::CheckLine { target },
                "check the line in runpod:gpu and rewrite or remove it",
            ),
            (
                Remedy::RemoveFromPod {
                    user: "root".to_owned(),
                    host: "192.0.2.1".to_owned(),
                    port: 2222,
                },
                "remove the key from ~/.ssh/authorized_keys on the pod (ssh root@192.0.2.1 -p 2222), or redeploy it",
            ),
            (
                Remedy::RedeployPod,
                "redeploy the pod: it is not reachable over direct SSH",
            ),
            (
                Remedy::RedeployPodEnv,
                "redeploy the pod without the key in its PUBLIC_KEY, or terminate it: a restart undoes what was removed over SSH",
            ),
        ];
        for (r, text) in cases {
            assert_eq!(remedy(&r), text);
        }
    }

    /// The rotation policy's remedies and the command `sweep --rotate-due` names.
    #[test]
    fn rotation_policy_words() {
        let purpose: keyvault_core::Purpose = "team".parse().expect("purpose");
        assert_eq!(
            remedy(&Remedy::RotateDue {
                purpose: purpose.clone()
            }),
            "keyvault sweep --rotate-due rotates it when it next runs, or now: keyvault rotate team"
        );
        assert_eq!(
            remedy(&Remedy::RotateNow {
                purpose: purpose.clone()
            }),
            "rotate it now, the next scheduled run is too late: keyvault rotate team"
        );
        assert_eq!(
            remedy(&Remedy::RotateByHand {
                purpose: purpose.clone()
            }),
            "keyvault sweep --rotate-due cannot rotate it (its passphrase needs a person; keep it in the \
OS keyring or set passphrase_env / passphrase_file in config.toml); run: keyvault rotate team"
        );
        assert_eq!(
            super::rotate_command(&purpose, true),
            "keyvault rotate team --pods"
        );
        assert_eq!(
            super::rotate_command(&purpose, false),
            "keyvault rotate team"
        );
        assert_eq!(
            super::due_reason(keyvault_core::DueReason::NearExpiry),
            "within rotate_before_expiry of its expiry"
        );
    }
}
