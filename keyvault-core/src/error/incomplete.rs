//! An operation that stopped part-way, as data: what it did, what it did not, and what
//! finishes it.

use super::Error;
use std::path::PathBuf;

/// A multi-step operation that stopped part-way: what it did, what it did not, and what
/// finishes it, as data.
#[derive(Debug, thiserror::Error)]
#[error(
    "{operation} stopped: {cause}; done: {}; not done: {}",
    describe(done),
    describe(pending)
)]
pub struct Incomplete {
    /// What was being done.
    pub operation: Operation,
    /// Why it stopped.
    pub cause: Error,
    /// What was done before it stopped.
    pub done: Vec<WorkItem>,
    /// What remains.
    pub pending: Vec<WorkItem>,
    /// What finishes it.
    pub next: NextStep,
}

impl From<Incomplete> for Error {
    fn from(i: Incomplete) -> Self {
        Error::Incomplete(Box::new(i))
    }
}

/// The multi-step operation an [`Error::Incomplete`] stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// Rotating these purposes.
    Rotation {
        /// The purposes.
        purposes: Vec<String>,
    },
    /// Rolling back the rotation of a purpose.
    Rollback {
        /// The purpose.
        purpose: String,
    },
    /// Revoking keys.
    Revoke {
        /// The keys.
        keys: Vec<String>,
    },
    /// Revoking expired keys (a sweep).
    Expire {
        /// The keys.
        keys: Vec<String>,
    },
    /// Minting a key.
    Mint {
        /// The key.
        key: String,
    },
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Operation::Rotation { purposes } => write!(f, "rotation of {}", purposes.join(", ")),
            Operation::Rollback { purpose } => write!(f, "rollback of the rotation of {purpose}"),
            Operation::Revoke { keys } => write!(f, "revoke of {}", keys.join(", ")),
            Operation::Expire { keys } => write!(f, "expire of {}", keys.join(", ")),
            Operation::Mint { key } => write!(f, "minting {key}"),
        }
    }
}

/// One thing an interrupted operation did or did not do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkItem {
    /// A key was added to a target.
    Added {
        /// The key.
        key: String,
        /// The target.
        target: String,
    },
    /// A key was not yet added to a target.
    NotAdded {
        /// The key.
        key: String,
        /// The target.
        target: String,
    },
    /// A key was removed from a target.
    Removed {
        /// The key.
        key: String,
        /// The target.
        target: String,
    },
    /// A key is still at a target.
    StillAt {
        /// The key.
        key: String,
        /// The target.
        target: String,
    },
    /// A key may still be at a target.
    MayStillBeAt {
        /// The key.
        key: String,
        /// The target.
        target: String,
    },
    /// A key was put back at a target.
    PutBack {
        /// The key.
        key: String,
        /// The target.
        target: String,
    },
    /// A key is trusted again at every target.
    TrustedEverywhere {
        /// The key.
        key: String,
    },
    /// A key was removed nowhere, as another is not back everywhere; what each target
    /// holds follows it in the list.
    RemovedNowhere {
        /// The key kept.
        key: String,
        /// The key that is not back everywhere.
        missing: String,
    },
    /// What a target was found to hold of a rotation's two keys.
    Holds {
        /// The target.
        target: String,
        /// The old key, and whether the target holds it.
        old: (String, bool),
        /// The new key, and whether the target holds it.
        new: (String, bool),
    },
    /// A target that could not be read.
    Unreadable {
        /// The target.
        target: String,
        /// Why.
        reason: String,
    },
    /// A pod left as it was.
    PodLeft {
        /// The pod.
        pod: String,
        /// The key it keeps.
        keeps: String,
    },
    /// A key was recorded in the vault.
    Recorded {
        /// The key.
        key: String,
        /// When it expires (RFC 3339).
        expires: String,
    },
    /// A key was recorded in the vault and deployed to these targets.
    RecordedAndDeployed {
        /// The key.
        key: String,
        /// The targets (none: deployed nowhere).
        targets: Vec<String>,
    },
    /// Deploying the key to a target.
    Deploying {
        /// The target.
        target: String,
    },
    /// Writing a file.
    Writing {
        /// The file.
        path: PathBuf,
    },
}

