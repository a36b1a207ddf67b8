//! Running pods: finding them, pushing keys into them over SSH, and settling what they trust.

use crate::callbacks::Callbacks;
use crate::error::{Error, RequestError, Result};
use crate::inventory::{Inventory, KeyId, KeyRecord, Purpose, Step};
use crate::remote::AddKey;
use crate::report::{Deployed, PodOutcomeKind, PodRetry, Report};
use crate::rotate::{RotateRequest, RotationPlan, old_fingerprints, unlocked};
use crate::run::{Opened, POD_FAN_OUT, add_key, draft, key, key_mut, run_bounded};
use crate::store::Txn;
use crate::target::{Target, TargetSpec};
use crate::vault::Vault;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashSet};

/// What `deploy`/`revoke` did to a key at pods.
#[derive(Clone, Copy)]
pub(crate) enum PodEdit {
    Added,
    Removed,
}

/// The target name of a pod's direct SSH endpoint, if it has a usable one.
pub(crate) fn pod_target(pod: &crate::runpod::Pod) -> Option<TargetSpec> {
    let d = pod.ssh.as_ref().and_then(|s| s.direct.as_ref())?;
    // Only a spec whose name parses back (the API's id, user and host are checked so).
    TargetSpec::Pod {
        id: pod.id.clone(),
        user: d.username.clone(),
        host: d.host.clone(),
        port: d.port,
    }
    .to_string()
    .parse()
    .ok()
}

/// The pod id of a pod target (the whole name for any other target).
pub(crate) fn pod_id(spec: &TargetSpec) -> String {
    spec.pod_id()
        .map_or_else(|| spec.to_string(), ToOwned::to_owned)
}

/// Reports pod `name` failed where a rotation's old key was to go (it keeps it). If this
/// run did not hold that rotation's new key decrypted (a `sweep` asks no one), the login
/// could not be the new key's: a run that asks for its passphrase finishes it, and the
/// report says which ([`PodRetry::FinishRotation`]). Otherwise the next sweep retries it.
fn pod_not_finished(
    txn: &Txn,
    name: &TargetSpec,
    opened: &Opened<'_>,
    detail: String,
    report: &mut Report,
) {
    let waiting = txn
        .journal()
        .iter()
        .filter(|e| e.targets.get(name).is_some_and(|p| !p.removed))
        .find(|e| !opened.identities.contains_key(&e.new));
    match waiting {
        Some(e) => report.pod_failed(
            pod_id(name),
            detail,
            PodRetry::FinishRotation {
                purpose: e.purpose.clone(),
                key: e.new.clone(),
            },
        ),
        None => report.pod(pod_id(name), PodOutcomeKind::Failed, detail),
    }
}

/// Reports pod `name` failed where the new keys of the rotations of `entries` were to be
/// added (it keeps the old keys). If this run did not hold one's old key decrypted (a
/// `sweep` asks no one), the login could not be that key's: a run that asks for its
/// passphrase finishes it, and the report says which ([`PodRetry::ResumeRotation`]) and
/// why the key was not unlocked. Otherwise the next sweep retries it.
fn pod_not_added(
    txn: &Txn,
    name: &TargetSpec,
    entries: &[Purpose],
    opened: &Opened<'_>,
    detail: String,
    report: &mut Report,
) {
    let locked = entries
        .iter()
        .filter_map(|p| txn.rotation(p))
        .find(|e| !opened.identities.contains_key(&e.old));
    match locked {
        Some(e) => report.pod_failed(
            pod_id(name),
            format!(
                "{detail}; keyvault did not hold {} decrypted to log in there{}",
                e.old,
                opened.why_not_unlocked(&e.old)
            ),
            PodRetry::ResumeRotation {
                purpose: e.purpose.clone(),
                old: e.old.clone(),
            },
        ),
        None => report.pod(pod_id(name), PodOutcomeKind::Failed, detail),
    }
}

