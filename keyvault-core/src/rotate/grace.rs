//! Grace periods at pods, and ending them early: a retiring key may be compromised, so
//! `revoke` of a key kept deployed for a rotation's grace period removes it everywhere now
//! instead of refusing because a rotation is in progress.
//!
//! # Logins per pod with a grace period
//!
//! The old key stays trusted in a pod until the grace period ends, so the login that
//! removes it cannot happen in `rotate`: the rotation logs in once with the old key to add
//! the new one, and the run that ends the grace period (usually an unattended `sweep`)
//! logs in once more to remove the old key. Two logins are the least: the pod must learn
//! the new key before the grace period and forget the old one after it.
//!
//! The old key may go only once the new key has logged in. Where the run that ends the
//! grace period can hold the new key decrypted without asking anyone (its passphrase in
//! the OS keyring, no passphrase, or the purpose's `passphrase_env` / `passphrase_file`),
//! its login offers the new key alone, which proves it and removes the old key in the
//! same session: two logins in all ([`crate::inventory::TargetProgress::unproven`] until
//! then). Otherwise only a person has the new key's passphrase, and only while `rotate`
//! runs: the proof must be made then, by a login of its own, so that the sweep that ends
//! the grace period may remove the old key with whatever login gets in. That third login
//! is spent only in that case.

use crate::callbacks::PassphraseKind;
use crate::due::{NoPerson, passphrase_from_env, read_passphrase_file};
use crate::error::Result;
use crate::inventory::{Inventory, KeyRecord, Protection, Purpose, Step};
use crate::policy::PassphraseSource;
use crate::report::{Report, Retiring};
use crate::run::{Opened, key, key_mut};
use crate::store::Txn;
use crate::target::TargetSpec;
use crate::vault::Vault;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;

impl Vault {
    /// The purpose of a promoted rotation whose old key is `record`.
    pub(crate) fn grace_of(&self, inventory: &Inventory, record: &KeyRecord) -> Option<Purpose> {
        inventory
            .journal()
            .iter()
            .find(|e| e.old == *record.id() && e.step == Step::Promoted)
            .map(|e| e.purpose.clone())
    }

    /// The running pods the rotation of `purpose` still waits on to remove its old key: recorded
    /// as deployments of that key, so revoking it removes it there too (and a failure is
    /// retried by `revoke --to runpod-pods`).
    pub(crate) fn grace_pods(
        &self,
        txn: &mut Txn,
        purpose: &Purpose,
    ) -> Result<BTreeSet<TargetSpec>> {
        let Some(e) = txn.rotation(purpose).cloned() else {
            return Ok(BTreeSet::new());
        };
        let pods: BTreeSet<TargetSpec> = e
            .targets
            .iter()
            .filter(|(t, p)| t.is_pod() && !p.removed)
            .map(|(t, _)| t.clone())
            .collect();
        let now = self.now();
        let record = key_mut(txn, &e.old)?;
        for pod in &pods {
            if !record.live_targets().contains(&pod) {
                record.mark_deployed(pod, now);
            }
        }
        Ok(pods)
    }

    /// Drops the rotation of `purpose` from the journal once its old key is revoked: the grace
    /// period is over.
    pub(crate) fn end_grace(
        &self,
        txn: &mut Txn,
        purpose: &Purpose,
        report: &mut Report,
    ) -> Result<()> {
        let Some(e) = txn.end_rotation(purpose) else {
            return Ok(());
        };
        txn.save()?;
        report.ended_grace.push(Retiring {
            key: e.old,
            until: e.grace_until,
        });
        Ok(())
    }
}

impl Vault {
    /// How a run that asks no one gets `record` decrypted: `Some(None)` for a key whose
    /// passphrase is in the OS keyring or that has none, `Some(source)` for the purpose's
    /// `passphrase_env` / `passphrase_file`, `None` when only a person has it.
    fn unattended_source(&self, record: &KeyRecord) -> Option<Option<PassphraseSource>> {
        match record.protection() {
            Protection::Keyring | Protection::None => Some(None),
            _ => self
                .config
                .policy(record.purpose())
                .rotation()
                .passphrase()
                .cloned()
                .map(Some),
        }
    }

