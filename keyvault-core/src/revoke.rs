//! Revoking keys: removing them from every target, at once.

use crate::callbacks::Callbacks;
use crate::error::{Error, Incomplete, NextStep, Operation, RequestError, Result, WorkItem};
use crate::inventory::{Inventory, KeyId, KeyRecord, KeyState, Purpose};
use crate::names::KeySelector;
use crate::pods::{Listing, PodEdit, pod_id, pod_target};
use crate::report::{PodOutcomeKind, PodRetry, Report};
use crate::run::{Opened, draft, key, key_mut};
use crate::store::Txn;
use crate::target::{TargetSpec, Targets};
use crate::vault::Vault;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashSet};

impl Vault {
    /// Removes a key from every target it is deployed to, verifies, and marks it revoked.
    /// If it was a purpose's active key, `current/<purpose>` is removed.
    ///
    /// # Errors
    ///
    /// As [`Vault::find`]; [`RequestError::AlreadyRevoked`] or [`RequestError::InRotation`];
    /// [`Error::Incomplete`] when a target fails part-way (what was removed is recorded);
    /// [`Error::PassphraseUnavailable`] when keyvault added the key to pods over SSH (it
    /// must log in to them with the key: use [`Vault::revoke_with`]).
    pub fn revoke(&self, selector: &KeySelector, targets: &dyn Targets) -> Result<Report> {
        /// Pods keyvault edited need the key's passphrase; this API asks for none.
        struct NoPassphrase;
        impl Callbacks for NoPassphrase {
            fn passphrase(
                &mut self,
                request: &crate::callbacks::PassphraseRequest,
            ) -> Result<crate::Passphrase> {
                Err(Error::PassphraseUnavailable {
                    subject: request.subject().to_owned(),
                    reason: "Vault::revoke takes no passphrase; use Vault::revoke_with".to_owned(),
                })
            }
        }
        self.revoke_with(selector, None, targets, &mut NoPassphrase)
    }

    /// Revokes a key, and with `pods_of` also removes it from every running pod of that
    /// RunPod account that trusts it (`revoke --to runpod-pods`), logging in with the key
    /// itself. Pods it was added to over SSH are always reached. A pod that cannot be
    /// changed is reported ([`Report::pods_incomplete`]), and so is a stopped pod whose
    /// `PUBLIC_KEY` holds the key (it trusts the key again when it starts:
    /// [`crate::PodOutcomeKind::NeedsRedeploy`]) and a starting pod that will trust it
    /// ([`crate::PodOutcomeKind::Pending`]); the key is revoked everywhere else regardless,
    /// and running this again on the revoked key retries the pods. A pod it was added to
    /// over SSH that is gone (terminated, or listed by no RunPod account that could list its
    /// pods) is not logged in to: the deployment ends there ([`crate::PodOutcomeKind::Gone`]).
    ///
    /// # Errors
    ///
    /// As [`Vault::revoke`] (a revoked key only with `pods_of`); the account's errors
    /// while listing pods; the callbacks' error.
    pub fn revoke_with(
        &self,
        selector: &KeySelector,
        pods_of: Option<&TargetSpec>,
        targets: &dyn Targets,
        callbacks: &mut dyn Callbacks,
    ) -> Result<Report> {
        let mut txn = self.begin(crate::store::View::Live)?;
        let record = self.find_in(&mut txn, selector)?;
        let revoked = record.state() == KeyState::Revoked;
        if revoked && pods_of.is_none() {
            return Err(RequestError::AlreadyRevoked {
                id: record.id().to_string(),
            }
            .into());
        }
        // A store that cannot record the revoke stops it before any target changes.
        txn.check_writable(std::slice::from_ref(record.id()))?;
        // A retiring key in its grace period may be compromised: revoking it ends the grace.
        let grace = self.grace_of(&txn, &record);
        let grace_was_until = grace
            .as_ref()
            .and_then(|p| txn.rotation(p))
            .and_then(|e| e.grace_until);
        let mut names = self.grace_ends_now(&mut txn, &record, grace.as_ref(), revoked)?;
        let mut opened = Opened::new(targets);
        let mut report = Report::default();
        // A pod it was added to over SSH that is terminated is gone: no login, nothing to retry.
        let mut listing = Listing::default();
        if pods_of.is_some() || record.live_targets().iter().any(|t| t.is_pod()) {
            let accounts: Vec<TargetSpec> = pods_of.into_iter().cloned().collect();
            listing = self.list_vault_pods(&txn, &accounts, &mut opened);
            self.end_gone_pod_deployments(&mut txn, &listing, &HashSet::new(), &mut report)?;
            names.retain(|n| !gone_from(&report, n));
        }
        let record = key(&txn, record.id())?.clone();
        names.extend(
            record
                .live_targets()
                .into_iter()
                .filter(|t| t.is_pod())
                .cloned(),
        );
        match pods_of {
            Some(account) => {
                self.pods_trusting(&txn, &mut opened, account, &record, &mut names, &mut report)?;
            }
            None => not_running(&listing, &record, &mut names, &mut report),
        }
        if !names.is_empty() {
            self.remove_from_pods_of(
                &mut txn,
                &record,
                &names,
                &mut opened,
                callbacks,
                &mut report,
            )?;
        }
        if !revoked {
            self.revoke_keys(
                &mut txn,
                &[record.id().clone()],
                &mut opened,
                "revoke",
                "revoked",
                &mut report,
            )?;
            if let Some(purpose) = &grace {
                self.end_grace(&mut txn, purpose, &mut report)?;
                if let Some(ended) = report.ended_grace.last_mut() {
                    ended.until = grace_was_until;
                }
            }
        }
        txn.commit()?;
        Ok(report)
    }

