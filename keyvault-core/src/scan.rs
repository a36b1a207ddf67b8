//! A hygiene audit of existing key files (`~/.ssh` by default), including keys keyvault
//! does not manage. Findings name files and fingerprints, never key material.

use crate::error::Result;
use crate::inventory::Inventory;
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
    /// What to do, often a keyvault command.
    pub fix: String,
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
    let mut findings = Vec::new();
    let mut files = 0;
    let mut private_keys = 0;
    let mut by_fingerprint: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let managed = |fp: &str| {
        let fp: ssh_key::Fingerprint = fp.parse().ok()?;
        inventory.and_then(|inv| inv.keys().iter().find(|k| *k.fingerprint() == fp))
    };
    let mut push = |severity, kind, file: &Path, message: String, fix: String| {
        findings.push(ScanFinding {
            severity,
            kind,
            file: file.to_owned(),
            message,
            fix,
        });
    };
    for dir in dirs {
        let Ok(meta) = std::fs::metadata(dir) else {
            push(
                Severity::Low,
                ScanKind::Unreadable,
                dir,
                "cannot read this directory".to_owned(),
                "check the path".to_owned(),
            );
            continue;
        };
        if meta.mode() & 0o077 != 0 {
            push(
                Severity::Medium,
                ScanKind::DirectoryPermissions,
                dir,
                format!(
                    "directory has mode {:04o}; others can list or read it",
                    meta.mode() & 0o7777
                ),
                format!("chmod 700 {}", dir.display()),
            );
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.is_file() || meta.len() > MAX_FILE {
                continue;
            }
            files += 1;
            // Opened without following a link and without blocking, checked to be a regular
            // file again and read with the cap: it may have been swapped since it was listed.
            let Ok(Some(bytes)) = crate::fsutil::read_optional(&path, MAX_FILE) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            let mode = meta.mode() & 0o7777;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name == "authorized_keys" || name == "authorized_keys2" {
                if mode & 0o022 != 0 {
                    push(
                        Severity::High,
                        ScanKind::AuthorizedKeysPermissions,
                        &path,
                        format!("has mode {mode:04o}; others can add keys to it and log in as you"),
                        format!("chmod 600 {}", path.display()),
                    );
                }
                authorized_keys_findings(&path, &bytes, &|fp| managed(fp).is_some(), &mut push);
                continue;
            }
            if !text.trim_start().starts_with("-----BEGIN ") || !text.contains("PRIVATE KEY-----") {
                continue;
            }
            private_keys += 1;
            let info = match PrivateKey::from_openssh(bytes.as_slice()) {
                Ok(key) => openssh_info(&key),
                Err(_) => match pem_info(&text, &path) {
                    Some(info) => info,
                    None => {
                        push(
                            Severity::Low,
                            ScanKind::Unreadable,
                            &path,
                            "looks like a private key but cannot be parsed".to_owned(),
                            "check the file; remove it if it is not a key you use".to_owned(),
                        );
                        continue;
                    }
                },
            };
            let label = info
                .fingerprint
                .clone()
                .unwrap_or_else(|| info.algorithm.clone());
            let record = info.fingerprint.as_deref().and_then(managed);
            if mode & 0o077 != 0 {
                push(
                    Severity::High,
                    ScanKind::KeyPermissions,
                    &path,
                    format!("private key {label} has mode {mode:04o}; others can read it"),
                    format!(
                        "chmod 600 {}, and treat the key as exposed: replace it",
                        path.display()
                    ),
                );
            }
            if !info.encrypted {
                push(
                    Severity::High,
                    ScanKind::Unencrypted,
                    &path,
                    format!("private key {label} is not protected by a passphrase"),
                    format!(
                        "keyvault import {} --purpose NAME (encrypts it on the way in)",
                        path.display()
                    ),
                );
            }
            match (info.algorithm.as_str(), info.rsa_bits) {
                ("ssh-dss", _) => push(
                    Severity::High,
                    ScanKind::WeakAlgorithm,
                    &path,
                    format!("DSA key {label}: DSA is broken and disabled in current OpenSSH"),
                    "replace it: keyvault new --purpose NAME, then remove this key where it is trusted".to_owned(),
                ),
                (_, Some(bits)) if bits < 3072 => push(
                    Severity::Medium,
                    ScanKind::WeakAlgorithm,
                    &path,
                    format!("RSA key {label} has {bits} bits; 3072 is the minimum"),
                    "replace it: keyvault new --purpose NAME (Ed25519)".to_owned(),
                ),
                _ => {}
            }
            if let Some(r) = info.rounds.filter(|r| *r < DEFAULT_KDF_ROUNDS) {
                push(
                    Severity::Medium,
                    ScanKind::LowKdfRounds,
                    &path,
                    format!(
                        "private key {label} uses {r} bcrypt-pbkdf rounds; a guessed passphrase is cheap to try"
                    ),
                    format!(
                        "keyvault import {} --purpose NAME, or ssh-keygen -p -a 100 -f {}",
                        path.display(),
                        path.display()
                    ),
                );
            }
            if info.legacy_pem && info.encrypted {
                push(
                    Severity::Medium,
                    ScanKind::LegacyFormat,
                    &path,
                    format!(
                        "private key {label} uses the old PEM format, whose passphrase is stretched with a single MD5 round"
                    ),
                    format!(
                        "ssh-keygen -p -f {0} (rewrites it in OpenSSH format with bcrypt-pbkdf), then keyvault import {0} --purpose NAME",
                        path.display()
                    ),
                );
            }
            let born = record
                .map(crate::KeyRecord::created_at)
                .or_else(|| meta.modified().ok().map(DateTime::<Utc>::from));
            if let Some(born) = born
                && now - born > max_age.to_delta()
            {
                let fix = match record {
                    Some(r) => format!("keyvault rotate {}", r.purpose()),
                    None => "replace it: keyvault import it, then keyvault rotate its purpose"
                        .to_owned(),
                };
                push(
                    Severity::Low,
                    ScanKind::OldKey,
                    &path,
                    format!(
                        "private key {label} is {} days old",
                        (now - born).num_days()
                    ),
                    fix,
                );
            }
            if let Some(r) = record {
                push(
                    Severity::Medium,
                    ScanKind::ManagedCopy,
                    &path,
                    format!(
                        "private key {label} is a copy of {}, which keyvault manages; rotations will not update this copy",
                        r.id()
                    ),
                    format!(
                        "point IdentityFile at keyvault's current/{} (it follows rotations) and delete this copy",
                        r.purpose()
                    ),
                );
            }
            if let Some(fp) = info.fingerprint {
                by_fingerprint.entry(fp).or_default().push(path.clone());
            }
        }
    }
    for (fp, paths) in by_fingerprint.into_iter().filter(|(_, p)| p.len() > 1) {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        for path in &paths {
            push(
                Severity::Medium,
                ScanKind::ReusedKey,
                path,
                format!(
                    "private key {fp} is stored under several names: {}",
                    names.join(", ")
                ),
                "give each purpose its own key: keyvault new --purpose NAME, and delete the copies"
                    .to_owned(),
            );
        }
    }
    severity_order(&mut findings);
    ScanReport {
        files,
        private_keys,
        findings,
    }
}

fn authorized_keys_findings(
    path: &Path,
    text: &[u8],
    is_managed: &dyn Fn(&str) -> bool,
    push: &mut dyn FnMut(Severity, ScanKind, &Path, String, String),
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
                    "check the line and rewrite or remove it".to_owned(),
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
                "check who added the line; remove it unless you mean to trust that key".to_owned(),
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
            format!("entry {fp} has no restrictions (no from=, command=, expiry-time= or restrict) beside keys keyvault manages"),
            "restrict it, or bring it under keyvault: keyvault import its private key --purpose NAME".to_owned(),
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
    /// [`StoreError`] when the inventory exists but cannot be read.
    pub fn scan(&self, dirs: &[PathBuf], max_age: Span) -> Result<crate::scan::ScanReport> {
        let inventory = self.store.load()?;
        Ok(crate::scan::scan(
            dirs,
            Some(&inventory),
            self.now(),
            max_age,
        ))
    }
}
