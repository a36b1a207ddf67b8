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
use crate::pods::{Idle, IdlePods, pod_id};
use crate::report::{Deployed, PodOutcomeKind, PodRetry, Report};
use crate::run::{Opened, add_key, draft, key, key_mut};
use crate::store::Txn;
use crate::target::{TargetSpec, Targets};
use crate::vault::Vault;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashSet};

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
        let mut txn = self.begin(crate::store::View::Live)?;
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
        // Pods that are listed but do not run are kept, and never logged in to.
        let idle = if txn
            .journal()
            .iter()
            .any(|e| purposes.contains(e.purpose()) && e.targets.keys().any(TargetSpec::is_pod))
        {
            self.drop_gone_pods(&mut txn, None, &mut opened, IdlePods::Return, &mut report)?
                .idle
        } else {
            BTreeMap::new()
        };
        for purpose in purposes {
            let Some(e) = txn.rotation(purpose).cloned() else {
                continue;
            };
            self.roll_back(&mut txn, &e, &idle, &mut opened, callbacks, &mut report)?;
        }
        txn.commit()?;
        Ok(report)
    }

    /// Rolls back the rotation `e`; the pods of `idle` (listed, not running, with their
    /// status) are not logged in to: they are reported as possibly keeping the new key
    /// (`pending` when they are starting, `failed` when stopped).
    pub(crate) fn roll_back(
        &self,
        txn: &mut Txn,
        e: &JournalEntry,
        idle: &BTreeMap<TargetSpec, Idle>,
        opened: &mut Opened<'_>,
        callbacks: &mut dyn Callbacks,
        report: &mut Report,
    ) -> Result<()> {
        let new = key(txn, &e.new)?.clone();
        let old = key(txn, &e.old)?.clone();
        let (pods, hosts): (Vec<TargetSpec>, Vec<TargetSpec>) =
            e.targets.keys().cloned().partition(TargetSpec::is_pod);
        let r = RollBack {
            e,
            old,
            new,
            hosts,
            pods,
            idle,
        };
        // Pods are logged in to with the old key (a pod never loses it before promotion).
        if r.pods.iter().any(|p| !idle.contains_key(p)) {
            self.unlock_for_pods(opened, &r.old, callbacks)?;
        }
        // 1. The old key back at every target, as the target itself reports, verified.
        self.put_old_back(txn, &r, opened, report)?;
        // 2. Every target trusts the old key: the new one can go.
        let remove = HashSet::from([r.new.fingerprint().to_owned()]);
        self.remove_new_from_hosts(txn, &r, opened, &remove)?;
        let now = self.now();
        let left_at_pods = self.remove_new_from_pods(txn, &r, opened, remove, report)?;
        self.drop_new_key(txn, &r, &left_at_pods, now, report)
    }

    /// Step 1: puts the old key back at every host that lost it, saving each before the
    /// next; the first host that cannot be made to trust it again stops the rollback.
    fn put_old_back(
        &self,
        txn: &mut Txn,
        r: &RollBack<'_>,
        opened: &mut Opened<'_>,
        report: &mut Report,
    ) -> Result<()> {
        let mut restored = Vec::new();
        for name in &r.hosts {
            match self.put_back_at(opened, name, &r.old) {
                Ok(false) => {}
                Ok(true) => {
                    restored.push(name.clone());
                    let d = draft(
                        "deploy",
                        &r.old,
                        format!(
                            "put back at {name} by the rollback of the rotation to {}",
                            r.new.id()
                        ),
                    );
                    txn.record([d]);
                    txn.save()?;
                    report.deployed.push(Deployed {
                        key: r.old.id().clone(),
                        target: name.clone(),
                    });
                }
                Err(cause) => {
                    return Err(self.put_back_incomplete(opened, r, &restored, name, cause));
                }
            }
        }
        Ok(())
    }

    /// Puts `old` back at `name` unless the target holds it already (`Ok(false)`), and
    /// verifies that the write kept it.
    fn put_back_at(
        &self,
        opened: &mut Opened<'_>,
        name: &TargetSpec,
        old: &KeyRecord,
    ) -> Result<bool> {
        let hook = self.hook_fn();
        let target = opened.get(name)?;
        let held = crate::remote::fingerprints(&target.list()?);
        if held.contains(old.fingerprint()) {
            return Ok(false);
        }
        let line = add_key(target.as_ref(), old);
        let applied = target.apply(&[line], &HashSet::new(), &hook)?;
        if !applied.present.contains(old.fingerprint()) {
            return Err(TargetError::Interference {
                target: name.to_string(),
                what: format!("{} missing after the write", old.fingerprint()),
            }
            .into());
        }
        Ok(true)
    }

    /// The rollback stopped at `name` in step 1: what was put back, and what each target
    /// holds now (the new key was removed nowhere).
    fn put_back_incomplete(
        &self,
        opened: &mut Opened<'_>,
        r: &RollBack<'_>,
        restored: &[TargetSpec],
        name: &TargetSpec,
        cause: Error,
    ) -> Error {
        let (old, new) = (&r.old, &r.new);
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
        .chain(r.hosts.iter().map(|t| self.holds(opened, t, old, new)))
        .chain(r.pods.iter().map(|t| WorkItem::PodLeft {
            pod: pod_id(t).to_string(),
            keeps: old.id().to_string(),
        }))
        .collect();
        Incomplete {
            operation: r.operation(),
            cause,
            done,
            pending,
            next: NextStep::RetryRollBack {
                purpose: r.e.purpose.to_string(),
                target: name.to_string(),
                or_finish: true,
            },
        }
        .into()
    }

    /// Step 2 at the hosts: removes the new key from each, the journal forgetting the add
    /// there first.
    fn remove_new_from_hosts(
        &self,
        txn: &mut Txn,
        r: &RollBack<'_>,
        opened: &mut Opened<'_>,
        remove: &HashSet<ssh_key::Fingerprint>,
    ) -> Result<()> {
        let hook = self.hook_fn();
        for (n, name) in r.hosts.iter().enumerate() {
            forget_added(txn, r.e, &[name])?;
            if let Err(cause) = opened.get(name).and_then(|t| t.apply(&[], remove, &hook)) {
                return Err(r.removal_incomplete(n, cause));
            }
        }
        Ok(())
    }

    /// Step 2 at the pods: removes the new key from every pod in parallel (the journal
    /// forgetting the adds there first); returns the pods that may still hold it.
    fn remove_new_from_pods(
        &self,
        txn: &mut Txn,
        r: &RollBack<'_>,
        opened: &mut Opened<'_>,
        remove: HashSet<ssh_key::Fingerprint>,
        report: &mut Report,
    ) -> Result<Vec<TargetSpec>> {
        let mut left_at_pods = Vec::new();
        if r.pods.is_empty() {
            return Ok(left_at_pods);
        }
        let (old, new) = (&r.old, &r.new);
        forget_added(txn, r.e, &r.pods.iter().collect::<Vec<_>>())?;
        for (name, idle) in r.pods.iter().filter_map(|p| Some((p, r.idle.get(p)?))) {
            let retry = PodRetry::RevokeAtPods {
                key: new.id().clone(),
                account: pods_account(r.e),
            };
            let status = &idle.status;
            if idle.starting {
                let added = r.e.targets.get(name).is_some_and(|p| p.added);
                report.pod_pending(
                    pod_id(name),
                    format!(
                        "{status}: cannot be logged in to yet; it may trust {} when it runs (the \
                         rotation {} it there over SSH), and it keeps {}",
                        new.id(),
                        if added { "added" } else { "may have added" },
                        old.id()
                    ),
                    Some(retry),
                );
            } else {
                report.pod_failed(
                    pod_id(name),
                    format!(
                        "{status}, not running: keyvault cannot remove {} over SSH, and the pod \
                         may still trust it when it starts; it keeps {}",
                        new.id(),
                        old.id()
                    ),
                    retry,
                );
            }
            left_at_pods.push(name.clone());
        }
        let jobs = r
            .pods
            .iter()
            .filter(|p| !r.idle.contains_key(*p))
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
                    report.pod_failed(
                        pod_id(&name),
                        format!(
                            "{} may still be there ({err}); it keeps {}",
                            new.id(),
                            old.id()
                        ),
                        PodRetry::RevokeAtPods {
                            key: new.id().clone(),
                            account: pods_account(r.e),
                        },
                    );
                    left_at_pods.push(name);
                }
            }
        }
        Ok(left_at_pods)
    }

    /// The end: the new key revoked (recorded at the pods that may still hold it), the
    /// journal entry dropped, saved.
    fn drop_new_key(
        &self,
        txn: &mut Txn,
        r: &RollBack<'_>,
        left_at_pods: &[TargetSpec],
        now: DateTime<Utc>,
        report: &mut Report,
    ) -> Result<()> {
        let e = r.e;
        let record = key_mut(txn, &e.new)?;
        // A pod that could not be reached may hold the new key: recorded, so `revoke --to
        // runpod-pods` retries it and `status` reports it.
        for name in left_at_pods {
            record.mark_deployed(name, now);
        }
        record.state = KeyState::Revoked;
        record.revoked_at = Some(now);
        if txn.rotation(&e.purpose).is_some_and(|j| j.new == e.new) {
            txn.end_rotation(&e.purpose);
        }
        let d = draft(
            "rotate-abort",
            &r.new,
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

/// One rotation being rolled back: its journal entry, its two keys, and the targets it
/// touched (hosts and accounts first, then pods).
struct RollBack<'e> {
    e: &'e JournalEntry,
    old: KeyRecord,
    new: KeyRecord,
    hosts: Vec<TargetSpec>,
    pods: Vec<TargetSpec>,
    /// Pods that are listed but do not run, with their status: not logged in to.
    idle: &'e BTreeMap<TargetSpec, Idle>,
}

impl RollBack<'_> {
    fn operation(&self) -> Operation {
        Operation::Rollback {
            purpose: self.e.purpose.to_string(),
        }
    }

    /// The rollback stopped removing the new key at the `n`th host: the old key is trusted
    /// everywhere, the new one removed from the hosts before it and maybe still at the rest.
    fn removal_incomplete(&self, n: usize, cause: Error) -> Error {
        let removed = self.hosts[..n].iter().map(|t| WorkItem::Removed {
            key: self.new.id().to_string(),
            target: t.to_string(),
        });
        Incomplete {
            operation: self.operation(),
            cause,
            done: std::iter::once(WorkItem::TrustedEverywhere {
                key: self.old.id().to_string(),
            })
            .chain(removed)
            .collect(),
            pending: self.hosts[n..]
                .iter()
                .map(|t| WorkItem::MayStillBeAt {
                    key: self.new.id().to_string(),
                    target: t.to_string(),
                })
                .collect(),
            next: NextStep::RetryRollBack {
                purpose: self.e.purpose.to_string(),
                target: self.hosts[n].to_string(),
                or_finish: false,
            },
        }
        .into()
    }
}

/// The journal forgets that `names` got the new key before the key is removed there: a
/// crash in between must not leave a resumed rotation trusting an add that is no longer
/// true (it would promote and remove the old key too).
fn forget_added(txn: &mut Txn, e: &JournalEntry, names: &[&TargetSpec]) -> Result<()> {
    if let Some(journaled) = txn.rotation_mut(&e.purpose).filter(|j| j.new == e.new) {
        for name in names {
            journaled
                .targets
                .insert((*name).clone(), crate::inventory::TargetProgress::default());
        }
        txn.save()?;
    }
    Ok(())
}

/// The RunPod account whose pods the rotation reached (the default account if it names
/// none).
fn pods_account(e: &JournalEntry) -> TargetSpec {
    e.targets
        .keys()
        .find(|t| t.is_runpod())
        .cloned()
        .unwrap_or(TargetSpec::Runpod { profile: None })
}
