//! `deploy --to runpod-pods`: adding a key over SSH to the running pods that trust another
//! key of its purpose, and saying what cannot be done at the rest.

use super::{PodEdit, pod_target};
use crate::callbacks::Callbacks;
use crate::error::{RequestError, Result};
use crate::inventory::{KeyId, KeyRecord, KeyState};
use crate::names::KeySelector;
use crate::report::{PodOutcomeKind, PodRetry, Report};
use crate::run::{Opened, key};
use crate::runpod::Pod;
use crate::store::Txn;
use crate::target::{TargetSpec, Targets};
use crate::vault::Vault;
use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashSet};

/// The pods of a RunPod account that are not terminated, by what can be done there now.
pub(crate) struct LivePods {
    /// Running: they can be changed over SSH.
    pub(crate) running: Vec<Pod>,
    /// Starting (`PROVISIONING`, `STARTING`): they cannot be logged in to yet, and shortly
    /// run trusting their `PUBLIC_KEY`.
    pub(crate) starting: Vec<Pod>,
    /// The rest (stopped, in error, a status keyvault does not know): they trust their
    /// `PUBLIC_KEY` again when they start.
    pub(crate) stopped: Vec<Pod>,
}

/// Reports each pod that does not run but is not terminated, whose `PUBLIC_KEY` holds
/// another key of `record`'s purpose and not `record`: keyvault cannot add it over SSH, and
/// when the pod starts it trusts only its `PUBLIC_KEY`.
fn stopped_lacking(txn: &Txn, record: &KeyRecord, pods: &[Pod], report: &mut Report) {
    for pod in pods
        .iter()
        .filter(|p| !p.starts_with_key(record.fingerprint()))
    {
        let ours = txn
            .keys()
            .iter()
            .any(|k| k.purpose() == record.purpose() && pod.starts_with_key(k.fingerprint()));
        if ours {
            report.pod(
                pod.id.clone(),
                PodOutcomeKind::NeedsRedeploy,
                format!(
                    "{}, not running: keyvault cannot add {} over SSH, and when it starts it \
                     trusts only its PUBLIC_KEY, which lacks it; redeploy the pod",
                    crate::observe::status_word(&pod.status),
                    record.id()
                ),
            );
        }
    }
}

/// Each pod of `record`'s purpose that lacks it, with the key to log in with (pods that
/// already trust it are reported instead).
fn pods_lacking<'a>(
    txn: &Txn,
    record: &KeyRecord,
    pods: &'a [Pod],
    now: DateTime<Utc>,
    report: &mut Report,
) -> Vec<(&'a Pod, KeyId)> {
    let mut lacking = Vec::new();
    for pod in pods {
        let seen = crate::observe::pod_report(txn, now, pod);
        let trusted: Vec<&KeyId> = seen.keys.iter().filter_map(|k| k.id.as_ref()).collect();
        if trusted.contains(&record.id()) {
            let kept = pod.starts_with_key(record.fingerprint());
            report.pod(
                pod.id.clone(),
                PodOutcomeKind::Already,
                if kept {
                    format!("already trusts {} (its PUBLIC_KEY holds it)", record.id())
                } else {
                    format!(
                        "already trusts {} (added over SSH; a restart of the pod may drop it: \
                         its PUBLIC_KEY lacks it)",
                        record.id()
                    )
                },
            );
            report.survives_restart(kept);
            continue;
        }
        // Prefer the active key, then retiring ones: keys that surely still log in.
        let rank = |k: &KeyRecord| match k.state() {
            KeyState::Active => 0,
            KeyState::Retiring => 1,
            _ => 2,
        };
        let login = trusted
            .iter()
            .filter_map(|id| txn.get(id))
            .filter(|k| k.purpose() == record.purpose() && k.pruned_at().is_none())
            .min_by_key(|k| rank(k));
        // None: a pod of another purpose, or of nobody keyvault knows.
        if let Some(login) = login {
            lacking.push((pod, login.id().clone()));
        }
    }
    lacking
}

/// The running pods among `lacking` as pod targets to log in to; those without a direct
/// SSH endpoint are reported as needing a redeploy.
fn reachable(lacking: Vec<(&Pod, KeyId)>, report: &mut Report) -> Vec<(TargetSpec, KeyId)> {
    let mut jobs = Vec::new();
    for (pod, login) in lacking {
        match pod_target(pod) {
            Some(name) => jobs.push((name, login)),
            None => report.pod(
                pod.id.clone(),
                PodOutcomeKind::NeedsRedeploy,
                "no direct SSH endpoint (proxy only): redeploy the pod to change its keys",
            ),
        }
    }
    jobs
}

/// Reports the starting pods among `lacking` as `pending`: keyvault adds `record` over SSH
/// once they run (a deploy then).
fn starting_lacking(
    lacking: Vec<(&Pod, KeyId)>,
    record: &KeyRecord,
    account: &TargetSpec,
    report: &mut Report,
) {
    for (pod, login) in lacking {
        report.pod_pending(
            pod.id.clone(),
            format!(
                "{}; once it runs, keyvault can add {} over SSH (logging in with {login}, \
                 which its PUBLIC_KEY holds)",
                super::starting(pod),
                record.id()
            ),
            Some(PodRetry::DeployAtPods {
                key: record.id().clone(),
                account: account.clone(),
            }),
        );
    }
}