/// Every pod the RunPod accounts among `targets` list, by id (the first listing of an id
/// wins); `None` unless there is such an account and every one of them could list its
/// pods (a pod names no account: it is gone only if none of them lists it).
fn listed_pods(
    opened: &mut Opened<'_>,
    targets: &BTreeMap<TargetSpec, crate::inventory::TargetProgress>,
) -> Option<BTreeMap<String, crate::runpod::Pod>> {
    let mut listed = BTreeMap::new();
    let mut any = false;
    for account in targets.keys().filter(|t| t.is_runpod()) {
        any = true;
        let pods = opened
            .get(account)
            .and_then(|t| t.pods().map_err(Error::from))
            .ok()
            .flatten()?;
        for p in pods {
            listed.entry(p.id.clone()).or_insert(p);
        }
    }
    any.then_some(listed)
}

/// Why a pod that is not running (stopped, in error) but not terminated needs a
/// redeploy: keyvault cannot change it over SSH now, and when it starts it trusts `key`
/// again, from its `PUBLIC_KEY`.
pub(crate) fn not_running(pod: &crate::runpod::Pod, key: &KeyId) -> String {
    format!(
        "{}, not gone: it trusts {key} again when it starts (its PUBLIC_KEY holds it) and \
         cannot be changed over SSH while it does not run; redeploy or terminate the pod",
        crate::observe::status_word(&pod.status)
    )
}

/// The start of what is said about a starting pod: it cannot be logged in to yet.
pub(crate) fn starting(pod: &crate::runpod::Pod) -> String {
    format!(
        "{}: cannot be logged in to yet",
        crate::observe::status_word(&pod.status)
    )
}

/// Reports the starting pods (`PROVISIONING`, `STARTING`) among the pods of a rotation
/// step (`adding` the new key, or removing the old one) as `pending`, with what finishes
/// the step once they run, and returns the rest but the stopped ones (`opened.idle`,
/// reported already): nothing is done at a pod that cannot be logged in to.
fn set_aside_starting(
    txn: &Txn,
    jobs: Vec<(TargetSpec, Vec<Purpose>)>,
    opened: &Opened<'_>,
    adding: bool,
    report: &mut Report,
) -> Vec<(TargetSpec, Vec<Purpose>)> {
    let (later, now): (Vec<_>, Vec<_>) = jobs
        .into_iter()
        .filter(|(name, _)| !opened.idle.contains(name))
        .partition(|(name, _)| opened.starting.contains_key(name));
    for (name, purposes) in later {
        let status = opened.starting.get(&name).map_or("", String::as_str);
        let status = crate::observe::status_word(status);
        let Some(e) = purposes.iter().find_map(|p| txn.rotation(p)) else {
            continue;
        };
        let (detail, retry) = if adding {
            (
                format!(
                    "{status}: cannot be logged in to yet; it stays in the rotation, which keeps \
                     {} retiring, until {} is added there once it runs",
                    e.old, e.new
                ),
                PodRetry::ResumeRotation {
                    purpose: e.purpose.clone(),
                    old: e.old.clone(),
                },
            )
        } else {
            (
                format!(
                    "{status}: cannot be logged in to yet; it keeps {}, and stays in the \
                     rotation until it is removed there once it runs",
                    e.old
                ),
                PodRetry::FinishRotation {
                    purpose: e.purpose.clone(),
                    key: e.new.clone(),
                },
            )
        };
        report.pod_pending(pod_id(&name), detail, Some(retry));
    }
    now
}

/// What [`Vault::drop_gone_pods`] does with a rotation's pods that do not run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdlePods {
    /// A sweep: a stopped pod that still depends on the old key is dropped from the
    /// rotation, `needs-redeploy`.
    Drop,
    /// A rotation: such a pod is reported `needs-redeploy` and set aside for this run
    /// (never logged in to); it stays in the journal.
    SetAside,
    /// A rollback: every pod that does not run is returned, not logged in to.
    Return,
}

/// A pod of a rollback that is listed but does not run.
pub(crate) struct Idle {
    /// Its status, as words.
    pub(crate) status: String,
    /// Whether it is starting (`PROVISIONING`, `STARTING`): it runs in a moment.
    pub(crate) starting: bool,
}

