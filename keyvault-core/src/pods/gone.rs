//! Deployments to pods that are gone: a key keyvault added to a pod over SSH stays a live
//! deployment until the pod is terminated, or no longer listed by any RunPod account that
//! could list its pods; then the deployment ends (recorded, audited) and nothing logs in.

use super::pod_id;
use crate::error::Result;
use crate::inventory::KeyId;
use crate::report::{PodOutcomeKind, Report};
use crate::run::{Opened, draft, key_mut};
use crate::runpod::Pod;
use crate::store::Txn;
use crate::target::TargetSpec;
use crate::vault::Vault;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// The pods the vault's RunPod accounts list, by id (the first listing of an id wins).
#[derive(Default)]
pub(crate) struct Listing {
    pub(crate) pods: BTreeMap<String, Pod>,
    /// The account that listed each pod.
    pub(crate) account_of: BTreeMap<String, TargetSpec>,
    /// Whether every account could list its pods: only then is an unlisted pod gone.
    pub(crate) complete: bool,
}

impl Vault {
    /// The pods of the RunPod accounts among `accounts` and those the vault's keys were
    /// ever deployed to; empty when no key is deployed to a pod (nothing to look up).
    pub(crate) fn list_vault_pods(
        &self,
        txn: &Txn,
        accounts: &[TargetSpec],
        opened: &mut Opened<'_>,
    ) -> Listing {
        if !txn
            .keys()
            .iter()
            .any(|k| k.live_targets().iter().any(|t| t.is_pod()))
        {
            return Listing::default();
        }
        let mut all: BTreeSet<TargetSpec> = txn
            .keys()
            .iter()
            .flat_map(|k| k.deployments().iter().map(|d| d.target().clone()))
            .filter(TargetSpec::is_runpod)
            .collect();
        all.extend(accounts.iter().cloned());
        let mut listing = Listing {
            complete: !all.is_empty(),
            ..Listing::default()
        };
        for account in &all {
            match opened.get(account).and_then(|t| Ok(t.pods()?)) {
                Ok(Some(pods)) => {
                    for p in pods {
                        if !listing.pods.contains_key(&p.id) {
                            listing.account_of.insert(p.id.clone(), account.clone());
                            listing.pods.insert(p.id.clone(), p);
                        }
                    }
                }
                Ok(None) | Err(_) => listing.complete = false,
            }
        }
        listing
    }

    /// Ends every live deployment to a pod that is gone in `listing`: terminated, or listed
    /// by none of the accounts when each could list its pods. Each ended deployment is
    /// recorded as removed, audited (`undeploy`) and reported `gone`, once per pod and key
    /// (not at all where `said` has that pod and key: reported `gone` already).
    ///
    /// # Errors
    ///
    /// Store errors only: an account that cannot list its pods proves nothing gone.
    pub(crate) fn end_gone_pod_deployments(
        &self,
        txn: &mut Txn,
        listing: &Listing,
        said: &HashSet<(String, KeyId)>,
        report: &mut Report,
    ) -> Result<()> {
        let live: BTreeSet<TargetSpec> = txn
            .keys()
            .iter()
            .flat_map(|k| k.live_targets())
            .filter(|t| t.is_pod())
            .cloned()
            .collect();
        let now = self.now();
        let mut drafts = Vec::new();
        let mut reported = said.clone();
        for name in &live {
            let why = match listing.pods.get(&pod_id(name)) {
                Some(p) if p.is_terminated() => "terminated",
                None if listing.complete => "no longer listed",
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
                if reported.insert((pod_id(name), id.clone())) {
                    report.pod(
                        pod_id(name),
                        PodOutcomeKind::Gone,
                        format!(
                            "{why}, so it no longer trusts {id} (keyvault had added it over SSH)"
                        ),
                    );
                }
            }
        }
        if !drafts.is_empty() {
            txn.record(drafts);
            txn.save()?;
        }
        Ok(())
    }
}
