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
//!
//! A running pod (`--pods`) takes two logins: the old key adds the new one, and where the
//! old key goes right after promotion, the new key's proof waits for the second login,
//! which offers the new key alone and removes the old key in the same session.

use crate::admission::{Admitted, KeyOptions};
use crate::callbacks::Callbacks;
use crate::error::{Error, RequestError, Result, StoreError};
use crate::inventory::{
    Inventory, JournalEntry, KeyId, KeyState, Origin, Purpose, Step, TargetProgress,
};
use crate::keygen::Algorithm;
use crate::report::Report;
use crate::run::{FreshKey, Opened, draft, key, key_mut};
use crate::span::Span;
use crate::store::Txn;
use crate::target::{TargetSpec, Targets};
use crate::vault::{Prepared, Vault};
use chrono::{DateTime, Utc};
use serde::Serialize;
use ssh_key::rand_core::CryptoRng;
use std::collections::{BTreeMap, BTreeSet, HashSet};

mod grace;
mod journal;
mod phases;
mod rollback;
#[cfg(test)]
mod tests;

pub(crate) use phases::{due, old_fingerprints, unlocked};

/// What to rotate: see [`Vault::rotate`]. The new keys' expiry defaults to each purpose's
/// policy; a new key whose predecessor's passphrase is in the keyring gets one there too,
/// whatever [`RotateRequest::passphrase_in_keyring`] says.
#[derive(Debug, Clone, Default)]
pub struct RotateRequest {
    pub(crate) purposes: Vec<Purpose>,
    pub(crate) all: bool,
    pub(crate) grace: Option<Span>,
    /// The new keys' options the caller sets (expiry, keyring); the rest follow each old
    /// key ([`KeyOptions::successor`]).
    pub(crate) options: KeyOptions,
    pub(crate) pods: bool,
    pub(crate) unlock_old: bool,
    /// `sweep --rotate-due`: start a new rotation only of this key (checked again under
    /// the lock), so a run that lost a race rotates nothing rather than a fresh key.
    pub(crate) only_old: Option<KeyId>,
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
    crate::admission::key_options_setters!(expiry, passphrase_in_keyring);
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
    /// [`RequestError::NothingToRotate`] when there is nothing to rotate, and policy errors for the
    /// requested lifetime.
    pub fn plan_rotation(&self, request: &RotateRequest) -> Result<RotationPlan> {
        let inventory = self.store.load(crate::store::View::Live)?;
        self.plan_in(&inventory, request, self.now())
    }

    pub(crate) fn plan_in(
        &self,
        inventory: &Inventory,
        request: &RotateRequest,
        now: DateTime<Utc>,
    ) -> Result<RotationPlan> {
        Ok(self.plan_admitted(inventory, request, now)?.0)
    }