/// What [`Vault::drop_gone_pods`] found.
#[derive(Default)]
pub(crate) struct Settled {
    /// For a rollback: the pods that do not run.
    pub(crate) idle: BTreeMap<TargetSpec, Idle>,
    /// Each pod reported `gone`, with the old key it no longer depends on.
    pub(crate) gone: HashSet<(String, KeyId)>,
}

/// Why a pod that is stopped (or in error: neither running, starting nor terminated) still
/// depends on `record`, if it does: its `PUBLIC_KEY` holds it (it trusts it again when it
/// starts), or keyvault added it there over SSH and cannot take it out while the pod does
/// not run (its `authorized_keys` may keep it). Either way only a redeploy or a terminate
/// settles it now, and no login is tried.
pub(crate) fn stopped_detail(pod: &crate::runpod::Pod, record: &KeyRecord) -> Option<String> {
    if pod.starts_with_key(record.fingerprint()) {
        return Some(not_running(pod, record.id()));
    }
    let added = record
        .deployments()
        .iter()
        .any(|d| d.removed_at().is_none() && d.target().pod_id() == Some(pod.id.as_str()));
    added.then(|| {
        format!(
            "{}, not gone: keyvault added {} over SSH and cannot remove it while the pod does \
             not run, so it may still trust it when it starts; redeploy or terminate the pod",
            crate::observe::status_word(&pod.status),
            record.id()
        )
    })
}

/// The pods of the RunPod accounts of rotation `item` that are not terminated and whose
/// `PUBLIC_KEY` holds its old key, as pod targets to join it; the rest reported: stopped
/// ones and proxy-only ones as needing a redeploy, starting ones without an endpoint yet as
/// `pending`. A starting pod with an endpoint joins, set aside in `opened` for this run.
fn pods_trusting_old(
    item: &crate::rotate::PlannedRotation,
    old: &KeyRecord,
    opened: &mut Opened<'_>,
    report: &mut Report,
) -> Result<Vec<TargetSpec>> {
    let mut pods_here = Vec::new();
    for account in item.targets.iter().filter(|t| t.is_runpod()) {
        let Some(pods) = opened.get(account)?.pods()? else {
            continue;
        };
        for pod in pods
            .iter()
            .filter(|p| !p.is_terminated() && p.starts_with_key(old.fingerprint()))
        {
            if !pod.is_running() && !pod.is_starting() {
                report.pod(
                    pod.id.clone(),
                    PodOutcomeKind::NeedsRedeploy,
                    not_running(pod, old.id()),
                );
                continue;
            }
            match pod_target(pod) {
                // A starting pod joins the rotation; it is logged in to once it runs.
                Some(n) if pod.is_starting() => {
                    opened.starting.insert(n.clone(), pod.status.clone());
                    pods_here.push(n);
                }
                Some(n) => pods_here.push(n),
                None if pod.is_starting() => report.pod_pending(
                    pod.id.clone(),
                    format!(
                        "{}, with no direct SSH endpoint yet: it did not join this rotation, and \
                         when it runs it trusts {} (its PUBLIC_KEY holds it)",
                        crate::observe::status_word(&pod.status),
                        old.id()
                    ),
                    None,
                ),
                None => report.pod(
                    pod.id.clone(),
                    PodOutcomeKind::NeedsRedeploy,
                    "no direct SSH endpoint (proxy only): redeploy the pod to change its keys",
                ),
            }
        }
    }
    Ok(pods_here)
}

/// Whether rotation `item` logs in with its old key other than at the pods it discovers:
/// at `ssh://` hosts when asked to (`--old-passphrase-env/-file`); at the pods a resumed
/// rotation has yet to add the new key to (only the old key logs in there); at the pods a
/// new rotation takes over from the old key's deployments (keyvault added it there over
/// SSH, and it logs in there).
fn logs_in_with_old(
    inventory: &Inventory,
    item: &crate::rotate::PlannedRotation,
    request: &RotateRequest,
) -> bool {
    let ssh_hosts = request.unlock_old && item.targets.iter().any(TargetSpec::is_ssh);
    let waiting = item.resumes.is_some()
        && inventory.rotation(&item.purpose).is_some_and(|e| {
            e.targets
                .iter()
                .any(|(t, p)| t.is_pod() && !p.added && !p.removed)
        });
    let recorded = item.resumes.is_none() && item.targets.iter().any(TargetSpec::is_pod);
    ssh_hosts || waiting || recorded
}

