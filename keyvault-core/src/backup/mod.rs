//! Backups: the whole vault (inventory, every key file, the audit log, `config.toml`,
//! `known_hosts`) in one [age](https://age-encryption.org)-encrypted archive, and restoring
//! one into an empty home.
//!
//! The archive is encrypted to `age1…` recipients, to `ssh-ed25519`/`ssh-rsa` public keys,
//! or with a passphrase (scrypt). Inside is a JSON document, so `age -d backup.age | jq`
//! shows what a backup holds. Passphrases kept in the OS keyring go in only when asked
//! for, and then only inside the encrypted archive.
//!
//! A restore checks everything before writing anything: the archive decrypts, the audit
//! chain verifies against the inventory's head, every record passes the checks `new`,
//! `import` and `mint` apply (comment, public key, scope, principals, paths), every key file
//! is one a record names and matches it (fingerprint, encrypted or not), no file is larger
//! than `export` takes, and `known_hosts` holds no wildcard or marker line. It writes into
//! a staging directory beside the home (directories 0700 whatever the umask) and renames
//! it into place, so a failure leaves the home as it was. A `config.toml` or `known_hosts`
//! that differs from the vault it replaces is reported for review.

mod export;
mod restore;

pub use export::{ExportRequest, ExportTo, Exported};
pub use restore::{RestoreFrom, RestoreNote, RestoreRequest, Restored};

use crate::error::{Result, StoreError};
use crate::fsutil;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::str::FromStr;
use zeroize::{Zeroize, Zeroizing};

/// The `format` field of every archive.
pub const FORMAT: &str = "keyvault-backup";
const VERSION: u32 = 1;
/// Largest archive (decrypted) a restore reads.
const MAX_ARCHIVE_BYTES: u64 = 256 * 1024 * 1024;
/// Largest single file an export takes.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// The vault's top-level files an archive may hold (besides `keys/<name>`).
const TOP_FILES: [&str; 4] = [
    "inventory.json",
    "audit.jsonl",
    "config.toml",
    "known_hosts",
];

pub use crate::error::BackupError;

/// Someone who can decrypt an archive: an `age1…` recipient or an `ssh-ed25519` /
/// `ssh-rsa` public key.
#[derive(Clone)]
pub struct BackupRecipient(RecipientKind);

#[derive(Clone)]
enum RecipientKind {
    Age(age::x25519::Recipient),
    Ssh(Box<age::ssh::Recipient>),
}

impl std::fmt::Debug for BackupRecipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            RecipientKind::Age(r) => write!(f, "BackupRecipient({r})"),
            RecipientKind::Ssh(r) => write!(f, "BackupRecipient({r})"),
        }
    }
}

pub(crate) fn shorten(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_owned()
    }
}

impl FromStr for BackupRecipient {
    type Err = BackupError;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let s = s.trim();
        let bad = |reason: String| BackupError::Recipient {
            value: shorten(s),
            reason,
        };
        if s.starts_with("age1") {
            return age::x25519::Recipient::from_str(s)
                .map(|r| BackupRecipient(RecipientKind::Age(r)))
                .map_err(|e| bad(e.to_string()));
        }
        if s.starts_with("ssh-") || s.starts_with("ecdsa-") {
            use age::ssh::ParseRecipientKeyError as P;
            return age::ssh::Recipient::from_str(s)
                .map(|r| BackupRecipient(RecipientKind::Ssh(Box::new(r))))
                .map_err(|e| {
                    bad(match e {
                        P::Unsupported(kind) => format!(
                            "{kind} keys cannot be age recipients; use an ssh-ed25519 or ssh-rsa key, or an age1… recipient"
                        ),
                        P::RsaModulusTooSmall => "the RSA key is too small".to_owned(),
                        P::RsaModulusTooLarge => "the RSA key is too large".to_owned(),
                        _ => "not a valid SSH public key".to_owned(),
                    })
                });
        }
        Err(bad(
            "expected an age1… recipient or an ssh-ed25519 / ssh-rsa public key".to_owned(),
        ))
    }
}

