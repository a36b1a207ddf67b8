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

use crate::audit::{Draft, Outcome};
use crate::callbacks::{Callbacks, Progress};
use crate::error::{Error, InputError, Result, StoreError, TargetError};
use crate::inventory::{
    Inventory, JournalEntry, KeyId, KeyRecord, KeyState, Origin, Protection, Purpose, Step,
    TargetProgress,
};
use crate::keyfile::DEFAULT_KDF_ROUNDS;
use crate::keygen::{self, Algorithm};
use crate::policy::PassphraseRule;
use crate::remote::AddKey;
use crate::span::Span;
use crate::target::{Target, TargetSpec, Targets};
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
    purposes: Vec<Purpose>,
    all: bool,
    grace: Option<Span>,
    expiry: Expiry,
    pods: bool,
    unlock_old: bool,
    keyring: bool,
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
    pub targets: Vec<String>,
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

/// A finished rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rotated {
    /// The purpose.
    pub purpose: Purpose,
    /// The replaced key.
    pub old: KeyId,
    /// The new active key.
    pub new: KeyId,
}

/// A key deployed to a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployed {
    /// The key.
    pub key: KeyId,
    /// Where.
    pub target: String,
}

/// An old key kept deployed until its grace period ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Retiring {
    /// The key.
    pub key: KeyId,
    /// Until when.
    pub until: Option<DateTime<Utc>>,
}

/// What a deploy, revoke, rotate, sweep or prune did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Rotations promoted in this run.
    pub rotated: Vec<Rotated>,
    /// Keys revoked in this run.
    pub revoked: Vec<KeyId>,
    /// Old keys still deployed during their grace period.
    pub retiring: Vec<Retiring>,
    /// Retiring keys whose grace period a revoke ended early (with when it was to end).
    pub ended_grace: Vec<Retiring>,
    /// Keys deployed in this run.
    pub deployed: Vec<Deployed>,
    /// Rotations rolled back.
    pub aborted: Vec<KeyId>,
    /// Private key files deleted.
    pub pruned: Vec<KeyId>,
    /// What happened at each running pod (`rotate --pods`, `sweep`).
    pub pods: Vec<PodOutcome>,
}

/// One pod's part in a rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodOutcome {
    /// The pod's id.
    pub pod: String,
    /// `added` (new key in and verified), `removed` (old key out), `failed`,
    /// `needs-redeploy` (no direct SSH), `gone` (no longer running), `already` (trusts the
    /// key already).
    pub outcome: String,
    /// More about it.
    pub detail: String,
}

impl Report {
    /// Whether some pod was left without the change it needed: `failed`, or
    /// `needs-redeploy` (the CLI exits 1 for these after `deploy`/`revoke` to pods).
    #[must_use]
    pub fn pods_incomplete(&self) -> bool {
        self.pods
            .iter()
            .any(|p| p.outcome == "failed" || p.outcome == "needs-redeploy")
    }

    /// Records what happened at one pod.
    fn pod(&mut self, pod: String, outcome: &str, detail: impl Into<String>) {
        self.pods.push(PodOutcome {
            pod,
            outcome: outcome.to_owned(),
            detail: detail.into(),
        });
    }
}

/// What `deploy`/`revoke` did to a key at pods.
#[derive(Clone, Copy)]
enum PodEdit {
    Added,
    Removed,
}

/// The target name of a pod's direct SSH endpoint, if it has a usable one.
fn pod_target(pod: &crate::runpod::Pod) -> Option<String> {
    let d = pod.ssh.as_ref().and_then(|s| s.direct.as_ref())?;
    let name = TargetSpec::Pod {
        id: pod.id.clone(),
        user: d.username.clone(),
        host: d.host.clone(),
        port: d.port,
    }
    .to_string();
    name.parse::<TargetSpec>().is_ok().then_some(name)
}

fn pod_id(name: &str) -> String {
    name.strip_prefix("pod:")
        .and_then(|r| r.split('/').next())
        .unwrap_or(name)
        .to_owned()
}

/// A key generated for a rotation before taking the lock: the key, how to protect it,
/// and the algorithm planned for it.
type FreshKey = (
    ssh_key::PrivateKey,
    Option<(crate::secret::Passphrase, u32)>,
    Algorithm,
);

/// Targets opened during one operation.
struct Opened<'a> {
    targets: &'a dyn Targets,
    open: BTreeMap<String, Box<dyn Target + Send>>,
    /// New keys generated in this run, decrypted, for targets that prove a key logs in.
    identities: BTreeMap<KeyId, ssh_key::PrivateKey>,
}

impl Vault {
    /// Decrypts the old key of a rotation (asking `callbacks`) so keyvault can log in with
    /// it to the pods and hosts that trust only it.
    fn unlock_for_pods(
        &self,
        opened: &mut Opened<'_>,
        old: &KeyRecord,
        callbacks: &mut dyn Callbacks,
    ) -> Result<()> {
        let subject = format!("key {} (to log in to its pods)", old.id());
        let plain = self.unlock(
            old,
            callbacks,
            &subject,
            crate::callbacks::PassphraseKind::Existing,
        )?;
        opened.identities.insert(old.id().clone(), plain);
        Ok(())
    }
}

impl<'a> Opened<'a> {
    fn new(targets: &'a dyn Targets) -> Self {
        Opened {
            targets,
            open: BTreeMap::new(),
            identities: BTreeMap::new(),
        }
    }
    fn get(&mut self, name: &str) -> Result<&mut Box<dyn Target + Send>> {
        if !self.open.contains_key(name) {
            let spec: TargetSpec = name.parse()?;
            let t = self.targets.open(&spec)?;
            self.open.insert(name.to_owned(), t);
        }
        Ok(self.open.get_mut(name).expect("inserted above"))
    }
}

/// How many pods are updated at once.
const POD_FAN_OUT: usize = 8;