mod deploy;
mod gone;

pub(crate) use gone::Listing;

impl Vault {
    /// For `rotate --pods`: the running pods that trust each purpose's old key, as pod
    /// targets (reachable over direct SSH) or reported as needing a redeploy. The old key of
    /// each purpose with pods to log in to with it is unlocked (its passphrase asked for).
    pub(crate) fn discover_pods(
        &self,
        inventory: &Inventory,
        plan: &RotationPlan,
        request: &RotateRequest,
        opened: &mut Opened<'_>,
        callbacks: &mut dyn Callbacks,
        report: &mut Report,
    ) -> Result<BTreeMap<Purpose, Vec<TargetSpec>>> {
        let mut found = BTreeMap::new();
        self.unlock_unproven(inventory, plan, opened, callbacks)?;
        if !request.pods && !request.unlock_old {
            return Ok(found);
        }
        for item in &plan.rotations {
            let old = key(inventory, &item.old)?.clone();
            // Pods join new rotations; a resumed one keeps the pods its journal names.
            let pods_here = if request.pods && item.resumes.is_none() {
                pods_trusting_old(item, &old, opened, report)?
            } else {
                Vec::new()
            };
            if pods_here.is_empty() && !logs_in_with_old(inventory, item, request) {
                continue;
            }
            self.unlock_for_pods(opened, &old, callbacks)?;
            if !pods_here.is_empty() {
                found.insert(item.purpose.clone(), pods_here);
            }
        }
        Ok(found)
    }

    /// For a rotation being finished: unlocks each new key that a pod got without a login
    /// to prove it (asked for as [`crate::PassphraseKind::Successor`]), so that the login which
    /// removes the old key there can offer the new key alone; and the new key of a rotation
    /// whose grace period is over and whose pods still hold the old key, to log in to them
    /// (the old key is not asked for: the new one is active, and the pods trust it); and the
    /// new key of a rotation with pods it has yet to reach, since a pod learns it only in a
    /// run that can prove it there (the old key goes only after that proof).
    fn unlock_unproven(
        &self,
        inventory: &Inventory,
        plan: &RotationPlan,
        opened: &mut Opened<'_>,
        callbacks: &mut dyn Callbacks,
    ) -> Result<()> {
        for item in plan.rotations.iter().filter(|r| r.resumes.is_some()) {
            let Some(e) = inventory.rotation(&item.purpose) else {
                continue;
            };
            let now = self.now();
            // A pod the new key has yet to reach is added to in this run: a login of the
            // new key must prove it there before the old key may go.
            let waiting = e.targets.iter().any(|(t, p)| {
                t.is_pod() && !p.removed && (!p.added || p.unproven || crate::rotate::due(e, now))
            });
            if opened.identities.contains_key(&e.new) || !waiting {
                continue;
            }
            let new = key(inventory, &e.new)?;
            let subject = format!("key {} (to log in to its pods)", new.id());
            let plain = self.unlock(
                new,
                callbacks,
                &subject,
                crate::callbacks::PassphraseKind::Successor,
            )?;
            opened.identities.insert(new.id().clone(), plain);
        }
        Ok(())
    }