    /// Before anything remote: a key in its rotation's grace period (`grace`, not yet
    /// revoked) ends that grace now, on disk, and gets the pods the rotation waits for; any
    /// other key must not be in a rotation.
    fn grace_ends_now(
        &self,
        txn: &mut Txn,
        record: &KeyRecord,
        grace: Option<&Purpose>,
        revoked: bool,
    ) -> Result<BTreeSet<TargetSpec>> {
        match grace {
            Some(purpose) if !revoked => {
                let names = self.grace_pods(txn, purpose)?;
                // The grace period ends now, on disk before anything remote: if this
                // command dies half way, `sweep` finishes removing the key everywhere and
                // `status` no longer calls it deployed until the old end.
                let now = self.now();
                if let Some(entry) = txn.rotation_mut(purpose)
                    && entry.grace_until.is_none_or(|g| g > now)
                {
                    entry.grace_until = Some(now);
                }
                txn.save()?;
                Ok(names)
            }
            _ => {
                self.check_not_rotating(txn, record)?;
                Ok(BTreeSet::new())
            }
        }
    }

    /// Adds to `names` the running pods of `account` that trust `record` (a pod keyvault
    /// edited before under another endpoint is replaced); proxy-only ones are reported, and
    /// so are pods that do not run but would trust it when they start: starting ones as
    /// `pending` (none is logged in to), stopped ones as needing a redeploy.
    fn pods_trusting(
        &self,
        txn: &Txn,
        opened: &mut Opened<'_>,
        account: &TargetSpec,
        record: &KeyRecord,
        names: &mut BTreeSet<TargetSpec>,
        report: &mut Report,
    ) -> Result<()> {
        let now = self.now();
        let live = self.live_pods(opened, account)?;
        let retry = PodRetry::RevokeAtPods {
            key: record.id().clone(),
            account: account.clone(),
        };
        let trusts = |pod: &crate::runpod::Pod| {
            let seen = crate::observe::pod_report(txn, now, pod);
            seen.keys.iter().any(|k| k.id.as_ref() == Some(record.id()))
        };
        for pod in &live.starting {
            names.retain(|n| pod_id(n) != pod.id);
            if trusts(pod) {
                starting_trusting(pod, record, &retry, report);
            }
        }
        for pod in &live.stopped {
            let edited = names.iter().any(|n| pod_id(n) == pod.id);
            names.retain(|n| pod_id(n) != pod.id);
            stopped_trusting(pod, record, edited, &retry, report);
        }
        for pod in live.running.iter().filter(|p| trusts(p)) {
            running_trusting(pod, record, names, report);
        }
        Ok(())
    }

