//! What an operation did: keys deployed and removed, keys still retiring, pods reached.

use crate::inventory::{KeyId, Purpose};
use crate::target::TargetSpec;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A finished rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rotated {
    /// The purpose.
    pub purpose: Purpose,
    /// The replaced key.
    pub old: KeyId,
    /// The new active key.
    pub new: KeyId,
}

/// A key deployed to a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployed {
    /// The key.
    pub key: KeyId,
    /// Where.
    pub target: TargetSpec,
}

/// An old key kept deployed until its grace period ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Retiring {
    /// The key.
    pub key: KeyId,
    /// Until when.
    pub until: Option<DateTime<Utc>>,
}

/// What a deploy, revoke, rotate, sweep or prune did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Rotations promoted in this run.
    pub rotated: Vec<Rotated>,
    /// Keys revoked in this run.
    pub revoked: Vec<KeyId>,
    /// Old keys still deployed during their grace period.
    pub retiring: Vec<Retiring>,
    /// Retiring keys whose grace period a revoke ended early (with when it was to end).
    pub ended_grace: Vec<Retiring>,
    /// Keys deployed in this run.
    pub deployed: Vec<Deployed>,
    /// Rotations rolled back.
    pub aborted: Vec<KeyId>,
    /// Private key files deleted.
    pub pruned: Vec<KeyId>,
    /// What happened at each pod (`rotate --pods`, `sweep`, `deploy`/`revoke` to pods).
    pub pods: Vec<PodOutcome>,
}

/// One pod's part in a rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodOutcome {
    /// The pod's id.
    pub pod: String,
    /// What happened there.
    pub outcome: PodOutcomeKind,
    /// More about it.
    pub detail: String,
    /// What retries a failed step here, if a command can (the CLI words it after the
    /// detail, in its output and JSON alike).
    #[serde(skip)]
    pub retry: Option<PodRetry>,
    /// For a key `deploy` to pods left at the pod (`added`, `already`): whether the pod
    /// trusts it after a restart for sure (its `PUBLIC_KEY` holds it, and a restart
    /// re-appends that), or may lose it there (`false`: only `~/.ssh/authorized_keys`
    /// holds it, which survives a restart or not depending on the image and volume).
    /// Absent elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub survives_restart: Option<bool>,
}

/// What retries a pod's failed step, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PodRetry {
    /// Revoke `key` at the running pods of a RunPod `account` (the key may still be there).
    RevokeAtPods {
        /// The key to revoke.
        key: KeyId,
        /// The RunPod account (`runpod` or `runpod:PROFILE`) whose pods to reach.
        account: TargetSpec,
    },
    /// Deploy `key` to the running pods of a RunPod `account` once the pod runs.
    DeployAtPods {
        /// The key to deploy.
        key: KeyId,
        /// The RunPod account (`runpod` or `runpod:PROFILE`) whose pods to reach.
        account: TargetSpec,
    },
    /// Resume the rotation of `purpose` with pods, giving the passphrase of its old key
    /// `old`, once the pod runs: the pod stays in the rotation, which keeps `old` retiring
    /// until the new key is added there, and only `old` logs in to add it.
    ResumeRotation {
        /// The purpose whose rotation to resume.
        purpose: Purpose,
        /// The old key, whose passphrase the run needs.
        old: KeyId,
    },
    /// Finish the rotation of `purpose`, giving the passphrase of its new key `key`: the
    /// pod keeps the old key until that key logs in there alone, and this run could not
    /// unlock it (a `sweep` asks no one).
    FinishRotation {
        /// The purpose whose rotation to finish.
        purpose: Purpose,
        /// The new key, whose passphrase the run needs.
        key: KeyId,
    },
}

