//! Health of a vault: what `keyvault status` reports.

use crate::inventory::KeyId;
use serde::Serialize;
use std::fmt;

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
    /// A running pod trusts a retiring, revoked or expired key.
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
}

/// One problem `status` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub(crate) severity: Severity,
    pub(crate) kind: FindingKind,
    pub(crate) key_id: Option<KeyId>,
    pub(crate) message: String,
    pub(crate) fix: String,
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
    pub fn fix(&self) -> &str {
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
    pub target: String,
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

#[cfg(test)]
mod tests {
    use super::Severity;

    #[test]
    fn severity_parses_what_it_displays_and_nothing_else() {
        for s in [Severity::Low, Severity::Medium, Severity::High] {
            assert_eq!(s.to_string().parse::<Severity>(), Ok(s));
        }
        for bad in ["", "HIGH", "critical", " low"] {
            let e = bad.parse::<Severity>().expect_err(bad);
            assert_eq!(
                e.to_string(),
                format!("unknown severity {bad:?}: expected low, medium or high")
            );
        }
    }
}
