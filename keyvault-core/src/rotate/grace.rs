//! Ending a grace period early: a retiring key may be compromised, so `revoke` of a key
//! kept deployed for a rotation's grace period removes it everywhere now instead of
//! refusing because a rotation is in progress.

use crate::error::Result;
use crate::inventory::{Inventory, KeyRecord, Purpose, Step};
use crate::report::{Report, Retiring};
use crate::run::key_mut;
use crate::store::Txn;
use crate::target::TargetSpec;
use crate::vault::Vault;
use std::collections::BTreeSet;

impl Vault {
    /// The purpose of a promoted rotation whose old key is `record`.
    pub(crate) fn grace_of(&self, inventory: &Inventory, record: &KeyRecord) -> Option<Purpose> {
        inventory
            .journal()
            .iter()
            .find(|e| e.old == *record.id() && e.step == Step::Promoted)
            .map(|e| e.purpose.clone())
    }

    /// The running pods the rotation of `purpose` still waits on to remove its old key: recorded
    /// as deployments of that key, so revoking it removes it there too (and a failure is
    /// retried by `revoke --to runpod-pods`).
    pub(crate) fn grace_pods(
        &self,
        txn: &mut Txn,
        purpose: &Purpose,
    ) -> Result<BTreeSet<TargetSpec>> {
        let Some(e) = txn.rotation(purpose).cloned() else {
            return Ok(BTreeSet::new());
        };
        let pods: BTreeSet<TargetSpec> = e
            .targets
            .iter()
            .filter(|(t, p)| t.is_pod() && !p.removed)
            .map(|(t, _)| t.clone())
            .collect();
        let now = self.now();
        let record = key_mut(txn, &e.old)?;
        for pod in &pods {
            if !record.live_targets().contains(&pod) {
                record.mark_deployed(pod, now);
            }
        }
        Ok(pods)
    }

    /// Drops the rotation of `purpose` from the journal once its old key is revoked: the grace
    /// period is over.
    pub(crate) fn end_grace(
        &self,
        txn: &mut Txn,
        purpose: &Purpose,
        report: &mut Report,
    ) -> Result<()> {
        let Some(e) = txn.end_rotation(purpose) else {
            return Ok(());
        };
        txn.save()?;
        report.ended_grace.push(Retiring {
            key: e.old,
            until: e.grace_until,
        });
        Ok(())
    }
}
