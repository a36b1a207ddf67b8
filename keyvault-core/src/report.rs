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
    /// What happened at each running pod (`rotate --pods`, `sweep`).
    pub pods: Vec<PodOutcome>,
}

/// One pod's part in a rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodOutcome {
    /// The pod's id.
    pub pod: String,
    /// `added` (new key in and verified), `removed` (old key out), `failed`,
    /// `needs-redeploy` (no direct SSH), `gone` (no longer running), `already` (trusts the
    /// key already).
    pub outcome: String,
    /// More about it.
    pub detail: String,
}

impl Report {
    /// Whether some pod was left without the change it needed: `failed`, or
    /// `needs-redeploy` (the CLI exits 1 for these after `deploy`/`revoke` to pods).
    #[must_use]
    pub fn pods_incomplete(&self) -> bool {
        self.pods
            .iter()
            .any(|p| p.outcome == "failed" || p.outcome == "needs-redeploy")
    }

    /// Records what happened at one pod.
    pub(crate) fn pod(&mut self, pod: String, outcome: &str, detail: impl Into<String>) {
        self.pods.push(PodOutcome {
            pod,
            outcome: outcome.to_owned(),
            detail: detail.into(),
        });
    }
}
