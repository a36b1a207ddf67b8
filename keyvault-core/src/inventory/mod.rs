//! The per-purpose inventory: [`Purpose`], [`KeyId`], [`KeyRecord`], [`KeyState`],
//! [`Deployment`] and the [`Inventory`] document stored in `inventory.json`.

mod ids;
mod journal;
mod json;
mod record;
#[cfg(test)]
mod tests;

pub use ids::{KeyId, Purpose};
pub use journal::{JournalEntry, Step, TargetProgress};
pub use json::ParseError;
pub(crate) use record::option_value_representable;
pub use record::{CertificateInfo, Deployment, KeyRecord, KeyState, Origin, Protection, Scope};

use crate::audit::AuditHead;
use serde::{Deserialize, Serialize};

/// The inventory schema version this build reads and writes.
pub const INVENTORY_VERSION: u32 = 1;

/// The whole inventory document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub(crate) version: u32,
    pub(crate) keys: Vec<KeyRecord>,
    #[serde(default)]
    pub(crate) journal: Vec<JournalEntry>,
    #[serde(default)]
    pub(crate) audit: Option<AuditHead>,
    /// For each purpose, the highest key number a record not loaded holds (a store loading
    /// only live records fills it): [`Inventory::next_id`] never goes back below it.
    #[serde(skip)]
    pub(crate) floors: std::collections::BTreeMap<Purpose, u64>,
    /// How many revoked records a store loading only live records left out.
    #[serde(skip)]
    pub(crate) revoked_unloaded: usize,
}

impl Default for Inventory {
    fn default() -> Self {
        Inventory {
            version: INVENTORY_VERSION,
            keys: Vec::new(),
            journal: Vec::new(),
            audit: None,
            floors: std::collections::BTreeMap::new(),
            revoked_unloaded: 0,
        }
    }
}

impl Inventory {
    /// Every key, oldest first.
    #[must_use]
    pub fn keys(&self) -> &[KeyRecord] {
        &self.keys
    }

    /// Unfinished rotations.
    #[must_use]
    pub fn journal(&self) -> &[JournalEntry] {
        &self.journal
    }

    /// The key with this id.
    #[must_use]
    pub fn get(&self, id: &KeyId) -> Option<&KeyRecord> {
        self.keys.iter().find(|k| &k.id == id)
    }

    pub(crate) fn get_mut(&mut self, id: &KeyId) -> Option<&mut KeyRecord> {
        self.keys.iter_mut().find(|k| &k.id == id)
    }

    /// The active key of `purpose`, if any (scoped keys made by `mint` never are).
    #[must_use]
    pub fn active(&self, purpose: &Purpose) -> Option<&KeyRecord> {
        self.keys
            .iter()
            .find(|k| &k.purpose == purpose && k.state == KeyState::Active && k.scope.is_none())
    }

    /// Every purpose that has at least one key, sorted.
    #[must_use]
    pub fn purposes(&self) -> Vec<&Purpose> {
        let mut p: Vec<&Purpose> = self.keys.iter().map(|k| &k.purpose).collect();
        p.sort();
        p.dedup();
        p
    }

    /// How many records the vault holds, those a live view left out included.
    pub(crate) fn count_all(&self) -> usize {
        self.keys.len() + self.revoked_unloaded
    }

    /// Whether `purpose` has any record, revoked ones a live view left out included.
    pub(crate) fn has_purpose(&self, purpose: &Purpose) -> bool {
        self.floors.contains_key(purpose) || self.keys.iter().any(|k| &k.purpose == purpose)
    }

    /// The head of the audit chain this inventory was last written with.
    #[must_use]
    pub fn audit_head(&self) -> Option<&AuditHead> {
        self.audit.as_ref()
    }

    /// The next unused id for `purpose`: above every loaded record's and the floor of
    /// those not loaded (revoked ones, under a live view).
    pub(crate) fn next_id(&self, purpose: &Purpose) -> KeyId {
        let loaded = self
            .keys
            .iter()
            .filter(|k| &k.purpose == purpose)
            .map(|k| k.id.number())
            .max()
            .unwrap_or(0);
        let floor = self.floors.get(purpose).copied().unwrap_or(0);
        KeyId::new(purpose, loaded.max(floor) + 1)
    }
}