impl std::fmt::Display for WorkItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkItem::Added { key, target } => write!(f, "{key} added to {target}"),
            WorkItem::NotAdded { key, target } => write!(f, "{key} not yet added to {target}"),
            WorkItem::Removed { key, target } => write!(f, "{key} removed from {target}"),
            WorkItem::StillAt { key, target } => write!(f, "{key} still at {target}"),
            WorkItem::MayStillBeAt { key, target } => write!(f, "{key} may still be at {target}"),
            WorkItem::PutBack { key, target } => write!(f, "{key} put back at {target}"),
            WorkItem::TrustedEverywhere { key } => write!(f, "{key} trusted again at every target"),
            WorkItem::RemovedNowhere { key, missing } => {
                write!(
                    f,
                    "{key} was removed nowhere, as {missing} is not back everywhere"
                )
            }
            WorkItem::Holds {
                target,
                old: (old, has_old),
                new: (new, has_new),
            } => match (has_old, has_new) {
                (true, true) => write!(f, "{target} trusts {old} and {new}"),
                (true, false) => write!(f, "{target} trusts {old} only"),
                (false, true) => write!(f, "{target} trusts {new} only"),
                (false, false) => write!(f, "{target} trusts neither {old} nor {new}"),
            },
            WorkItem::Unreadable { target, reason } => {
                write!(f, "{target} could not be read ({reason})")
            }
            WorkItem::PodLeft { pod, keeps } => {
                write!(f, "pod {pod} left as it was (it keeps {keeps})")
            }
            WorkItem::Recorded { key, expires } => write!(f, "{key} recorded (expires {expires})"),
            WorkItem::RecordedAndDeployed { key, targets } if targets.is_empty() => {
                write!(f, "{key} recorded in the vault and deployed nowhere")
            }
            WorkItem::RecordedAndDeployed { key, targets } => write!(
                f,
                "{key} recorded in the vault and deployed to {}",
                targets.join(", ")
            ),
            WorkItem::Deploying { target } => write!(f, "deploying it to {target}"),
            WorkItem::Writing { path } => write!(f, "writing {}", path.display()),
        }
    }
}

/// A list of [`WorkItem`]s as one line: `nothing` when empty, items separated by `, `
/// (and `; now ` after a [`WorkItem::RemovedNowhere`], which the targets' states follow).
#[must_use]
pub fn describe(items: &[WorkItem]) -> String {
    if items.is_empty() {
        return "nothing".to_owned();
    }
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(match items[i - 1] {
                WorkItem::RemovedNowhere { .. } => "; now ",
                _ => ", ",
            });
        }
        out.push_str(&item.to_string());
    }
    out
}

/// What finishes an interrupted operation, for the caller to put in its own words.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NextStep {
    /// Every rotation promoted its new key: a sweep finishes them.
    Sweep,
    /// Rotate these purposes again to finish, or roll their rotations back.
    FinishOrRollBack {
        /// The purposes.
        purposes: Vec<String>,
    },
    /// Roll the rotation of `purpose` back again once `target` is reachable (or, with
    /// `or_finish`, finish the rotation instead).
    RetryRollBack {
        /// The purpose.
        purpose: String,
        /// The target that failed.
        target: String,
        /// Whether finishing the rotation is an option too.
        or_finish: bool,
    },
    /// Revoke again once the target is reachable.
    RetryRevoke,
    /// Sweep again once the target is reachable.
    RetrySweep,
    /// Deploy the key to the target, or revoke it.
    DeployOrRevoke {
        /// The key.
        key: String,
        /// The target.
        target: String,
    },
    /// Revoke the key (it is recorded and maybe deployed), then mint again.
    RevokeThenRetry {
        /// The key.
        key: String,
    },
}
