//! The per-purpose inventory: [`Purpose`], [`KeyId`], [`KeyRecord`], [`KeyState`],
//! [`Deployment`] and the [`Inventory`] document stored in `inventory.json`.

use crate::audit::AuditHead;
use crate::error::InputError;
use crate::keygen::Algorithm;
use crate::names::{Principal, SourcePattern};
use crate::target::TargetSpec;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ssh_key::Fingerprint;
use std::fmt;
use std::str::FromStr;

/// The inventory schema version this build reads and writes.
pub const INVENTORY_VERSION: u32 = 1;

/// A purpose name such as `personal`, `team` or `ci-deploy`: matches
/// `^[a-z0-9][a-z0-9._-]{0,63}$`, so it is always safe as a file name.
///
/// ```
/// use keyvault_core::Purpose;
/// assert!("ci-deploy".parse::<Purpose>().is_ok());
/// for bad in ["", "../x", "A", "-x", &"a".repeat(65)] {
///     assert!(bad.parse::<Purpose>().is_err());
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Purpose(String);

impl Purpose {
    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_name(s: &str) -> Result<(), &'static str> {
    let bytes = s.as_bytes();
    match bytes.first() {
        None => return Err("must not be empty"),
        Some(b) if !(b.is_ascii_lowercase() || b.is_ascii_digit()) => {
            return Err("must start with a lowercase letter or a digit");
        }
        Some(_) => {}
    }
    if bytes.len() > 64 {
        return Err("must be at most 64 characters");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("may contain only a-z, 0-9, '.', '_' and '-'");
    }
    Ok(())
}

impl FromStr for Purpose {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Purpose::try_from(s.to_owned())
    }
}

impl TryFrom<String> for Purpose {
    type Error = InputError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        match check_name(&s) {
            Ok(()) => Ok(Purpose(s)),
            Err(reason) => Err(InputError::Purpose { value: s, reason }),
        }
    }
}

impl<'de> Deserialize<'de> for Purpose {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Purpose::try_from(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key's id, `<purpose>-<n>` (e.g. `personal-3`); safe as a file name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    /// The id of the `n`th key of `purpose`.
    #[must_use]
    pub fn new(purpose: &Purpose, n: u64) -> Self {
        KeyId(format!("{purpose}-{n}"))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The sequence number after the last `-`.
    #[must_use]
    pub fn number(&self) -> u64 {
        self.0
            .rsplit_once('-')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(0)
    }
}

impl FromStr for KeyId {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyId::try_from(s.to_owned())
    }
}

impl TryFrom<String> for KeyId {
    type Error = InputError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        let valid = s.rsplit_once('-').is_some_and(|(purpose, n)| {
            check_name(purpose).is_ok()
                && !n.is_empty()
                && n.len() <= 12
                && n.bytes().all(|b| b.is_ascii_digit())
        });
        if valid {
            Ok(KeyId(s))
        } else {
            Err(InputError::KeyId { value: s })
        }
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        KeyId::try_from(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

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

/// The whole inventory document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub(crate) version: u32,
    pub(crate) keys: Vec<KeyRecord>,
    #[serde(default)]
    pub(crate) journal: Vec<JournalEntry>,
    #[serde(default)]
    pub(crate) audit: Option<AuditHead>,
}

impl Default for Inventory {
    fn default() -> Self {
        Inventory {
            version: INVENTORY_VERSION,
            keys: Vec::new(),
            journal: Vec::new(),
            audit: None,
        }
    }
}

/// Why an inventory document cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// Not a valid inventory.
    Corrupt(String),
    /// A schema version this build does not read.
    Version(u64),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Corrupt(why) => f.write_str(why),
            ParseError::Version(v) => {
                write!(f, "schema version {v} is not one this keyvault reads")
            }
        }
    }
}

/// The layout of `inventory.json`: the document's members and the elements of its arrays
/// (keys, journal entries) each on a line of their own, everything deeper compact. A key is
/// one line, so the file reads and diffs record by record, and it is about a quarter
/// smaller (and faster to read) than indented JSON.
#[derive(Default)]
struct RecordPerLine {
    depth: usize,
    has_value: bool,
}

impl RecordPerLine {
    /// Containers down to this depth put their members on separate lines.
    const LINE_DEPTH: usize = 2;

    fn open<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        bracket: &[u8],
    ) -> std::io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(bracket)
    }

    fn close<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        bracket: &[u8],
    ) -> std::io::Result<()> {
        let broken = self.depth <= Self::LINE_DEPTH;
        self.depth -= 1;
        if broken && self.has_value {
            self.newline(w)?;
        }
        w.write_all(bracket)
    }

    fn newline<W: ?Sized + std::io::Write>(&self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b"\n")?;
        for _ in 0..self.depth {
            w.write_all(b"  ")?;
        }
        Ok(())
    }

    fn member<W: ?Sized + std::io::Write>(&self, w: &mut W, first: bool) -> std::io::Result<()> {
        if !first {
            w.write_all(b",")?;
        }
        if self.depth <= Self::LINE_DEPTH {
            self.newline(w)?;
        }
        Ok(())
    }
}

