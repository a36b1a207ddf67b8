//! The rotation's phases after **prepared**: adding, promoting, removing.

use crate::error::{Error, Result};
use crate::inventory::{Inventory, JournalEntry, KeyId, KeyState, Purpose, Step};
use crate::pods::pod_id;
use crate::report::{Report, Retiring, Rotated};
use crate::run::{Opened, add_key, draft, is_pod, key, key_mut};
use crate::vault::Vault;
use std::collections::{BTreeMap, HashSet};

impl Vault {
    /// Moves the selected journal entries as far as they can go now.
    pub(crate) fn drive(
        &self,
        inventory: &mut Inventory,
        only: Option<&HashSet<Purpose>>,
        opened: &mut Opened<'_>,
        report: &mut Report,
    ) -> Result<()> {
        let selected = |e: &JournalEntry| only.is_none_or(|p| p.contains(e.purpose()));
        let hook = self.hook_fn();

        // Adding: one write per target for every rotation that needs it.
        let mut per_target: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, e) in inventory.journal.iter().enumerate() {
            if selected(e) {
                for (t, progress) in &e.targets {
                    if !progress.added && (e.step < Step::Promoted || is_pod(t)) {
                        per_target.entry(t.clone()).or_default().push(i);
                    }
                }
            }
        }
        // Pods are independent machines: update them in parallel, at most 8 at a time.
        let (pods, per_target): (Vec<_>, Vec<_>) =
            per_target.into_iter().partition(|(name, _)| is_pod(name));
        if !pods.is_empty() {
            self.add_to_pods(inventory, pods, opened, report)?;
        }
        for (name, entries) in per_target {
            let result = (|| -> Result<()> {
                // The old key logs in to pods; the new one must prove it can.
                let identities: Vec<ssh_key::PrivateKey> = entries
                    .iter()
                    .flat_map(|&i| [&inventory.journal[i].old, &inventory.journal[i].new])
                    .filter_map(|id| opened.identities.get(id).cloned())
                    .collect();
                let target = opened.get(&name)?;
                for key in &identities {
                    target.load_identity(key)?;
                }
                let swap = target.atomic_swap();
                let mut add = Vec::new();
                let mut remove = HashSet::new();
                for &i in &entries {
                    let e = &inventory.journal[i];
                    add.push(add_key(target.as_ref(), key(inventory, &e.new)?));
                    if swap && e.grace_until.is_none() {
                        remove.insert(key(inventory, &e.old)?.fingerprint().to_owned());
                    }
                }
                target.apply(&add, &remove, &hook)?;
                let mut drafts = Vec::new();
                for &i in &entries {
                    let e = &mut inventory.journal[i];
                    let swapped = swap && e.grace_until.is_none();
                    let progress = e.targets.entry(name.clone()).or_default();
                    progress.added = true;
                    progress.removed |= swapped;
                    if e.step < Step::Promoted {
                        e.step = Step::Adding;
                    }
                    let (new, old) = (e.new.clone(), e.old.clone());
                    let promoted = e.step >= Step::Promoted;
                    if promoted {
                        // A pod updated after promotion: the new key is deployed there now.
                        let when = self.now();
                        key_mut(inventory, &new)?.mark_deployed(&name, when);
                    }
                    let detail = if swapped {
                        format!("added to {name}, replacing {old} there")
                    } else {
                        format!("added to {name}")
                    };
                    drafts.push(draft("deploy", key(inventory, &new)?, detail));
                }
                self.record(inventory, &drafts)?;
                self.hook(&format!("added:{name}"))
            })();
            match result {
                Ok(()) if is_pod(&name) => {
                    report.pod(pod_id(&name), "added", "new key added and proven to log in")
                }
                Ok(()) => {}
                // One pod failing never blocks the others or the account-level rotation.
                Err(e) if is_pod(&name) => report.pod(pod_id(&name), "failed", e.to_string()),
                Err(e) => return Err(self.stopped(inventory, only, self.explain(inventory, e))),
            }
        }

        // Promoting: every rotation whose new key is at every target.
        let mut drafts = Vec::new();
        let now = self.now();
        let mut promoted = Vec::new();
        for i in 0..inventory.journal.len() {
            let e = inventory.journal[i].clone();
            // Pods do not hold up promotion: they are updated when reachable.
            if !selected(&e)
                || e.step >= Step::Promoted
                || !e.targets.iter().all(|(t, p)| p.added || is_pod(t))
            {
                continue;
            }
            let new = key_mut(inventory, &e.new)?;
            new.state = KeyState::Active;
            for (t, p) in &e.targets {
                if p.added {
                    new.mark_deployed(t, now);
                }
            }
            let old = key_mut(inventory, &e.old)?;
            old.state = KeyState::Retiring;
            old.rotated_to = Some(e.new.clone());
            for (t, p) in &e.targets {
                if p.removed {
                    old.mark_removed(t, now);
                }
            }
            inventory.journal[i].step = Step::Promoted;
            drafts.push(draft(
                "rotate",
                key(inventory, &e.new)?,
                format!("replaced {} as the active key of {}", e.old, e.purpose),
            ));
            report.rotated.push(Rotated {
                purpose: e.purpose.clone(),
                old: e.old.clone(),
                new: e.new.clone(),
            });
            promoted.push(i);
        }
        if !drafts.is_empty() {
            self.record(inventory, &drafts)?;
        }
        // (Re)point current/<purpose> for every promoted rotation: idempotent, and it
        // repairs a crash between saving the promotion and swapping the link.
        for e in inventory
            .journal
            .iter()
            .filter(|e| selected(e) && e.step == Step::Promoted)
        {
            self.point_current(&e.purpose, &e.new)?;
        }
        if !promoted.is_empty() {
            self.hook("promoted")?;
        }

