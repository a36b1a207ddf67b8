//! Rolling back an unfinished rotation (`rotate --abort`). A crash can leave a target in a
//! state the journal does not know about (a RunPod write that swapped the keys, recorded
//! by nobody), so the rollback never trusts the journal about what a target holds: it asks
//! each target, puts the old key back wherever it is missing and verifies, and only once
//! every target trusts the old key again does it remove the new one.

use crate::callbacks::Callbacks;
use crate::error::{Error, InputError, Result, TargetError};
use crate::inventory::{Inventory, JournalEntry, KeyRecord, KeyState, Purpose, Step};
use crate::pods::pod_id;
use crate::report::{Deployed, PodOutcomeKind, Report};
use crate::run::{Opened, add_key, draft, key, key_mut};
use crate::target::{TargetSpec, Targets};
use crate::vault::Vault;
use std::collections::HashSet;

impl Vault {
    /// Rolls back unfinished rotations of `purposes`: first makes every target the rotation
    /// touched trust the old key again (reading what each target really holds, adding the
    /// old key where it is missing, verifying), then removes the new key everywhere, marks
    /// it revoked and drops the journal entry. Pods are logged in to with the old key (its
    /// passphrase asked for through `callbacks`). Promoted rotations can only be finished.
    ///
    /// # Errors
    ///
    /// [`InputError::Request`] when a purpose has no rotation to abort or it was promoted
    /// already (nothing is changed); [`Error::Incomplete`] when a target cannot be made to
    /// trust the old key again (the new key is then removed nowhere, and the error says
    /// what each target holds) or the new key cannot be removed from one.
    pub fn abort_rotation(
        &self,
        purposes: &[Purpose],
        targets: &dyn Targets,
        callbacks: &mut dyn Callbacks,
    ) -> Result<Report> {
        let _lock = self.lock()?;
        let mut inventory = self.store.load()?;
        // Every purpose is checked before anything changes.
        for purpose in purposes {
            let Some(e) = inventory.journal.iter().find(|e| e.purpose() == purpose) else {
                return Err(InputError::Request {
                    message: format!("purpose {purpose} has no rotation in progress"),
                }
                .into());
            };
            if e.step >= Step::Promoted {
                return Err(InputError::Request {
                    message: format!(
                        "the rotation of {purpose} already made {} active, so it cannot be rolled back; finish it with `keyvault sweep`, or remove {1} now with `keyvault revoke {1}`",
                        e.new, e.old
                    ),
                }
                .into());
            }
        }
        let mut opened = Opened::new(targets);
        let mut report = Report::default();
        if inventory
            .journal
            .iter()
            .any(|e| purposes.contains(e.purpose()) && e.targets.keys().any(TargetSpec::is_pod))
        {
            self.drop_gone_pods(&mut inventory, &mut opened, &mut report)?;
        }
        for purpose in purposes {
            let Some(e) = inventory
                .journal
                .iter()
                .find(|e| e.purpose() == purpose)
                .cloned()
            else {
                continue;
            };
            self.roll_back(&mut inventory, &e, &mut opened, callbacks, &mut report)?;
        }
        Ok(report)
    }

