//! The rotation journal: an unfinished rotation ([`JournalEntry`]), its [`Step`] and its
//! [`TargetProgress`] at each target.

use super::{KeyId, Purpose};
use crate::target::TargetSpec;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A step of a rotation, as the journal records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Step {
    /// The new key is written and recorded (`pending`); nothing remote happened yet.
    Prepared,
    /// The new key is being added to the targets.
    Adding,
    /// The new key is active; the old one is retiring until removed everywhere.
    Promoted,
}

/// Progress of one rotation at one target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetProgress {
    /// The new key is there (verified by reading back).
    pub added: bool,
    /// The old key is gone (verified by reading back).
    pub removed: bool,
    /// A pod only: the new key was added without a login to prove it yet. The login that
    /// removes the old key offers the new key alone, so it is the proof; until then the
    /// old key stays. Absent from the file when false (as every journal before it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unproven: bool,
}

/// An unfinished rotation, kept in the inventory so any later run can finish it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalEntry {
    pub(crate) purpose: Purpose,
    pub(crate) old: KeyId,
    pub(crate) new: KeyId,
    pub(crate) step: Step,
    pub(crate) targets: std::collections::BTreeMap<TargetSpec, TargetProgress>,
    #[serde(default, with = "crate::timestamp::option")]
    pub(crate) grace_until: Option<DateTime<Utc>>,
    #[serde(with = "crate::timestamp")]
    pub(crate) started_at: DateTime<Utc>,
}

impl JournalEntry {
    /// The purpose being rotated.
    #[must_use]
    pub fn purpose(&self) -> &Purpose {
        &self.purpose
    }
    /// The key being replaced.
    #[must_use]
    pub fn old(&self) -> &KeyId {
        &self.old
    }
    /// The replacement.
    #[must_use]
    pub fn new_key(&self) -> &KeyId {
        &self.new
    }
    /// How far it got.
    #[must_use]
    pub fn step(&self) -> Step {
        self.step
    }
    /// Progress per target.
    #[must_use]
    pub fn targets(&self) -> &std::collections::BTreeMap<TargetSpec, TargetProgress> {
        &self.targets
    }
    /// Until when the old key stays deployed.
    #[must_use]
    pub fn grace_until(&self) -> Option<DateTime<Utc>> {
        self.grace_until
    }
    /// When the rotation started.
    #[must_use]
    pub fn started_at(&self) -> DateTime<Utc> {
        self.started_at
    }
}
