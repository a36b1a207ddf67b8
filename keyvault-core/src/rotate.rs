//! Deploying, revoking and rotating keys across targets, with a journal in the inventory
//! that lets any later run finish (or roll back) what a crash or a failed call interrupted.
//!
//! Rotation, for each purpose: the new key is written and recorded `pending` before
//! anything remote happens (**prepared**); it is added to every target the old key is
//! deployed to and verified by reading back (**adding**; on a RunPod account without a
//! grace period the old key is removed in the same write); it becomes `active` and
//! `current/<purpose>` points at it (**promoted**); the old key is removed everywhere
//! (now, or by `sweep` once the grace period ends) and becomes `revoked`. Every step is
//! saved before the next begins, and every remote step is idempotent.

use crate::callbacks::{Callbacks, Progress};
use crate::error::{Error, InputError, Result, StoreError};
use crate::inventory::{
    Inventory, JournalEntry, KeyId, KeyState, Origin, Protection, Purpose, Step, TargetProgress,
};
use crate::keyfile::DEFAULT_KDF_ROUNDS;
use crate::keygen::{self, Algorithm};
use crate::pods::pod_id;
use crate::policy::PassphraseRule;
use crate::report::{PodOutcomeKind, Report, Retiring, Rotated};
use crate::run::{FreshKey, Opened, add_key, draft, key, key_mut};
use crate::span::Span;
use crate::target::{TargetSpec, Targets};
use crate::vault::{Expiry, Prepared, Vault};
use chrono::{DateTime, Utc};
use serde::Serialize;
use ssh_key::rand_core::CryptoRng;
use std::collections::{BTreeMap, BTreeSet, HashSet};

mod grace;
mod rollback;

/// What to rotate: see [`Vault::rotate`].
#[derive(Debug, Clone, Default)]
pub struct RotateRequest {
    pub(crate) purposes: Vec<Purpose>,
    pub(crate) all: bool,
    pub(crate) grace: Option<Span>,
    pub(crate) expiry: Expiry,
    pub(crate) pods: bool,
    pub(crate) unlock_old: bool,
    pub(crate) keyring: bool,
}

impl RotateRequest {
    /// Rotate these purposes.
    #[must_use]
    pub fn purposes(purposes: Vec<Purpose>) -> Self {
        RotateRequest {
            purposes,
            ..Self::default()
        }
    }
    /// Rotate every purpose that has an active key.
    #[must_use]
    pub fn all() -> Self {
        RotateRequest {
            all: true,
            ..Self::default()
        }
    }
    /// Keep the old keys deployed (`retiring`) this long; `sweep` removes them after.
    #[must_use]
    pub fn grace(mut self, grace: Span) -> Self {
        self.grace = Some(grace);
        self
    }
    /// Also update running RunPod pods that trust the old key, over their direct SSH
    /// endpoints (the old key's passphrase is asked for, to log in).
    #[must_use]
    pub fn pods(mut self, yes: bool) -> Self {
        self.pods = yes;
        self
    }
    /// Unlock each old key (its passphrase asked for) so keyvault can log in with it to
    /// `ssh://` hosts itself, not only through the user's own SSH setup.
    #[must_use]
    pub fn unlock_old_key(mut self, yes: bool) -> Self {
        self.unlock_old = yes;
        self
    }
    /// When the new keys expire (default: each purpose's policy).
    #[must_use]
    pub fn expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }
    /// Encrypt every new key with a strong random passphrase kept in the keyring. (A new
    /// key whose predecessor's passphrase is in the keyring gets one there anyway.)
    #[must_use]
    pub fn passphrase_in_keyring(mut self, yes: bool) -> Self {
        self.keyring = yes;
        self
    }
}

