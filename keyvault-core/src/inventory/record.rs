//! One key of the inventory: [`KeyRecord`] with its [`KeyState`], [`Protection`],
//! [`Origin`], [`Deployment`]s, [`Scope`] and [`CertificateInfo`].

use super::{KeyId, Purpose};
use crate::keygen::Algorithm;
use crate::names::{Principal, SourcePattern};
use crate::target::TargetSpec;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ssh_key::Fingerprint;
use std::fmt;

/// Where a key is in its life. `expired` is not a state: it is derived from the clock
/// ([`KeyRecord::is_expired_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum KeyState {
    /// Generated, not yet trusted everywhere (during a rotation).
    Pending,
    /// The purpose's key in use.
    Active,
    /// Replaced, still trusted somewhere until removal finishes.
    Retiring,
    /// Removed everywhere; never used again.
    Revoked,
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyState::Pending => "pending",
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
            KeyState::Revoked => "revoked",
        })
    }
}

/// How a key's private half is protected at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Protection {
    /// Encrypted with a passphrase the user supplies.
    Passphrase,
    /// Not encrypted (only where the purpose's policy allows it).
    None,
    /// Encrypted with a random passphrase kept in the OS keyring (`--passphrase-keyring`).
    Keyring,
}

/// A place a key's public half is trusted, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    target: TargetSpec,
    #[serde(with = "crate::timestamp")]
    added_at: DateTime<Utc>,
    #[serde(default, with = "crate::timestamp::option")]
    verified_at: Option<DateTime<Utc>>,
    #[serde(default, with = "crate::timestamp::option")]
    removed_at: Option<DateTime<Utc>>,
}

impl Deployment {
    /// The target, e.g. `runpod` or `file:/home/me/.ssh/authorized_keys`.
    #[must_use]
    pub fn target(&self) -> &TargetSpec {
        &self.target
    }
    /// When the key was added there.
    #[must_use]
    pub fn added_at(&self) -> DateTime<Utc> {
        self.added_at
    }
    /// When its presence was last verified.
    #[must_use]
    pub fn verified_at(&self) -> Option<DateTime<Utc>> {
        self.verified_at
    }
    /// When it was removed, if it was.
    #[must_use]
    pub fn removed_at(&self) -> Option<DateTime<Utc>> {
        self.removed_at
    }
}

/// One key of the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    pub(crate) id: KeyId,
    pub(crate) purpose: Purpose,
    pub(crate) algorithm: Algorithm,
    #[serde(with = "crate::names::fingerprint_text")]
    pub(crate) fingerprint: Fingerprint,
    pub(crate) public_key: String,
    pub(crate) comment: String,
    #[serde(with = "crate::timestamp")]
    pub(crate) created_at: DateTime<Utc>,
    #[serde(default, with = "crate::timestamp::option")]
    pub(crate) expires_at: Option<DateTime<Utc>>,
    pub(crate) state: KeyState,
    pub(crate) protection: Protection,
    pub(crate) kdf_rounds: Option<u32>,
    pub(crate) origin: Origin,
    pub(crate) private_key_path: String,
    #[serde(default)]
    pub(crate) deployments: Vec<Deployment>,
    #[serde(default)]
    pub(crate) rotated_from: Option<KeyId>,
    #[serde(default)]
    pub(crate) rotated_to: Option<KeyId>,
    #[serde(default, with = "crate::timestamp::option")]
    pub(crate) revoked_at: Option<DateTime<Utc>>,
    #[serde(default, with = "crate::timestamp::option")]
    pub(crate) pruned_at: Option<DateTime<Utc>>,
    /// Restrictions of a scoped (minted) key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<Scope>,
    /// For a certificate authority: the principals it is trusted for (`ca trust`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cert_authority: Option<Vec<Principal>>,
    /// For a key with a user certificate (`mint --cert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) certificate: Option<CertificateInfo>,
    /// The keyring account holding the passphrase, when `protection` is `keyring`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) keyring_account: Option<String>,
    /// The machine whose `keys/` holds the private key, when several share the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) machine: Option<String>,
}