    /// Settles the pods the rotations (of `only`, or all) are still waiting for (when every RunPod account of a
    /// rotation could list its pods), as `mode` says; a running pod is left as it is. A pod
    /// that is terminated or no longer listed is `gone`, dropped from the journal: it no
    /// longer depends on the old key. A pod that exists but does not run is not gone: when it
    /// starts it trusts the keys in its `PUBLIC_KEY` again. A starting one (`PROVISIONING`,
    /// `STARTING`) stays, set aside in `opened` for this run (reported `pending` where it was
    /// to be logged in to), for a later run once it runs. A stopped one (or in error) whose
    /// `PUBLIC_KEY` holds the old key, or that keyvault added the old key to over SSH (see
    /// [`stopped_detail`]), is `needs-redeploy`: a sweep drops it, a rotation sets it aside
    /// (never logged in to, and it stays in the journal, retried once it runs); any other
    /// stopped pod no longer depends on the old key (`gone`). A rollback keeps every pod
    /// that does not run, and gets it back with its status, to report without logging in.
    pub(crate) fn drop_gone_pods(
        &self,
        txn: &mut Txn,
        only: Option<&HashSet<Purpose>>,
        opened: &mut Opened<'_>,
        mode: IdlePods,
        report: &mut Report,
    ) -> Result<Settled> {
        let mut settled = Settled::default();
        let mut changed = false;
        for purpose in txn.rotating(only) {
            let Some(e) = txn.rotation(&purpose) else {
                continue;
            };
            let pending: Vec<TargetSpec> = e
                .targets
                .iter()
                .filter(|(t, p)| t.is_pod() && !p.removed)
                .map(|(t, _)| t.clone())
                .collect();
            if pending.is_empty() {
                continue;
            }
            let Some(listed) = listed_pods(opened, &e.targets) else {
                continue;
            };
            let old = key(txn, &e.old)?.clone();
            for t in &pending {
                let Some((outcome, detail)) =
                    self.settle_pod(t, listed.get(&pod_id(t)), &old, mode, opened, &mut settled)
                else {
                    continue;
                };
                if mode == IdlePods::SetAside && outcome == PodOutcomeKind::NeedsRedeploy {
                    opened.idle.insert(t.clone());
                    let said = report
                        .pods
                        .iter()
                        .any(|p| p.pod == pod_id(t) && p.outcome == outcome);
                    if !said {
                        report.pod(pod_id(t), outcome, detail);
                    }
                    continue;
                }
                if outcome == PodOutcomeKind::Gone {
                    settled.gone.insert((pod_id(t), old.id().clone()));
                }
                if let Some(e) = txn.rotation_mut(&purpose) {
                    e.targets.remove(t);
                }
                changed = true;
                report.pod(pod_id(t), outcome, detail);
            }
        }
        if changed {
            txn.save()?;
        }
        Ok(settled)
    }

    /// What becomes of the rotation's pod `t` (listed as `listed`) whose old key is `old`:
    /// `None` to leave it in the journal (running, starting, or set aside in `settled` for
    /// a rollback), else its outcome and why.
    fn settle_pod(
        &self,
        t: &TargetSpec,
        listed: Option<&crate::runpod::Pod>,
        old: &KeyRecord,
        mode: IdlePods,
        opened: &mut Opened<'_>,
        settled: &mut Settled,
    ) -> Option<(PodOutcomeKind, String)> {
        let old_id = old.id();
        let Some(p) = listed else {
            return Some((
                PodOutcomeKind::Gone,
                format!("no longer listed, so it no longer depends on {old_id}"),
            ));
        };
        if p.is_terminated() {
            return Some((
                PodOutcomeKind::Gone,
                format!("terminated, so it no longer depends on {old_id}"),
            ));
        }
        if p.is_running() {
            return None;
        }
        let status = crate::observe::status_word(&p.status).to_owned();
        if mode == IdlePods::Return {
            let starting = p.is_starting();
            settled.idle.insert(t.clone(), Idle { status, starting });
            return None;
        }
        // Starting: it stays, and is logged in to once it runs.
        if p.is_starting() {
            opened.starting.insert(t.clone(), p.status.clone());
            return None;
        }
        Some(match stopped_detail(p, old) {
            Some(detail) => (PodOutcomeKind::NeedsRedeploy, detail),
            None => (
                PodOutcomeKind::Gone,
                format!(
                    "{status}, and its PUBLIC_KEY no longer holds {old_id}, so it no longer \
                     depends on it"
                ),
            ),
        })
    }