/// Runs `f` over `jobs` on at most `limit` threads; results in the jobs' order.
fn run_bounded<T: Send, R: Send>(
    jobs: &mut [T],
    limit: usize,
    f: impl Fn(&mut T) -> R + Sync,
) -> Vec<R> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<(&mut T, Option<R>)>> =
        jobs.iter_mut().map(|j| Mutex::new((j, None))).collect();
    std::thread::scope(|scope| {
        for _ in 0..limit.min(slots.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(slot) = slots.get(i) else { break };
                    let mut guard = slot
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let result = f(guard.0);
                    guard.1 = Some(result);
                }
            });
        }
    });
    slots
        .into_iter()
        .filter_map(|m| {
            m.into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .1
        })
        .collect()
}

/// Whether a journal target is a running pod (best effort: it never blocks a rotation).
fn is_pod(name: &str) -> bool {
    name.starts_with("pod:")
}

fn add_key(target: &dyn Target, record: &KeyRecord) -> AddKey {
    AddKey {
        fingerprint: record.fingerprint().to_owned(),
        line: target.line(record),
    }
}

fn key<'a>(inventory: &'a Inventory, id: &KeyId) -> Result<&'a KeyRecord> {
    inventory.get(id).ok_or_else(|| {
        StoreError::CorruptInventory {
            path: "inventory.json".into(),
            detail: format!("the journal names key {id}, which has no record"),
        }
        .into()
    })
}

fn key_mut<'a>(inventory: &'a mut Inventory, id: &KeyId) -> Result<&'a mut KeyRecord> {
    inventory.get_mut(id).ok_or_else(|| {
        StoreError::CorruptInventory {
            path: "inventory.json".into(),
            detail: format!("the journal names key {id}, which has no record"),
        }
        .into()
    })
}

fn draft(action: &'static str, record: &KeyRecord, detail: String) -> Draft {
    Draft {
        action,
        key_id: Some(record.id().to_string()),
        fingerprint: Some(record.fingerprint().to_owned()),
        outcome: Outcome::Ok,
        detail: Some(detail),
    }
}

