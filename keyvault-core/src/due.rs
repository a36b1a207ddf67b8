//! Rotation on a schedule: which keys are due under their purpose's rotation policy
//! (`rotate_every`, `rotate_before_expiry`), the findings `status` reports about them, and
//! the unattended rotation `sweep --rotate-due` runs, one purpose at a time, through the
//! same [`Vault::rotate`] a person runs.
//!
//! Nobody is asked for anything: a due key is rotated when its passphrase can be had
//! without a person (the OS keyring, an unencrypted key where the policy allows one, or
//! the purpose's `passphrase_env`/`passphrase_file`), and reported otherwise. A due key is
//! never revoked at expiry by such a sweep: if its rotation fails or needs a person, it
//! stays where it is deployed until it expires there by itself (`expiry-time=`).

use crate::admission::KeyOptions;
use crate::callbacks::{Callbacks, PassphraseRequest};
use crate::error::{ConfiguredSource, Error, Result, SourceProblem};
use crate::inventory::{Inventory, KeyId, KeyRecord, KeyState, Origin, Protection, Purpose};
use crate::policy::{PassphraseSource, RotationRule};
use crate::report::Report;
use crate::rotate::{PlannedRotation, RotateRequest};
use crate::secret::Passphrase;
use crate::span::Span;
use crate::status::{Finding, FindingKind, Remedy, Severity};
use crate::target::Targets;
use crate::vault::Vault;
use chrono::{DateTime, Utc};
use serde::Serialize;
use ssh_key::rand_core::CryptoRng;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// How far ahead the next scheduled run is assumed to be: `schedule install` runs
/// `sweep --rotate-due` daily, so a key that expires within a day expires before it.
pub const NEXT_RUN: Span = Span::from_days(1);

/// Why a key is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DueReason {
    /// It is at least `rotate_every` old.
    Age,
    /// It expires within `rotate_before_expiry`.
    NearExpiry,
    /// It has expired (and its purpose has a rotation policy).
    Expired,
}

/// Whether a key created at `created_at`, expiring at `expires_at`, is due at `now` under
/// `rule`, and why (the most urgent reason). Each boundary counts as due: a key exactly
/// `rotate_every` old, or exactly `rotate_before_expiry` before its expiry. A purpose
/// without either setting has nothing due.
#[must_use]
pub fn due_reason(
    rule: &RotationRule,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DueReason> {
    if !rule.is_scheduled() {
        return None;
    }
    if let Some(at) = expires_at {
        if at <= now {
            return Some(DueReason::Expired);
        }
        if let Some(before) = rule.rotate_before_expiry()
            && at - before.to_delta() <= now
        {
            return Some(DueReason::NearExpiry);
        }
    }
    match rule.rotate_every() {
        Some(every) if created_at + every.to_delta() <= now => Some(DueReason::Age),
        _ => None,
    }
}

/// Where an unattended rotation gets the passphrases a due key's rotation needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "passphrase", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Unattended {
    /// The OS keyring holds them (the new key's too).
    Keyring,
    /// None is needed: the key is unencrypted and the policy allows that.
    Unencrypted,
    /// The purpose's `passphrase_env`.
    Env {
        /// The variable's name.
        variable: String,
    },
    /// The purpose's `passphrase_file`.
    File {
        /// The file.
        path: PathBuf,
    },
    /// Only a person can give it: the key is not rotated unattended.
    Person,
}

/// A key due for rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DueKey {
    /// The active key.
    pub key: KeyId,
    /// Its purpose.
    pub purpose: Purpose,
    /// Why it is due.
    pub reason: DueReason,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Where its rotation's passphrases come from.
    #[serde(flatten)]
    pub unattended: Unattended,
    /// Whether the rotation also updates running pods (`pods = true`).
    pub pods: bool,
}

