//! Sweeping: finishing grace periods and revoking what expired; pruning old records.

use crate::audit::Outcome;
use crate::error::{RequestError, Result, StoreError};
use crate::inventory::{Inventory, KeyId, KeyRecord, KeyState};
use crate::pods::IdlePods;
use crate::report::Report;
use crate::run::{Opened, draft, key, key_mut, run_draft};
use crate::target::Targets;
use crate::vault::Vault;
use std::collections::HashSet;

impl Vault {
    /// For cron: finishes interrupted rotations, ends grace periods that are over, and
    /// revokes expired keys from their targets (one write per target).
    ///
    /// # Errors
    ///
    /// [`crate::Error::Incomplete`] when a target fails; what was done is recorded and the next
    /// sweep continues from there.
    ///
    /// Every sweep ends with an audit event `sweep` (outcome ok or failed) that monitoring
    /// reads as the time and result of the last sweep.
    ///
    /// A pod where a rotation's new key was added but has not logged in yet (a rotation
    /// interrupted between its two logins there, or whose grace period is over) is finished
    /// by a login with the new key alone, which removes the old key in that session. Asking
    /// no one, the sweep can unlock that key only from the OS keyring, or if it has no
    /// passphrase; [`Vault::sweep_with_env`] also uses the purpose's `passphrase_env` /
    /// `passphrase_file`. Where it cannot, the pod keeps the old key and is reported
    /// failed with [`crate::PodRetry::FinishRotation`].
    ///
    /// A key keyvault added to a pod over SSH stops being deployed there once the pod is
    /// gone (terminated, or listed by none of the vault's RunPod accounts when each could
    /// list its pods): recorded, audited, and reported as [`crate::PodOutcomeKind::Gone`].
    pub fn sweep(&self, targets: &dyn Targets) -> Result<Report> {
        self.sweep_keeping(targets, false, &|_| None)
    }

