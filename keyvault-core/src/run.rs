//! Steps every operation shares: opening targets once, bounded fan-out, looking up the
//! records a journal names, and audit drafts.

use crate::audit::{Draft, Outcome};
use crate::callbacks::Callbacks;
use crate::error::{Error, Result, StoreError, TargetError};
use crate::inventory::{Inventory, KeyId, KeyRecord, KeyState};
use crate::keygen::Algorithm;
use crate::remote::AddKey;
use crate::target::{Target, TargetSpec, Targets};
use crate::vault::Vault;
use std::collections::BTreeMap;

/// A key generated for a rotation before taking the lock: the key, how to protect it,
/// and the algorithm planned for it.
pub(crate) type FreshKey = (
    ssh_key::PrivateKey,
    Option<(crate::secret::Passphrase, u32)>,
    Algorithm,
);

/// Targets opened during one operation.
pub(crate) struct Opened<'a> {
    pub(crate) targets: &'a dyn Targets,
    pub(crate) open: BTreeMap<TargetSpec, Box<dyn Target + Send>>,
    /// New keys generated in this run, decrypted, for targets that prove a key logs in.
    pub(crate) identities: BTreeMap<KeyId, ssh_key::PrivateKey>,
    /// Why a new key a run that asks no one was to unlock could not be (its purpose's
    /// `passphrase_env` / `passphrase_file` failed, or gave a wrong passphrase), for the
    /// pods that wait on it.
    pub(crate) not_unlocked: BTreeMap<KeyId, String>,
    /// Pods of the journal that are starting (`PROVISIONING`, `STARTING`), with their
    /// status: not logged in to in this run (they cannot be yet); they stay in the journal.
    pub(crate) starting: BTreeMap<TargetSpec, String>,
    /// Pods of the journal that do not run and are not starting (stopped, in error): not
    /// logged in to in this run (they cannot be), already reported `needs-redeploy`.
    pub(crate) idle: std::collections::BTreeSet<TargetSpec>,
}

impl Vault {
    /// Decrypts the old key of a rotation (asking `callbacks`) so keyvault can log in with
    /// it to the pods and hosts that trust only it.
    pub(crate) fn unlock_for_pods(
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
    pub(crate) fn new(targets: &'a dyn Targets) -> Self {
        Opened {
            targets,
            open: BTreeMap::new(),
            identities: BTreeMap::new(),
            not_unlocked: BTreeMap::new(),
            starting: BTreeMap::new(),
            idle: std::collections::BTreeSet::new(),
        }
    }
    /// `": "` and why the new key `id` could not be unlocked without a person, if that was
    /// tried and failed; empty otherwise.
    pub(crate) fn why_not_unlocked(&self, id: &KeyId) -> String {
        self.not_unlocked
            .get(id)
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    }

    pub(crate) fn get(&mut self, spec: &TargetSpec) -> Result<&mut Box<dyn Target + Send>> {
        if !self.open.contains_key(spec) {
            let t = self.targets.open(spec)?;
            self.open.insert(spec.clone(), t);
        }
        Ok(self.open.get_mut(spec).expect("inserted above"))
    }
}

/// How many pods are updated at once.
pub(crate) const POD_FAN_OUT: usize = 8;

/// Runs `f` over `jobs` on at most `limit` threads; results in the jobs' order.
pub(crate) fn run_bounded<T: Send, R: Send>(
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

pub(crate) fn add_key(target: &dyn Target, record: &KeyRecord) -> AddKey {
    AddKey {
        fingerprint: record.fingerprint().to_owned(),
        line: target.line(record),
    }
}

pub(crate) fn key<'a>(inventory: &'a Inventory, id: &KeyId) -> Result<&'a KeyRecord> {
    inventory.get(id).ok_or_else(|| {
        StoreError::CorruptInventory {
            path: "inventory.json".into(),
            detail: format!("the journal names key {id}, which has no record"),
        }
        .into()
    })
}

pub(crate) fn key_mut<'a>(inventory: &'a mut Inventory, id: &KeyId) -> Result<&'a mut KeyRecord> {
    inventory.get_mut(id).ok_or_else(|| {
        StoreError::CorruptInventory {
            path: "inventory.json".into(),
            detail: format!("the journal names key {id}, which has no record"),
        }
        .into()
    })
}

/// The audit event that says how a run (`sweep`, a rotation) ended: about no one key.
pub(crate) fn run_draft(action: &'static str, outcome: Outcome, detail: String) -> Draft {
    Draft {
        action,
        key_id: None,
        fingerprint: None,
        outcome,
        detail: Some(detail),
    }
}

pub(crate) fn draft(action: &'static str, record: &KeyRecord, detail: String) -> Draft {
    Draft {
        action,
        key_id: Some(record.id().to_string()),
        fingerprint: Some(record.fingerprint().to_string()),
        outcome: Outcome::Ok,
        detail: Some(detail),
    }
}

impl Vault {
    /// Records how a `sweep` or a rotation ended, as an audit event of its own, for
    /// monitoring (`keyvault_last_sweep_*`, [`crate::metrics`]): outcome ok with `ok` as its
    /// detail, or failed with the error when the run stopped part-way
    /// ([`Error::Incomplete`]: it has changed the vault already; the next run continues).
    /// Other errors changed nothing and are left so: a refused command changes nothing.
    /// Best effort, after the run's own transaction: a log that cannot be appended to
    /// (locked for too long, broken chain) is left as it is, and the missing record shows as
    /// a run that did not happen.
    pub(crate) fn record_run<T>(&self, action: &'static str, ok: String, result: &Result<T>) {
        let (outcome, detail) = match result {
            Ok(_) => (Outcome::Ok, ok),
            Err(e @ Error::Incomplete(_)) => (Outcome::Failed, e.to_string()),
            Err(_) => return,
        };
        let Ok(mut txn) = self.begin(crate::store::View::Live) else {
            return;
        };
        txn.record([run_draft(action, outcome, detail)]);
        let _ = txn.commit();
    }

    pub(crate) fn hook_fn(&self) -> impl Fn(&str) -> Result<()> + '_ {
        move |point| self.hook(point)
    }

    /// Adds a list-too-long error's hint: which expired managed keys `sweep` could remove.
    pub(crate) fn explain(&self, inventory: &Inventory, error: Error) -> Error {
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
                            && k.live_targets().iter().any(|t| t.to_string() == target)
                    })
                    .map(|k| k.id().to_string())
                    .collect();
                TargetError::ListTooLong {
                    target,
                    len,
                    limit,
                    sweepable: Some(expired),
                }
                .into()
            }
            other => other,
        }
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