/// What became of one due key in `sweep --rotate-due`.
#[derive(Debug)]
#[non_exhaustive]
pub enum DueResult {
    /// `--dry-run`: the rotation that would run.
    Planned(Box<PlannedRotation>),
    /// Rotated; what the rotation did.
    Rotated(Report),
    /// Not rotated: its passphrase needs a person. The key stays, even when expired.
    NeedsPerson,
    /// The rotation failed (or its plan, or its passphrase): the key stays, even when
    /// expired; an interrupted rotation is finished by the next sweep.
    Failed(Error),
    /// Another run (a concurrent `sweep --rotate-due` or `rotate`) rotated the key after
    /// this one found it due: nothing left to do.
    RotatedElsewhere,
}

/// One due key and what became of it.
#[derive(Debug)]
pub struct DueRotation {
    /// The key.
    pub due: DueKey,
    /// What became of it.
    pub result: DueResult,
}

/// What `sweep --rotate-due` did.
#[derive(Debug)]
pub struct DueRun {
    /// The usual sweep's report, or how it stopped part-way ([`Error::Incomplete`]);
    /// `None` for a dry run, which does not sweep.
    pub swept: Option<Result<Report>>,
    /// Each due key, in purpose order.
    pub rotations: Vec<DueRotation>,
}

/// Callbacks that never ask a person: the passphrase an unattended rotation has, if any.
pub(crate) struct NoPerson(pub(crate) Option<Passphrase>);

impl Callbacks for NoPerson {
    fn passphrase(&mut self, request: &PassphraseRequest) -> Result<Passphrase> {
        self.0.clone().ok_or_else(|| Error::PassphraseUnavailable {
            subject: request.subject().to_owned(),
            reason: "an unattended rotation asks no one".to_owned(),
        })
    }
}

/// The first line of a `passphrase_file`, without its line ending, read as
/// [`crate::passphrase_file::read_passphrase_file`] reads a file a setting names: a
/// regular file, the user's own, that group and others cannot access, not followed if a
/// symbolic link, whose first line is not empty.
///
/// # Errors
///
/// [`Error::ConfiguredPassphrase`] naming the file and what is wrong with it.
pub fn read_passphrase_file(path: &Path, subject: &str) -> Result<Passphrase> {
    crate::passphrase_file::read_passphrase_file(path, crate::passphrase_file::NamedBy::Setting)
        .map_err(|problem| Error::ConfiguredPassphrase {
            subject: subject.to_owned(),
            from: ConfiguredSource::File(path.to_owned()),
            problem,
        })
}

