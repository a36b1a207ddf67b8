//! The rotation journal, addressed by purpose: a purpose has at most one unfinished
//! rotation, and each entry's progress is kept per target. On disk it stays the list
//! `inventory.json` has always held, in the order the rotations started.

use crate::inventory::{Inventory, JournalEntry, Purpose, TargetProgress};
use crate::target::TargetSpec;
use std::collections::HashSet;

impl Inventory {
    /// The unfinished rotation of `purpose`.
    pub(crate) fn rotation(&self, purpose: &Purpose) -> Option<&JournalEntry> {
        self.journal.iter().find(|e| e.purpose == *purpose)
    }

    /// The unfinished rotation of `purpose`, to record progress in.
    pub(crate) fn rotation_mut(&mut self, purpose: &Purpose) -> Option<&mut JournalEntry> {
        self.journal.iter_mut().find(|e| e.purpose == *purpose)
    }

    /// Journals a new rotation (its purpose has none unfinished).
    pub(crate) fn start_rotation(&mut self, entry: JournalEntry) {
        debug_assert!(self.rotation(&entry.purpose).is_none());
        self.journal.push(entry);
    }

    /// Drops the rotation of `purpose` from the journal: finished or rolled back.
    pub(crate) fn end_rotation(&mut self, purpose: &Purpose) -> Option<JournalEntry> {
        let i = self.journal.iter().position(|e| e.purpose == *purpose)?;
        Some(self.journal.remove(i))
    }

    /// The purposes with an unfinished rotation, all or those in `only`, in journal order.
    pub(crate) fn rotating(&self, only: Option<&HashSet<Purpose>>) -> Vec<Purpose> {
        self.journal
            .iter()
            .filter(|e| only.is_none_or(|p| p.contains(&e.purpose)))
            .map(|e| e.purpose.clone())
            .collect()
    }
}

impl JournalEntry {
    /// The progress of this rotation at `target`.
    pub(crate) fn at(&mut self, target: &TargetSpec) -> &mut TargetProgress {
        self.targets.entry(target.clone()).or_default()
    }
}
