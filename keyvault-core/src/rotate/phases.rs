//! The rotation's phases after **prepared** (see [`crate::rotate`]): **adding** the new
//! key at every target, **promoting** it, **removing** the old key, and finishing. Each
//! reads the journal in the [`Txn`], acts on the targets, and saves its progress before
//! the next remote step, so that a failure at any point leaves a journal the next run
//! finishes.

use crate::error::{Error, Result};
use crate::error::{Incomplete, NextStep, Operation, WorkItem};
use crate::inventory::{Inventory, JournalEntry, KeyId, KeyState, Purpose, Step, TargetProgress};
use crate::report::{Report, Retiring, Rotated};
use crate::run::{Opened, add_key, draft, key, key_mut};
use crate::store::Txn;
use crate::target::TargetSpec;
use crate::vault::Vault;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashSet};

/// The rotations (by purpose) that touch each target.
type PerTarget = BTreeMap<TargetSpec, Vec<Purpose>>;

impl Vault {
    /// Moves the selected journal entries (all with `None`) as far as they can go now.
    pub(crate) fn drive(
        &self,
        txn: &mut Txn,
        only: Option<&HashSet<Purpose>>,
        opened: &mut Opened<'_>,
        report: &mut Report,
    ) -> Result<()> {
        let purposes = txn.rotating(only);
        self.add(txn, &purposes, opened, report)?;
        let now = self.now();
        self.promote(txn, &purposes, now, report)?;
        self.remove(txn, &purposes, now, opened, report)?;
        self.finish(txn, &purposes, now, report)
    }

    /// Adding: one write per target for every rotation whose new key it lacks (pods also
    /// after promotion, when they were unreachable before); pods in parallel.
    pub(crate) fn add(
        &self,
        txn: &mut Txn,
        purposes: &[Purpose],
        opened: &mut Opened<'_>,
        report: &mut Report,
    ) -> Result<()> {
        let (pods, hosts) = targets_where(txn, purposes, |e, t, progress| {
            !progress.added && (e.step < Step::Promoted || t.is_pod())
        });
        // Pods are independent machines: update them in parallel, at most 8 at a time.
        if !pods.is_empty() {
            self.add_to_pods(txn, pods, opened, report)?;
        }
        for (name, rotations) in hosts {
            if let Err(e) = self.add_at(txn, &name, &rotations, opened) {
                return Err(self.stopped(txn, purposes, self.explain(txn, e)));
            }
        }
        Ok(())
    }

    /// Adds the new keys of `rotations` at `name` in one write (on a target that swaps
    /// atomically, removing the old keys that have no grace period in the same write),
    /// and saves that they are there.
    fn add_at(
        &self,
        txn: &mut Txn,
        name: &TargetSpec,
        rotations: &[Purpose],
        opened: &mut Opened<'_>,
    ) -> Result<()> {
        let entries: Vec<JournalEntry> = rotations
            .iter()
            .filter_map(|p| txn.rotation(p).cloned())
            .collect();
        // The old key logs in to pods; the new one must prove it can.
        let identities: Vec<ssh_key::PrivateKey> = entries
            .iter()
            .flat_map(|e| [&e.old, &e.new])
            .filter_map(|id| opened.identities.get(id).cloned())
            .collect();
        let target = opened.get(name)?;
        for key in &identities {
            target.load_identity(key)?;
        }
        let swap = target.atomic_swap();
        let mut add = Vec::new();
        let mut remove = HashSet::new();
        for e in &entries {
            add.push(add_key(target.as_ref(), key(txn, &e.new)?));
            if swap && e.grace_until.is_none() {
                remove.insert(*key(txn, &e.old)?.fingerprint());
            }
        }
        target.apply(&add, &remove, &self.hook_fn())?;
        let now = self.now();
        let mut drafts = Vec::new();
        for e in &entries {
            let swapped = swap && e.grace_until.is_none();
            if let Some(journaled) = txn.rotation_mut(&e.purpose) {
                let progress = journaled.at(name);
                progress.added = true;
                progress.removed |= swapped;
                if journaled.step < Step::Promoted {
                    journaled.step = Step::Adding;
                }
            }
            if e.step >= Step::Promoted {
                // A pod updated after promotion: the new key is deployed there now.
                key_mut(txn, &e.new)?.mark_deployed(name, now);
            }
            let detail = if swapped {
                format!("added to {name}, replacing {} there", e.old)
            } else {
                format!("added to {name}")
            };
            drafts.push(draft("deploy", key(txn, &e.new)?, detail));
        }
        txn.record(drafts);
        txn.save()?;
        self.hook(&format!("added:{name}"))
    }