/// A user certificate keyvault signed for a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateInfo {
    /// The CA key that signed it.
    pub ca: KeyId,
    /// Serial number.
    pub serial: u64,
    /// Principals it is valid for.
    pub principals: Vec<Principal>,
    /// Start of its validity window.
    #[serde(with = "crate::timestamp")]
    pub valid_after: DateTime<Utc>,
    /// End of its validity window.
    #[serde(with = "crate::timestamp")]
    pub valid_before: DateTime<Utc>,
    /// The certificate file, relative to the home (`keys/<id>-cert.pub`).
    pub path: String,
}

/// What a scoped key may do, written as `authorized_keys` options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Source addresses or CIDRs allowed to use the key (`from="…"`).
    pub from: Vec<SourcePattern>,
    /// The only command the key may run (`command="…"`).
    pub force_command: Option<String>,
}

/// Quotes an option value the way sshd reads it back (OpenSSH's `opt_dequote`): inside the
/// quotes only `\"` is an escape (it stands for `"`); every other backslash is literal.
/// So `"` is written `\"` and nothing else changes. A value ending in a backslash cannot
/// be written (its closing quote would read as `\"`): [`option_value_representable`].
pub(crate) fn quote_option_value(value: &str) -> String {
    value.replace('"', "\\\"")
}

/// Whether sshd can read `value` back exactly once quoted by [`quote_option_value`]: one
/// line, no NUL, and not ending in a backslash.
pub(crate) fn option_value_representable(value: &str) -> bool {
    !value.ends_with('\\') && !value.contains(['\n', '\r', '\0'])
}

/// How a key came into the vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Origin {
    /// Generated by keyvault.
    Generated,
    /// Adopted with `keyvault import`.
    Imported,
}

