//! The library speaks data: no message of its errors names a CLI command or flag.

use super::*;
use std::path::PathBuf;

/// The `keyvault` CLI's commands: the library's messages name none of them.
const COMMANDS: &[&str] = &[
    "new",
    "list",
    "show",
    "import",
    "passwd",
    "mint",
    "deploy",
    "revoke",
    "rotate",
    "sweep",
    "prune",
    "scan",
    "ca",
    "agent",
    "runpod",
    "status",
    "log",
    "export",
    "restore",
    "completions",
];

/// What in `text` belongs to the CLI: a `keyvault <command>` or a `--flag`.
fn cli_words(text: &str) -> Vec<String> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '`' || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .collect();
    let mut found: Vec<String> = words
        .windows(2)
        .filter(|w| {
            w[0] == "keyvault" && COMMANDS.contains(&w[1].trim_end_matches([',', ';', ':', '.']))
        })
        .map(|w| w.join(" "))
        .collect();
    found.extend(
        words
            .iter()
            .filter(|w| w.starts_with("--"))
            .map(|w| (*w).to_owned()),
    );
    found
}

fn s(v: &str) -> String {
    v.to_owned()
}

/// A sample of every variant whose message used to name a command or a flag, and of
/// every variant that replaced `InputError::Request`.
fn samples() -> Vec<Error> {
    let (k1, k2, p) = (s("personal-1"), s("personal-2"), s("personal"));
    let requests = vec![
        RequestError::NothingToRotate,
        RequestError::NoRotation { purpose: p.clone() },
        RequestError::AlreadyPromoted {
            purpose: p.clone(),
            old: k1.clone(),
            new: k2.clone(),
        },
        RequestError::InRotation {
            id: k1.clone(),
            purpose: p.clone(),
        },
        RequestError::AlreadyRevoked { id: k1.clone() },
        RequestError::NotDeployable {
            id: k1.clone(),
            state: "expired",
        },
        RequestError::NotForAgent {
            id: k1.clone(),
            state: "revoked",
        },
        RequestError::Pruned { id: k1.clone() },
        RequestError::NotPrunable { id: k1.clone() },
        RequestError::NotCertificateAuthority {
            id: k1.clone(),
            trusting: true,
        },
        RequestError::NoPrincipals,
        RequestError::NoOptions {
            target: s("runpod"),
        },
        RequestError::NotRunpodAccount {
            target: s("file:/tmp/a"),
        },
        RequestError::NoPods {
            target: s("file:/tmp/a"),
        },
        RequestError::NotOpened {
            target: s("pod:x/y"),
        },
    ];
    let mut all: Vec<Error> = requests.into_iter().map(Error::from).collect();
    all.extend([
        InputError::Principal { value: s("a b") }.into(),
        InputError::SourcePattern { value: s("a b") }.into(),
        InputError::ForceCommand {
            reason: "it must be one line of at most 1024 characters",
        }
        .into(),
        StoreError::Contended {
            purposes: vec![p.clone()],
        }
        .into(),
        StoreError::Locked {
            home: PathBuf::from("/v"),
            holder: s("process 1"),
            waited_secs: 30,
        }
        .into(),
        BackupError::WrongSecretKind {
            archive: s("a.age"),
            to_recipients: true,
        }
        .into(),
        BackupError::WrongSecretKind {
            archive: s("a.age"),
            to_recipients: false,
        }
        .into(),
        Error::injected("added:runpod"),
    ]);
    for sweepable in [None, Some(vec![]), Some(vec![k1.clone()])] {
        all.push(
            TargetError::ListTooLong {
                target: s("runpod"),
                len: 70_000,
                limit: 65_535,
                sweepable,
            }
            .into(),
        );
    }
    let rollback = |or_finish| NextStep::RetryRollBack {
        purpose: p.clone(),
        target: s("runpod"),
        or_finish,
    };
    for next in [
        NextStep::Sweep,
        NextStep::FinishOrRollBack {
            purposes: vec![p.clone()],
        },
        rollback(true),
        rollback(false),
        NextStep::RetryRevoke,
        NextStep::RetrySweep,
        NextStep::DeployOrRevoke {
            key: k1.clone(),
            target: s("runpod"),
        },
        NextStep::RevokeThenRetry { key: k1.clone() },
    ] {
        all.push(
            Incomplete {
                operation: Operation::Rotation {
                    purposes: vec![p.clone()],
                },
                cause: RequestError::InRotation {
                    id: k1.clone(),
                    purpose: p.clone(),
                }
                .into(),
                done: vec![WorkItem::Added {
                    key: k2.clone(),
                    target: s("runpod"),
                }],
                pending: vec![WorkItem::StillAt {
                    key: k1.clone(),
                    target: s("runpod"),
                }],
                next,
            }
            .into(),
        );
    }
    all
}

#[test]
fn the_library_names_no_command_and_no_flag() {
    for e in samples() {
        let text = e.to_string();
        assert!(cli_words(&text).is_empty(), "{e:?} reads {text:?}");
        // Stricter for these: not even the tool's name, which the CLI adds where it says
        // what keyvault does.
        assert!(
            !text.contains("keyvault ") && !text.contains("--"),
            "{e:?} reads {text:?}"
        );
    }
}

#[test]
fn the_check_finds_commands_and_flags() {
    assert_eq!(
        cli_words("finish it with `keyvault rotate personal`, or --abort"),
        ["keyvault rotate", "--abort"]
    );
    assert!(cli_words("keyvault does not write through it").is_empty());
}

#[test]
fn contention_is_no_usage_error() {
    for e in samples() {
        if e.is_contention() {
            assert!(!e.is_usage(), "{e:?}");
        }
    }
    let contended = samples().into_iter().filter(Error::is_contention).count();
    assert_eq!(contended, 2);
    assert!(
        samples()
            .iter()
            .any(|e| matches!(e, Error::Request(_)) && e.is_usage())
    );
}

#[test]
fn an_incomplete_operation_lists_its_work_as_before() {
    let items = vec![
        WorkItem::RemovedNowhere {
            key: s("p-2"),
            missing: s("p-1"),
        },
        WorkItem::Holds {
            target: s("runpod"),
            old: (s("p-1"), false),
            new: (s("p-2"), true),
        },
        WorkItem::PodLeft {
            pod: s("abc"),
            keeps: s("p-1"),
        },
    ];
    assert_eq!(
        describe(&items),
        "p-2 was removed nowhere, as p-1 is not back everywhere; now runpod trusts p-2 only, pod abc left as it was (it keeps p-1)"
    );
    assert_eq!(describe(&[]), "nothing");
    let e: Error = Incomplete {
        operation: Operation::Mint { key: s("ci-1") },
        cause: RequestError::NoPrincipals.into(),
        done: vec![WorkItem::RecordedAndDeployed {
            key: s("ci-1"),
            targets: vec![],
        }],
        pending: vec![WorkItem::Writing {
            path: PathBuf::from("/o/k"),
        }],
        next: NextStep::RevokeThenRetry { key: s("ci-1") },
    }
    .into();
    assert_eq!(
        e.to_string(),
        "minting ci-1 stopped: a certificate needs at least one principal; done: ci-1 recorded in the vault and deployed nowhere; not done: writing /o/k"
    );
}
