//! Health of a vault: what `keyvault status` reports.

use crate::error::{Result, StoreError};
use crate::inventory::KeyId;
use crate::inventory::{Inventory, KeyRecord, KeyState, Purpose};
use crate::span::Span;
use crate::target::TargetSpec;
use crate::vault::Vault;
use serde::Serialize;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How many of the audit log's newest lines `status` checks against the recorded head;
/// `log --verify` checks them all.
pub const STATUS_AUDIT_LINES: u64 = 1000;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Severity {
    /// Worth knowing.
    Low,
    /// Act soon (e.g. a key expiring within the warning window).
    Medium,
    /// Act now (e.g. an expired key still in use, a broken audit log).
    High,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        })
    }
}

/// A severity name that is not `low`, `medium` or `high`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseSeverityError {
    value: String,
}

impl fmt::Display for ParseSeverityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown severity {:?}: expected low, medium or high",
            self.value
        )
    }
}

impl std::error::Error for ParseSeverityError {}

impl std::str::FromStr for Severity {
    type Err = ParseSeverityError;

    /// The names [`Severity`]'s `Display` writes: `low`, `medium`, `high`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            _ => Err(ParseSeverityError {
                value: s.to_owned(),
            }),
        }
    }
}

/// What kind of problem a finding is; stable names for alerting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FindingKind {
    /// A key past its expiry that is still active, pending or retiring.
    Expired,
    /// A key that expires within the warning window.
    Expiring,
    /// The audit log does not verify.
    AuditBroken,
    /// A file in the home others can access.
    Permissions,
    /// A live key's private key file is missing or does not match.
    KeyFile,
    /// A target lacks a key the inventory says is deployed there.
    Missing,
    /// A target still trusts a key that was revoked or removed from it.
    StillTrusted,
    /// A running pod trusts a retiring, revoked or expired key; or a pod that is not
    /// terminated trusts one again when it (re)starts (its `PUBLIC_KEY` holds it).
    PodTrustsOldKey,
    /// A rotation stopped part-way, or its grace period is over.
    Interrupted,
    /// `current/<purpose>` does not name the purpose's active key.
    CurrentLink,
    /// A live key's passphrase should be in the OS keyring and is not.
    KeyringPassphrase,
    /// A target's line for a key has other options than keyvault wrote (high when they
    /// trust more).
    OptionsDrift,
    /// A target's line keyvault cannot be sure how sshd reads (kept as it is).
    UnsureLine,
    /// An active key is due under its purpose's rotation policy (`rotate_every`,
    /// `rotate_before_expiry`).
    RotationDue,
    /// An active key of a purpose with a rotation policy expires before the next
    /// scheduled run (assumed daily).
    ExpiresBeforeNextRun,
}

/// One problem `status` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub(crate) severity: Severity,
    pub(crate) kind: FindingKind,
    pub(crate) key_id: Option<KeyId>,
    pub(crate) message: String,
    pub(crate) fix: Remedy,
}