    /// Adds the new keys to pods in parallel (at most [`POD_FAN_OUT`] at a time), each
    /// logging in with the old key; records the results in order. The new key proves that
    /// it logs in in the same run: by a login of its own here or, where the old key goes
    /// right after promotion (see [`Self::proof_waits`]), by the login that removes it.
    /// A pod's failure is reported, never raised.
    pub(crate) fn add_to_pods(
        &self,
        txn: &mut Txn,
        pods: Vec<(TargetSpec, Vec<Purpose>)>,
        opened: &mut Opened<'_>,
        report: &mut Report,
    ) -> Result<()> {
        let pods = set_aside_starting(txn, pods, opened, true, report);
        let mut jobs = Vec::new();
        let mut entries_of = BTreeMap::new();
        for (name, entries) in pods {
            let waits = self.proof_waits(txn, &name, &entries, opened);
            let mut identities = Vec::new();
            let mut add = Vec::new();
            for e in entries.iter().filter_map(|p| txn.rotation(p)) {
                // A key whose identity the target does not hold is not proven by it.
                identities.push(e.old.clone());
                if !waits {
                    identities.push(e.new.clone());
                }
                add.push(key(txn, &e.new)?.clone());
            }
            entries_of.insert(name.clone(), (entries, waits));
            jobs.push((name, identities, add, HashSet::new()));
        }
        for (name, result) in self.fan_out(opened, jobs, report) {
            let (entries, waits) = entries_of.remove(&name).unwrap_or_default();
            let graceful = entries
                .iter()
                .filter_map(|p| txn.rotation(p))
                .any(|e| e.grace_until.is_some());
            if let Err(e) = result {
                pod_not_added(txn, &name, &entries, opened, e.to_string(), report);
                continue;
            }
            let mut drafts = Vec::new();
            let mut proven = !waits;
            for purpose in &entries {
                let Some(e) = txn.rotation_mut(purpose) else {
                    continue;
                };
                // Proven now only by a login of the new key, which needs it decrypted.
                let unproven = waits || !opened.identities.contains_key(&e.new);
                proven &= !unproven;
                let progress = e.at(&name);
                progress.added = true;
                progress.unproven = unproven;
                if e.step < Step::Promoted {
                    e.step = Step::Adding;
                }
                let (new, promoted) = (e.new.clone(), e.step >= Step::Promoted);
                if promoted {
                    let when = self.now();
                    key_mut(txn, &new)?.mark_deployed(&name, when);
                }
                drafts.push(draft("deploy", key(txn, &new)?, format!("added to {name}")));
            }
            txn.record(drafts);
            txn.save()?;
            self.hook(&format!("added:{name}"))?;
            report.pod(
                pod_id(&name),
                PodOutcomeKind::Added,
                if waits && graceful {
                    "new key added; the login that removes the old key after the grace period \
                     proves it"
                } else if proven {
                    "new key added and proven to log in"
                } else {
                    "new key added"
                },
            );
        }
        Ok(())
    }

    /// Whether the new key's proof at pod `name` waits for the login that removes the old
    /// key, saving a login: one rotation there, a target that logs in, and a login that
    /// removes the old key which can offer the new key alone. Without a grace period that
    /// login is in this run, which holds the new key decrypted; with one, it is the run
    /// that ends it, which must be able to unlock the new key without a person (see
    /// `rotate/grace.rs`: otherwise the proof is made now, by a login of its own).
    fn proof_waits(
        &self,
        txn: &Txn,
        name: &TargetSpec,
        entries: &[Purpose],
        opened: &mut Opened<'_>,
    ) -> bool {
        let [purpose] = entries else {
            return false;
        };
        let Some(e) = txn.rotation(purpose) else {
            return false;
        };
        let provable = match e.grace_until {
            None => opened.identities.contains_key(&e.new),
            Some(_) => txn
                .get(&e.new)
                .is_some_and(|k| self.provable_at_grace_end(k)),
        };
        provable && opened.get(name).is_ok_and(|t| t.log_in_only_with(None))
    }