    /// Removes `record` from the pods `names`, logging in with the key itself (its
    /// passphrase asked for), and records each pod's result.
    fn remove_from_pods_of(
        &self,
        txn: &mut Txn,
        record: &KeyRecord,
        names: &BTreeSet<TargetSpec>,
        opened: &mut Opened<'_>,
        callbacks: &mut dyn Callbacks,
        report: &mut Report,
    ) -> Result<()> {
        if record.pruned_at().is_some() {
            return Err(RequestError::Pruned {
                id: record.id().to_string(),
            }
            .into());
        }
        let subject = format!("key {} (to log in to its pods and remove it)", record.id());
        let plain = self.unlock(
            record,
            callbacks,
            &subject,
            crate::callbacks::PassphraseKind::Existing,
        )?;
        opened.identities.insert(record.id().clone(), plain);
        let remove: HashSet<ssh_key::Fingerprint> =
            HashSet::from([record.fingerprint().to_owned()]);
        let results = self.fan_out(
            opened,
            names
                .iter()
                .map(|n| {
                    (
                        n.clone(),
                        vec![record.id().clone()],
                        Vec::new(),
                        remove.clone(),
                    )
                })
                .collect(),
            report,
        );
        self.settle_pods(txn, record, results, PodEdit::Removed, report)
    }

    /// Records that the old keys of the rotations of `rotations` are gone from `name`.
    pub(crate) fn removed_from(
        &self,
        txn: &mut Txn,
        name: &TargetSpec,
        rotations: &[Purpose],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut drafts = Vec::new();
        for purpose in rotations {
            let Some(e) = txn.rotation_mut(purpose) else {
                continue;
            };
            e.at(name).removed = true;
            let old = e.old.clone();
            let record = key_mut(txn, &old)?;
            if name.is_pod() {
                // The pod had the old key from its PUBLIC_KEY, not from keyvault:
                // record that keyvault took it out there. Only until the pod restarts:
                // its PUBLIC_KEY still holds the key (`observe` reports that).
                record.mark_deployed(name, now);
            }
            record.mark_removed(name, now);
            drafts.push(draft("undeploy", record, format!("removed from {name}")));
        }
        txn.record(drafts);
        txn.save()?;
        self.hook(&format!("removed:{name}"))
    }

    pub(crate) fn check_not_rotating(
        &self,
        inventory: &Inventory,
        record: &KeyRecord,
    ) -> Result<()> {
        if inventory
            .journal()
            .iter()
            .any(|e| e.new == *record.id() || e.old == *record.id())
        {
            return Err(RequestError::InRotation {
                id: record.id().to_string(),
                purpose: record.purpose().to_string(),
            }
            .into());
        }
        Ok(())
    }

    /// Removes `ids` from their targets (one write per target) and revokes them.
    pub(crate) fn revoke_keys(
        &self,
        txn: &mut Txn,
        ids: &[KeyId],
        opened: &mut Opened<'_>,
        action: &'static str,
        why: &str,
        report: &mut Report,
    ) -> Result<()> {
        let now = self.now();
        let targets = targets_holding(txn, ids)?;
        if !targets.is_empty() {
            // A store that cannot record the removals stops this before any target changes.
            txn.check_writable(ids)?;
        }
        for (name, keys) in &targets {
            if let Err(e) = self.revoke_at(txn, name, keys, opened, now) {
                return Err(self.revoke_incomplete(txn, ids, action, e));
            }
        }
        self.revoke_records(txn, ids, action, why, now, report)
    }