        // Removing the old keys whose grace period is over (or had none).
        let due =
            |e: &JournalEntry| e.step == Step::Promoted && e.grace_until.is_none_or(|g| g <= now);
        let mut per_target: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, e) in inventory.journal.iter().enumerate() {
            if selected(e) && due(e) {
                for (t, p) in &e.targets {
                    // A pod that never got the new key keeps the old one: never lock anyone out.
                    if !p.removed && (p.added || !is_pod(t)) {
                        per_target.entry(t.clone()).or_default().push(i);
                    }
                }
            }
        }
        // The account and hosts one by one; pods in parallel, like the adding.
        let (pods, hosts): (Vec<_>, Vec<_>) =
            per_target.into_iter().partition(|(name, _)| is_pod(name));
        let old_fingerprints = |inventory: &Inventory, entries: &[usize]| {
            entries
                .iter()
                .map(|&i| {
                    key(inventory, &inventory.journal[i].old).map(|k| k.fingerprint().to_owned())
                })
                .collect::<Result<HashSet<String>>>()
        };
        // The keys keyvault holds unlocked log in with it (a resumed rotation has not logged
        // in yet in this run, and the user's own setup may not reach the host).
        let unlocked = |inventory: &Inventory, opened: &Opened<'_>, entries: &[usize]| {
            entries
                .iter()
                .flat_map(|&i| [&inventory.journal[i].old, &inventory.journal[i].new])
                .filter(|id| opened.identities.contains_key(*id))
                .cloned()
                .collect::<Vec<KeyId>>()
        };
        for (name, entries) in hosts {
            let result = (|| -> Result<()> {
                let remove = old_fingerprints(inventory, &entries)?;
                let identities: Vec<ssh_key::PrivateKey> = unlocked(inventory, opened, &entries)
                    .iter()
                    .filter_map(|id| opened.identities.get(id).cloned())
                    .collect();
                let target = opened.get(&name)?;
                for key in &identities {
                    target.load_identity(key)?;
                }
                target.apply(&[], &remove, &hook)?;
                self.removed_from(inventory, &name, &entries, now)
            })();
            if let Err(e) = result {
                return Err(self.stopped(inventory, only, e));
            }
        }
        let mut jobs = Vec::new();
        let mut entries_of = BTreeMap::new();
        for (name, entries) in pods {
            match old_fingerprints(inventory, &entries) {
                Ok(remove) => {
                    let identities = unlocked(inventory, opened, &entries);
                    jobs.push((name.clone(), identities, Vec::new(), remove));
                    entries_of.insert(name, entries);
                }
                Err(e) => report.pod(pod_id(&name), "failed", e.to_string()),
            }
        }
        for (name, result) in self.fan_out(opened, jobs, report) {
            let entries = entries_of.remove(&name).unwrap_or_default();
            match result.and_then(|()| self.removed_from(inventory, &name, &entries, now)) {
                Ok(()) => report.pod(pod_id(&name), "removed", "old key removed"),
                Err(e) => report.pod(pod_id(&name), "failed", e.to_string()),
            }
        }

        // Done: old keys gone everywhere are revoked and their journal entries dropped.
        let mut drafts = Vec::new();
        let mut keep = Vec::new();
        for e in std::mem::take(&mut inventory.journal) {
            if selected(&e) && due(&e) && e.targets.values().all(|p| p.removed) {
                let old = key_mut(inventory, &e.old)?;
                old.state = KeyState::Revoked;
                old.revoked_at = Some(now);
                drafts.push(draft("revoke", old, format!("rotated out by {}", e.new)));
                report.revoked.push(e.old.clone());
            } else {
                if selected(&e) && e.step == Step::Promoted {
                    report.retiring.push(Retiring {
                        key: e.old.clone(),
                        until: e.grace_until,
                    });
                }
                keep.push(e);
            }
        }
        inventory.journal = keep;
        if !drafts.is_empty() {
            self.record(inventory, &drafts)?;
        }
        Ok(())
    }

    /// An [`Error::Incomplete`] describing what the journal says was and was not done.
    pub(crate) fn stopped(
        &self,
        inventory: &Inventory,
        only: Option<&HashSet<Purpose>>,
        cause: Error,
    ) -> Error {
        let entries: Vec<&JournalEntry> = inventory
            .journal()
            .iter()
            .filter(|e| only.is_none_or(|p| p.contains(e.purpose())))
            .collect();
        let mut done = Vec::new();
        let mut pending = Vec::new();
        for e in &entries {
            for (t, p) in &e.targets {
                if p.added {
                    done.push(format!("{} added to {t}", e.new));
                } else {
                    pending.push(format!("{} not yet added to {t}", e.new));
                }
                if e.step == Step::Promoted {
                    if p.removed {
                        done.push(format!("{} removed from {t}", e.old));
                    } else {
                        pending.push(format!("{} still at {t}", e.old));
                    }
                }
            }
        }
        let purposes: Vec<String> = entries.iter().map(|e| e.purpose.to_string()).collect();
        let promoted = entries.iter().all(|e| e.step == Step::Promoted);
        let next = if promoted {
            "run `keyvault sweep` to finish".to_owned()
        } else {
            format!(
                "run `keyvault rotate {0}` to finish, or `keyvault rotate --abort {0}` to roll back",
                purposes.join(" ")
            )
        };
        let list = |v: Vec<String>| {
            if v.is_empty() {
                "nothing".to_owned()
            } else {
                v.join(", ")
            }
        };
        Error::Incomplete {
            operation: format!("rotation of {}", purposes.join(", ")),
            cause: Box::new(cause),
            done: list(done),
            pending: list(pending),
            next,
        }
    }
}