    /// [`Vault::sweep`], reading the purposes' `passphrase_env` with `env` (the library
    /// reads no environment itself) to unlock the new keys that must log in to pods.
    ///
    /// # Errors
    ///
    /// As [`Vault::sweep`].
    pub fn sweep_with_env(
        &self,
        targets: &dyn Targets,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Report> {
        self.sweep_keeping(targets, false, env)
    }

    /// [`Vault::sweep_with_env`]; with `keep_due`, leaving the keys due for rotation where
    /// they are even when expired (`sweep --rotate-due` rotates them instead, or reports
    /// them), judged under the lock at the same instant as expiry.
    pub(crate) fn sweep_keeping(
        &self,
        targets: &dyn Targets,
        keep_due: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Report> {
        match self.sweep_steps(targets, keep_due, env) {
            Ok((report, true)) => Ok(report),
            result => {
                let result = result.map(|(report, _)| report);
                let done = result.as_ref().map_or(0, |r| r.revoked.len());
                self.record_run("sweep", swept(done), &result);
                result
            }
        }
    }

    /// The work of [`Vault::sweep_keeping`]; whether its `sweep` event is on record
    /// (written with the sweep's own events, so that a sweep that writes writes once).
    fn sweep_steps(
        &self,
        targets: &dyn Targets,
        keep_due: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Report, bool)> {
        let mut txn = self.begin(crate::store::View::Live)?;
        let mut opened = Opened::new(targets);
        let mut report = Report::default();
        let settled =
            self.drop_gone_pods(&mut txn, None, &mut opened, IdlePods::Drop, &mut report)?;
        let listing = self.list_vault_pods(&txn, &[], &mut opened);
        // A pod the journal dropped as gone is reported once per key.
        self.end_gone_pod_deployments(&mut txn, &listing, &settled.gone, &mut report)?;
        self.unlock_to_prove(&txn, self.now(), &mut opened, env)?;
        self.drive(&mut txn, None, &mut opened, &mut report)?;
        let now = self.now();
        let in_journal: HashSet<&KeyId> = txn
            .journal()
            .iter()
            .flat_map(|e| [&e.old, &e.new])
            .collect();
        let keep: HashSet<KeyId> = if keep_due {
            self.due_in(&txn, now).into_iter().map(|d| d.key).collect()
        } else {
            HashSet::new()
        };
        let expired: Vec<KeyId> = txn
            .keys()
            .iter()
            .filter(|k| {
                k.state() != KeyState::Revoked
                    && k.is_expired_at(now)
                    && !in_journal.contains(k.id())
                    && !keep.contains(k.id())
            })
            .map(|k| k.id().clone())
            .collect();
        if !expired.is_empty() {
            self.revoke_keys(
                &mut txn,
                &expired,
                &mut opened,
                "expire",
                "expired",
                &mut report,
            )?;
        }
        // current/<purpose> links left stale by a crash or a hand edit.
        for finding in self.current_link_findings(&txn) {
            if let Some(record) = finding.key_id().and_then(|id| txn.get(id)) {
                self.point_current(record.purpose(), record.id())?;
            }
        }
        let on_record = txn.has_events();
        if on_record {
            let detail = swept(report.revoked.len());
            txn.record([run_draft("sweep", Outcome::Ok, detail)]);
        }
        txn.commit()?;
        Ok((report, on_record))
    }

    /// Revoked keys whose private key file could be deleted: not part of any rotation, file
    /// still present.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the inventory cannot be read.
    pub fn prunable(&self) -> Result<Vec<KeyRecord>> {
        let inventory = self.store.load(crate::store::View::All)?;
        Ok(self.prunable_in(&inventory))
    }

    pub(crate) fn prunable_in(&self, inventory: &Inventory) -> Vec<KeyRecord> {
        let in_journal: HashSet<&KeyId> = inventory
            .journal()
            .iter()
            .flat_map(|e| [&e.old, &e.new])
            .collect();
        inventory
            .keys()
            .iter()
            .filter(|k| {
                k.state() == KeyState::Revoked
                    && k.pruned_at().is_none()
                    && !in_journal.contains(k.id())
                    && k.live_targets().is_empty()
                    && std::fs::symlink_metadata(self.private_key_path(k)).is_ok()
            })
            .cloned()
            .collect()
    }

    /// Deletes the private key files of `ids` (each must be [`Vault::prunable`]), keeping
    /// their records, public keys and audit history.
    ///
    /// # Errors
    ///
    /// [`crate::RequestError::NotPrunable`] for a key that is not prunable; [`StoreError`] for I/O.
    pub fn prune(&self, ids: &[KeyId]) -> Result<Report> {
        let mut txn = self.begin(crate::store::View::All)?;
        let prunable: HashSet<KeyId> = self
            .prunable_in(&txn)
            .into_iter()
            .map(|k| k.id().clone())
            .collect();
        if let Some(id) = ids.iter().find(|id| !prunable.contains(*id)) {
            return Err(RequestError::NotPrunable { id: id.to_string() }.into());
        }
        let now = self.now();
        let mut drafts = Vec::new();
        let mut report = Report::default();
        for id in ids {
            let path = self.private_key_path(key(&txn, id)?);
            std::fs::remove_file(&path).map_err(|source| StoreError::Io {
                operation: "delete",
                path: path.clone(),
                source,
            })?;
            // Its passphrase opens nothing any more.
            let forgot = match key(&txn, id)?.keyring_account() {
                Some(account) if self.forget_keyring_account(account) => {
                    "; its passphrase deleted from the OS keyring"
                }
                Some(_) => "; its passphrase could not be deleted from the OS keyring",
                None => "",
            };
            let record = key_mut(&mut txn, id)?;
            record.pruned_at = Some(now);
            drafts.push(draft(
                "prune",
                record,
                format!("private key file deleted{forgot}"),
            ));
            report.pruned.push(id.clone());
        }
        crate::fsutil::sync_dir(&self.paths.keys_dir())?;
        txn.record(drafts);
        txn.commit()?;
        Ok(report)
    }
}

/// The detail of a sweep's audit event.
fn swept(revoked: usize) -> String {
    format!("swept; {revoked} key(s) revoked")
}