    /// Promoting: every rotation whose new key is at every target (pods aside: they are
    /// updated when reachable) makes it active and the old one retiring, and points
    /// `current/<purpose>` at it.
    pub(crate) fn promote(
        &self,
        txn: &mut Txn,
        purposes: &[Purpose],
        now: DateTime<Utc>,
        report: &mut Report,
    ) -> Result<()> {
        let mut drafts = Vec::new();
        for purpose in purposes {
            let Some(e) = txn.rotation(purpose).cloned() else {
                continue;
            };
            if e.step >= Step::Promoted || !e.targets.iter().all(|(t, p)| p.added || t.is_pod()) {
                continue;
            }
            let new = key_mut(txn, &e.new)?;
            new.state = KeyState::Active;
            for (t, _) in e.targets.iter().filter(|(_, p)| p.added) {
                new.mark_deployed(t, now);
            }
            let old = key_mut(txn, &e.old)?;
            old.state = KeyState::Retiring;
            old.rotated_to = Some(e.new.clone());
            for (t, _) in e.targets.iter().filter(|(_, p)| p.removed) {
                old.mark_removed(t, now);
            }
            if let Some(journaled) = txn.rotation_mut(purpose) {
                journaled.step = Step::Promoted;
            }
            drafts.push(draft(
                "rotate",
                key(txn, &e.new)?,
                format!("replaced {} as the active key of {}", e.old, e.purpose),
            ));
            report.rotated.push(Rotated {
                purpose: e.purpose.clone(),
                old: e.old.clone(),
                new: e.new.clone(),
            });
        }
        let promoted = !drafts.is_empty();
        if promoted {
            txn.record(drafts);
            txn.save()?;
        }
        // (Re)point current/<purpose> for every promoted rotation: idempotent, and it
        // repairs a crash between saving the promotion and swapping the link.
        for e in purposes.iter().filter_map(|p| txn.rotation(p)) {
            if e.step == Step::Promoted {
                self.point_current(&e.purpose, &e.new)?;
            }
        }
        if promoted {
            self.hook("promoted")?;
        }
        Ok(())
    }

    /// Removing the old keys whose grace period is over (or had none): the account and
    /// hosts one by one, pods in parallel. A pod that never got the new key keeps the old
    /// one: never lock anyone out.
    pub(crate) fn remove(
        &self,
        txn: &mut Txn,
        purposes: &[Purpose],
        now: DateTime<Utc>,
        opened: &mut Opened<'_>,
        report: &mut Report,
    ) -> Result<()> {
        let (pods, hosts) = targets_where(txn, purposes, |e, t, p| {
            due(e, now) && !p.removed && (p.added || !t.is_pod())
        });
        for (name, rotations) in hosts {
            if let Err(e) = self.remove_at(txn, &name, &rotations, now, opened) {
                return Err(self.stopped(txn, purposes, e));
            }
        }
        self.remove_from_pods(txn, pods, now, opened, report);
        Ok(())
    }

    /// Removes the old keys of `rotations` from `name` in one write and saves that they
    /// are gone.
    fn remove_at(
        &self,
        txn: &mut Txn,
        name: &TargetSpec,
        rotations: &[Purpose],
        now: DateTime<Utc>,
        opened: &mut Opened<'_>,
    ) -> Result<()> {
        let remove = old_fingerprints(txn, rotations)?;
        let identities: Vec<ssh_key::PrivateKey> = unlocked(txn, opened, rotations)
            .iter()
            .filter_map(|id| opened.identities.get(id).cloned())
            .collect();
        let target = opened.get(name)?;
        for key in &identities {
            target.load_identity(key)?;
        }
        target.apply(&[], &remove, &self.hook_fn())?;
        self.removed_from(txn, name, rotations, now)
    }