impl Vault {
    /// Trusts a key in every running pod of a RunPod `account` that trusts another key of its
    /// purpose (`deploy --to runpod-pods`): keyvault logs in to each pod's direct SSH endpoint
    /// with that key, adds this one to `~/.ssh/authorized_keys`, and proves that it logs in.
    /// Pods that already trust it are left alone; proxy-only pods, and pods of its purpose
    /// that are stopped or in error (they start with their `PUBLIC_KEY` alone), are reported
    /// as needing a redeploy; starting pods (`PROVISIONING`, `STARTING`) that lack it as
    /// `pending`, with the deploy that adds it once they run ([`PodRetry::DeployAtPods`]); one pod's failure never stops the others (see
    /// [`Report::pods`]).
    ///
    /// The key's passphrase is asked for as [`crate::PassphraseKind::Existing`], the keys
    /// that log in as [`crate::PassphraseKind::Login`] (keyring-held ones are fetched).
    ///
    /// # Errors
    ///
    /// As [`Vault::deploy`]; [`crate::RequestError::NotRunpodAccount`] if `account` is not a RunPod account;
    /// the account's errors while listing pods; the callbacks' error.
    pub fn deploy_to_pods(
        &self,
        selector: &KeySelector,
        account: &TargetSpec,
        targets: &dyn Targets,
        callbacks: &mut dyn Callbacks,
    ) -> Result<Report> {
        // Every record: a pod may still trust a key revoked since (the one to log in with).
        let (mut txn, record, now) = self.begin_deploy_in(selector, crate::store::View::All)?;
        let mut opened = Opened::new(targets);
        let mut report = Report::default();
        let live = self.live_pods(&mut opened, account)?;
        stopped_lacking(&txn, &record, &live.stopped, &mut report);
        let waiting = pods_lacking(&txn, &record, &live.starting, now, &mut report);
        starting_lacking(waiting, &record, account, &mut report);
        let lacking = pods_lacking(&txn, &record, &live.running, now, &mut report);
        let jobs = reachable(lacking, &mut report);
        if jobs.is_empty() {
            return Ok(report);
        }
        self.unlock_deploy_keys(&txn, &record, &jobs, &mut opened, callbacks)?;
        let results = self.fan_out(
            &mut opened,
            jobs.iter()
                .map(|(name, login)| {
                    (
                        name.clone(),
                        vec![login.clone(), record.id().clone()],
                        vec![record.clone()],
                        HashSet::new(),
                    )
                })
                .collect(),
            &mut report,
        );
        self.settle_pods(&mut txn, &record, results, PodEdit::Added, &mut report)?;
        txn.commit()?;
        Ok(report)
    }

    /// Unlocks `record` (asked for as [`crate::PassphraseKind::Existing`]) and every key
    /// the `jobs` log in with ([`crate::PassphraseKind::Login`]) into `opened`.
    fn unlock_deploy_keys(
        &self,
        txn: &Txn,
        record: &KeyRecord,
        jobs: &[(TargetSpec, KeyId)],
        opened: &mut Opened<'_>,
        callbacks: &mut dyn Callbacks,
    ) -> Result<()> {
        let subject = format!("key {}", record.id());
        opened.identities.insert(
            record.id().clone(),
            self.unlock(
                record,
                callbacks,
                &subject,
                crate::callbacks::PassphraseKind::Existing,
            )?,
        );
        let logins: BTreeSet<KeyId> = jobs.iter().map(|(_, id)| id.clone()).collect();
        for id in logins {
            let login = key(txn, &id)?.clone();
            let subject = format!("key {id} (to log in to pods)");
            let plain = self.unlock(
                &login,
                callbacks,
                &subject,
                crate::callbacks::PassphraseKind::Login,
            )?;
            opened.identities.insert(id, plain);
        }
        Ok(())
    }

    /// The pods of a RunPod account that are not terminated: running, starting, and the rest
    /// (stopped, in error), which trust their `PUBLIC_KEY` again when they start.
    pub(crate) fn live_pods(
        &self,
        opened: &mut Opened<'_>,
        account: &TargetSpec,
    ) -> Result<LivePods> {
        if account.runpod_profile().is_none() {
            return Err(RequestError::NotRunpodAccount {
                target: account.to_string(),
            }
            .into());
        }
        let pods = opened.get(account)?.pods()?.unwrap_or_default();
        let mut live = LivePods {
            running: Vec::new(),
            starting: Vec::new(),
            stopped: Vec::new(),
        };
        for pod in pods.into_iter().filter(|p| !p.is_terminated()) {
            if pod.is_running() {
                live.running.push(pod);
            } else if pod.is_starting() {
                live.starting.push(pod);
            } else {
                live.stopped.push(pod);
            }
        }
        Ok(live)
    }
}