/// One rotation as planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedRotation {
    /// The purpose.
    pub purpose: Purpose,
    /// The key being replaced.
    pub old: KeyId,
    /// The replacement, if it exists already (a rotation being finished).
    pub new: Option<KeyId>,
    /// The new key's algorithm.
    pub algorithm: Algorithm,
    /// When the new key expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Where the new key goes and the old one leaves.
    pub targets: Vec<TargetSpec>,
    /// Until when the old key stays deployed.
    pub grace_until: Option<DateTime<Utc>>,
    /// The step an interrupted rotation reached, when this finishes one.
    pub resumes: Option<Step>,
}

/// What a rotation will do; `--dry-run` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RotationPlan {
    /// One entry per purpose.
    pub rotations: Vec<PlannedRotation>,
}

impl Vault {
    /// Plans a rotation without changing anything.
    ///
    /// # Errors
    ///
    /// [`StoreError::NoActiveKey`] for a purpose without an active key,
    /// [`InputError::Request`] when there is nothing to rotate, and policy errors for the
    /// requested lifetime.
    pub fn plan_rotation(&self, request: &RotateRequest) -> Result<RotationPlan> {
        let inventory = self.store.load()?;
        self.plan_in(&inventory, request, self.now())
    }

    pub(crate) fn plan_in(
        &self,
        inventory: &Inventory,
        request: &RotateRequest,
        now: DateTime<Utc>,
    ) -> Result<RotationPlan> {
        let purposes: BTreeSet<Purpose> = if request.all {
            inventory
                .keys()
                .iter()
                .filter(|k| k.state() == KeyState::Active && k.scope().is_none())
                .map(|k| k.purpose().clone())
                .chain(inventory.journal().iter().map(|e| e.purpose().clone()))
                .collect()
        } else {
            request.purposes.iter().cloned().collect()
        };
        if purposes.is_empty() {
            return Err(InputError::Request {
                message: "nothing to rotate: no purpose has an active key".to_owned(),
            }
            .into());
        }
        let mut rotations = Vec::new();
        for purpose in purposes {
            if let Some(entry) = inventory.journal().iter().find(|e| e.purpose() == &purpose) {
                let new = key(inventory, entry.new_key())?;
                rotations.push(PlannedRotation {
                    purpose: purpose.clone(),
                    old: entry.old().clone(),
                    new: Some(entry.new_key().clone()),
                    algorithm: new.algorithm(),
                    expires_at: new.expires_at(),
                    targets: entry.targets().keys().cloned().collect(),
                    grace_until: entry.grace_until(),
                    resumes: Some(entry.step()),
                });
                continue;
            }
            let old = inventory.active(&purpose).ok_or_else(|| {
                if inventory.keys().iter().any(|k| k.purpose() == &purpose) {
                    Error::from(StoreError::NoActiveKey {
                        purpose: purpose.to_string(),
                    })
                } else {
                    Error::from(StoreError::NotFound {
                        selector: purpose.to_string(),
                    })
                }
            })?;
            let policy = self.config.policy(&purpose);
            let algorithm = if old.algorithm().is_generatable()
                && policy.check_algorithm(&purpose, old.algorithm()).is_ok()
            {
                old.algorithm()
            } else {
                policy.default_algorithm()
            };
            let expires_at = self.resolve_expiry(&purpose, policy, request.expiry, now)?;
            rotations.push(PlannedRotation {
                purpose: purpose.clone(),
                old: old.id().clone(),
                new: None,
                algorithm,
                expires_at: Some(expires_at),
                targets: old.live_targets().into_iter().cloned().collect(),
                grace_until: request.grace.map(|g| now + g.to_delta()),
                resumes: None,
            });
        }
        Ok(RotationPlan { rotations })
    }