    /// Done: old keys gone everywhere are revoked and their journal entries dropped;
    /// the others are reported retiring.
    pub(crate) fn finish(
        &self,
        txn: &mut Txn,
        purposes: &[Purpose],
        now: DateTime<Utc>,
        report: &mut Report,
    ) -> Result<()> {
        let mut drafts = Vec::new();
        for purpose in purposes {
            let Some(e) = txn.rotation(purpose) else {
                continue;
            };
            if !(due(e, now) && e.targets.values().all(|p| p.removed)) {
                if e.step == Step::Promoted {
                    report.retiring.push(Retiring {
                        key: e.old.clone(),
                        until: e.grace_until,
                    });
                }
                continue;
            }
            let Some(e) = txn.end_rotation(purpose) else {
                continue;
            };
            let old = key_mut(txn, &e.old)?;
            old.state = KeyState::Revoked;
            old.revoked_at = Some(now);
            drafts.push(draft("revoke", old, format!("rotated out by {}", e.new)));
            report.revoked.push(e.old.clone());
        }
        if !drafts.is_empty() {
            txn.record(drafts);
            txn.save()?;
        }
        Ok(())
    }
}

/// Whether a rotation's old key is due for removal: promoted, its grace period over.
pub(crate) fn due(e: &JournalEntry, now: DateTime<Utc>) -> bool {
    e.step == Step::Promoted && e.grace_until.is_none_or(|g| g <= now)
}

/// The fingerprints of the old keys of `rotations`.
pub(crate) fn old_fingerprints(
    inventory: &Inventory,
    rotations: &[Purpose],
) -> Result<HashSet<ssh_key::Fingerprint>> {
    rotations
        .iter()
        .filter_map(|p| inventory.rotation(p))
        .map(|e| key(inventory, &e.old).map(|k| *k.fingerprint()))
        .collect()
}

/// The keys of `rotations` keyvault holds unlocked, to log in with (a resumed rotation
/// has not logged in yet in this run, and the user's own setup may not reach the host).
pub(crate) fn unlocked(
    inventory: &Inventory,
    opened: &Opened<'_>,
    rotations: &[Purpose],
) -> Vec<KeyId> {
    rotations
        .iter()
        .filter_map(|p| inventory.rotation(p))
        .flat_map(|e| [&e.old, &e.new])
        .filter(|id| opened.identities.contains_key(*id))
        .cloned()
        .collect()
}

impl Vault {
    /// An [`Error::Incomplete`] describing what the journal says was and was not done
    /// for the rotations of `purposes`.
    pub(crate) fn stopped(
        &self,
        inventory: &Inventory,
        purposes: &[Purpose],
        cause: Error,
    ) -> Error {
        let entries: Vec<&JournalEntry> = purposes
            .iter()
            .filter_map(|p| inventory.rotation(p))
            .collect();
        let mut done = Vec::new();
        let mut pending = Vec::new();
        for e in &entries {
            for (t, p) in &e.targets {
                let (new, target) = (e.new.to_string(), t.to_string());
                if p.added {
                    done.push(WorkItem::Added { key: new, target });
                } else {
                    pending.push(WorkItem::NotAdded { key: new, target });
                }
                if e.step == Step::Promoted {
                    let (key, target) = (e.old.to_string(), t.to_string());
                    if p.removed {
                        done.push(WorkItem::Removed { key, target });
                    } else {
                        pending.push(WorkItem::StillAt { key, target });
                    }
                }
            }
        }
        let purposes: Vec<String> = entries.iter().map(|e| e.purpose.to_string()).collect();
        let promoted = entries.iter().all(|e| e.step == Step::Promoted);
        let next = if promoted {
            NextStep::Sweep
        } else {
            NextStep::FinishOrRollBack {
                purposes: purposes.clone(),
            }
        };
        Incomplete {
            operation: Operation::Rotation { purposes },
            cause,
            done,
            pending,
            next,
        }
        .into()
    }
}

/// Targets, each with the purposes of the rotations that want something done there.
type Wanted = Vec<(TargetSpec, Vec<Purpose>)>;

/// The targets of the rotations of `purposes` where `wanted(rotation, target, progress)`,
/// each with the purposes it is wanted for: the pods, then every other target.
fn targets_where(
    txn: &Txn,
    purposes: &[Purpose],
    wanted: impl Fn(&JournalEntry, &TargetSpec, &TargetProgress) -> bool,
) -> (Wanted, Wanted) {
    let mut per_target = PerTarget::new();
    for e in purposes.iter().filter_map(|p| txn.rotation(p)) {
        for (t, progress) in &e.targets {
            if wanted(e, t, progress) {
                per_target
                    .entry(t.clone())
                    .or_default()
                    .push(e.purpose.clone());
            }
        }
    }
    per_target.into_iter().partition(|(name, _)| name.is_pod())
}