    /// Removes `keys` from `name` in one write, records it and saves.
    fn revoke_at(
        &self,
        txn: &mut Txn,
        name: &TargetSpec,
        keys: &[KeyId],
        opened: &mut Opened<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let hook = self.hook_fn();
        let remove: HashSet<ssh_key::Fingerprint> = keys
            .iter()
            .map(|id| key(txn, id).map(|k| k.fingerprint().to_owned()))
            .collect::<Result<_>>()?;
        opened.get(name)?.apply(&[], &remove, &hook)?;
        let mut drafts = Vec::new();
        for id in keys {
            let record = key_mut(txn, id)?;
            record.mark_removed(name, now);
            drafts.push(draft("undeploy", record, format!("removed from {name}")));
        }
        txn.record(drafts);
        txn.save()?;
        self.hook(&format!("removed:{name}"))
    }

    /// Revoking `ids` stopped at a target with `e`: where they were removed and where
    /// they still are, as recorded.
    fn revoke_incomplete(&self, txn: &Txn, ids: &[KeyId], action: &str, e: Error) -> Error {
        let done = ids
            .iter()
            .filter_map(|id| txn.get(id))
            .flat_map(|k| {
                k.deployments()
                    .iter()
                    .filter(|d| d.removed_at().is_some())
                    .map(move |d| WorkItem::Removed {
                        key: k.id().to_string(),
                        target: d.target().to_string(),
                    })
            })
            .collect();
        let pending = ids
            .iter()
            .filter_map(|id| txn.get(id))
            .flat_map(|k| {
                k.live_targets()
                    .into_iter()
                    .map(move |t| WorkItem::StillAt {
                        key: k.id().to_string(),
                        target: t.to_string(),
                    })
            })
            .collect();
        let keys = ids.iter().map(ToString::to_string).collect();
        let (operation, next) = if action == "revoke" {
            (Operation::Revoke { keys }, NextStep::RetryRevoke)
        } else {
            (Operation::Expire { keys }, NextStep::RetrySweep)
        };
        Incomplete {
            operation,
            cause: self.explain(txn, e),
            done,
            pending,
            next,
        }
        .into()
    }

    /// Marks `ids` revoked and saves; then removes `current/<purpose>` for an active one
    /// (not before: a save that fails leaves the key active, with its link).
    fn revoke_records(
        &self,
        txn: &mut Txn,
        ids: &[KeyId],
        action: &'static str,
        why: &str,
        now: DateTime<Utc>,
        report: &mut Report,
    ) -> Result<()> {
        let mut drafts = Vec::new();
        let mut were_active = Vec::new();
        for id in ids {
            let record = key_mut(txn, id)?;
            if record.state == KeyState::Active {
                were_active.push((record.purpose.clone(), id));
            }
            record.state = KeyState::Revoked;
            record.revoked_at = Some(now);
            drafts.push(draft(action, record, why.to_owned()));
            report.revoked.push(id.clone());
        }
        txn.record(drafts);
        txn.save()?;
        for (purpose, id) in were_active {
            self.unlink_current(&purpose, id);
        }
        Ok(())
    }

    /// Removes `current/<purpose>` if it names `id`.
    pub(crate) fn unlink_current(&self, purpose: &Purpose, id: &KeyId) {
        let link = self.current_path(purpose);
        if std::fs::read_link(&link).is_ok_and(|t| t.file_name().is_some_and(|n| n == id.as_str()))
        {
            let _ = std::fs::remove_file(&link);
            let _ = std::fs::remove_file(link.with_file_name(format!("{purpose}.pub")));
        }
    }
}

/// The targets other than pods where `ids` are deployed, each with the keys it holds.
fn targets_holding(txn: &Txn, ids: &[KeyId]) -> Result<BTreeMap<TargetSpec, Vec<KeyId>>> {
    let mut per_target: BTreeMap<TargetSpec, Vec<KeyId>> = BTreeMap::new();
    for id in ids {
        for t in key(txn, id)?
            .live_targets()
            .into_iter()
            .filter(|t| !t.is_pod())
        {
            per_target.entry(t.clone()).or_default().push(id.clone());
        }
    }
    Ok(per_target)
}