impl BackupRecipient {
    /// Every recipient in a recipients file: one per line, `#` comments and blank lines
    /// ignored (as `age -R` reads them).
    ///
    /// # Errors
    ///
    /// [`BackupError::Recipient`] for a line that is not a recipient, naming the line.
    pub fn parse_file(text: &str) -> std::result::Result<Vec<Self>, BackupError> {
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            out.push(line.parse().map_err(|e| match e {
                BackupError::Recipient { value, reason } => BackupError::Recipient {
                    value,
                    reason: format!("line {}: {reason}", n + 1),
                },
                other => other,
            })?);
        }
        Ok(out)
    }

    pub(crate) fn as_age(&self) -> &dyn age::Recipient {
        match &self.0 {
            RecipientKind::Age(r) => r,
            RecipientKind::Ssh(r) => r.as_ref(),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Archive {
    pub(crate) format: String,
    pub(crate) version: u32,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) files: Vec<ArchiveFile>,
    #[serde(default)]
    pub(crate) keyring: Vec<KeyringSecret>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ArchiveFile {
    pub(crate) path: String,
    pub(crate) text: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyringSecret {
    pub(crate) key: String,
    pub(crate) account: String,
    pub(crate) secret: String,
}

impl Drop for Archive {
    fn drop(&mut self) {
        for f in &mut self.files {
            f.text.zeroize();
        }
        for s in &mut self.keyring {
            s.secret.zeroize();
        }
    }
}

/// Writes an archive to `path`: a new 0600 file created atomically (temp file, fsync,
/// rename), replacing an existing one only when `replace` is set.
///
/// # Errors
///
/// [`StoreError::Io`], also when `path` exists and `replace` is not set.
pub fn write_archive(path: &Path, archive: &[u8], replace: bool) -> Result<()> {
    let how = if replace {
        fsutil::Replace::Yes
    } else {
        fsutil::Replace::No
    };
    Ok(fsutil::write_atomic(path, archive, 0o600, how)?)
}

/// Whether `path` is a name an archive may hold: a top-level vault file or `keys/<name>`.
pub(crate) fn allowed_path(path: &str) -> bool {
    if TOP_FILES.contains(&path) {
        return true;
    }
    path.strip_prefix("keys/").is_some_and(|name| {
        !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    })
}

pub(crate) fn mode_for(path: &str) -> u32 {
    if path.ends_with(".pub") { 0o644 } else { 0o600 }
}

pub(crate) fn read_text(path: &Path) -> Result<Option<Zeroizing<String>>> {
    let Some(bytes) = fsutil::read_optional(path, MAX_FILE_BYTES)? else {
        return Ok(None);
    };
    let bytes = Zeroizing::new(bytes);
    match std::str::from_utf8(&bytes) {
        Ok(s) => Ok(Some(Zeroizing::new(s.to_owned()))),
        Err(_) => Err(StoreError::Io {
            operation: "export",
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
        }
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_vault_files_may_be_in_an_archive() {
        for ok in [
            "inventory.json",
            "audit.jsonl",
            "keys/personal-1",
            "keys/a-1.pub",
        ] {
            assert!(allowed_path(ok), "{ok}");
        }
        for bad in [
            "../etc/passwd",
            "keys/../x",
            "keys/",
            "keys/.hidden",
            "keys/a/b",
            "/abs",
            "lock",
            "current/personal",
        ] {
            assert!(!allowed_path(bad), "{bad}");
        }
    }

    #[test]
    fn recipients_parse_and_ecdsa_is_refused_with_a_reason() {
        let age_r = age::x25519::Identity::generate().to_public().to_string();
        assert!(age_r.parse::<BackupRecipient>().is_ok());
        let e = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg= x"
            .parse::<BackupRecipient>()
            .expect_err("an error")
            .to_string();
        assert!(e.contains("ssh-ed25519"), "{e}");
        let e = "hello"
            .parse::<BackupRecipient>()
            .expect_err("an error")
            .to_string();
        assert!(e.contains("age1"), "{e}");
        let file = format!("# backup keys\n\n{age_r}\nnot-a-key\n");
        let e = BackupRecipient::parse_file(&file)
            .expect_err("an error")
            .to_string();
        assert!(e.contains("line 4"), "{e}");
    }
}
