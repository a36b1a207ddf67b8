//! A hygiene audit of existing key files (`~/.ssh` by default), including keys keyvault
//! does not manage. Findings name files and fingerprints, never key material.

use crate::error::Result;
use crate::inventory::Purpose;
use crate::inventory::{Inventory, KeyRecord};
use crate::keyfile::DEFAULT_KDF_ROUNDS;
use crate::span::Span;
use crate::status::Severity;
use crate::vault::Vault;
use chrono::{DateTime, Utc};
use serde::Serialize;
use ssh_key::{HashAlg, Kdf, PrivateKey, PublicKey};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Files larger than this are not keys and are skipped.
const MAX_FILE: u64 = 1 << 20;

/// What a scan finding is about; stable names for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ScanKind {
    /// A private key stored without a passphrase.
    Unencrypted,
    /// DSA, or RSA under 3072 bits.
    WeakAlgorithm,
    /// An encrypted key with fewer bcrypt-pbkdf rounds than 16.
    LowKdfRounds,
    /// A key in the old PEM format, whose encryption derives its key with one MD5 round.
    LegacyFormat,
    /// A private key others can read.
    KeyPermissions,
    /// The scanned directory is open to others.
    DirectoryPermissions,
    /// An `authorized_keys` file others can write.
    AuthorizedKeysPermissions,
    /// A key older than the age limit.
    OldKey,
    /// The same private key under several names.
    ReusedKey,
    /// An `authorized_keys` entry without any restriction next to entries keyvault manages.
    UnrestrictedEntry,
    /// A file that looks like a private key but cannot be read.
    Unreadable,
    /// A copy of a key keyvault manages, outside the vault: rotations do not reach it.
    ManagedCopy,
    /// An `authorized_keys` line keyvault cannot be sure how sshd reads.
    UnsureLine,
    /// An `authorized_keys` entry whose options hold another key: a reader that splits
    /// quotes differently from sshd would take that key for the one sshd trusts.
    HiddenKey,
}

/// What to do about a scan finding, as data: the action, on the finding's file (or the
/// key it holds). The CLI words it, with the commands to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
#[non_exhaustive]
pub enum ScanFix {
    /// Take the directory's permissions for group and others away (mode 0700).
    CloseDirectory,
    /// Take write permission for group and others away from the `authorized_keys` file
    /// (mode 0600).
    CloseAuthorizedKeys,
    /// Take the key file's permissions for group and others away (mode 0600), and replace
    /// the key: it may have been read.
    CloseAndReplaceKey,
    /// Import the file into a purpose, which encrypts it.
    Import,
    /// Import the file into a purpose, or re-encrypt it in place with more KDF rounds.
    ImportOrAddRounds,
    /// Rewrite the file in OpenSSH format, then import it into a purpose.
    RewriteThenImport,
    /// Make a new key for a purpose, then remove this one wherever it is trusted.
    ReplaceWithNew,
    /// Make a new (Ed25519) key for a purpose instead.
    ReplaceWithEd25519,
    /// Import the key, then rotate its purpose.
    ImportThenRotate,
    /// Rotate the purpose whose key this file copies.
    Rotate {
        /// The purpose to rotate.
        purpose: Purpose,
    },
    /// Point `IdentityFile` at the purpose's current key (it follows rotations) and delete
    /// this copy.
    UseCurrent {
        /// The purpose whose current key to use.
        purpose: Purpose,
    },
    /// Give each purpose its own new key and delete the copies.
    OneKeyEach,
    /// Restrict the `authorized_keys` entry, or import its private key into a purpose.
    RestrictOrImport,
    /// Check who added the `authorized_keys` line; remove it unless the hidden key is meant.
    CheckHiddenKey,
    /// Check the `authorized_keys` line and rewrite or remove it.
    CheckLine,
    /// Check the file; remove it if it is not a key in use.
    CheckFile,
    /// Check the path.
    CheckPath,
}

/// One thing `scan` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanFinding {
    /// How serious.
    pub severity: Severity,
    /// What kind.
    pub kind: ScanKind,
    /// The file (or directory).
    pub file: PathBuf,
    /// What is wrong; names fingerprints, never key material.
    pub message: String,
    /// What to do.
    pub fix: ScanFix,
}

/// Everything a scan found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanReport {
    /// Files looked at.
    pub files: usize,
    /// Private keys found.
    pub private_keys: usize,
    /// Findings, most severe first, then by file.
    pub findings: Vec<ScanFinding>,
}

/// A private key file as the scan understood it.
struct KeyInfo {
    algorithm: String,
    rsa_bits: Option<u32>,
    encrypted: bool,
    rounds: Option<u32>,
    legacy_pem: bool,
    fingerprint: Option<String>,
}