impl serde_json::ser::Formatter for RecordPerLine {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"[")
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"]")
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.member(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, _w: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"{")
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"}")
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.member(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(if self.depth <= Self::LINE_DEPTH {
            b": "
        } else {
            b":"
        })
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, _w: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// A step of a rotation, as the journal records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Step {
    /// The new key is written and recorded (`pending`); nothing remote happened yet.
    Prepared,
    /// The new key is being added to the targets.
    Adding,
    /// The new key is active; the old one is retiring until removed everywhere.
    Promoted,
}

/// Progress of one rotation at one target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetProgress {
    /// The new key is there (verified by reading back).
    pub added: bool,
    /// The old key is gone (verified by reading back).
    pub removed: bool,
}

/// An unfinished rotation, kept in the inventory so any later run can finish it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalEntry {
    pub(crate) purpose: Purpose,
    pub(crate) old: KeyId,
    pub(crate) new: KeyId,
    pub(crate) step: Step,
    pub(crate) targets: std::collections::BTreeMap<TargetSpec, TargetProgress>,
    #[serde(default, with = "crate::timestamp::option")]
    pub(crate) grace_until: Option<DateTime<Utc>>,
    #[serde(with = "crate::timestamp")]
    pub(crate) started_at: DateTime<Utc>,
}

impl JournalEntry {
    /// The purpose being rotated.
    #[must_use]
    pub fn purpose(&self) -> &Purpose {
        &self.purpose
    }
    /// The key being replaced.
    #[must_use]
    pub fn old(&self) -> &KeyId {
        &self.old
    }
    /// The replacement.
    #[must_use]
    pub fn new_key(&self) -> &KeyId {
        &self.new
    }
    /// How far it got.
    #[must_use]
    pub fn step(&self) -> Step {
        self.step
    }
    /// Progress per target.
    #[must_use]
    pub fn targets(&self) -> &std::collections::BTreeMap<TargetSpec, TargetProgress> {
        &self.targets
    }
    /// Until when the old key stays deployed.
    #[must_use]
    pub fn grace_until(&self) -> Option<DateTime<Utc>> {
        self.grace_until
    }
    /// When the rotation started.
    #[must_use]
    pub fn started_at(&self) -> DateTime<Utc> {
        self.started_at
    }
}

impl Inventory {
    /// Every key, oldest first.
    #[must_use]
    pub fn keys(&self) -> &[KeyRecord] {
        &self.keys
    }