/// What to do about a [`Finding`], as data: the CLI words it (for example as the command
/// `keyvault deploy team-2 --to runpod`). Serialized with its kind in `remedy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "remedy", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Remedy {
    /// Replace the expired key: rotate its purpose.
    Replace {
        /// The purpose to rotate.
        purpose: Purpose,
    },
    /// Rotate the purpose before its key expires.
    RotateBeforeExpiry {
        /// The purpose to rotate.
        purpose: Purpose,
    },
    /// Take away others' access to a file.
    Chmod {
        /// The mode it should have.
        mode: u32,
        /// The file.
        path: PathBuf,
    },
    /// Restore the missing private key file from a backup, or revoke the key.
    RestoreKeyFile,
    /// Find out who changed the audit log (`log --verify` shows where).
    InspectAuditLog,
    /// `sweep` re-points `current/<purpose>`.
    Relink,
    /// Restore the keyring passphrase from an export that holds it, or rotate the purpose
    /// away.
    RestoreKeyringPassphrase {
        /// The purpose of the key.
        purpose: Purpose,
    },
    /// Finish the interrupted rotation, or roll it back.
    FinishRotation {
        /// The purpose being rotated.
        purpose: Purpose,
    },
    /// `sweep` retries the pods and drops those that are gone; pods it cannot reach need a
    /// redeploy.
    RetryPods,
    /// Deploy the key to the target again.
    Deploy {
        /// The key.
        key: KeyId,
        /// The target.
        target: TargetSpec,
    },
    /// Revoke the key.
    Revoke {
        /// The key.
        key: KeyId,
    },
    /// Check the target's line by hand and rewrite or remove it.
    CheckLine {
        /// The target.
        target: TargetSpec,
    },
    /// Remove the key from the pod's `authorized_keys` over its direct SSH endpoint, or
    /// redeploy the pod.
    RemoveFromPod {
        /// The SSH user.
        user: String,
        /// The endpoint's host.
        host: String,
        /// The endpoint's port.
        port: u16,
    },
    /// Redeploy the pod: it has no direct SSH endpoint.
    RedeployPod,
    /// Redeploy the pod (or terminate it): its `PUBLIC_KEY` holds the key, which it trusts
    /// again whenever it (re)starts, whatever was removed from it over SSH.
    RedeployPodEnv,
    /// Rotate the purpose: `sweep --rotate-due` does it when it runs, or a person now.
    RotateDue {
        /// The purpose to rotate.
        purpose: Purpose,
    },
    /// Rotate the purpose now: the next scheduled run comes after the key expires.
    RotateNow {
        /// The purpose to rotate.
        purpose: Purpose,
    },
    /// Rotate the purpose by hand: its passphrase needs a person, so `sweep --rotate-due`
    /// only reports it.
    RotateByHand {
        /// The purpose to rotate.
        purpose: Purpose,
    },
}

impl Finding {
    /// How serious it is.
    #[must_use]
    pub fn severity(&self) -> Severity {
        self.severity
    }
    /// What kind of problem it is.
    #[must_use]
    pub fn kind(&self) -> FindingKind {
        self.kind
    }
    /// The key concerned, if one.
    #[must_use]
    pub fn key_id(&self) -> Option<&KeyId> {
        self.key_id.as_ref()
    }
    /// What is wrong.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
    /// What to do about it.
    #[must_use]
    pub fn fix(&self) -> &Remedy {
        &self.fix
    }
}

/// Everything `status` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    pub(crate) checked_at: chrono::DateTime<chrono::Utc>,
    pub(crate) keys: usize,
    pub(crate) live_keys: usize,
    pub(crate) findings: Vec<Finding>,
    pub(crate) targets: Vec<TargetSummary>,
    pub(crate) unchecked: Vec<Unchecked>,
    pub(crate) in_grace: Vec<InGrace>,
}

/// A replaced key still deployed during its rotation's grace period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InGrace {
    /// The retiring key.
    pub key: KeyId,
    /// Its purpose.
    pub purpose: String,
    /// The key that replaced it.
    pub replaced_by: KeyId,
    /// When the grace period ends (`sweep` removes the key then).
    pub until: chrono::DateTime<chrono::Utc>,
}

/// What one target holds, as `status` saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetSummary {
    /// The target.
    pub target: crate::target::TargetSpec,
    /// Keys keyvault manages there.
    pub managed: usize,
    /// Keys keyvault does not manage (never touched).
    pub unmanaged: usize,
    /// Lines that are not public keys (never touched).
    pub unparseable: usize,
}

/// A target `status` could not check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unchecked {
    /// The target.
    pub target: String,
    /// Why.
    pub reason: String,
}