    /// The plan, and for each new rotation its new key as the purpose's policy admitted it.
    pub(crate) fn plan_admitted(
        &self,
        inventory: &Inventory,
        request: &RotateRequest,
        now: DateTime<Utc>,
    ) -> Result<(RotationPlan, BTreeMap<Purpose, Admitted>)> {
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
            return Err(RequestError::NothingToRotate.into());
        }
        let mut rotations = Vec::new();
        let mut admissions = BTreeMap::new();
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
                if inventory.has_purpose(&purpose) {
                    Error::from(StoreError::NoActiveKey {
                        purpose: purpose.to_string(),
                    })
                } else {
                    Error::from(StoreError::NotFound {
                        selector: purpose.to_string(),
                    })
                }
            })?;
            if request.only_old.as_ref().is_some_and(|id| id != old.id()) {
                return Err(RequestError::NothingToRotate.into());
            }
            let policy = self.config.policy(&purpose);
            let options = KeyOptions::successor(policy, old, &request.options);
            let admitted = policy.admit(&purpose, &options, Origin::Generated, now)?;
            rotations.push(PlannedRotation {
                purpose: purpose.clone(),
                old: old.id().clone(),
                new: None,
                algorithm: admitted.algorithm(),
                expires_at: Some(admitted.expires_at()),
                targets: old.live_targets().into_iter().cloned().collect(),
                grace_until: request.grace.map(|g| now + g.to_delta()),
                resumes: None,
            });
            admissions.insert(purpose, admitted);
        }
        Ok((RotationPlan { rotations }, admissions))
    }

    /// Rotates purposes: as the module documentation describes, journaled step by step.
    /// A purpose with an interrupted rotation has that rotation finished instead of a new
    /// one started. New keys' passphrases come from `callbacks`.
    ///
    /// # Errors
    ///
    /// Planning errors as [`Vault::plan_rotation`]; [`Error::Incomplete`] when a target
    /// fails part-way (everything done so far is recorded; running `rotate` or `sweep`
    /// again finishes it, `abort_rotation` rolls it back). A rotation that stops part-way
    /// is recorded as an audit event `rotate` with outcome failed (monitoring reads it as
    /// the result of the last rotation).
    pub fn rotate<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        request: &RotateRequest,
        callbacks: &mut dyn Callbacks,
        targets: &dyn Targets,
    ) -> Result<Report> {
        let result = self.rotate_steps(rng, request, callbacks, targets);
        // Successes are on record already (one `rotate` event per promoted purpose).
        if result.is_err() {
            self.record_run("rotate", String::new(), &result);
        }
        result
    }

    /// The work of [`Vault::rotate`].
    fn rotate_steps<R: CryptoRng + ?Sized>(
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
        let mut inventory = self.store.load(crate::store::View::Live)?;
        let (mut plan, mut admissions) = self.plan_admitted(&inventory, request, now)?;
        let pod_targets = self.discover_pods(
            &inventory,
            &plan,
            request,
            &mut opened,
            callbacks,
            &mut report,
        )?;
        let mut attempt = 0;
        let mut txn = loop {
            // Credentials and settings are checked before anything is written: a rotation
            // that cannot reach a target must not leave a new key behind.
            for name in plan.rotations.iter().flat_map(|r| r.targets.iter()) {
                opened.get(name)?;
            }
            self.fresh_keys(rng, &plan, &admissions, callbacks, &mut fresh)?;
            let txn = self.begin(crate::store::View::Live)?;
            let (again, admitted) = self.plan_admitted(&txn, request, now)?;
            admissions = admitted;
            if again == plan {
                break txn;
            }
            attempt += 1;
            if attempt >= 5 {
                return Err(StoreError::Contended {
                    purposes: plan
                        .rotations
                        .iter()
                        .map(|r| r.purpose.to_string())
                        .collect(),
                }
                .into());
            }
            inventory = Inventory::clone(&txn);
            plan = again;
        };
        drop(inventory);
        let fresh = Fresh {
            keys: fresh,
            admissions,
            pod_targets,
        };
        self.prepare(&mut txn, rng, &plan, fresh, &mut opened)?;
        let only: HashSet<Purpose> = plan.rotations.iter().map(|r| r.purpose.clone()).collect();
        // Pods that are gone leave the journal; stopped and starting ones are set aside
        // (reported, never logged in to), and stay in it.
        self.drop_gone_pods(
            &mut txn,
            Some(&only),
            &mut opened,
            crate::pods::IdlePods::SetAside,
            &mut report,
        )?;
        self.drive(&mut txn, Some(&only), &mut opened, &mut report)?;
        txn.commit()?;
        Ok(report)
    }

    /// Asks for the passphrases of the new keys `plan` needs, as their purposes admitted
    /// them, and generates them, keeping those in `fresh` already made with the planned
    /// algorithm.
    fn fresh_keys<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        plan: &RotationPlan,
        admissions: &BTreeMap<Purpose, Admitted>,
        callbacks: &mut dyn Callbacks,
        fresh: &mut BTreeMap<Purpose, FreshKey>,
    ) -> Result<()> {
        for item in plan.rotations.iter().filter(|r| r.resumes.is_none()) {
            if fresh
                .get(&item.purpose)
                .is_some_and(|(_, _, a)| *a == item.algorithm)
            {
                continue;
            }
            // Every new rotation of the plan has its admitted key.
            let Some(admitted) = admissions.get(&item.purpose) else {
                continue;
            };
            let subject = format!(
                "new key for purpose {} (replacing {})",
                item.purpose, item.old
            );
            let protection =
                self.protect(rng, admitted, callbacks, &item.purpose, &subject, None)?;
            let generated = Vault::generate(rng, admitted, callbacks)?;
            fresh.insert(
                item.purpose.clone(),
                (generated, protection, admitted.algorithm()),
            );
        }
        Ok(())
    }

    /// Prepared: writes each new key (`pending`) and its journal entry, and saves them
    /// before anything remote happens.
    fn prepare<R: CryptoRng + ?Sized>(
        &self,
        txn: &mut Txn,
        rng: &mut R,
        plan: &RotationPlan,
        mut fresh: Fresh,
        opened: &mut Opened<'_>,
    ) -> Result<()> {
        let now = self.now();
        let mut drafts = Vec::new();
        for item in plan.rotations.iter().filter(|r| r.resumes.is_none()) {
            let old = key(txn, &item.old)?.clone();
            let (Some((generated, protection, _)), Some(admitted)) = (
                fresh.keys.remove(&item.purpose),
                fresh.admissions.get(&item.purpose),
            ) else {
                continue;
            };
            let decrypted = generated.clone();
            let new = self.write_key(
                txn,
                rng,
                Prepared::new(
                    generated,
                    &item.purpose,
                    admitted,
                    protection,
                    Origin::Generated,
                    String::new(),
                ),
                KeyState::Pending,
            )?;
            key_mut(txn, new.id())?.rotated_from = Some(old.id().clone());
            // write_key set the comment on its copy; the agent's copy gets the same.
            let mut decrypted = decrypted;
            decrypted.set_comment(new.comment());
            opened.identities.insert(new.id().clone(), decrypted);
            let targets = item
                .targets
                .iter()
                .chain(fresh.pod_targets.get(&item.purpose).into_iter().flatten());
            txn.start_rotation(JournalEntry {
                purpose: item.purpose.clone(),
                old: old.id().clone(),
                new: new.id().clone(),
                step: Step::Prepared,
                targets: targets
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
            txn.record(drafts);
            txn.save()?;
            self.hook("prepared")?;
        }
        Ok(())
    }
}

/// What a rotation made before taking the lock: the new keys, as their purposes admitted
/// them, and the pods that join each rotation.
struct Fresh {
    keys: BTreeMap<Purpose, FreshKey>,
    admissions: BTreeMap<Purpose, Admitted>,
    pod_targets: BTreeMap<Purpose, Vec<TargetSpec>>,
}