    /// Parses an `inventory.json` document: valid JSON, this build's schema version, no
    /// unknown fields, unique ids, paths keyvault could have made.
    ///
    /// # Errors
    ///
    /// A description of the first problem (the store wraps it with the file name).
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        // One typed pass; only when it fails is the version looked at, so that a newer
        // schema is named as such rather than as corrupt.
        // UTF-8 is checked once for the whole document (much faster than string by string).
        let text = std::str::from_utf8(bytes)
            .map_err(|e| ParseError::Corrupt(format!("not valid JSON ({e})")))?;
        let inventory: Inventory = match serde_json::from_str(text) {
            Ok(inventory) => inventory,
            Err(typed) => {
                #[derive(Deserialize)]
                struct VersionOnly {
                    version: Option<serde_json::Value>,
                }
                let head: VersionOnly = serde_json::from_slice(bytes)
                    .map_err(|e| ParseError::Corrupt(format!("not valid JSON ({e})")))?;
                let version = head
                    .version
                    .as_ref()
                    .and_then(serde_json::Value::as_u64)
                    .ok_or_else(|| ParseError::Corrupt("no \"version\" number".to_owned()))?;
                if version != u64::from(INVENTORY_VERSION) {
                    return Err(ParseError::Version(version));
                }
                return Err(ParseError::Corrupt(typed.to_string()));
            }
        };
        if inventory.version != INVENTORY_VERSION {
            return Err(ParseError::Version(u64::from(inventory.version)));
        }
        let mut ids = std::collections::HashSet::with_capacity(inventory.keys.len());
        for k in inventory.keys() {
            if !ids.insert(k.id()) {
                return Err(ParseError::Corrupt(format!(
                    "key id {} appears twice",
                    k.id()
                )));
            }
            if k.private_key_path().strip_prefix("keys/") != Some(k.id().as_str()) {
                return Err(ParseError::Corrupt(format!(
                    "key {} has an unexpected private_key_path",
                    k.id()
                )));
            }
        }
        Ok(inventory)
    }

    /// The document as written to `inventory.json`: one line per member of the document
    /// and per key or journal entry, each record compact on its line; trailing newline.
    #[must_use]
    pub fn to_json(&self) -> Vec<u8> {
        // About 800 bytes a key; the estimate only saves regrowing the buffer.
        let mut text = Vec::with_capacity(1024 + 800 * self.keys.len());
        let mut out = serde_json::Serializer::with_formatter(&mut text, RecordPerLine::default());
        // Serializing plain data structures into memory cannot fail.
        if self.serialize(&mut out).is_err() {
            text.clear();
        }
        text.push(b'\n');
        text
    }

    /// Unfinished rotations.
    #[must_use]
    pub fn journal(&self) -> &[JournalEntry] {
        &self.journal
    }

    /// The key with this id.
    #[must_use]
    pub fn get(&self, id: &KeyId) -> Option<&KeyRecord> {
        self.keys.iter().find(|k| &k.id == id)
    }

    pub(crate) fn get_mut(&mut self, id: &KeyId) -> Option<&mut KeyRecord> {
        self.keys.iter_mut().find(|k| &k.id == id)
    }

    /// The active key of `purpose`, if any (scoped keys made by `mint` never are).
    #[must_use]
    pub fn active(&self, purpose: &Purpose) -> Option<&KeyRecord> {
        self.keys
            .iter()
            .find(|k| &k.purpose == purpose && k.state == KeyState::Active && k.scope.is_none())
    }

    /// Every purpose that has at least one key, sorted.
    #[must_use]
    pub fn purposes(&self) -> Vec<&Purpose> {
        let mut p: Vec<&Purpose> = self.keys.iter().map(|k| &k.purpose).collect();
        p.sort();
        p.dedup();
        p
    }

    /// The head of the audit chain this inventory was last written with.
    #[must_use]
    pub fn audit_head(&self) -> Option<&AuditHead> {
        self.audit.as_ref()
    }

    /// The next unused id for `purpose`.
    pub(crate) fn next_id(&self, purpose: &Purpose) -> KeyId {
        let n = self
            .keys
            .iter()
            .filter(|k| &k.purpose == purpose)
            .map(|k| k.id.number())
            .max()
            .unwrap_or(0);
        KeyId::new(purpose, n + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purpose_rules() {
        for good in [
            "personal",
            "ci-deploy",
            "a",
            "0",
            "team.gpu_1",
            &"a".repeat(64),
        ] {
            assert!(good.parse::<Purpose>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "../x",
            "A",
            "-x",
            ".x",
            "_x",
            "a/b",
            "a b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(bad.parse::<Purpose>().is_err(), "{bad}");
        }
    }

    fn record(id: &str) -> serde_json::Value {
        serde_json::json!({
            "id": id, "purpose": "team", "algorithm": "ed25519",
            "fingerprint": "SHA256:/WxlIaPG5iJyzbfH3UmBhlYqAaCVhiXaW4XR/GIY57c", "public_key": "ssh-ed25519 AAAA kv", "comment": "kv",
            "created_at": "2026-11-26T10:00:00Z", "expires_at": "2027-02-24T10:00:00Z",
            "state": "active", "protection": "passphrase", "kdf_rounds": 16,
            "origin": "generated", "private_key_path": format!("keys/{id}"),
            "deployments": [{"target": "runpod", "added_at": "2026-11-26T10:00:01Z",
                             "verified_at": null, "removed_at": null}],
            "scope": {"from": ["10.0.0.0/8"], "force_command": "echo \"hi\"\n"}
        })
    }

    #[test]
    fn written_one_record_per_line_and_read_back_unchanged() {
        let doc = serde_json::json!({"version": 1, "keys": [record("team-1"), record("team-2")], "journal": []});
        let inventory = Inventory::parse(doc.to_string().as_bytes()).expect("parses");
        let text = String::from_utf8(inventory.to_json()).expect("UTF-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "{",
                "  \"version\": 1,",
                "  \"keys\": [",
                lines[3],
                lines[4],
                "  ],",
                "  \"journal\": [],",
                "  \"audit\": null",
                "}"
            ],
            "{text}"
        );
        for (line, id) in [(lines[3], "team-1"), (lines[4], "team-2")] {
            assert!(
                line.starts_with(&format!("    {{\"id\":\"{id}\",")),
                "{line}"
            );
            let one: serde_json::Value =
                serde_json::from_str(line.trim_end_matches(',')).expect("a whole record");
            assert_eq!(one["deployments"][0]["added_at"], "2026-11-26T10:00:01Z");
        }
        assert!(text.ends_with("}\n"));
        assert_eq!(
            Inventory::parse(text.as_bytes()).expect("reads back"),
            inventory
        );
        // Indented files written by earlier versions read the same.
        let pretty = serde_json::to_vec_pretty(&doc).expect("json");
        assert_eq!(Inventory::parse(&pretty).expect("reads"), inventory);
    }

    #[test]
    fn key_id_rules() {
        let p: Purpose = "ci-deploy".parse().expect("purpose");
        let id = KeyId::new(&p, 12);
        assert_eq!(id.as_str(), "ci-deploy-12");
        assert_eq!(id.number(), 12);
        assert_eq!(id.as_str().parse::<KeyId>().expect("parses"), id);
        for bad in ["personal", "personal-", "../x-1", "x-1a", "-1"] {
            assert!(bad.parse::<KeyId>().is_err(), "{bad}");
        }
    }
}