impl StatusReport {
    /// Whether nothing was found.
    #[must_use]
    pub fn is_healthy(&self) -> bool {
        self.findings.is_empty()
    }
    /// The findings, most severe first.
    #[must_use]
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }
    /// Keys in the inventory.
    #[must_use]
    pub fn keys(&self) -> usize {
        self.keys
    }
    /// Keys not revoked.
    #[must_use]
    pub fn live_keys(&self) -> usize {
        self.live_keys
    }
    /// What each reachable target holds.
    #[must_use]
    pub fn targets(&self) -> &[TargetSummary] {
        &self.targets
    }
    /// Targets that could not be checked (status is then incomplete).
    #[must_use]
    pub fn unchecked(&self) -> &[Unchecked] {
        &self.unchecked
    }
    /// Replaced keys still deployed during a grace period, and when each period ends.
    #[must_use]
    pub fn in_grace(&self) -> &[InGrace] {
        &self.in_grace
    }
    /// When the check ran.
    #[must_use]
    pub fn checked_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.checked_at
    }
}

/// The promoted rotations whose old key is kept deployed until a grace period ends.
pub(crate) fn in_grace(inventory: &crate::inventory::Inventory) -> Vec<InGrace> {
    inventory
        .journal()
        .iter()
        .filter(|e| e.step() == crate::inventory::Step::Promoted)
        .filter_map(|e| {
            Some(InGrace {
                key: e.old().clone(),
                purpose: e.purpose().to_string(),
                replaced_by: e.new_key().clone(),
                until: e.grace_until()?,
            })
        })
        .collect()
}