/// A starting pod that will trust `record` when it runs: it cannot be logged in to yet;
/// once it runs, the revoke is retried (`retry`).
fn starting_trusting(
    pod: &crate::runpod::Pod,
    record: &KeyRecord,
    retry: &PodRetry,
    report: &mut Report,
) {
    report.pod_pending(
        pod.id.clone(),
        format!(
            "{}; when it runs it trusts {} (its PUBLIC_KEY holds it, or keyvault added it there \
             over SSH)",
            crate::pods::starting(pod),
            record.id()
        ),
        Some(retry.clone()),
    );
}

/// A pod that does not run cannot be changed over SSH (none is logged in to), and trusts
/// `record` again when it starts if its `PUBLIC_KEY` holds it (a redeploy), or may, where
/// keyvault added it over SSH (`edited`: retried once it runs).
fn stopped_trusting(
    pod: &crate::runpod::Pod,
    record: &KeyRecord,
    edited: bool,
    retry: &PodRetry,
    report: &mut Report,
) {
    if pod.starts_with_key(record.fingerprint()) {
        report.pod(
            pod.id.clone(),
            PodOutcomeKind::NeedsRedeploy,
            crate::pods::not_running(pod, record.id()),
        );
    } else if edited {
        report.pod_failed(
            pod.id.clone(),
            format!(
                "{}, not running: keyvault cannot remove {} over SSH (it added it there), and \
                 the pod may still trust it when it starts",
                crate::observe::status_word(&pod.status),
                record.id()
            ),
            retry.clone(),
        );
    }
}

/// A running pod that trusts `record`: its direct endpoint joins `names` (replacing one
/// keyvault edited before under another endpoint), or it is proxy-only (a redeploy).
fn running_trusting(
    pod: &crate::runpod::Pod,
    record: &KeyRecord,
    names: &mut BTreeSet<TargetSpec>,
    report: &mut Report,
) {
    match pod_target(pod) {
        Some(name) => {
            names.retain(|n| pod_id(n) != pod.id);
            names.insert(name);
        }
        None => report.pod(
            pod.id.clone(),
            PodOutcomeKind::NeedsRedeploy,
            format!(
                "still trusts {} and has no direct SSH endpoint (proxy only): redeploy the pod",
                record.id()
            ),
        ),
    }
}

/// Takes out of `names` the pods `listing` says do not run, none of which can be logged in
/// to: a starting one is reported `pending` (the revoke at its account's pods reaches it
/// once it runs), any other (stopped, in error) `needs-redeploy`, with why it still depends
/// on `record` (see [`crate::pods::stopped_detail`]). Their deployments stay on record.
fn not_running(
    listing: &Listing,
    record: &KeyRecord,
    names: &mut BTreeSet<TargetSpec>,
    report: &mut Report,
) {
    names.retain(|name| {
        let id = pod_id(name);
        let Some(pod) = (listing.pods.get(&id)).filter(|p| !p.is_running() && !p.is_terminated())
        else {
            return true;
        };
        if pod.is_starting() {
            let retry = listing
                .account_of
                .get(&id)
                .map(|account| PodRetry::RevokeAtPods {
                    key: record.id().clone(),
                    account: account.clone(),
                });
            report.pod_pending(
                id,
                format!(
                    "{}; when it runs it trusts {} (keyvault added it there over SSH)",
                    crate::pods::starting(pod),
                    record.id()
                ),
                retry,
            );
        } else {
            let detail = crate::pods::stopped_detail(pod, record)
                .unwrap_or_else(|| crate::pods::not_running(pod, record.id()));
            report.pod(id, PodOutcomeKind::NeedsRedeploy, detail);
        }
        false
    });
}

/// Whether `report` says pod target `name` is gone.
fn gone_from(report: &Report, name: &TargetSpec) -> bool {
    report
        .pods
        .iter()
        .any(|p| p.outcome == PodOutcomeKind::Gone && p.pod == pod_id(name))
}