    /// Whether the new key `record`, added to a pod with a grace period, can be proven by
    /// the login that ends it (see the module's documentation): the run that ends it can
    /// hold the key decrypted without asking anyone.
    pub(crate) fn provable_at_grace_end(&self, record: &KeyRecord) -> bool {
        self.unattended_source(record).is_some()
    }

    /// For `sweep`, which asks no one: unlocks the new key of each rotation whose old key is
    /// due to go (no grace period, or one that is over) from a pod where the new key has
    /// not logged in yet (or has yet to be added: a pod that was down), where that takes no
    /// person (see [`Self::provable_at_grace_end`]; `env` reads `passphrase_env`). A key it
    /// cannot unlock is left out: its pods keep the old key and are reported with what
    /// finishes them and, where the purpose's passphrase source failed, why.
    pub(crate) fn unlock_to_prove(
        &self,
        txn: &Txn,
        now: DateTime<Utc>,
        opened: &mut Opened<'_>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<()> {
        for e in txn.journal() {
            self.unlock_old_to_add(txn, e, opened, env)?;
            // Also a pod this sweep adds the new key to (it was down during the rotation):
            // the old key may go from it only after the new key logged in there.
            let waiting = e
                .targets
                .iter()
                .any(|(t, p)| t.is_pod() && (!p.added || p.unproven) && !p.removed);
            // Due now, or once this sweep promotes it (an interrupted rotation).
            let due = e.grace_until.is_none_or(|g| g <= now);
            if !waiting || !due || opened.identities.contains_key(&e.new) {
                continue;
            }
            let new = key(txn, &e.new)?;
            match self.unlock_unattended(new, env, PassphraseKind::Successor) {
                Ok(Some(plain)) => {
                    opened.identities.insert(new.id().clone(), plain);
                }
                Ok(None) => {}
                // Its pods are reported with why (see `pods::proving_login`).
                Err(e) => {
                    opened.not_unlocked.insert(new.id().clone(), e.to_string());
                }
            }
        }
        Ok(())
    }

    /// For `sweep`: unlocks the old key of rotation `e` where a pod this sweep logs in to
    /// has yet to get the new key (it was starting or unreachable during the rotation): only
    /// the old key logs in there. As for the new key, no one is asked: the OS keyring, no
    /// passphrase, or the purpose's `passphrase_env` / `passphrase_file`; a key it cannot
    /// unlock is left out, and its pods are reported with why and what finishes them.
    fn unlock_old_to_add(
        &self,
        txn: &Txn,
        e: &crate::inventory::JournalEntry,
        opened: &mut Opened<'_>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<()> {
        let adding = e.targets.iter().any(|(t, p)| {
            t.is_pod()
                && !p.added
                && !p.removed
                && !opened.starting.contains_key(t)
                && !opened.idle.contains(t)
        });
        if !adding || opened.identities.contains_key(&e.old) {
            return Ok(());
        }
        let old = key(txn, &e.old)?;
        match self.unlock_unattended(old, env, PassphraseKind::Existing) {
            Ok(Some(plain)) => {
                opened.identities.insert(old.id().clone(), plain);
            }
            Ok(None) => {}
            Err(err) => {
                opened
                    .not_unlocked
                    .insert(old.id().clone(), err.to_string());
            }
        }
        Ok(())
    }

    /// `record` decrypted without asking anyone, `None` if only a person can unlock it.
    fn unlock_unattended(
        &self,
        record: &KeyRecord,
        env: &dyn Fn(&str) -> Option<String>,
        kind: PassphraseKind,
    ) -> Result<Option<ssh_key::PrivateKey>> {
        let Some(source) = self.unattended_source(record) else {
            return Ok(None);
        };
        let subject = format!("key {} (to log in to its pods)", record.id());
        let passphrase = match source {
            None => None,
            Some(PassphraseSource::Env(variable)) => {
                Some(passphrase_from_env(&variable, &subject, env)?)
            }
            Some(PassphraseSource::File(path)) => Some(read_passphrase_file(&path, &subject)?),
        };
        let mut no_person = NoPerson(passphrase);
        self.unlock(record, &mut no_person, &subject, kind)
            .map(Some)
    }
}