fn pem_info(text: &str, path: &Path) -> Option<KeyInfo> {
    let first = text.lines().next()?.trim();
    let kind = first
        .strip_prefix("-----BEGIN ")?
        .strip_suffix(" PRIVATE KEY-----")?;
    if kind == "OPENSSH" {
        return None;
    }
    let encrypted = kind == "ENCRYPTED" || text.contains("Proc-Type: 4,ENCRYPTED");
    // The public half beside it says what the key is.
    // Read like every scanned file: a regular file, capped, never a FIFO or a device.
    let public = crate::fsutil::read_optional(
        &path.with_extension(format!(
            "{}pub",
            path.extension()
                .map(|e| format!("{}.", e.to_string_lossy()))
                .unwrap_or_default()
        )),
        MAX_FILE,
    )
    .ok()
    .flatten()
    .and_then(|p| PublicKey::from_openssh(String::from_utf8_lossy(&p).trim()).ok());
    let (algorithm, rsa_bits) = match (&public, kind) {
        (Some(p), _) => match p.key_data().rsa() {
            Some(r) => ("rsa".to_owned(), Some(r.key_size())),
            None => (p.algorithm().as_str().to_owned(), None),
        },
        (None, "RSA") => ("rsa".to_owned(), None),
        (None, "DSA") => ("ssh-dss".to_owned(), None),
        (None, "EC") => ("ecdsa".to_owned(), None),
        (None, _) => ("unknown".to_owned(), None),
    };
    Some(KeyInfo {
        algorithm,
        rsa_bits,
        encrypted,
        rounds: None,
        legacy_pem: true,
        fingerprint: public.map(|p| p.fingerprint(HashAlg::Sha256).to_string()),
    })
}

fn openssh_info(key: &PrivateKey) -> KeyInfo {
    let public = key.public_key();
    KeyInfo {
        algorithm: public.algorithm().as_str().to_owned(),
        rsa_bits: public
            .key_data()
            .rsa()
            .map(ssh_key::public::RsaPublicKey::key_size),
        encrypted: key.is_encrypted(),
        rounds: match key.kdf() {
            Kdf::Bcrypt { rounds, .. } => Some(*rounds),
            _ => None,
        },
        legacy_pem: false,
        fingerprint: Some(public.fingerprint(HashAlg::Sha256).to_string()),
    }
}

fn severity_order(findings: &mut [ScanFinding]) {
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.file.cmp(&b.file))
            .then_with(|| a.kind.cmp(&b.kind))
    });
}

/// Scans `dirs` (not recursively). `inventory` tells which keys keyvault manages (their
/// age is counted from creation, and `authorized_keys` entries for them count as
/// managed); keys older than `max_age` at `now` are reported.
#[must_use]
pub fn scan(
    dirs: &[PathBuf],
    inventory: Option<&Inventory>,
    now: DateTime<Utc>,
    max_age: crate::Span,
) -> ScanReport {
    let mut walk = Walk {
        inventory,
        now,
        max_age,
        files: 0,
        private_keys: 0,
        by_fingerprint: BTreeMap::new(),
        findings: Vec::new(),
    };
    for dir in dirs {
        walk.directory(dir);
    }
    walk.reused_keys();
    severity_order(&mut walk.findings);
    ScanReport {
        files: walk.files,
        private_keys: walk.private_keys,
        findings: walk.findings,
    }
}

/// A scan under way: what it has counted and found so far.
struct Walk<'a> {
    inventory: Option<&'a Inventory>,
    now: DateTime<Utc>,
    max_age: Span,
    files: usize,
    private_keys: usize,
    by_fingerprint: BTreeMap<String, Vec<PathBuf>>,
    findings: Vec<ScanFinding>,
}

/// The record of the managed key with fingerprint `fp`, if any.
fn managed<'a>(inventory: Option<&'a Inventory>, fp: &str) -> Option<&'a KeyRecord> {
    let fp: ssh_key::Fingerprint = fp.parse().ok()?;
    inventory.and_then(|inv| inv.keys().iter().find(|k| *k.fingerprint() == fp))
}