    pub(crate) fn roll_back(
        &self,
        inventory: &mut Inventory,
        e: &JournalEntry,
        opened: &mut Opened<'_>,
        callbacks: &mut dyn Callbacks,
        report: &mut Report,
    ) -> Result<()> {
        let new = key(inventory, &e.new)?.clone();
        let old = key(inventory, &e.old)?.clone();
        let hook = self.hook_fn();
        let (pods, hosts): (Vec<TargetSpec>, Vec<TargetSpec>) =
            e.targets.keys().cloned().partition(TargetSpec::is_pod);
        // Pods are logged in to with the old key (a pod never loses it before promotion).
        if !pods.is_empty() {
            self.unlock_for_pods(opened, &old, callbacks)?;
        }

        // 1. The old key back at every target, as the target itself reports, verified.
        let mut restored = Vec::new();
        for name in &hosts {
            let result = (|| -> Result<bool> {
                let target = opened.get(name)?;
                let held = crate::remote::fingerprints(&target.list()?);
                if held.contains(old.fingerprint()) {
                    return Ok(false);
                }
                let line = add_key(target.as_ref(), &old);
                let applied = target.apply(&[line], &HashSet::new(), &hook)?;
                if !applied.present.contains(old.fingerprint()) {
                    return Err(TargetError::Interference {
                        target: name.to_string(),
                        what: format!("{} missing after the write", old.fingerprint()),
                    }
                    .into());
                }
                Ok(true)
            })();
            match result {
                Ok(false) => {}
                Ok(true) => {
                    restored.push(name.clone());
                    let d = draft(
                        "deploy",
                        &old,
                        format!(
                            "put back at {name} by the rollback of the rotation to {}",
                            new.id()
                        ),
                    );
                    self.record(inventory, &[d])?;
                    report.deployed.push(Deployed {
                        key: old.id().clone(),
                        target: name.clone(),
                    });
                }
                Err(cause) => {
                    let done = restored
                        .iter()
                        .map(|t| format!("{} put back at {t}", old.id()))
                        .collect::<Vec<_>>();
                    let states = hosts
                        .iter()
                        .map(|t| self.holds(opened, t, &old, &new))
                        .chain(pods.iter().map(|t| {
                            format!("pod {} left as it was (it keeps {})", pod_id(t), old.id())
                        }))
                        .collect::<Vec<_>>();
                    return Err(Error::Incomplete {
                        operation: format!("rollback of the rotation of {}", e.purpose),
                        cause: Box::new(cause),
                        done: if done.is_empty() {
                            "nothing".to_owned()
                        } else {
                            done.join(", ")
                        },
                        pending: format!(
                            "{} was removed nowhere, as {} is not back everywhere; now {}",
                            new.id(),
                            old.id(),
                            states.join(", ")
                        ),
                        next: format!(
                            "run `keyvault rotate --abort {0}` again once {name} is reachable, or `keyvault rotate {0}` to finish the rotation",
                            e.purpose
                        ),
                    });
                }
            }
        }

        // 2. Every target trusts the old key: the new one can go.
        let remove = HashSet::from([new.fingerprint().to_owned()]);
        let position = |inventory: &Inventory| {
            inventory
                .journal
                .iter()
                .position(|j| j.purpose == e.purpose && j.new == e.new)
        };
        // The journal forgets that a target got the new key before the key is removed
        // there: a crash in between must not leave a resumed rotation trusting an add
        // that is no longer true (it would promote and remove the old key too).
        let forget = |inventory: &mut Inventory, names: &[&TargetSpec]| -> Result<()> {
            if let Some(i) = position(inventory) {
                for name in names {
                    inventory.journal[i]
                        .targets
                        .insert((*name).clone(), crate::inventory::TargetProgress::default());
                }
                self.store.save(inventory)?;
            }
            Ok(())
        };
        for (n, name) in hosts.iter().enumerate() {
            forget(inventory, &[name])?;
            if let Err(cause) = opened.get(name).and_then(|t| t.apply(&[], &remove, &hook)) {
                return Err(Error::Incomplete {
                    operation: format!("rollback of the rotation of {}", e.purpose),
                    cause: Box::new(cause),
                    done: format!(
                        "{} trusted again at every target{}",
                        old.id(),
                        hosts[..n]
                            .iter()
                            .map(|t| format!(", {} removed from {t}", new.id()))
                            .collect::<String>()
                    ),
                    pending: hosts[n..]
                        .iter()
                        .map(|t| format!("{} may still be at {t}", new.id()))
                        .collect::<Vec<_>>()
                        .join(", "),
                    next: format!(
                        "run `keyvault rotate --abort {}` again once {name} is reachable",
                        e.purpose
                    ),
                });
            }
        }
        let now = self.now();
        let mut left_at_pods = Vec::new();
        if !pods.is_empty() {
            forget(inventory, &pods.iter().collect::<Vec<_>>())?;
            let jobs = pods
                .iter()
                .map(|p| {
                    (
                        p.clone(),
                        vec![old.id().clone()],
                        Vec::new(),
                        remove.clone(),
                    )
                })
                .collect();
            for (name, result) in self.fan_out(opened, jobs, report) {
                match result {
                    Ok(()) => report.pod(
                        pod_id(&name),
                        PodOutcomeKind::Removed,
                        format!("{} removed; it keeps {}", new.id(), old.id()),
                    ),
                    Err(err) => {
                        report.pod(
                            pod_id(&name),
                            PodOutcomeKind::Failed,
                            format!(
                                "{} may still be there ({err}); it keeps {}; retry with `keyvault revoke {} --to {}`",
                                new.id(),
                                old.id(),
                                new.id(),
                                pods_account(e)
                            ),
                        );
                        left_at_pods.push(name);
                    }
                }
            }
        }

        let record = key_mut(inventory, &e.new)?;
        // A pod that could not be reached may hold the new key: recorded, so `revoke --to
        // runpod-pods` retries it and `status` reports it.
        for name in &left_at_pods {
            record.mark_deployed(name, now);
        }
        record.state = KeyState::Revoked;
        record.revoked_at = Some(now);
        if let Some(i) = position(inventory) {
            inventory.journal.remove(i);
        }
        let d = draft(
            "rotate-abort",
            &new,
            format!(
                "rotation of {} rolled back; {} stays active",
                e.purpose, e.old
            ),
        );
        self.record(inventory, &[d])?;
        report.aborted.push(e.new.clone());
        Ok(())
    }

    /// What `name` holds of `old` and `new`, as it reports now.
    fn holds(
        &self,
        opened: &mut Opened<'_>,
        name: &TargetSpec,
        old: &KeyRecord,
        new: &KeyRecord,
    ) -> String {
        let listed = opened.get(name).and_then(|t| t.list().map_err(Error::from));
        match listed {
            Ok(list) => {
                let held = crate::remote::fingerprints(&list);
                match (
                    held.contains(old.fingerprint()),
                    held.contains(new.fingerprint()),
                ) {
                    (true, true) => format!("{name} trusts {} and {}", old.id(), new.id()),
                    (true, false) => format!("{name} trusts {} only", old.id()),
                    (false, true) => format!("{name} trusts {} only", new.id()),
                    (false, false) => {
                        format!("{name} trusts neither {} nor {}", old.id(), new.id())
                    }
                }
            }
            Err(err) => format!("{name} could not be read ({err})"),
        }
    }
}

/// The `--to` that names the pods of the rotation's RunPod account.
fn pods_account(e: &JournalEntry) -> String {
    match e.targets.keys().find_map(TargetSpec::runpod_profile) {
        Some(Some(profile)) => format!("runpod-pods:{profile}"),
        Some(None) | None => "runpod-pods".to_owned(),
    }
}
