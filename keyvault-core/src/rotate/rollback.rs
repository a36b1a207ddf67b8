//! Rolling back an unfinished rotation (`rotate --abort`). A crash can leave a target in a
//! state the journal does not know about (a RunPod write that swapped the keys, recorded
//! by nobody), so the rollback never trusts the journal about what a target holds: it asks
//! each target, puts the old key back wherever it is missing and verifies, and only once
//! every target trusts the old key again does it remove the new one.

use crate::callbacks::Callbacks;
use crate::error::{
    Error, Incomplete, NextStep, Operation, RequestError, Result, TargetError, WorkItem,
};
use crate::inventory::{JournalEntry, KeyRecord, KeyState, Purpose, Step};
use crate::pods::pod_id;
use crate::report::{Deployed, PodOutcomeKind, Report};
use crate::run::{Opened, add_key, draft, key, key_mut};
use crate::store::Txn;
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
    /// [`RequestError::NoRotation`] when a purpose has no rotation to abort,
    /// [`RequestError::AlreadyPromoted`] when it was promoted already (nothing is changed); [`Error::Incomplete`] when a target cannot be made to
    /// trust the old key again (the new key is then removed nowhere, and the error says
    /// what each target holds) or the new key cannot be removed from one.
    pub fn abort_rotation(
        &self,
        purposes: &[Purpose],
        targets: &dyn Targets,
        callbacks: &mut dyn Callbacks,
    ) -> Result<Report> {
        let mut txn = self.begin()?;
        // Every purpose is checked before anything changes.
        for purpose in purposes {
            let Some(e) = txn.rotation(purpose) else {
                return Err(RequestError::NoRotation {
                    purpose: purpose.to_string(),
                }
                .into());
            };
            if e.step >= Step::Promoted {
                return Err(RequestError::AlreadyPromoted {
                    purpose: purpose.to_string(),
                    old: e.old.to_string(),
                    new: e.new.to_string(),
                }
                .into());
            }
        }
        let mut opened = Opened::new(targets);
        let mut report = Report::default();
        if txn
            .journal()
            .iter()
            .any(|e| purposes.contains(e.purpose()) && e.targets.keys().any(TargetSpec::is_pod))
        {
            self.drop_gone_pods(&mut txn, &mut opened, &mut report)?;
        }
        for purpose in purposes {
            let Some(e) = txn.rotation(purpose).cloned() else {
                continue;
            };
            self.roll_back(&mut txn, &e, &mut opened, callbacks, &mut report)?;
        }
        txn.commit()?;
        Ok(report)
    }

    pub(crate) fn roll_back(
        &self,
        txn: &mut Txn,
        e: &JournalEntry,
        opened: &mut Opened<'_>,
        callbacks: &mut dyn Callbacks,
        report: &mut Report,
    ) -> Result<()> {
        let new = key(txn, &e.new)?.clone();
        let old = key(txn, &e.old)?.clone();
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
                    txn.record([d]);
                    txn.save()?;
                    report.deployed.push(Deployed {
                        key: old.id().clone(),
                        target: name.clone(),
                    });
                }
                Err(cause) => {
                    let done = restored
                        .iter()
                        .map(|t| WorkItem::PutBack {
                            key: old.id().to_string(),
                            target: t.to_string(),
                        })
                        .collect();
                    let pending = std::iter::once(WorkItem::RemovedNowhere {
                        key: new.id().to_string(),
                        missing: old.id().to_string(),
                    })
                    .chain(hosts.iter().map(|t| self.holds(opened, t, &old, &new)))
                    .chain(pods.iter().map(|t| WorkItem::PodLeft {
                        pod: pod_id(t).to_string(),
                        keeps: old.id().to_string(),
                    }))
                    .collect();
                    return Err(Incomplete {
                        operation: Operation::Rollback {
                            purpose: e.purpose.to_string(),
                        },
                        cause,
                        done,
                        pending,
                        next: NextStep::RetryRollBack {
                            purpose: e.purpose.to_string(),
                            target: name.to_string(),
                            or_finish: true,
                        },
                    }
                    .into());
                }
            }
        }

        // 2. Every target trusts the old key: the new one can go.
        let remove = HashSet::from([new.fingerprint().to_owned()]);
        // The journal forgets that a target got the new key before the key is removed
        // there: a crash in between must not leave a resumed rotation trusting an add
        // that is no longer true (it would promote and remove the old key too).
        let forget = |txn: &mut Txn, names: &[&TargetSpec]| -> Result<()> {
            if let Some(journaled) = txn.rotation_mut(&e.purpose).filter(|j| j.new == e.new) {
                for name in names {
                    journaled
                        .targets
                        .insert((*name).clone(), crate::inventory::TargetProgress::default());
                }
                txn.save()?;
            }
            Ok(())
        };
        for (n, name) in hosts.iter().enumerate() {
            forget(txn, &[name])?;
            if let Err(cause) = opened.get(name).and_then(|t| t.apply(&[], &remove, &hook)) {
                let removed = hosts[..n].iter().map(|t| WorkItem::Removed {
                    key: new.id().to_string(),
                    target: t.to_string(),
                });
                return Err(Incomplete {
                    operation: Operation::Rollback {
                        purpose: e.purpose.to_string(),
                    },
                    cause,
                    done: std::iter::once(WorkItem::TrustedEverywhere {
                        key: old.id().to_string(),
                    })
                    .chain(removed)
                    .collect(),
                    pending: hosts[n..]
                        .iter()
                        .map(|t| WorkItem::MayStillBeAt {
                            key: new.id().to_string(),
                            target: t.to_string(),
                        })
                        .collect(),
                    next: NextStep::RetryRollBack {
                        purpose: e.purpose.to_string(),
                        target: name.to_string(),
                        or_finish: false,
                    },
                }
                .into());
            }
        }
        let now = self.now();
        let mut left_at_pods = Vec::new();
        if !pods.is_empty() {
            forget(txn, &pods.iter().collect::<Vec<_>>())?;
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

        let record = key_mut(txn, &e.new)?;
        // A pod that could not be reached may hold the new key: recorded, so `revoke --to
        // runpod-pods` retries it and `status` reports it.
        for name in &left_at_pods {
            record.mark_deployed(name, now);
        }
        record.state = KeyState::Revoked;
        record.revoked_at = Some(now);
        if txn.rotation(&e.purpose).is_some_and(|j| j.new == e.new) {
            txn.end_rotation(&e.purpose);
        }
        let d = draft(
            "rotate-abort",
            &new,
            format!(
                "rotation of {} rolled back; {} stays active",
                e.purpose, e.old
            ),
        );
        txn.record([d]);
        txn.save()?;
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
    ) -> WorkItem {
        let listed = opened.get(name).and_then(|t| t.list().map_err(Error::from));
        match listed {
            Ok(list) => {
                let held = crate::remote::fingerprints(&list);
                WorkItem::Holds {
                    target: name.to_string(),
                    old: (old.id().to_string(), held.contains(old.fingerprint())),
                    new: (new.id().to_string(), held.contains(new.fingerprint())),
                }
            }
            Err(err) => WorkItem::Unreadable {
                target: name.to_string(),
                reason: err.to_string(),
            },
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