impl Walk<'_> {
    fn push(
        &mut self,
        severity: Severity,
        kind: ScanKind,
        file: &Path,
        message: String,
        fix: ScanFix,
    ) {
        self.findings.push(ScanFinding {
            severity,
            kind,
            file: file.to_owned(),
            message,
            fix,
        });
    }

    /// Judges the directory itself, then each file in it, in name order.
    fn directory(&mut self, dir: &Path) {
        let Ok(meta) = std::fs::metadata(dir) else {
            self.push(
                Severity::Low,
                ScanKind::Unreadable,
                dir,
                "cannot read this directory".to_owned(),
                ScanFix::CheckPath,
            );
            return;
        };
        if meta.mode() & 0o077 != 0 {
            self.push(
                Severity::Medium,
                ScanKind::DirectoryPermissions,
                dir,
                format!(
                    "directory has mode {:04o}; others can list or read it",
                    meta.mode() & 0o7777
                ),
                ScanFix::CloseDirectory,
            );
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            self.file(&path);
        }
    }

    /// Counts and reads a regular file, and classifies it: `authorized_keys`, a private
    /// key, or something else (skipped).
    fn file(&mut self, path: &Path) {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return;
        };
        if !meta.is_file() || meta.len() > MAX_FILE {
            return;
        }
        self.files += 1;
        // Opened without following a link and without blocking, checked to be a regular
        // file again and read with the cap: it may have been swapped since it was listed.
        let Ok(Some(bytes)) = crate::fsutil::read_optional(path, MAX_FILE) else {
            return;
        };
        let text = String::from_utf8_lossy(&bytes);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == "authorized_keys" || name == "authorized_keys2" {
            self.authorized_keys(path, &meta, &bytes);
        } else if text.trim_start().starts_with("-----BEGIN ") && text.contains("PRIVATE KEY-----")
        {
            self.private_key(path, &meta, &bytes, &text);
        }
    }

    fn authorized_keys(&mut self, path: &Path, meta: &std::fs::Metadata, bytes: &[u8]) {
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 {
            self.push(
                Severity::High,
                ScanKind::AuthorizedKeysPermissions,
                path,
                format!("has mode {mode:04o}; others can add keys to it and log in as you"),
                ScanFix::CloseAuthorizedKeys,
            );
        }
        let inventory = self.inventory;
        authorized_keys_findings(
            path,
            bytes,
            &|fp| managed(inventory, fp).is_some(),
            &mut |severity, kind, file, message, fix| self.push(severity, kind, file, message, fix),
        );
    }

    /// Reads a private key (OpenSSH format, else old PEM) and judges it.
    fn private_key(&mut self, path: &Path, meta: &std::fs::Metadata, bytes: &[u8], text: &str) {
        self.private_keys += 1;
        let info = match PrivateKey::from_openssh(bytes) {
            Ok(key) => openssh_info(&key),
            Err(_) => match pem_info(text, path) {
                Some(info) => info,
                None => {
                    self.push(
                        Severity::Low,
                        ScanKind::Unreadable,
                        path,
                        "looks like a private key but cannot be parsed".to_owned(),
                        ScanFix::CheckFile,
                    );
                    return;
                }
            },
        };
        let label = info
            .fingerprint
            .clone()
            .unwrap_or_else(|| info.algorithm.clone());
        self.judge_protection(path, meta.mode() & 0o7777, &info, &label);
        self.judge_place(path, meta, &info, &label);
        if let Some(fp) = info.fingerprint {
            self.by_fingerprint
                .entry(fp)
                .or_default()
                .push(path.to_owned());
        }
    }

    /// How well the key file is protected: its mode, passphrase, algorithm, KDF, format.
    fn judge_protection(&mut self, path: &Path, mode: u32, info: &KeyInfo, label: &str) {
        if mode & 0o077 != 0 {
            self.push(
                Severity::High,
                ScanKind::KeyPermissions,
                path,
                format!("private key {label} has mode {mode:04o}; others can read it"),
                ScanFix::CloseAndReplaceKey,
            );
        }
        if !info.encrypted {
            self.push(
                Severity::High,
                ScanKind::Unencrypted,
                path,
                format!("private key {label} is not protected by a passphrase"),
                ScanFix::Import,
            );
        }
        match (info.algorithm.as_str(), info.rsa_bits) {
            ("ssh-dss", _) => self.push(
                Severity::High,
                ScanKind::WeakAlgorithm,
                path,
                format!("DSA key {label}: DSA is broken and disabled in current OpenSSH"),
                ScanFix::ReplaceWithNew,
            ),
            (_, Some(bits)) if bits < 3072 => self.push(
                Severity::Medium,
                ScanKind::WeakAlgorithm,
                path,
                format!("RSA key {label} has {bits} bits; 3072 is the minimum"),
                ScanFix::ReplaceWithEd25519,
            ),
            _ => {}
        }
        if let Some(r) = info.rounds.filter(|r| *r < DEFAULT_KDF_ROUNDS) {
            self.push(
                Severity::Medium,
                ScanKind::LowKdfRounds,
                path,
                format!(
                    "private key {label} uses {r} bcrypt-pbkdf rounds; a guessed passphrase is cheap to try"
                ),
                ScanFix::ImportOrAddRounds,
            );
        }
        if info.legacy_pem && info.encrypted {
            self.push(
                Severity::Medium,
                ScanKind::LegacyFormat,
                path,
                format!(
                    "private key {label} uses the old PEM format, whose passphrase is stretched with a single MD5 round"
                ),
                ScanFix::RewriteThenImport,
            );
        }
    }

    /// The key's place in its life: its age, and whether it copies a key keyvault manages.
    fn judge_place(&mut self, path: &Path, meta: &std::fs::Metadata, info: &KeyInfo, label: &str) {
        let record = info
            .fingerprint
            .as_deref()
            .and_then(|fp| managed(self.inventory, fp));
        let born = record
            .map(crate::KeyRecord::created_at)
            .or_else(|| meta.modified().ok().map(DateTime::<Utc>::from));
        if let Some(born) = born
            && self.now - born > self.max_age.to_delta()
        {
            let fix = match record {
                Some(r) => ScanFix::Rotate {
                    purpose: r.purpose().clone(),
                },
                None => ScanFix::ImportThenRotate,
            };
            let days = (self.now - born).num_days();
            self.push(
                Severity::Low,
                ScanKind::OldKey,
                path,
                format!("private key {label} is {days} days old"),
                fix,
            );
        }
        if let Some(r) = record {
            self.push(
                Severity::Medium,
                ScanKind::ManagedCopy,
                path,
                format!(
                    "private key {label} is a copy of {}, which keyvault manages; rotations will not update this copy",
                    r.id()
                ),
                ScanFix::UseCurrent {
                    purpose: r.purpose().clone(),
                },
            );
        }
    }

    /// One finding per file holding a private key stored under more than one name.
    fn reused_keys(&mut self) {
        let by_fingerprint = std::mem::take(&mut self.by_fingerprint);
        for (fp, paths) in by_fingerprint.into_iter().filter(|(_, p)| p.len() > 1) {
            let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            for path in &paths {
                self.push(
                    Severity::Medium,
                    ScanKind::ReusedKey,
                    path,
                    format!(
                        "private key {fp} is stored under several names: {}",
                        names.join(", ")
                    ),
                    ScanFix::OneKeyEach,
                );
            }
        }
    }
}