/// The passphrase in the environment variable a purpose's `passphrase_env` names, as
/// `env` gives it.
///
/// # Errors
///
/// [`Error::ConfiguredPassphrase`] for a variable that is not set (or not UTF-8: `env`
/// cannot tell them apart) or empty.
pub(crate) fn passphrase_from_env(
    variable: &str,
    subject: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Passphrase> {
    let wrong = |problem| Error::ConfiguredPassphrase {
        subject: subject.to_owned(),
        from: ConfiguredSource::Env(variable.to_owned()),
        problem,
    };
    match env(variable) {
        None => Err(wrong(SourceProblem::Unset)),
        Some(value) if value.is_empty() => Err(wrong(SourceProblem::Empty)),
        Some(value) => Ok(Passphrase::new(value)),
    }
}

impl Vault {
    /// The active keys due for rotation now, in purpose order (rotations in progress are
    /// the journal's, not listed).
    ///
    /// # Errors
    ///
    /// [`crate::StoreError`] when the inventory cannot be read.
    pub fn due_keys(&self) -> Result<Vec<DueKey>> {
        let inventory = self.store.load(crate::store::View::Live)?;
        Ok(self.due_in(&inventory, self.now()))
    }

    pub(crate) fn due_in(&self, inventory: &Inventory, now: DateTime<Utc>) -> Vec<DueKey> {
        let in_journal: HashSet<&Purpose> =
            inventory.journal().iter().map(|e| &e.purpose).collect();
        let mut due: Vec<DueKey> = inventory
            .keys()
            .iter()
            .filter(|k| k.state() == KeyState::Active && k.scope().is_none())
            .filter(|k| !in_journal.contains(k.purpose()))
            .filter_map(|k| {
                let policy = self.config.policy(k.purpose());
                let reason = due_reason(policy.rotation(), k.created_at(), k.expires_at(), now)?;
                Some(DueKey {
                    key: k.id().clone(),
                    purpose: k.purpose().clone(),
                    reason,
                    created_at: k.created_at(),
                    expires_at: k.expires_at(),
                    unattended: self.unattended(k),
                    pods: policy.rotation().pods(),
                })
            })
            .collect();
        due.sort_by(|a, b| a.purpose.cmp(&b.purpose));
        due
    }

    /// Where the rotation of `old` gets its passphrases: its successor's protection, as
    /// rotation chooses it, and for a passphrase the purpose's source.
    fn unattended(&self, old: &KeyRecord) -> Unattended {
        let policy = self.config.policy(old.purpose());
        let options = KeyOptions::successor(policy, old, &KeyOptions::default());
        // A successor the policy refuses fails at planning; its kind is the old key's.
        let protection = policy
            .admit(old.purpose(), &options, Origin::Generated, self.now())
            .map_or(old.protection(), |a| a.protection());
        match (protection, policy.rotation().passphrase()) {
            (Protection::Keyring, _) => Unattended::Keyring,
            (Protection::None, _) => Unattended::Unencrypted,
            (_, Some(PassphraseSource::Env(variable))) => Unattended::Env {
                variable: variable.clone(),
            },
            (_, Some(PassphraseSource::File(path))) => Unattended::File { path: path.clone() },
            (_, None) => Unattended::Person,
        }
    }

    /// `status`'s findings about the rotation policy, for live keys of purposes that have
    /// one: an active key that expires before the next scheduled run, due or not (high;
    /// an expired one is already an `expired` finding), else one that is due (medium).
    pub(crate) fn rotation_findings(
        &self,
        live: &[&KeyRecord],
        now: DateTime<Utc>,
    ) -> Vec<Finding> {
        let mut findings = Vec::new();
        for k in live
            .iter()
            .filter(|k| k.state() == KeyState::Active && k.scope().is_none())
        {
            let rule = self.config.policy(k.purpose()).rotation();
            // An expired key is already an `expired` finding.
            if !rule.is_scheduled() || k.is_expired_at(now) {
                continue;
            }
            let purpose = k.purpose().clone();
            let soon = k.expires_at().filter(|at| *at <= now + NEXT_RUN.to_delta());
            let due = due_reason(rule, k.created_at(), k.expires_at(), now);
            let finding = match (soon, due) {
                (Some(at), _) => Finding {
                    severity: Severity::High,
                    kind: FindingKind::ExpiresBeforeNextRun,
                    key_id: Some(k.id().clone()),
                    message: format!(
                        "key {} ({}) expires on {}, before the next scheduled rotation (assumed daily)",
                        k.id(),
                        purpose,
                        at.format("%Y-%m-%d %H:%M UTC")
                    ),
                    fix: Remedy::RotateNow { purpose },
                },
                (None, Some(reason)) => Finding {
                    severity: Severity::Medium,
                    kind: FindingKind::RotationDue,
                    key_id: Some(k.id().clone()),
                    message: format!(
                        "key {} ({}) is due for rotation: {}",
                        k.id(),
                        purpose,
                        match reason {
                            DueReason::Age => format!(
                                "created on {}, rotate_every {}",
                                k.created_at().format("%Y-%m-%d"),
                                rule.rotate_every().unwrap_or(Span::from_secs(0))
                            ),
                            _ => format!(
                                "it expires within rotate_before_expiry {}",
                                rule.rotate_before_expiry().unwrap_or(Span::from_secs(0))
                            ),
                        }
                    ),
                    // `sweep --rotate-due` only reports a key whose passphrase needs a person.
                    fix: if self.unattended(k) == Unattended::Person {
                        Remedy::RotateByHand { purpose }
                    } else {
                        Remedy::RotateDue { purpose }
                    },
                },
                (None, None) => continue,
            };
            findings.push(finding);
        }
        findings
    }

    /// `sweep --rotate-due --dry-run`: each due key with the rotation that would run (or
    /// why it would not: a passphrase only a person can give, or a `passphrase_env` /
    /// `passphrase_file` that would fail, checked as the real run checks it). Changes
    /// nothing; the usual sweep is not run. `env` as for [`Vault::sweep_rotate_due`].
    ///
    /// # Errors
    ///
    /// [`crate::StoreError`] when the inventory cannot be read.
    pub fn plan_due(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<DueRun> {
        let inventory = self.store.load(crate::store::View::Live)?;
        let now = self.now();
        let rotations = self
            .due_in(&inventory, now)
            .into_iter()
            .map(|due| {
                let result = match self.unattended_passphrase(&due, env) {
                    _ if due.unattended == Unattended::Person => DueResult::NeedsPerson,
                    Err(e) => DueResult::Failed(e),
                    Ok(_) => match self.plan_in(&inventory, &due_request(&due), now) {
                        Ok(mut plan) if !plan.rotations.is_empty() => {
                            DueResult::Planned(Box::new(plan.rotations.remove(0)))
                        }
                        Ok(_) => {
                            DueResult::Failed(crate::error::RequestError::NothingToRotate.into())
                        }
                        Err(e) => DueResult::Failed(e),
                    },
                };
                DueRotation { due, result }
            })
            .collect();
        Ok(DueRun {
            swept: None,
            rotations,
        })
    }

    /// `sweep --rotate-due`: the usual [`Vault::sweep`], except that it leaves due keys
    /// where they are even when expired, then rotates each due key whose passphrase can be
    /// had without a person, one purpose at a time with [`Vault::rotate`] (`--pods` where
    /// the policy says `pods = true`). `env` reads an environment variable for
    /// `passphrase_env` (the library reads no environment itself).
    ///
    /// # Errors
    ///
    /// Errors of the sweep other than [`Error::Incomplete`] (a locked or unreadable
    /// vault); an incomplete sweep, failed rotations and keys needing a person are in the
    /// returned [`DueRun`].
    pub fn sweep_rotate_due<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        targets: &dyn Targets,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<DueRun> {
        let swept = match self.sweep_keeping(targets, true, env) {
            Err(e) if !matches!(e, Error::Incomplete(_)) => return Err(e),
            other => other,
        };
        let rotations = self
            .due_keys()?
            .into_iter()
            .map(|due| {
                let result = self.rotate_due_key(rng, &due, targets, env);
                DueRotation { due, result }
            })
            .collect();
        Ok(DueRun {
            swept: Some(swept),
            rotations,
        })
    }

    /// The passphrase `due`'s rotation is given (`None`: the keyring holds it, none is
    /// needed, or only a person has it), checked against the purpose's policy as the new
    /// key's.
    fn unattended_passphrase(
        &self,
        due: &DueKey,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Passphrase>> {
        let subject = format!("key {} (purpose {})", due.key, due.purpose);
        let passphrase = match &due.unattended {
            Unattended::Keyring | Unattended::Unencrypted | Unattended::Person => {
                return Ok(None);
            }
            Unattended::Env { variable } => passphrase_from_env(variable, &subject, env),
            Unattended::File { path } => read_passphrase_file(path, &subject),
        }?;
        let context = self.context_words(&due.purpose, None);
        self.config.policy(&due.purpose).check_passphrase(
            &due.purpose,
            &subject,
            &passphrase,
            &context,
        )?;
        Ok(Some(passphrase))
    }

    /// Rotates one due key's purpose without asking anyone.
    fn rotate_due_key<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        due: &DueKey,
        targets: &dyn Targets,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> DueResult {
        if due.unattended == Unattended::Person {
            return DueResult::NeedsPerson;
        }
        let passphrase = match self.unattended_passphrase(due, env) {
            Ok(p) => p,
            Err(e) => return DueResult::Failed(e),
        };
        match self.rotate(rng, &due_request(due), &mut NoPerson(passphrase), targets) {
            Ok(report) => DueResult::Rotated(report),
            // Only this key is rotated: another run rotated it since it was found due.
            Err(Error::Request(crate::error::RequestError::NothingToRotate)) => {
                DueResult::RotatedElsewhere
            }
            Err(e) => DueResult::Failed(e),
        }
    }
}

/// The rotation of `due`'s purpose, of that key only (`--pods` where the policy says so).
fn due_request(due: &DueKey) -> RotateRequest {
    let mut request = RotateRequest::purposes(vec![due.purpose.clone()]).pods(due.pods);
    request.only_old = Some(due.key.clone());
    request
}

#[cfg(test)]
mod tests {
    use super::{DueReason, due_reason};
    use crate::policy::RotationRule;
    use crate::span::Span;
    use chrono::{DateTime, TimeDelta, Utc};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    fn rule(every: Option<u64>, before: Option<u64>) -> RotationRule {
        RotationRule {
            rotate_every: every.map(Span::from_days),
            rotate_before_expiry: before.map(Span::from_days),
            ..RotationRule::default()
        }
    }

    #[test]
    fn age_is_due_exactly_at_rotate_every() {
        let created = t("2030-01-01T00:00:00Z");
        let r = rule(Some(90), None);
        let at = created + TimeDelta::days(90);
        assert_eq!(due_reason(&r, created, None, at), Some(DueReason::Age));
        assert_eq!(
            due_reason(&r, created, None, at - TimeDelta::seconds(1)),
            None
        );
        // A key without expiry is due by age alone.
        assert_eq!(
            due_reason(&r, created, None, at + TimeDelta::days(400)),
            Some(DueReason::Age)
        );
    }

    #[test]
    fn near_expiry_is_due_exactly_at_rotate_before_expiry() {
        let created = t("2030-01-01T00:00:00Z");
        let expires = created + TimeDelta::days(90);
        let r = rule(None, Some(14));
        let at = expires - TimeDelta::days(14);
        assert_eq!(
            due_reason(&r, created, Some(expires), at),
            Some(DueReason::NearExpiry)
        );
        assert_eq!(
            due_reason(&r, created, Some(expires), at - TimeDelta::seconds(1)),
            None
        );
        // Without expiry, rotate_before_expiry never makes a key due.
        assert_eq!(
            due_reason(&r, created, None, expires + TimeDelta::days(9)),
            None
        );
        // Expired at its expiry instant.
        assert_eq!(
            due_reason(&r, created, Some(expires), expires),
            Some(DueReason::Expired)
        );
    }

    #[test]
    fn both_settings_give_the_most_urgent_reason() {
        let created = t("2030-01-01T00:00:00Z");
        let expires = created + TimeDelta::days(100);
        let r = rule(Some(30), Some(14));
        let day = |n| created + TimeDelta::days(n);
        assert_eq!(due_reason(&r, created, Some(expires), day(29)), None);
        assert_eq!(
            due_reason(&r, created, Some(expires), day(30)),
            Some(DueReason::Age)
        );
        assert_eq!(
            due_reason(&r, created, Some(expires), day(86)),
            Some(DueReason::NearExpiry)
        );
        assert_eq!(
            due_reason(&r, created, Some(expires), day(100)),
            Some(DueReason::Expired)
        );
    }

    #[test]
    fn no_policy_nothing_is_due() {
        let created = t("2030-01-01T00:00:00Z");
        let r = rule(None, None);
        let later = created + TimeDelta::days(10_000);
        assert_eq!(due_reason(&r, created, Some(created), later), None);
        assert_eq!(due_reason(&r, created, None, later), None);
    }
}