impl KeyRecord {
    /// The key's id.
    #[must_use]
    pub fn id(&self) -> &KeyId {
        &self.id
    }
    /// Its purpose.
    #[must_use]
    pub fn purpose(&self) -> &Purpose {
        &self.purpose
    }
    /// Its algorithm.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
    /// SHA256 fingerprint (`SHA256:…` as `ssh-keygen -lf` prints it).
    #[must_use]
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }
    /// The OpenSSH public key line.
    #[must_use]
    pub fn public_key(&self) -> &str {
        &self.public_key
    }
    /// The key's comment.
    #[must_use]
    pub fn comment(&self) -> &str {
        &self.comment
    }
    /// When it was created (or imported).
    #[must_use]
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    /// When it expires, if ever.
    #[must_use]
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires_at
    }
    /// Its stored state.
    #[must_use]
    pub fn state(&self) -> KeyState {
        self.state
    }
    /// How the private key is protected.
    #[must_use]
    pub fn protection(&self) -> Protection {
        self.protection
    }
    /// bcrypt-pbkdf rounds of the private key file, if encrypted.
    #[must_use]
    pub fn kdf_rounds(&self) -> Option<u32> {
        self.kdf_rounds
    }
    /// Whether keyvault generated or imported it.
    #[must_use]
    pub fn origin(&self) -> Origin {
        self.origin
    }
    /// The private key file, relative to the vault's home (`keys/<id>`).
    #[must_use]
    pub fn private_key_path(&self) -> &str {
        &self.private_key_path
    }
    /// Where it is deployed.
    #[must_use]
    pub fn deployments(&self) -> &[Deployment] {
        &self.deployments
    }
    /// The key it replaced.
    #[must_use]
    pub fn rotated_from(&self) -> Option<&KeyId> {
        self.rotated_from.as_ref()
    }
    /// The key that replaced it.
    #[must_use]
    pub fn rotated_to(&self) -> Option<&KeyId> {
        self.rotated_to.as_ref()
    }
    /// When it was revoked.
    #[must_use]
    pub fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.revoked_at
    }
    /// The restrictions of a scoped key made by `mint`; such keys are never a purpose's
    /// active key and never rotated: they expire.
    #[must_use]
    pub fn scope(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }
    /// Whether this key is a certificate authority, and for which principals.
    #[must_use]
    pub fn cert_authority(&self) -> Option<&[Principal]> {
        self.cert_authority.as_deref()
    }
    /// The user certificate keyvault signed for this key, if any.
    #[must_use]
    pub fn certificate(&self) -> Option<&CertificateInfo> {
        self.certificate.as_ref()
    }
    /// The OS keyring account holding this key's passphrase (`protection` = `keyring`).
    #[must_use]
    pub fn keyring_account(&self) -> Option<&str> {
        self.keyring_account.as_deref()
    }
    /// The `authorized_keys` line for this key: `restrict` plus `from=` and `command=` for
    /// a scoped key, `expiry-time=` (UTC) whenever it expires, so sshd refuses it once it
    /// has expired even if `sweep` never ran.
    #[must_use]
    pub fn authorized_keys_line(&self) -> String {
        let mut options = Vec::new();
        if let Some(principals) = &self.cert_authority {
            options.push("cert-authority".to_owned());
            if !principals.is_empty() {
                options.push(format!("principals=\"{}\"", crate::names::join(principals)));
            }
        }
        if let Some(scope) = &self.scope {
            options.push("restrict".to_owned());
            if !scope.from.is_empty() {
                options.push(format!("from=\"{}\"", crate::names::join(&scope.from)));
            }
            if let Some(cmd) = &scope.force_command {
                options.push(format!("command=\"{}\"", quote_option_value(cmd)));
            }
        }
        if let Some(at) = self.expires_at {
            options.push(format!("expiry-time=\"{}\"", at.format("%Y%m%d%H%M%SZ")));
        }
        let line = self.deploy_line();
        if options.is_empty() {
            line
        } else {
            format!("{} {line}", options.join(","))
        }
    }
    /// The machine that made the key and keeps its private key file (its host name), recorded
    /// when several machines share the store (PostgreSQL) and the vault was given its name
    /// ([`crate::Vault::with_machine`]); `None` otherwise.
    #[must_use]
    pub fn machine(&self) -> Option<&str> {
        self.machine.as_deref()
    }
    /// When its private key file was deleted by `prune`.
    #[must_use]
    pub fn pruned_at(&self) -> Option<DateTime<Utc>> {
        self.pruned_at
    }
    /// Targets it is deployed to and not yet removed from.
    #[must_use]
    pub fn live_targets(&self) -> Vec<&TargetSpec> {
        self.deployments
            .iter()
            .filter(|d| d.removed_at.is_none())
            .map(|d| &d.target)
            .collect()
    }
    /// Records that the key is trusted at `target` (verified now).
    pub(crate) fn mark_deployed(&mut self, target: &TargetSpec, now: DateTime<Utc>) {
        match self
            .deployments
            .iter_mut()
            .find(|d| &d.target == target && d.removed_at.is_none())
        {
            Some(d) => d.verified_at = Some(now),
            None => self.deployments.push(Deployment {
                target: target.clone(),
                added_at: now,
                verified_at: Some(now),
                removed_at: None,
            }),
        }
    }
    /// Records that keyvault removed the key from `target`, where it may have been trusted
    /// without keyvault putting it there (a pod's `PUBLIC_KEY`).
    pub(crate) fn mark_removed_from(&mut self, target: &TargetSpec, now: DateTime<Utc>) {
        if self
            .deployments
            .iter()
            .any(|d| &d.target == target && d.removed_at.is_none())
        {
            self.mark_removed(target, now);
        } else {
            self.deployments.push(Deployment {
                target: target.clone(),
                added_at: self.created_at,
                verified_at: None,
                removed_at: Some(now),
            });
        }
    }
    /// Records that the key is no longer trusted at `target`.
    pub(crate) fn mark_removed(&mut self, target: &TargetSpec, now: DateTime<Utc>) {
        for d in self
            .deployments
            .iter_mut()
            .filter(|d| &d.target == target && d.removed_at.is_none())
        {
            d.removed_at = Some(now);
        }
    }
    /// The line keyvault deploys: type and key, with a comment carrying id and purpose.
    #[must_use]
    pub fn deploy_line(&self) -> String {
        let body: Vec<&str> = self.public_key.split_whitespace().take(2).collect();
        let tag = format!("keyvault:{}", self.id);
        let comment = if self.comment.starts_with(&tag) || self.comment.is_empty() {
            tag
        } else {
            format!("{tag} {}", self.comment)
        };
        format!("{} {comment}", body.join(" "))
    }
    /// Whether it has expired at `now`.
    #[must_use]
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
    /// The state as people see it at `now`: `expired` for a live key past its expiry.
    #[must_use]
    pub fn display_state_at(&self, now: DateTime<Utc>) -> &'static str {
        match self.state {
            KeyState::Revoked => "revoked",
            _ if self.is_expired_at(now) => "expired",
            KeyState::Pending => "pending",
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
        }
    }
}