fn authorized_keys_findings(
    path: &Path,
    text: &[u8],
    is_managed: &dyn Fn(&str) -> bool,
    push: &mut dyn FnMut(Severity, ScanKind, &Path, String, ScanFix),
) {
    use crate::authorized_keys::Reading;
    let mut entries = Vec::new();
    for (n, raw, reading) in crate::authorized_keys::read_lines(text) {
        let (fp, options, comment) = match reading {
            Reading::Key {
                fingerprint,
                options,
                comment,
            } => (fingerprint, options, comment),
            Reading::NotAKey => continue,
            Reading::Unsure { .. } => {
                let raw: String = String::from_utf8_lossy(raw).chars().take(80).collect();
                push(
                    Severity::Medium,
                    ScanKind::UnsureLine,
                    path,
                    format!(
                        "line {n} cannot be read for sure as sshd reads it (kept as it is): {}",
                        raw.escape_debug()
                    ),
                    ScanFix::CheckLine,
                );
                continue;
            }
        };
        if let Some(hidden) = options.as_deref().and_then(hidden_key) {
            push(
                Severity::High,
                ScanKind::HiddenKey,
                path,
                format!(
                    "line {n}: sshd trusts {fp}, and its options hold another key ({hidden}) that a looser reader would take instead"
                ),
                ScanFix::CheckHiddenKey,
            );
        }
        let managed = is_managed(&fp.to_string()) || comment.starts_with("keyvault:");
        entries.push((fp, managed, options.is_none()));
    }
    if !entries.iter().any(|(_, managed, _)| *managed) {
        return;
    }
    for (fp, _, _) in entries
        .iter()
        .filter(|(_, managed, bare)| !managed && *bare)
    {
        push(
            Severity::Low,
            ScanKind::UnrestrictedEntry,
            path,
            format!(
                "entry {fp} has no restrictions (no from=, command=, expiry-time= or restrict) beside keys keyvault manages"
            ),
            ScanFix::RestrictOrImport,
        );
    }
}

/// A key written inside `options` (after a space, tab or quote), if any.
fn hidden_key(options: &str) -> Option<String> {
    options
        .char_indices()
        .filter(|(_, c)| matches!(c, ' ' | '\t' | '"'))
        .find_map(|(i, _)| {
            crate::remote::fingerprint_of(options[i + 1..].trim_start_matches(['"', ' ', '\t']))
                .map(|fp| fp.to_string())
        })
}

impl Vault {
    /// Audits existing key files in `dirs` (see [`crate::scan`]), matching them against
    /// this vault's inventory; keys older than `max_age` are reported.
    ///
    /// # Errors
    ///
    /// [`crate::StoreError`] when the inventory exists but cannot be read.
    pub fn scan(&self, dirs: &[PathBuf], max_age: Span) -> Result<crate::scan::ScanReport> {
        let inventory = self.store.load(crate::store::View::All)?;
        Ok(crate::scan::scan(
            dirs,
            Some(&inventory),
            self.now(),
            max_age,
        ))
    }
}

#[cfg(test)]
mod tests;
