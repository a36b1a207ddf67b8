//! Deployments to pods that are gone: a key keyvault added to a pod over SSH stays a live
//! deployment until the pod is terminated, or no longer listed by any RunPod account that
//! could list its pods; then the deployment ends (recorded, audited) and nothing logs in.

use super::pod_id;
use crate::error::Result;
use crate::report::{PodOutcomeKind, Report};
use crate::run::{Opened, draft, key_mut};
use crate::store::Txn;
use crate::target::TargetSpec;
use crate::vault::Vault;
use std::collections::{BTreeMap, BTreeSet};

impl Vault {
    /// Ends every live deployment to a pod that is gone: terminated in the listing of a
    /// RunPod account among `accounts` and those the vault's keys were ever deployed to, or
    /// listed by none of them when each could list its pods. Each ended deployment is
    /// recorded as removed, audited (`undeploy`) and reported `gone`.
    ///
    /// # Errors
    ///
    /// Store errors only: an account that cannot list its pods proves nothing gone.
    pub(crate) fn end_gone_pod_deployments(
        &self,
        txn: &mut Txn,
        accounts: &[TargetSpec],
        opened: &mut Opened<'_>,
        report: &mut Report,
    ) -> Result<()> {
        let live: BTreeSet<TargetSpec> = txn
            .keys()
            .iter()
            .flat_map(|k| k.live_targets())
            .filter(|t| t.is_pod())
            .cloned()
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        let mut all: BTreeSet<TargetSpec> = txn
            .keys()
            .iter()
            .flat_map(|k| k.deployments().iter().map(|d| d.target().clone()))
            .filter(TargetSpec::is_runpod)
            .collect();
        all.extend(accounts.iter().cloned());
        if all.is_empty() {
            return Ok(());
        }
        let mut listed = BTreeMap::new();
        let mut complete = true;
        for account in &all {
            match opened.get(account).and_then(|t| Ok(t.pods()?)) {
                Ok(Some(pods)) => {
                    for p in pods {
                        listed.entry(p.id.clone()).or_insert(p);
                    }
                }
                Ok(None) | Err(_) => complete = false,
            }
        }
        let now = self.now();
        let mut drafts = Vec::new();
        for name in &live {
            let why = match listed.get(&pod_id(name)) {
                Some(p) if p.is_terminated() => "terminated",
                None if complete => "no longer listed",
                _ => continue,
            };
            let ids: Vec<_> = txn
                .keys()
                .iter()
                .filter(|k| k.live_targets().contains(&name))
                .map(|k| k.id().clone())
                .collect();
            for id in ids {
                let record = key_mut(txn, &id)?;
                record.mark_removed(name, now);
                drafts.push(draft(
                    "undeploy",
                    record,
                    format!("gone from {name}: the pod is {why}"),
                ));
                report.pod(
                    pod_id(name),
                    PodOutcomeKind::Gone,
                    format!("{why}, so it no longer trusts {id} (keyvault had added it over SSH)"),
                );
            }
        }
        if !drafts.is_empty() {
            txn.record(drafts);
            txn.save()?;
        }
        Ok(())
    }
}