/// What happened at one pod; serialized as its kebab-case name (`needs-redeploy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PodOutcomeKind {
    /// The new key is in and verified (proven to log in).
    Added,
    /// The old key is out, verified by reading back.
    Removed,
    /// The pod could not be changed.
    Failed,
    /// Only a redeploy changes the pod's keys: it has no direct SSH endpoint, or it does not
    /// run but is not terminated (stopped, in error), and trusts the keys in its
    /// `PUBLIC_KEY` again when it starts.
    NeedsRedeploy,
    /// The pod no longer depends on the key: it is terminated, no longer listed, or does
    /// not run and its `PUBLIC_KEY` no longer holds the key.
    Gone,
    /// The pod trusts the key already.
    Already,
    /// The pod is starting (`PROVISIONING`, `STARTING`): it cannot be logged in to yet, and
    /// when it runs it trusts the keys in its `PUBLIC_KEY`. Nothing was done there; the
    /// step is retried once it runs (see [`PodOutcome::retry`]).
    Pending,
}

impl PodOutcomeKind {
    /// The name, as JSON output and the CLI show it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            PodOutcomeKind::Added => "added",
            PodOutcomeKind::Removed => "removed",
            PodOutcomeKind::Failed => "failed",
            PodOutcomeKind::NeedsRedeploy => "needs-redeploy",
            PodOutcomeKind::Gone => "gone",
            PodOutcomeKind::Already => "already",
            PodOutcomeKind::Pending => "pending",
        }
    }

    /// Whether the pod was left without the change it needed (`failed`, `needs-redeploy`,
    /// `pending`).
    #[must_use]
    pub fn is_incomplete(self) -> bool {
        matches!(
            self,
            PodOutcomeKind::Failed | PodOutcomeKind::NeedsRedeploy | PodOutcomeKind::Pending
        )
    }
}

impl std::fmt::Display for PodOutcomeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Report {
    /// A report of one key deployed to one target, and nothing else.
    pub(crate) fn deployed_once(key: KeyId, target: TargetSpec) -> Self {
        Report {
            deployed: vec![Deployed { key, target }],
            ..Report::default()
        }
    }
    /// Whether some pod was left without the change it needed: `failed`, `needs-redeploy`
    /// or `pending` (the CLI exits 1 for these after `deploy`/`revoke` to pods).
    #[must_use]
    pub fn pods_incomplete(&self) -> bool {
        self.pods.iter().any(|p| p.outcome.is_incomplete())
    }

    /// Records what happened at one pod.
    pub(crate) fn pod(&mut self, pod: String, outcome: PodOutcomeKind, detail: impl Into<String>) {
        self.pods.push(PodOutcome {
            pod,
            outcome,
            detail: detail.into(),
            retry: None,
            survives_restart: None,
        });
    }

    /// Says of the last pod recorded whether the key it trusts survives a restart.
    pub(crate) fn survives_restart(&mut self, survives: bool) {
        if let Some(p) = self.pods.last_mut() {
            p.survives_restart = Some(survives);
        }
    }

    /// Records a starting pod where nothing was done yet, with what retries it.
    pub(crate) fn pod_pending(&mut self, pod: String, detail: String, retry: Option<PodRetry>) {
        self.pods.push(PodOutcome {
            pod,
            outcome: PodOutcomeKind::Pending,
            detail,
            retry,
            survives_restart: None,
        });
    }

    /// Records a pod where a step failed, with what retries it.
    pub(crate) fn pod_failed(&mut self, pod: String, detail: String, retry: PodRetry) {
        self.pods.push(PodOutcome {
            pod,
            outcome: PodOutcomeKind::Failed,
            detail,
            retry: Some(retry),
            survives_restart: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_outcomes_read_as_their_names() {
        let all = [
            (PodOutcomeKind::Added, "added", false),
            (PodOutcomeKind::Removed, "removed", false),
            (PodOutcomeKind::Failed, "failed", true),
            (PodOutcomeKind::NeedsRedeploy, "needs-redeploy", true),
            (PodOutcomeKind::Gone, "gone", false),
            (PodOutcomeKind::Already, "already", false),
            (PodOutcomeKind::Pending, "pending", true),
        ];
        for (kind, name, incomplete) in all {
            assert_eq!(kind.to_string(), name);
            assert_eq!(
                serde_json::to_string(&kind).expect("json"),
                format!("\"{name}\"")
            );
            assert_eq!(kind.is_incomplete(), incomplete, "{name}");
            let mut report = Report::default();
            report.pod("p1".to_owned(), kind, "detail");
            assert_eq!(report.pods_incomplete(), incomplete, "{name}");
        }
    }
}