    /// Removes the old keys from pods in parallel, logging in with the keys keyvault holds
    /// unlocked; records each pod's result. Where a new key is not proven yet, the login
    /// offers that key alone, so that the session which removes the old key is the proof.
    /// A pod's failure is reported, never raised.
    pub(crate) fn remove_from_pods(
        &self,
        txn: &mut Txn,
        pods: Vec<(TargetSpec, Vec<Purpose>)>,
        now: DateTime<Utc>,
        opened: &mut Opened<'_>,
        report: &mut Report,
    ) {
        let pods = set_aside_starting(txn, pods, opened, false, report);
        let mut jobs = Vec::new();
        let mut entries_of = BTreeMap::new();
        for (name, entries) in pods {
            let prepared =
                self.proving_login(txn, &name, entries, opened)
                    .and_then(|(entries, proof)| {
                        let remove = old_fingerprints(txn, &entries)?;
                        Ok((entries, proof, remove))
                    });
            match prepared {
                Ok((entries, proof, remove)) => {
                    let identities = unlocked(txn, opened, &entries);
                    jobs.push((name.clone(), identities, Vec::new(), remove));
                    entries_of.insert(name, (entries, proof));
                }
                Err(e) => {
                    if let Some(t) = opened.open.get_mut(&name) {
                        t.log_in_only_with(None);
                    }
                    pod_not_finished(txn, &name, opened, e.to_string(), report);
                }
            }
        }
        for (name, result) in self.fan_out(opened, jobs, report) {
            let (entries, proof) = entries_of.remove(&name).unwrap_or_default();
            if let Some(t) = opened.open.get_mut(&name) {
                t.log_in_only_with(None);
            }
            let done = result.and_then(|()| {
                for purpose in &entries {
                    if let Some(e) = txn.rotation_mut(purpose) {
                        e.at(&name).unproven = false;
                    }
                }
                self.removed_from(txn, &name, &entries, now)
            });
            match done {
                Ok(()) if proof => report.pod(
                    pod_id(&name),
                    PodOutcomeKind::Removed,
                    "new key logged in; old key removed in that session",
                ),
                Ok(()) => report.pod(pod_id(&name), PodOutcomeKind::Removed, "old key removed"),
                Err(e) => pod_not_finished(txn, &name, opened, e.to_string(), report),
            }
        }
    }

    /// The rotations whose old keys go from pod `name` in this run, and whether the login
    /// that removes them is the new key's proof. A new key not proven there yet
    /// ([`crate::inventory::TargetProgress::unproven`]) must log in alone first, so the
    /// target is set to log in with it only; a second unproven one waits for the next run.
    ///
    /// # Errors
    ///
    /// When that new key is not held decrypted or the target cannot be opened: the pod
    /// keeps its old key.
    fn proving_login(
        &self,
        txn: &Txn,
        name: &TargetSpec,
        entries: Vec<Purpose>,
        opened: &mut Opened<'_>,
    ) -> Result<(Vec<Purpose>, bool)> {
        let unproven = |p: &Purpose| {
            txn.rotation(p)
                .filter(|e| e.targets.get(name).is_some_and(|t| t.unproven))
                .map(|e| e.new.clone())
        };
        let Some(new) = entries.iter().find_map(unproven) else {
            return Ok((entries, false));
        };
        let Some(identity) = opened.identities.get(&new).cloned() else {
            let why = opened.why_not_unlocked(&new);
            return Err(crate::error::TargetError::Unreachable {
                target: name.to_string(),
                reason: format!(
                    "key {new} has not logged in there yet and keyvault does not hold it \
                     decrypted to prove it{why}; the old key was left in place"
                ),
            }
            .into());
        };
        let target = opened.get(name)?;
        target.load_identity(&identity)?;
        let fingerprint = identity.public_key().fingerprint(ssh_key::HashAlg::Sha256);
        if !target.log_in_only_with(Some(fingerprint)) {
            return Ok((entries, false));
        }
        let entries = entries
            .into_iter()
            .filter(|p| unproven(p).is_none_or(|id| id == new))
            .collect();
        Ok((entries, true))
    }