impl Vault {
    /// Checks the vault's health at the clock's "now": expired keys still live, keys
    /// expiring within `warn_within` (default: each purpose's policy), a broken audit log,
    /// key files missing or accessible to others, interrupted rotations; and with
    /// `targets`, what every target really holds (drift, unmanaged keys, pods that still
    /// trust old keys). Targets that cannot be read are listed in
    /// [`StatusReport::unchecked`].
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the inventory itself cannot be read.
    pub fn status(
        &self,
        warn_within: Option<Span>,
        targets: Option<&dyn crate::target::Targets>,
    ) -> Result<StatusReport> {
        // Files others can read are findings, not failures: a monitor must say so.
        let mut findings = self.file_mode_findings();
        // The key files' modes are read on a second thread while the inventory is parsed:
        // at fleet size each takes about as long as the other.
        let keys_dir = self.paths.keys_dir();
        let scan = std::thread::spawn(move || key_file_modes(&keys_dir));
        // Offline, only live records matter; reading what targets trust looks for revoked
        // keys left behind too, so it needs the history.
        let view = if targets.is_some() {
            crate::store::View::All
        } else {
            crate::store::View::Live
        };
        let inventory = match self.store.load(view) {
            Ok(i) => i,
            Err(StoreError::Permissions { .. }) if !findings.is_empty() => {
                return Ok(StatusReport {
                    checked_at: self.now(),
                    keys: 0,
                    live_keys: 0,
                    findings,
                    targets: Vec::new(),
                    unchecked: Vec::new(),
                    in_grace: Vec::new(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let now = self.now();
        let live: Vec<&KeyRecord> = inventory
            .keys()
            .iter()
            .filter(|k| k.state() != KeyState::Revoked)
            .collect();
        let modes = scan.join().ok().flatten();
        for k in &live {
            findings.extend(self.expiry_finding(k, warn_within, now));
            findings.extend(self.key_file_finding(k, modes.as_ref()));
        }
        findings.extend(self.audit_finding(&inventory));
        findings.extend(self.journal_findings(&inventory, now));
        findings.extend(self.rotation_findings(&live, now));
        findings.extend(self.current_link_findings(&inventory));
        let (summaries, mut unchecked) = match targets {
            Some(t) => self.target_findings(&inventory, t, now, &mut findings),
            None => (Vec::new(), Vec::new()),
        };
        self.keyring_findings(&live, &mut findings, &mut unchecked);
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        Ok(StatusReport {
            checked_at: now,
            keys: inventory.count_all(),
            live_keys: live.len(),
            findings,
            targets: summaries,
            unchecked,
            in_grace: crate::status::in_grace(&inventory),
        })
    }

    /// An audit log whose newest lines do not verify against the inventory's head (a
    /// bounded check: `log --verify` checks every line).
    fn audit_finding(&self, inventory: &Inventory) -> Option<Finding> {
        let e = self
            .verify_audit_newest(inventory.audit_head(), STATUS_AUDIT_LINES)
            .err()?;
        Some(Finding {
            severity: Severity::High,
            kind: FindingKind::AuditBroken,
            key_id: None,
            message: e.to_string(),
            fix: Remedy::InspectAuditLog,
        })
    }

    /// A live key that has expired, or expires within `warn_within` (default: its
    /// purpose's policy) and is not scoped.
    fn expiry_finding(
        &self,
        k: &KeyRecord,
        warn_within: Option<Span>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<Finding> {
        let window = warn_within.unwrap_or_else(|| self.config.policy(k.purpose()).warn_within());
        let at = k.expires_at()?;
        if at <= now {
            Some(Finding {
                severity: Severity::High,
                kind: FindingKind::Expired,
                key_id: Some(k.id().clone()),
                message: format!(
                    "key {} ({}, {}) expired on {}",
                    k.id(),
                    k.purpose(),
                    k.state(),
                    at.format("%Y-%m-%d %H:%M UTC")
                ),
                fix: Remedy::Replace {
                    purpose: k.purpose().clone(),
                },
            })
        } else if at <= now + window.to_delta() && k.scope().is_none() {
            // Scoped keys are short-lived by design: only their expiry matters.
            Some(Finding {
                severity: Severity::Medium,
                kind: FindingKind::Expiring,
                key_id: Some(k.id().clone()),
                message: format!(
                    "key {} ({}) expires on {}",
                    k.id(),
                    k.purpose(),
                    at.format("%Y-%m-%d %H:%M UTC")
                ),
                fix: Remedy::RotateBeforeExpiry {
                    purpose: k.purpose().clone(),
                },
            })
        } else {
            None
        }
    }

    /// A live key whose private key file is missing or accessible to others; `modes` is
    /// the listing of `keys/` when it could be read.
    fn key_file_finding(
        &self,
        k: &KeyRecord,
        modes: Option<&std::collections::HashMap<String, Option<u32>>>,
    ) -> Option<Finding> {
        let path = self.private_key_path(k);
        // The mode of the key's file if it is a regular file (the inventory's paths are
        // always keys/<id>, checked when it is read).
        let mode = match modes {
            Some(modes) => modes.get(k.id().as_str()).copied().flatten(),
            None => std::fs::symlink_metadata(&path)
                .ok()
                .filter(std::fs::Metadata::is_file)
                .map(|meta| meta.mode()),
        };
        match mode {
            Some(mode) if mode & 0o077 != 0 => Some(Finding {
                severity: Severity::High,
                kind: FindingKind::Permissions,
                key_id: Some(k.id().clone()),
                message: format!(
                    "private key {} has mode {:04o}; expected 0600",
                    path.display(),
                    mode & 0o7777
                ),
                fix: Remedy::Chmod {
                    mode: 0o600,
                    path: path.clone(),
                },
            }),
            Some(_) => None,
            // A shared store's keys were made on several machines; each keeps its own.
            None if self.shared_store() => None,
            None => Some(Finding {
                severity: Severity::High,
                kind: FindingKind::KeyFile,
                key_id: Some(k.id().clone()),
                message: format!(
                    "private key file {} of live key {} is missing",
                    path.display(),
                    k.id()
                ),
                fix: Remedy::RestoreKeyFile,
            }),
        }
    }

    /// `current/<purpose>` links that do not name the purpose's active key (a crash between
    /// recording a key and swapping the link, or a hand edit).
    pub(crate) fn current_link_findings(&self, inventory: &Inventory) -> Vec<Finding> {
        let mut out = Vec::new();
        for purpose in inventory.purposes() {
            let Some(active) = inventory.active(purpose) else {
                continue;
            };
            if self.shared_store()
                && std::fs::symlink_metadata(self.private_key_path(active)).is_err()
            {
                // Made on another machine sharing the store: no link to it here.
                continue;
            }
            let link = self.current_path(purpose);
            let points_at = std::fs::read_link(&link).ok();
            if points_at.as_deref()
                != Some(Path::new("../keys").join(active.id().as_str()).as_path())
            {
                out.push(Finding {
                    severity: Severity::Medium,
                    kind: FindingKind::CurrentLink,
                    key_id: Some(active.id().clone()),
                    message: format!(
                        "{} does not point at {}, the active key of {purpose}{}",
                        link.display(),
                        active.id(),
                        points_at
                            .map(|p| format!(" (it points at {})", p.display()))
                            .unwrap_or_default()
                    ),
                    fix: Remedy::Relink,
                });
            }
        }
        out
    }

    /// Files of the home that others can access: the home and `keys/` (0700), the
    /// inventory and the audit log (0600). (`config.toml` holds no secret.)
    pub(crate) fn file_mode_findings(&self) -> Vec<Finding> {
        let checks = [
            (self.paths.home().to_owned(), 0o700),
            (self.paths.keys_dir(), 0o700),
            (self.paths.inventory_path(), 0o600),
            (self.paths.audit_path(), 0o600),
        ];
        checks
            .into_iter()
            .filter_map(|(path, expected)| {
                let mode = std::fs::symlink_metadata(&path).ok()?.mode() & 0o7777;
                (mode & 0o077 != 0).then(|| Finding {
                    severity: Severity::High,
                    kind: FindingKind::Permissions,
                    key_id: None,
                    message: format!(
                        "{} has mode {mode:04o}; expected {expected:04o}",
                        path.display()
                    ),
                    fix: Remedy::Chmod {
                        mode: expected,
                        path: path.clone(),
                    },
                })
            })
            .collect()
    }

    /// Live keys whose passphrase the inventory places in the OS keyring: each entry must be
    /// there, or the key cannot be opened. An unreachable keyring leaves them unchecked.
    pub(crate) fn keyring_findings(
        &self,
        live: &[&KeyRecord],
        findings: &mut Vec<Finding>,
        unchecked: &mut Vec<crate::status::Unchecked>,
    ) {
        let held: Vec<(&KeyRecord, &str)> = live
            .iter()
            .filter_map(|k| k.keyring_account().map(|a| (*k, a)))
            .collect();
        if held.is_empty() {
            return;
        }
        let keyring = match self.keyring() {
            Ok(k) => k,
            Err(e) => {
                unchecked.push(crate::status::Unchecked {
                    target: "os-keyring".to_owned(),
                    reason: e.to_string(),
                });
                return;
            }
        };
        for (k, account) in held {
            match keyring.get(account) {
                Ok(Some(_)) => {}
                Ok(None) => findings.push(Finding {
                    severity: Severity::High,
                    kind: FindingKind::KeyringPassphrase,
                    key_id: Some(k.id().clone()),
                    message: format!(
                        "the passphrase of key {} is missing from the OS keyring (service keyvault, account {account}): the key cannot be opened",
                        k.id()
                    ),
                    fix: Remedy::RestoreKeyringPassphrase {
                        purpose: k.purpose().clone(),
                    },
                }),
                Err(e) => {
                    unchecked.push(crate::status::Unchecked {
                        target: "os-keyring".to_owned(),
                        reason: e.to_string(),
                    });
                    return;
                }
            }
        }
    }
}

/// The mode of every private key file in `dir` by file name (`None`: there, but not a
/// regular file), from one directory listing: each entry is `lstat`ed relative to the
/// directory, with no path walk. `None` when the directory cannot be listed (the caller then
/// looks at each file itself).
pub(crate) fn key_file_modes(dir: &Path) -> Option<std::collections::HashMap<String, Option<u32>>> {
    let mut modes = std::collections::HashMap::new();
    for entry in std::fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        // Public halves and temporary files are not private keys.
        if name.ends_with(".pub") || name.starts_with('.') {
            continue;
        }
        // `DirEntry::metadata` does not follow symlinks.
        let mode = entry
            .metadata()
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|meta| meta.mode());
        modes.insert(name, mode);
    }
    Some(modes)
}

#[cfg(test)]
mod tests;