    /// Rotates purposes: as the module documentation describes, journaled step by step.
    /// A purpose with an interrupted rotation has that rotation finished instead of a new
    /// one started. New keys' passphrases come from `callbacks`.
    ///
    /// # Errors
    ///
    /// Planning errors as [`Vault::plan_rotation`]; [`Error::Incomplete`] when a target
    /// fails part-way (everything done so far is recorded; running `rotate` or `sweep`
    /// again finishes it, `abort_rotation` rolls it back).
    pub fn rotate<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        request: &RotateRequest,
        callbacks: &mut dyn Callbacks,
        targets: &dyn Targets,
    ) -> Result<Report> {
        // Plan, ask for passphrases and generate keys before taking the lock, so a person
        // typing a passphrase never holds up `sweep` or another writer. Under the lock the
        // plan is recomputed; if another process changed it meanwhile, plan again, keeping
        // the keys already made for purposes whose plan did not change.
        let now = self.now();
        let mut opened = Opened::new(targets);
        let mut fresh: BTreeMap<Purpose, FreshKey> = BTreeMap::new();
        let mut report = Report::default();
        let pod_targets = self.discover_pods(request, now, &mut opened, callbacks, &mut report)?;
        let mut attempt = 0;
        let (_lock, mut inventory, plan) = loop {
            let inventory = self.store.load()?;
            let plan = self.plan_in(&inventory, request, now)?;
            // Credentials and settings are checked before anything is written: a rotation
            // that cannot reach a target must not leave a new key behind.
            for name in plan.rotations.iter().flat_map(|r| r.targets.iter()) {
                opened.get(name)?;
            }
            for item in plan.rotations.iter().filter(|r| r.resumes.is_none()) {
                if fresh
                    .get(&item.purpose)
                    .is_some_and(|(_, _, a)| *a == item.algorithm)
                {
                    continue;
                }
                let old = key(&inventory, &item.old)?;
                let policy = self.config.policy(&item.purpose);
                let in_keyring = request.keyring || old.protection() == Protection::Keyring;
                let protection = if old.protection() == Protection::None
                    && policy.passphrase() == PassphraseRule::Optional
                    && !request.keyring
                {
                    None
                } else {
                    let subject = format!(
                        "new key for purpose {} (replacing {})",
                        item.purpose, item.old
                    );
                    let p = self.fresh_passphrase(
                        rng,
                        in_keyring,
                        callbacks,
                        policy,
                        &item.purpose,
                        &subject,
                        None,
                    )?;
                    let rounds = DEFAULT_KDF_ROUNDS
                        .max(policy.min_kdf_rounds())
                        .max(old.kdf_rounds().unwrap_or(0));
                    Some((p, rounds))
                };
                callbacks.progress(Progress::Generating(item.algorithm));
                let generated = keygen::generate(rng, item.algorithm, "");
                callbacks.progress(Progress::Done);
                fresh.insert(
                    item.purpose.clone(),
                    (generated?, protection, item.algorithm),
                );
            }
            let lock = self.lock()?;
            let inventory = self.store.load()?;
            if self.plan_in(&inventory, request, now)? == plan {
                break (lock, inventory, plan);
            }
            attempt += 1;
            if attempt >= 5 {
                return Err(InputError::Request {
                    message: "other keyvault processes keep changing these purposes; nothing was written, run the command again".to_owned(),
                }
                .into());
            }
        };
        let mut drafts = Vec::new();
        for item in plan.rotations.iter().filter(|r| r.resumes.is_none()) {
            let old = key(&inventory, &item.old)?.clone();
            let Some((generated, protection, _)) = fresh.remove(&item.purpose) else {
                continue;
            };
            let comment =
                (!old.comment().starts_with("keyvault:")).then(|| old.comment().to_owned());
            let decrypted = generated.clone();
            let new = self.write_key(
                &mut inventory,
                rng,
                Prepared {
                    key: generated,
                    purpose: item.purpose.clone(),
                    algorithm: item.algorithm,
                    expires_at: item.expires_at,
                    comment,
                    protection,
                    keyring: request.keyring || old.protection() == Protection::Keyring,
                    origin: Origin::Generated,
                    detail: String::new(),
                    created_at: now,
                },
                KeyState::Pending,
            )?;
            key_mut(&mut inventory, new.id())?.rotated_from = Some(old.id().clone());
            // write_key set the comment on its copy; the agent's copy gets the same.
            let mut decrypted = decrypted;
            decrypted.set_comment(new.comment());
            opened.identities.insert(new.id().clone(), decrypted);
            inventory.journal.push(JournalEntry {
                purpose: item.purpose.clone(),
                old: old.id().clone(),
                new: new.id().clone(),
                step: Step::Prepared,
                targets: item
                    .targets
                    .iter()
                    .chain(pod_targets.get(&item.purpose).into_iter().flatten())
                    .map(|t| (t.clone(), TargetProgress::default()))
                    .collect(),
                grace_until: item.grace_until,
                started_at: now,
            });
            let targets = if item.targets.is_empty() {
                "no targets".to_owned()
            } else {
                item.targets
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            drafts.push(draft(
                "rotate-start",
                &new,
                format!("replacing {} at {targets}", old.id()),
            ));
        }
        if !drafts.is_empty() {
            self.record(&mut inventory, &drafts)?;
            self.hook("prepared")?;
        }
        let only: HashSet<Purpose> = plan.rotations.iter().map(|r| r.purpose.clone()).collect();
        self.drive(&mut inventory, Some(&only), &mut opened, &mut report)?;
        Ok(report)
    }

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
        let mut per_target: BTreeMap<TargetSpec, Vec<usize>> = BTreeMap::new();
        for (i, e) in inventory.journal.iter().enumerate() {
            if selected(e) {
                for (t, progress) in &e.targets {
                    if !progress.added && (e.step < Step::Promoted || t.is_pod()) {
                        per_target.entry(t.clone()).or_default().push(i);
                    }
                }
            }
        }
        // Pods are independent machines: update them in parallel, at most 8 at a time.
        let (pods, per_target): (Vec<_>, Vec<_>) =
            per_target.into_iter().partition(|(name, _)| name.is_pod());
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
                Ok(()) if name.is_pod() => report.pod(
                    pod_id(&name),
                    PodOutcomeKind::Added,
                    "new key added and proven to log in",
                ),
                Ok(()) => {}
                // One pod failing never blocks the others or the account-level rotation.
                Err(e) if name.is_pod() => {
                    report.pod(pod_id(&name), PodOutcomeKind::Failed, e.to_string())
                }
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
                || !e.targets.iter().all(|(t, p)| p.added || t.is_pod())
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
        let mut per_target: BTreeMap<TargetSpec, Vec<usize>> = BTreeMap::new();
        for (i, e) in inventory.journal.iter().enumerate() {
            if selected(e) && due(e) {
                for (t, p) in &e.targets {
                    // A pod that never got the new key keeps the old one: never lock anyone out.
                    if !p.removed && (p.added || !t.is_pod()) {
                        per_target.entry(t.clone()).or_default().push(i);
                    }
                }
            }
        }
        // The account and hosts one by one; pods in parallel, like the adding.
        let (pods, hosts): (Vec<_>, Vec<_>) =
            per_target.into_iter().partition(|(name, _)| name.is_pod());
        let old_fingerprints = |inventory: &Inventory, entries: &[usize]| {
            entries
                .iter()
                .map(|&i| {
                    key(inventory, &inventory.journal[i].old).map(|k| k.fingerprint().to_owned())
                })
                .collect::<Result<HashSet<ssh_key::Fingerprint>>>()
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
                Err(e) => report.pod(pod_id(&name), PodOutcomeKind::Failed, e.to_string()),
            }
        }
        for (name, result) in self.fan_out(opened, jobs, report) {
            let entries = entries_of.remove(&name).unwrap_or_default();
            match result.and_then(|()| self.removed_from(inventory, &name, &entries, now)) {
                Ok(()) => report.pod(pod_id(&name), PodOutcomeKind::Removed, "old key removed"),
                Err(e) => report.pod(pod_id(&name), PodOutcomeKind::Failed, e.to_string()),
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