    /// Records what [`Vault::fan_out`] did to `record` at each pod: the deployment (added
    /// or removed), an audit event per pod, and each pod's outcome in the report.
    pub(crate) fn settle_pods(
        &self,
        txn: &mut Txn,
        record: &KeyRecord,
        results: Vec<(TargetSpec, Result<()>)>,
        edit: PodEdit,
        report: &mut Report,
    ) -> Result<()> {
        let now = self.now();
        let mut drafts = Vec::new();
        for (name, result) in results {
            if let Err(e) = result {
                report.pod(pod_id(&name), PodOutcomeKind::Failed, e.to_string());
                continue;
            }
            let entry = key_mut(txn, record.id())?;
            match edit {
                PodEdit::Added => {
                    entry.mark_deployed(&name, now);
                    drafts.push(draft("deploy", record, format!("added to {name}")));
                    report.deployed.push(Deployed {
                        key: record.id().clone(),
                        target: name.clone(),
                    });
                    report.pod(
                        pod_id(&name),
                        PodOutcomeKind::Added,
                        "key added and proven to log in; a restart of the pod may drop it (its \
                         PUBLIC_KEY lacks it, and whether ~/.ssh/authorized_keys survives a \
                         restart depends on the image and volume)",
                    );
                    report.survives_restart(false);
                }
                PodEdit::Removed => {
                    entry.mark_removed_from(&name, now);
                    drafts.push(draft("undeploy", record, format!("removed from {name}")));
                    report.pod(
                        pod_id(&name),
                        PodOutcomeKind::Removed,
                        "key removed; verified by reading back",
                    );
                }
            }
        }
        if !drafts.is_empty() {
            txn.record(drafts);
            txn.save()?;
        }
        Ok(())
    }

    /// Edits pods in parallel (at most [`POD_FAN_OUT`] at a time): each job names the pod
    /// target, the unlocked identities it loads (from `opened.identities`), the keys to add
    /// and the fingerprints to remove. Reports progress; returns each pod's result in order.
    #[allow(clippy::type_complexity)]
    pub(crate) fn fan_out(
        &self,
        opened: &mut Opened<'_>,
        jobs: Vec<(
            TargetSpec,
            Vec<KeyId>,
            Vec<KeyRecord>,
            HashSet<ssh_key::Fingerprint>,
        )>,
        report: &mut Report,
    ) -> Vec<(TargetSpec, Result<()>)> {
        struct Job {
            name: TargetSpec,
            target: Box<dyn Target + Send>,
            add: Vec<AddKey>,
            remove: HashSet<ssh_key::Fingerprint>,
        }
        let mut ready = Vec::new();
        let mut results = Vec::new();
        for (name, identities, add, remove) in jobs {
            let prepared = (|| -> Result<Job> {
                opened.get(&name)?;
                let mut target =
                    opened
                        .open
                        .remove(&name)
                        .ok_or_else(|| RequestError::NotOpened {
                            target: name.to_string(),
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
                Err(e) => report.pod(pod_id(&name), PodOutcomeKind::Failed, e.to_string()),
            }
        }
        let hook = self.hook_fn();
        let outcomes = run_bounded(&mut ready, POD_FAN_OUT, |job| {
            let pod = pod_id(&job.name);
            self.pod_progress(&crate::vault::PodProgress::Started { pod: pod.clone() });
            let result = job.target.apply(&job.add, &job.remove, &hook).map(|_| ());
            let outcome = match (&result, job.add.is_empty()) {
                (Err(_), _) => PodOutcomeKind::Failed,
                (Ok(()), false) => PodOutcomeKind::Added,
                (Ok(()), true) => PodOutcomeKind::Removed,
            };
            self.pod_progress(&crate::vault::PodProgress::Finished { pod, outcome });
            result
        });
        for (job, outcome) in ready.into_iter().zip(outcomes) {
            opened.open.insert(job.name.clone(), job.target);
            results.push((job.name, outcome));
        }
        results
    }
}
