//! Ending a grace period early: a retiring key may be compromised, so `revoke` of a key
//! kept deployed for a rotation's grace period removes it everywhere now instead of
//! refusing because a rotation is in progress.

use crate::error::Result;
use crate::inventory::{Inventory, KeyRecord, Step};
use crate::report::{Report, Retiring};
use crate::run::key_mut;
use crate::target::TargetSpec;
use crate::vault::Vault;
use std::collections::BTreeSet;

impl Vault {
    /// The journal entry (its index) of a promoted rotation whose old key is `record`.
    pub(crate) fn grace_of(&self, inventory: &Inventory, record: &KeyRecord) -> Option<usize> {
        inventory
            .journal
            .iter()
            .position(|e| e.old == *record.id() && e.step == Step::Promoted)
    }

    /// The running pods the rotation at `i` still waits on to remove its old key: recorded
    /// as deployments of that key, so revoking it removes it there too (and a failure is
    /// retried by `revoke --to runpod-pods`).
    pub(crate) fn grace_pods(
        &self,
        inventory: &mut Inventory,
        i: usize,
    ) -> Result<BTreeSet<TargetSpec>> {
        let e = inventory.journal[i].clone();
        let pods: BTreeSet<TargetSpec> = e
            .targets
            .iter()
            .filter(|(t, p)| t.is_pod() && !p.removed)
            .map(|(t, _)| t.clone())
            .collect();
        let now = self.now();
        let record = key_mut(inventory, &e.old)?;
        for pod in &pods {
            if !record.live_targets().contains(&pod) {
                record.mark_deployed(pod, now);
            }
        }
        Ok(pods)
    }

    /// Drops the rotation at `i` from the journal once its old key is revoked: the grace
    /// period is over.
    pub(crate) fn end_grace(
        &self,
        inventory: &mut Inventory,
        i: usize,
        report: &mut Report,
    ) -> Result<()> {
        let e = inventory.journal.remove(i);
        self.store.save(inventory)?;
        report.ended_grace.push(Retiring {
            key: e.old,
            until: e.grace_until,
        });
        Ok(())
    }
}