impl Vault {
    fn hook_fn(&self) -> impl Fn(&str) -> Result<()> + '_ {
        move |point| self.hook(point)
    }

    /// Adds a list-too-long error's hint: which expired managed keys `sweep` could remove.
    fn explain(&self, inventory: &Inventory, error: Error) -> Error {
        match error {
            Error::Target(TargetError::ListTooLong {
                target, len, limit, ..
            }) => {
                let now = self.now();
                let expired: Vec<String> = inventory
                    .keys()
                    .iter()
                    .filter(|k| {
                        k.state() != KeyState::Revoked
                            && k.is_expired_at(now)
                            && k.live_targets().contains(&target.as_str())
                    })
                    .map(|k| k.id().to_string())
                    .collect();
                let sweepable = if expired.is_empty() {
                    "; remove keys you no longer use from the account".to_owned()
                } else {
                    format!(
                        "; `keyvault sweep` would remove these expired keys: {}",
                        expired.join(", ")
                    )
                };
                TargetError::ListTooLong {
                    target,
                    len,
                    limit,
                    sweepable,
                }
                .into()
            }
            other => other,
        }
    }

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

    fn plan_in(
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
                targets: old
                    .live_targets()
                    .into_iter()
                    .map(ToOwned::to_owned)
                    .collect(),
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
                item.targets.join(", ")
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
    fn drive(
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

    /// For `rotate --pods`: the running pods that trust each purpose's old key, as pod
    /// targets (reachable over direct SSH) or reported as needing a redeploy. The old key of
    /// each purpose with such pods is unlocked (its passphrase asked for) to log in to them.
    fn discover_pods(
        &self,
        request: &RotateRequest,
        now: DateTime<Utc>,
        opened: &mut Opened<'_>,
        callbacks: &mut dyn Callbacks,
        report: &mut Report,
    ) -> Result<BTreeMap<Purpose, Vec<String>>> {
        let mut found = BTreeMap::new();
        if !request.pods && !request.unlock_old {
            return Ok(found);
        }
        let inventory = self.store.load()?;
        let plan = self.plan_in(&inventory, request, now)?;
        for item in &plan.rotations {
            let old = key(&inventory, &item.old)?.clone();
            let mut pods_here = Vec::new();
            // Pods join new rotations; a resumed one keeps the pods its journal names.
            let new_rotation = item.resumes.is_none();
            for account in item
                .targets
                .iter()
                .filter(|t| request.pods && new_rotation && t.starts_with("runpod"))
            {
                let Some(pods) = opened.get(account)?.pods()? else {
                    continue;
                };
                for pod in pods.iter().filter(|p| p.status == "RUNNING") {
                    if !pod
                        .public_keys()
                        .iter()
                        .any(|k| k.fingerprint() == Some(old.fingerprint()))
                    {
                        continue;
                    }
                    match pod_target(pod) {
                        Some(n) => pods_here.push(n),
                        None => report.pod(pod.id.clone(), "needs-redeploy", "no direct SSH endpoint (proxy only): redeploy the pod to change its keys"),
                    }
                }
            }
            let ssh_hosts =
                request.unlock_old && item.targets.iter().any(|t| t.starts_with("ssh://"));
            if pods_here.is_empty() && !ssh_hosts {
                continue;
            }
            self.unlock_for_pods(opened, &old, callbacks)?;
            if !pods_here.is_empty() {
                found.insert(item.purpose.clone(), pods_here);
            }
        }
        Ok(found)
    }

    /// Pods a rotation is still waiting for that are no longer running no longer depend on
    /// the old key: they are dropped from the journal (when the account's pods can be listed).
    fn drop_gone_pods(
        &self,
        inventory: &mut Inventory,
        opened: &mut Opened<'_>,
        report: &mut Report,
    ) -> Result<()> {
        let mut changed = false;
        for i in 0..inventory.journal.len() {
            let pending: Vec<String> = inventory.journal[i]
                .targets
                .iter()
                .filter(|(t, p)| is_pod(t) && !p.removed)
                .map(|(t, _)| t.clone())
                .collect();
            if pending.is_empty() {
                continue;
            }
            let accounts: Vec<String> = inventory.journal[i]
                .targets
                .keys()
                .filter(|t| t.starts_with("runpod"))
                .cloned()
                .collect();
            let mut running = HashSet::new();
            let mut listed = false;
            for account in &accounts {
                if let Ok(Some(pods)) = opened
                    .get(account)
                    .and_then(|t| t.pods().map_err(Error::from))
                {
                    listed = true;
                    running.extend(
                        pods.into_iter()
                            .filter(|p| p.status == "RUNNING")
                            .map(|p| p.id),
                    );
                }
            }
            if !listed {
                continue;
            }
            for t in pending.iter().filter(|t| !running.contains(&pod_id(t))) {
                inventory.journal[i].targets.remove(t);
                changed = true;
                report.pod(
                    pod_id(t),
                    "gone",
                    "no longer running, so it no longer depends on the old key",
                );
            }
        }
        if changed {
            self.store.save(inventory)?;
        }
        Ok(())
    }

    /// Adds the new keys to pods in parallel (at most [`POD_FAN_OUT`] at a time), each
    /// logging in with the old key and proving the new one; records the results in order.
    /// A pod's failure is reported, never raised.
    fn add_to_pods(
        &self,
        inventory: &mut Inventory,
        pods: Vec<(String, Vec<usize>)>,
        opened: &mut Opened<'_>,
        report: &mut Report,
    ) -> Result<()> {
        let mut jobs = Vec::new();
        let mut entries_of = BTreeMap::new();
        for (name, entries) in pods {
            let mut identities = Vec::new();
            let mut add = Vec::new();
            for &i in &entries {
                let e = &inventory.journal[i];
                identities.extend([e.old.clone(), e.new.clone()]);
                add.push(key(inventory, &e.new)?.clone());
            }
            entries_of.insert(name.clone(), entries);
            jobs.push((name, identities, add, HashSet::new()));
        }
        for (name, result) in self.fan_out(opened, jobs, report) {
            let entries = entries_of.remove(&name).unwrap_or_default();
            if let Err(e) = result {
                report.pod(pod_id(&name), "failed", e.to_string());
                continue;
            }
            let mut drafts = Vec::new();
            for &i in &entries {
                let e = &mut inventory.journal[i];
                e.targets.entry(name.clone()).or_default().added = true;
                if e.step < Step::Promoted {
                    e.step = Step::Adding;
                }
                let (new, promoted) = (e.new.clone(), e.step >= Step::Promoted);
                if promoted {
                    let when = self.now();
                    key_mut(inventory, &new)?.mark_deployed(&name, when);
                }
                drafts.push(draft(
                    "deploy",
                    key(inventory, &new)?,
                    format!("added to {name}"),
                ));
            }
            self.record(inventory, &drafts)?;
            self.hook(&format!("added:{name}"))?;
            report.pod(pod_id(&name), "added", "new key added and proven to log in");
        }
        Ok(())
    }

    /// An [`Error::Incomplete`] describing what the journal says was and was not done.
    fn stopped(
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

    /// Trusts a key at a target: adds it (idempotent), verifies, records the deployment.
    ///
    /// # Errors
    ///
    /// As [`Vault::find`]; [`InputError::Request`] for revoked or expired keys and keys
    /// in a rotation; target errors.
    pub fn deploy(
        &self,
        selector: &str,
        spec: &TargetSpec,
        targets: &dyn Targets,
    ) -> Result<Report> {
        let _lock = self.lock()?;
        let mut inventory = self.store.load()?;
        let record = self.find(&inventory, selector)?.clone();
        let now = self.now();
        self.check_deployable(&inventory, &record, now)?;
        let mut opened = Opened::new(targets);
        let name = spec.to_string();
        let target = opened.get(&name)?;
        let line = add_key(target.as_ref(), &record);
        let applied = target
            .apply(&[line], &HashSet::new(), &self.hook_fn())
            .map_err(|e| self.explain(&inventory, e))?;
        key_mut(&mut inventory, record.id())?.mark_deployed(&name, now);
        let detail = if applied.wrote {
            format!("added to {name}")
        } else {
            format!("already at {name}; verified")
        };
        self.record(&mut inventory, &[draft("deploy", &record, detail)])?;
        Ok(Report {
            deployed: vec![Deployed {
                key: record.id().clone(),
                target: name,
            }],
            ..Report::default()
        })
    }

    /// Removes a key from every target it is deployed to, verifies, and marks it revoked.
    /// If it was a purpose's active key, `current/<purpose>` is removed.
    ///
    /// # Errors
    ///
    /// As [`Vault::find`]; [`InputError::Request`] for a revoked key or one in a rotation;
    /// [`Error::Incomplete`] when a target fails part-way (what was removed is recorded);
    /// [`Error::PassphraseUnavailable`] when keyvault added the key to pods over SSH (it
    /// must log in to them with the key: use [`Vault::revoke_with`]).
    pub fn revoke(&self, selector: &str, targets: &dyn Targets) -> Result<Report> {
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

    /// Trusts a key in every running pod of a RunPod `account` that trusts another key of its
    /// purpose (`deploy --to runpod-pods`): keyvault logs in to each pod's direct SSH endpoint
    /// with that key, adds this one to `~/.ssh/authorized_keys`, and proves that it logs in.
    /// Pods that already trust it are left alone; proxy-only pods are reported as needing a
    /// redeploy; one pod's failure never stops the others (see [`Report::pods`]).
    ///
    /// The key's passphrase is asked for as [`crate::PassphraseKind::Existing`], the keys
    /// that log in as [`crate::PassphraseKind::Login`] (keyring-held ones are fetched).
    ///
    /// # Errors
    ///
    /// As [`Vault::deploy`]; [`InputError::Request`] if `account` is not a RunPod account;
    /// the account's errors while listing pods; the callbacks' error.
    pub fn deploy_to_pods(
        &self,
        selector: &str,
        account: &TargetSpec,
        targets: &dyn Targets,
        callbacks: &mut dyn Callbacks,
    ) -> Result<Report> {
        let _lock = self.lock()?;
        let mut inventory = self.store.load()?;
        let record = self.find(&inventory, selector)?.clone();
        let now = self.now();
        self.check_deployable(&inventory, &record, now)?;
        let mut opened = Opened::new(targets);
        let mut report = Report::default();
        let pods = self.running_pods(&mut opened, account)?;
        // Each pod of this purpose that lacks the key, with the key to log in with.
        let mut jobs: Vec<(String, KeyId)> = Vec::new();
        for pod in &pods {
            let seen = crate::observe::pod_report(&inventory, now, pod);
            let trusted: Vec<&KeyId> = seen.keys.iter().filter_map(|k| k.id.as_ref()).collect();
            if trusted.contains(&record.id()) {
                report.pod(
                    pod.id.clone(),
                    "already",
                    format!("already trusts {}", record.id()),
                );
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
                .filter_map(|id| inventory.get(id))
                .filter(|k| k.purpose() == record.purpose() && k.pruned_at().is_none())
                .min_by_key(|k| rank(k));
            let Some(login) = login else {
                continue; // a pod of another purpose, or of nobody keyvault knows
            };
            match pod_target(pod) {
                Some(name) => jobs.push((name, login.id().clone())),
                None => report.pod(
                    pod.id.clone(),
                    "needs-redeploy",
                    "no direct SSH endpoint (proxy only): redeploy the pod to change its keys",
                ),
            }
        }
        if jobs.is_empty() {
            return Ok(report);
        }
        let subject = format!("key {}", record.id());
        opened.identities.insert(
            record.id().clone(),
            self.unlock(
                &record,
                callbacks,
                &subject,
                crate::callbacks::PassphraseKind::Existing,
            )?,
        );
        let logins: BTreeSet<KeyId> = jobs.iter().map(|(_, id)| id.clone()).collect();
        for id in logins {
            let login = key(&inventory, &id)?.clone();
            let subject = format!("key {id} (to log in to pods)");
            let plain = self.unlock(
                &login,
                callbacks,
                &subject,
                crate::callbacks::PassphraseKind::Login,
            )?;
            opened.identities.insert(id, plain);
        }
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
        self.settle_pods(
            &mut inventory,
            &record,
            results,
            PodEdit::Added,
            &mut report,
        )?;
        Ok(report)
    }

    /// Revokes a key, and with `pods_of` also removes it from every running pod of that
    /// RunPod account that trusts it (`revoke --to runpod-pods`), logging in with the key
    /// itself. Pods it was added to over SSH are always reached. A pod that cannot be
    /// changed is reported ([`Report::pods_incomplete`]); the key is revoked everywhere
    /// else regardless, and running this again on the revoked key retries the pods.
    ///
    /// # Errors
    ///
    /// As [`Vault::revoke`] (a revoked key only with `pods_of`); the account's errors
    /// while listing pods; the callbacks' error.
    pub fn revoke_with(
        &self,
        selector: &str,
        pods_of: Option<&TargetSpec>,
        targets: &dyn Targets,
        callbacks: &mut dyn Callbacks,
    ) -> Result<Report> {
        let _lock = self.lock()?;
        let mut inventory = self.store.load()?;
        let record = self.find(&inventory, selector)?.clone();
        let revoked = record.state() == KeyState::Revoked;
        if revoked && pods_of.is_none() {
            return Err(InputError::Request {
                message: format!(
                    "key {} is already revoked (add --to runpod-pods to remove it from running pods)",
                    record.id()
                ),
            }
            .into());
        }
        // A retiring key in its grace period may be compromised: revoking it ends the grace.
        let grace = self.grace_of(&inventory, &record);
        let mut names = BTreeSet::new();
        let grace_was_until = grace.and_then(|i| inventory.journal[i].grace_until);
        match grace {
            Some(i) if !revoked => {
                names = self.grace_pods(&mut inventory, i)?;
                // The grace period ends now, on disk before anything remote: if this
                // command dies half way, `sweep` finishes removing the key everywhere and
                // `status` no longer calls it deployed until the old end.
                let now = self.now();
                let entry = &mut inventory.journal[i];
                if entry.grace_until.is_none_or(|g| g > now) {
                    entry.grace_until = Some(now);
                }
                self.store.save(&inventory)?;
            }
            _ => self.check_not_rotating(&inventory, &record)?,
        }
        let record = key(&inventory, record.id())?.clone();
        let mut opened = Opened::new(targets);
        let mut report = Report::default();
        names.extend(
            record
                .live_targets()
                .into_iter()
                .filter(|t| is_pod(t))
                .map(ToOwned::to_owned),
        );
        if let Some(account) = pods_of {
            let now = self.now();
            for pod in self.running_pods(&mut opened, account)? {
                let seen = crate::observe::pod_report(&inventory, now, &pod);
                if !seen.keys.iter().any(|k| k.id.as_ref() == Some(record.id())) {
                    continue;
                }
                match pod_target(&pod) {
                    Some(name) => {
                        // A pod keyvault edited before may have moved to another endpoint.
                        names.retain(|n| pod_id(n) != pod.id);
                        names.insert(name);
                    }
                    None => report.pod(
                        pod.id.clone(),
                        "needs-redeploy",
                        format!(
                            "still trusts {} and has no direct SSH endpoint (proxy only): redeploy the pod",
                            record.id()
                        ),
                    ),
                }
            }
        }
        if !names.is_empty() {
            if record.pruned_at().is_some() {
                return Err(InputError::Request {
                    message: format!(
                        "key {}'s private file was pruned, so keyvault cannot log in to the pods that still trust it; redeploy them",
                        record.id()
                    ),
                }
                .into());
            }
            let subject = format!("key {} (to log in to its pods and remove it)", record.id());
            let plain = self.unlock(
                &record,
                callbacks,
                &subject,
                crate::callbacks::PassphraseKind::Existing,
            )?;
            opened.identities.insert(record.id().clone(), plain);
            let remove: HashSet<String> = HashSet::from([record.fingerprint().to_owned()]);
            let results = self.fan_out(
                &mut opened,
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
                &mut report,
            );
            self.settle_pods(
                &mut inventory,
                &record,
                results,
                PodEdit::Removed,
                &mut report,
            )?;
        }
        if !revoked {
            self.revoke_keys(
                &mut inventory,
                &[record.id().clone()],
                &mut opened,
                "revoke",
                "revoked",
                &mut report,
            )?;
            if let Some(i) = grace {
                self.end_grace(&mut inventory, i, &mut report)?;
                if let Some(ended) = report.ended_grace.last_mut() {
                    ended.until = grace_was_until;
                }
            }
        }
        Ok(report)
    }

    /// Records what [`Vault::fan_out`] did to `record` at each pod: the deployment (added
    /// or removed), an audit event per pod, and each pod's outcome in the report.
    fn settle_pods(
        &self,
        inventory: &mut Inventory,
        record: &KeyRecord,
        results: Vec<(String, Result<()>)>,
        edit: PodEdit,
        report: &mut Report,
    ) -> Result<()> {
        let now = self.now();
        let mut drafts = Vec::new();
        for (name, result) in results {
            if let Err(e) = result {
                report.pod(pod_id(&name), "failed", e.to_string());
                continue;
            }
            let entry = key_mut(inventory, record.id())?;
            match edit {
                PodEdit::Added => {
                    entry.mark_deployed(&name, now);
                    drafts.push(draft("deploy", record, format!("added to {name}")));
                    report.deployed.push(Deployed {
                        key: record.id().clone(),
                        target: name.clone(),
                    });
                    report.pod(pod_id(&name), "added", "key added and proven to log in");
                }
                PodEdit::Removed => {
                    entry.mark_removed_from(&name, now);
                    drafts.push(draft("undeploy", record, format!("removed from {name}")));
                    report.pod(
                        pod_id(&name),
                        "removed",
                        "key removed; verified by reading back",
                    );
                }
            }
        }
        if !drafts.is_empty() {
            self.record(inventory, &drafts)?;
        }
        Ok(())
    }

    /// The running pods of a RunPod account.
    fn running_pods(
        &self,
        opened: &mut Opened<'_>,
        account: &TargetSpec,
    ) -> Result<Vec<crate::runpod::Pod>> {
        if account.runpod_profile().is_none() {
            return Err(InputError::Request {
                message: format!(
                    "{account} is not a RunPod account: use runpod-pods or runpod-pods:PROFILE"
                ),
            }
            .into());
        }
        let pods = opened
            .get(&account.to_string())?
            .pods()?
            .unwrap_or_default();
        Ok(pods.into_iter().filter(|p| p.status == "RUNNING").collect())
    }

    /// Records that the old keys of journal `entries` are gone from `name`.
    fn removed_from(
        &self,
        inventory: &mut Inventory,
        name: &str,
        entries: &[usize],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut drafts = Vec::new();
        for &i in entries {
            inventory.journal[i]
                .targets
                .entry(name.to_owned())
                .or_default()
                .removed = true;
            let old = inventory.journal[i].old.clone();
            let record = key_mut(inventory, &old)?;
            if is_pod(name) {
                // The pod had the old key from its PUBLIC_KEY, not from keyvault:
                // record that keyvault took it out there.
                record.mark_deployed(name, now);
            }
            record.mark_removed(name, now);
            drafts.push(draft("undeploy", record, format!("removed from {name}")));
        }
        self.record(inventory, &drafts)?;
        self.hook(&format!("removed:{name}"))
    }

    /// Edits pods in parallel (at most [`POD_FAN_OUT`] at a time): each job names the pod
    /// target, the unlocked identities it loads (from `opened.identities`), the keys to add
    /// and the fingerprints to remove. Reports progress; returns each pod's result in order.
    #[allow(clippy::type_complexity)]
    fn fan_out(
        &self,
        opened: &mut Opened<'_>,
        jobs: Vec<(String, Vec<KeyId>, Vec<KeyRecord>, HashSet<String>)>,
        report: &mut Report,
    ) -> Vec<(String, Result<()>)> {
        struct Job {
            name: String,
            target: Box<dyn Target + Send>,
            add: Vec<AddKey>,
            remove: HashSet<String>,
        }
        let mut ready = Vec::new();
        let mut results = Vec::new();
        for (name, identities, add, remove) in jobs {
            let prepared = (|| -> Result<Job> {
                opened.get(&name)?;
                let mut target = opened
                    .open
                    .remove(&name)
                    .ok_or_else(|| InputError::Request {
                        message: format!("cannot open {name}"),
                    })?;
                for id in &identities {
                    if let Some(k) = opened.identities.get(id) {
                        target.load_identity(k)?;
                    }
                }
                let add = add.iter().map(|k| add_key(target.as_ref(), k)).collect();
                Ok(Job {
                    name: name.clone(),
                    target,
                    add,
                    remove,
                })
            })();
            match prepared {
                Ok(job) => ready.push(job),
                Err(e) => report.pod(pod_id(&name), "failed", e.to_string()),
            }
        }
        let hook = self.hook_fn();
        let outcomes = run_bounded(&mut ready, POD_FAN_OUT, |job| {
            let pod = pod_id(&job.name);
            self.pod_progress(&crate::vault::PodProgress::Started { pod: pod.clone() });
            let result = job.target.apply(&job.add, &job.remove, &hook).map(|_| ());
            let outcome = match (&result, job.add.is_empty()) {
                (Err(_), _) => "failed",
                (Ok(()), false) => "added",
                (Ok(()), true) => "removed",
            };
            self.pod_progress(&crate::vault::PodProgress::Finished {
                pod,
                outcome: outcome.to_owned(),
            });
            result
        });
        for (job, outcome) in ready.into_iter().zip(outcomes) {
            opened.open.insert(job.name.clone(), job.target);
            results.push((job.name, outcome));
        }
        results
    }

    fn check_not_rotating(&self, inventory: &Inventory, record: &KeyRecord) -> Result<()> {
        if inventory
            .journal()
            .iter()
            .any(|e| e.new == *record.id() || e.old == *record.id())
        {
            return Err(InputError::Request {
                message: format!(
                    "key {} is part of a rotation in progress; finish it with `keyvault rotate {1}` or roll it back with `keyvault rotate --abort {1}`",
                    record.id(),
                    record.purpose()
                ),
            }
            .into());
        }
        Ok(())
    }

    fn check_deployable(
        &self,
        inventory: &Inventory,
        record: &KeyRecord,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if record.state() == KeyState::Revoked || record.is_expired_at(now) {
            return Err(InputError::Request {
                message: format!(
                    "key {} is {}; deploy a live key",
                    record.id(),
                    record.display_state_at(now)
                ),
            }
            .into());
        }
        self.check_not_rotating(inventory, record)
    }

    /// Removes `ids` from their targets (one write per target) and revokes them.
    fn revoke_keys(
        &self,
        inventory: &mut Inventory,
        ids: &[KeyId],
        opened: &mut Opened<'_>,
        action: &'static str,
        why: &str,
        report: &mut Report,
    ) -> Result<()> {
        let now = self.now();
        let mut per_target: BTreeMap<String, Vec<KeyId>> = BTreeMap::new();
        for id in ids {
            for t in key(inventory, id)?
                .live_targets()
                .into_iter()
                .filter(|t| !is_pod(t))
            {
                per_target.entry(t.to_owned()).or_default().push(id.clone());
            }
        }
        let hook = self.hook_fn();
        for (name, keys) in &per_target {
            let result = (|| -> Result<()> {
                let remove: HashSet<String> = keys
                    .iter()
                    .map(|id| key(inventory, id).map(|k| k.fingerprint().to_owned()))
                    .collect::<Result<_>>()?;
                opened.get(name)?.apply(&[], &remove, &hook)?;
                let mut drafts = Vec::new();
                for id in keys {
                    let record = key_mut(inventory, id)?;
                    record.mark_removed(name, now);
                    drafts.push(draft("undeploy", record, format!("removed from {name}")));
                }
                self.record(inventory, &drafts)?;
                self.hook(&format!("removed:{name}"))
            })();
            if let Err(e) = result {
                let done: Vec<String> = ids
                    .iter()
                    .filter_map(|id| inventory.get(id))
                    .flat_map(|k| {
                        k.deployments()
                            .iter()
                            .filter(|d| d.removed_at().is_some())
                            .map(move |d| format!("{} removed from {}", k.id(), d.target()))
                    })
                    .collect();
                let pending: Vec<String> = ids
                    .iter()
                    .filter_map(|id| inventory.get(id))
                    .flat_map(|k| {
                        k.live_targets()
                            .into_iter()
                            .map(move |t| format!("{} still at {t}", k.id()))
                    })
                    .collect();
                return Err(Error::Incomplete {
                    operation: format!(
                        "{action} of {}",
                        ids.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    cause: Box::new(self.explain(inventory, e)),
                    done: if done.is_empty() {
                        "nothing".to_owned()
                    } else {
                        done.join(", ")
                    },
                    pending: pending.join(", "),
                    next: format!(
                        "run `keyvault {}` again once the target is reachable",
                        if action == "revoke" {
                            "revoke"
                        } else {
                            "sweep"
                        }
                    ),
                });
            }
        }
        let mut drafts = Vec::new();
        for id in ids {
            let record = key_mut(inventory, id)?;
            let was_active = record.state == KeyState::Active;
            record.state = KeyState::Revoked;
            record.revoked_at = Some(now);
            let purpose = record.purpose.clone();
            drafts.push(draft(action, record, why.to_owned()));
            report.revoked.push(id.clone());
            if was_active {
                self.unlink_current(&purpose, id);
            }
        }
        self.record(inventory, &drafts)
    }

    /// Removes `current/<purpose>` if it names `id`.
    fn unlink_current(&self, purpose: &Purpose, id: &KeyId) {
        let link = self.current_path(purpose);
        if std::fs::read_link(&link).is_ok_and(|t| t.file_name().is_some_and(|n| n == id.as_str()))
        {
            let _ = std::fs::remove_file(&link);
            let _ = std::fs::remove_file(link.with_file_name(format!("{purpose}.pub")));
        }
    }

    /// For cron: finishes interrupted rotations, ends grace periods that are over, and
    /// revokes expired keys from their targets (one write per target).
    ///
    /// # Errors
    ///
    /// [`Error::Incomplete`] when a target fails; what was done is recorded and the next
    /// sweep continues from there.
    pub fn sweep(&self, targets: &dyn Targets) -> Result<Report> {
        let _lock = self.lock()?;
        let mut inventory = self.store.load()?;
        let mut opened = Opened::new(targets);
        let mut report = Report::default();
        self.drop_gone_pods(&mut inventory, &mut opened, &mut report)?;
        self.drive(&mut inventory, None, &mut opened, &mut report)?;
        let now = self.now();
        let in_journal: HashSet<&KeyId> = inventory
            .journal()
            .iter()
            .flat_map(|e| [&e.old, &e.new])
            .collect();
        let expired: Vec<KeyId> = inventory
            .keys()
            .iter()
            .filter(|k| {
                k.state() != KeyState::Revoked
                    && k.is_expired_at(now)
                    && !in_journal.contains(k.id())
            })
            .map(|k| k.id().clone())
            .collect();
        if !expired.is_empty() {
            self.revoke_keys(
                &mut inventory,
                &expired,
                &mut opened,
                "expire",
                "expired",
                &mut report,
            )?;
        }
        // current/<purpose> links left stale by a crash or a hand edit.
        for finding in self.current_link_findings(&inventory) {
            if let Some(record) = finding.key_id().and_then(|id| inventory.get(id)) {
                self.point_current(record.purpose(), record.id())?;
            }
        }
        Ok(report)
    }

    /// Revoked keys whose private key file could be deleted: not part of any rotation, file
    /// still present.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the inventory cannot be read.
    pub fn prunable(&self) -> Result<Vec<KeyRecord>> {
        let inventory = self.store.load()?;
        Ok(self.prunable_in(&inventory))
    }

    fn prunable_in(&self, inventory: &Inventory) -> Vec<KeyRecord> {
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
    /// [`InputError::Request`] for a key that is not prunable; [`StoreError`] for I/O.
    pub fn prune(&self, ids: &[KeyId]) -> Result<Report> {
        let _lock = self.lock()?;
        let mut inventory = self.store.load()?;
        let prunable: HashSet<KeyId> = self
            .prunable_in(&inventory)
            .into_iter()
            .map(|k| k.id().clone())
            .collect();
        if let Some(id) = ids.iter().find(|id| !prunable.contains(*id)) {
            return Err(InputError::Request {
                message: format!(
                    "key {id} cannot be pruned: only revoked keys nothing depends on can"
                ),
            }
            .into());
        }
        let now = self.now();
        let mut drafts = Vec::new();
        let mut report = Report::default();
        for id in ids {
            let path = self.private_key_path(key(&inventory, id)?);
            std::fs::remove_file(&path).map_err(|source| StoreError::Io {
                operation: "delete",
                path: path.clone(),
                source,
            })?;
            // Its passphrase opens nothing any more.
            let forgot = match key(&inventory, id)?.keyring_account() {
                Some(account) if self.forget_keyring_account(account) => {
                    "; its passphrase deleted from the OS keyring"
                }
                Some(_) => "; its passphrase could not be deleted from the OS keyring",
                None => "",
            };
            let record = key_mut(&mut inventory, id)?;
            record.pruned_at = Some(now);
            drafts.push(draft(
                "prune",
                record,
                format!("private key file deleted{forgot}"),
            ));
            report.pruned.push(id.clone());
        }
        crate::fsutil::sync_dir(&self.store.keys_dir())?;
        self.record(&mut inventory, &drafts)?;
        Ok(report)
    }
}

/// What to mint: see [`Vault::mint`].
#[derive(Debug, Clone)]
pub struct MintRequest {
    purpose: Purpose,
    ttl: Span,
    algorithm: Option<Algorithm>,
    scope: crate::inventory::Scope,
    deploy: Vec<TargetSpec>,
    unencrypted: bool,
    keyring: bool,
    comment: Option<String>,
    certificate: Option<(String, Vec<String>)>,
}

impl MintRequest {
    /// Also sign a user certificate with the CA `ca` (a key id or purpose) for
    /// `principals`, valid until the key expires.
    #[must_use]
    pub fn certificate(mut self, ca: impl Into<String>, principals: Vec<String>) -> Self {
        self.certificate = Some((ca.into(), principals));
        self
    }
    /// A scoped key for `purpose` that expires after `ttl`.
    #[must_use]
    pub fn new(purpose: Purpose, ttl: Span) -> Self {
        MintRequest {
            purpose,
            ttl,
            algorithm: None,
            scope: crate::inventory::Scope::default(),
            deploy: Vec::new(),
            unencrypted: false,
            keyring: false,
            comment: None,
            certificate: None,
        }
    }
    /// Use this algorithm instead of the policy's default.
    #[must_use]
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = Some(algorithm);
        self
    }
    /// Allow logins only from these addresses, CIDRs or host patterns.
    #[must_use]
    pub fn from(mut self, from: Vec<String>) -> Self {
        self.scope.from = from;
        self
    }
    /// Run only this command, whatever the client asks for.
    #[must_use]
    pub fn force_command(mut self, command: impl Into<String>) -> Self {
        self.scope.force_command = Some(command.into());
        self
    }
    /// Deploy to these targets.
    #[must_use]
    pub fn deploy(mut self, targets: Vec<TargetSpec>) -> Self {
        self.deploy = targets;
        self
    }
    /// Keep the private key unencrypted (only where the policy allows it).
    #[must_use]
    pub fn unencrypted(mut self, yes: bool) -> Self {
        self.unencrypted = yes;
        self
    }
    /// The key's comment (default `keyvault:<id>`).
    #[must_use]
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }
    /// Encrypt with a strong random passphrase kept in the keyring.
    #[must_use]
    pub fn passphrase_in_keyring(mut self, yes: bool) -> Self {
        self.keyring = yes;
        self
    }
}

/// A minted key: its record and its private key file's content (encrypted unless the
/// request was unencrypted), for handing to the script that asked.
pub struct Minted {
    /// The record.
    pub record: KeyRecord,
    /// The OpenSSH private key file, exactly as stored.
    pub private_key: zeroize::Zeroizing<Vec<u8>>,
    /// The user certificate (`…-cert.pub` content), when one was asked for.
    pub certificate: Option<String>,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("record", &self.record)
            .field("private_key", &"[REDACTED]")
            .finish()
    }
}

pub(crate) fn check_scope(scope: &crate::inventory::Scope) -> Result<()> {
    for f in &scope.from {
        let ok = !f.is_empty()
            && f.len() <= 255
            && f.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:/*?!-_".contains(&b));
        if !ok {
            return Err(InputError::Request {
                message: format!(
                    "invalid --from entry {f:?}: expected an address, a CIDR or a host pattern"
                ),
            }
            .into());
        }
    }
    if let Some(cmd) = &scope.force_command
        && (cmd.is_empty() || cmd.len() > 1024 || cmd.chars().any(char::is_control))
    {
        return Err(InputError::Request {
            message: "invalid --force-command: it must be one line of at most 1024 characters"
                .to_owned(),
        }
        .into());
    }
    if let Some(cmd) = &scope.force_command
        && !crate::inventory::option_value_representable(cmd)
    {
        // sshd reads `\"` inside command="…" as an escaped quote, so the closing quote
        // after a trailing backslash is never seen and sshd rejects the whole line.
        return Err(InputError::Request {
            message: "invalid --force-command: it ends with a backslash, which sshd would read as escaping the closing quote of command=\"…\""
                .to_owned(),
        }
        .into());
    }
    Ok(())
}

impl Vault {
    /// Mints a scoped, short-lived key for a script: generated, recorded with its expiry
    /// and restrictions (never as the purpose's active key), deployed to the requested
    /// targets with `restrict`, `from=`, `command=` and `expiry-time=` options where the
    /// target carries options, and returned with its private key file. `sweep` revokes it
    /// when it expires.
    ///
    /// # Errors
    ///
    /// Policy and input errors before anything is written; [`Error::Incomplete`] when a
    /// target fails after the key was recorded (it names what to run next).
    pub fn mint<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        request: &MintRequest,
        callbacks: &mut dyn Callbacks,
        targets: &dyn Targets,
    ) -> Result<Minted> {
        let purpose = &request.purpose;
        let policy = self.config.policy(purpose);
        let algorithm = Self::algorithm_for(purpose, policy, request.algorithm)?;
        policy.check_ttl(purpose, request.ttl)?;
        check_scope(&request.scope)?;
        if let Some(c) = &request.comment {
            Self::check_comment(c)?;
        }
        if request.unencrypted && policy.passphrase() == PassphraseRule::Required {
            return Err(crate::error::PolicyError::PassphraseRequired {
                purpose: purpose.to_string(),
            }
            .into());
        }
        let mut opened = Opened::new(targets);
        for spec in &request.deploy {
            opened.get(&spec.to_string())?;
        }
        self.store.load()?;
        let ca = match &request.certificate {
            Some((ca, principals)) => {
                crate::ca::check_principals(principals)?;
                if principals.is_empty() {
                    return Err(InputError::Request {
                        message: "a certificate needs at least one principal (--principals)"
                            .to_owned(),
                    }
                    .into());
                }
                Some(self.unlock_ca(ca, callbacks)?)
            }
            None => None,
        };
        let protection = if request.unencrypted {
            None
        } else {
            let subject = format!("minted key for purpose {purpose}");
            let p = self.fresh_passphrase(
                rng,
                request.keyring,
                callbacks,
                policy,
                purpose,
                &subject,
                request.comment.as_deref(),
            )?;
            Some((p, DEFAULT_KDF_ROUNDS.max(policy.min_kdf_rounds())))
        };
        callbacks.progress(Progress::Generating(algorithm));
        let generated = keygen::generate(rng, algorithm, "");
        callbacks.progress(Progress::Done);
        let _lock = self.lock()?;
        let mut inventory = self.store.load()?;
        let now = self.now();
        let expires_at = now + request.ttl.to_delta();
        let mut record = self.write_key(
            &mut inventory,
            rng,
            Prepared {
                key: generated?,
                purpose: purpose.clone(),
                algorithm,
                expires_at: Some(expires_at),
                comment: request.comment.clone(),
                protection,
                keyring: request.keyring,
                origin: Origin::Generated,
                detail: String::new(),
                created_at: now,
            },
            KeyState::Active,
        )?;
        key_mut(&mut inventory, record.id())?.scope = Some(request.scope.clone());
        record.scope = Some(request.scope.clone());
        let mut certificate = None;
        if let (Some((ca_record, ca_key)), Some((_, principals))) = (&ca, &request.certificate) {
            let public = ssh_key::PublicKey::from_openssh(record.public_key()).map_err(|e| {
                crate::error::KeyError::Crypto {
                    operation: "parse",
                    reason: e.to_string(),
                }
            })?;
            let valid_after =
                u64::try_from((now - chrono::TimeDelta::seconds(60)).timestamp()).unwrap_or(0);
            let valid_before = u64::try_from(expires_at.timestamp()).unwrap_or(0);
            let serial = rng.next_u64();
            let cert = crate::ca::sign_user_certificate(
                rng,
                ca_key,
                &public,
                &crate::ca::CertSpec {
                    key_id: record.id().as_str(),
                    serial,
                    principals,
                    valid_after,
                    valid_before,
                    scope: Some(&request.scope),
                },
            )?;
            let text = cert
                .to_openssh()
                .map_err(|e| crate::error::KeyError::Crypto {
                    operation: "encode certificate for",
                    reason: e.to_string(),
                })?;
            let relative = format!("keys/{}-cert.pub", record.id());
            crate::fsutil::write_atomic(
                &self.home().join(&relative),
                format!("{text}\n").as_bytes(),
                0o644,
                crate::fsutil::Replace::No,
            )?;
            let info = crate::inventory::CertificateInfo {
                ca: ca_record.id().clone(),
                serial,
                principals: principals.clone(),
                valid_after: chrono::DateTime::from_timestamp(
                    i64::try_from(valid_after).unwrap_or(0),
                    0,
                )
                .unwrap_or(now),
                valid_before: expires_at,
                path: relative,
            };
            key_mut(&mut inventory, record.id())?.certificate = Some(info.clone());
            record.certificate = Some(info);
            certificate = Some(text);
        }
        let mut detail = vec![format!(
            "scoped {algorithm} key, expires {}",
            expires_at.to_rfc3339()
        )];
        if !request.scope.from.is_empty() {
            detail.push(format!("from {}", request.scope.from.join(",")));
        }
        if let Some(c) = &request.scope.force_command {
            detail.push(format!("command {c:?}"));
        }
        if let Some(cert) = record.certificate() {
            detail.push(format!(
                "certificate by {} for {}",
                cert.ca,
                cert.principals.join(",")
            ));
        }
        self.record(&mut inventory, &[draft("mint", &record, detail.join("; "))])?;
        let hook = self.hook_fn();
        for spec in &request.deploy {
            let name = spec.to_string();
            let result = (|| -> Result<()> {
                let target = opened.get(&name)?;
                let line = add_key(target.as_ref(), &record);
                target.apply(&[line], &HashSet::new(), &hook)?;
                key_mut(&mut inventory, record.id())?.mark_deployed(&name, self.now());
                self.record(
                    &mut inventory,
                    &[draft("deploy", &record, format!("added to {name}"))],
                )
            })();
            if let Err(e) = result {
                return Err(Error::Incomplete {
                    operation: format!("minting {}", record.id()),
                    cause: Box::new(self.explain(&inventory, e)),
                    done: format!(
                        "{} recorded (expires {})",
                        record.id(),
                        expires_at.to_rfc3339()
                    ),
                    pending: format!("deploying it to {name}"),
                    next: format!(
                        "run `keyvault deploy {0} --to {name}`, or `keyvault revoke {0}`",
                        record.id()
                    ),
                });
            }
        }
        let record = key(&inventory, record.id())?.clone();
        let private_key = crate::fsutil::read_private(
            &self.private_key_path(&record),
            crate::keyfile::MAX_KEY_FILE_BYTES,
        )?;
        Ok(Minted {
            record,
            private_key,
            certificate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::run_bounded;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn run_bounded_keeps_order_and_never_exceeds_its_limit() {
        let mut jobs: Vec<usize> = (0..20).collect();
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let out = run_bounded(&mut jobs, 3, |j| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(10));
            running.fetch_sub(1, Ordering::SeqCst);
            *j * 2
        });
        assert_eq!(out, (0..20).map(|i| i * 2).collect::<Vec<_>>());
        let peak = peak.load(Ordering::SeqCst);
        assert!((2..=3).contains(&peak), "peak concurrency {peak}");
    }
}
