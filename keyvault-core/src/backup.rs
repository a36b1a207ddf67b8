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

use crate::callbacks::{Callbacks, PassphraseKind, PassphraseRequest, Progress};
use crate::error::{Result, StoreError};
use crate::fsutil;
use crate::inventory::{Inventory, KeyState};
use crate::vault::Vault;
use age::secrecy::SecretString;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
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

/// Why a backup could not be made or restored. Never carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// A recipient that is not an `age1…`, `ssh-ed25519` or `ssh-rsa` public key.
    #[error("invalid recipient {value:?}: {reason}")]
    Recipient {
        /// The recipient (a public key) as given, shortened.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An identity file keyvault cannot use.
    #[error("cannot use identity {path}: {reason}")]
    Identity {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The archive could not be decrypted with what was given.
    #[error("cannot decrypt {archive}: {reason}")]
    Decrypt {
        /// The archive.
        archive: String,
        /// Why (wrong identity, wrong passphrase, corrupt or truncated).
        reason: String,
    },
    /// The archive decrypted but is not a complete, consistent keyvault backup.
    #[error("{archive} is not a usable keyvault backup: {reason}")]
    Invalid {
        /// The archive.
        archive: String,
        /// What is wrong.
        reason: String,
    },
    /// The home to restore into holds files.
    #[error("{} is not empty; restore into an empty or new directory", home.display())]
    HomeNotEmpty {
        /// The home.
        home: PathBuf,
    },
    /// Encryption failed.
    #[error("cannot encrypt the archive: {reason}")]
    Encrypt {
        /// Why.
        reason: String,
    },
}

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

fn shorten(s: &str) -> String {
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

    fn as_age(&self) -> &dyn age::Recipient {
        match &self.0 {
            RecipientKind::Age(r) => r,
            RecipientKind::Ssh(r) => r.as_ref(),
        }
    }
}

/// How an archive is encrypted.
#[derive(Debug, Clone)]
pub enum ExportTo {
    /// To these recipients (any one of them can decrypt).
    Recipients(Vec<BackupRecipient>),
    /// With a passphrase asked of the callbacks (age's scrypt).
    Passphrase,
}

/// What to export: see [`Vault::export`].
#[derive(Debug, Clone)]
pub struct ExportRequest {
    to: ExportTo,
    include_keyring: bool,
    armor: bool,
    work_factor: Option<u8>,
}

impl ExportRequest {
    /// An archive encrypted as `to`.
    #[must_use]
    pub fn new(to: ExportTo) -> Self {
        ExportRequest {
            to,
            include_keyring: false,
            armor: false,
            work_factor: None,
        }
    }
    /// Also put the passphrases kept in the OS keyring into the (encrypted) archive.
    #[must_use]
    pub fn include_keyring_secrets(mut self, yes: bool) -> Self {
        self.include_keyring = yes;
        self
    }
    /// Write ASCII armor (`-----BEGIN AGE ENCRYPTED FILE-----`) instead of binary.
    #[must_use]
    pub fn armor(mut self, yes: bool) -> Self {
        self.armor = yes;
        self
    }
    /// The scrypt work factor (log2 N) of a passphrase archive. The default is age's,
    /// about a second of work on this machine; tests use a small one.
    #[must_use]
    pub fn scrypt_work_factor(mut self, log_n: u8) -> Self {
        self.work_factor = Some(log_n.clamp(1, 30));
        self
    }
}

/// A finished export.
pub struct Exported {
    /// The encrypted archive.
    pub archive: Vec<u8>,
    /// How many key records the inventory holds.
    pub keys: usize,
    /// How many files went in.
    pub files: usize,
    /// How many keyring passphrases went in.
    pub keyring_secrets: usize,
}

impl std::fmt::Debug for Exported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exported")
            .field("archive_bytes", &self.archive.len())
            .field("keys", &self.keys)
            .field("files", &self.files)
            .field("keyring_secrets", &self.keyring_secrets)
            .finish()
    }
}

/// How a restore decrypts the archive.
#[derive(Debug, Clone)]
pub enum RestoreFrom {
    /// An identity file: age's (`AGE-SECRET-KEY-1…`) or an OpenSSH private key
    /// (ed25519 or RSA; its passphrase is asked of the callbacks when it has one).
    Identity(PathBuf),
    /// A passphrase asked of the callbacks.
    Passphrase,
}

/// What to restore: see [`Vault::restore`].
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    from: RestoreFrom,
    force: bool,
    name: String,
}

impl RestoreRequest {
    /// Decrypt with `from`; `name` names the archive in messages (its path).
    #[must_use]
    pub fn new(from: RestoreFrom, name: impl Into<String>) -> Self {
        RestoreRequest {
            from,
            force: false,
            name: name.into(),
        }
    }
    /// Restore even into a home that holds files: they are moved aside, not deleted.
    #[must_use]
    pub fn force(mut self, yes: bool) -> Self {
        self.force = yes;
        self
    }
}

/// A finished restore.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    /// The home written.
    pub home: PathBuf,
    /// When the archive was made.
    pub created_at: DateTime<Utc>,
    /// How many key records the inventory holds.
    pub keys: usize,
    /// How many audit events verified.
    pub events: u64,
    /// How many keyring passphrases were put back in the OS keyring.
    pub keyring_secrets: usize,
    /// Keys whose passphrase lives in a keyring and was not in the archive.
    pub keyring_missing: Vec<String>,
    /// Where the home's previous contents went (`--force`).
    pub moved_aside: Option<PathBuf>,
    /// What the user should review: policy or host keys that differ from the vault the
    /// restore replaced.
    pub review: Vec<RestoreNote>,
}

/// Something a restore brought in that changes what the vault trusts.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreNote {
    /// How much it matters (`high`: policy or trusted host keys changed).
    pub severity: crate::status::Severity,
    /// The vault file concerned (`config.toml`, `known_hosts`).
    pub file: String,
    /// What differs.
    pub message: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Archive {
    format: String,
    version: u32,
    created_at: DateTime<Utc>,
    files: Vec<ArchiveFile>,
    #[serde(default)]
    keyring: Vec<KeyringSecret>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchiveFile {
    path: String,
    text: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringSecret {
    key: String,
    account: String,
    secret: String,
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
fn allowed_path(path: &str) -> bool {
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

fn mode_for(path: &str) -> u32 {
    if path.ends_with(".pub") { 0o644 } else { 0o600 }
}

fn read_text(path: &Path) -> Result<Option<Zeroizing<String>>> {
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

fn describe_decrypt(e: &age::DecryptError, passphrase: bool) -> String {
    use age::DecryptError as D;
    match e {
        D::NoMatchingKeys if passphrase => {
            "the archive is encrypted to recipients, not a passphrase; use --identity".to_owned()
        }
        D::NoMatchingKeys => {
            "it is not encrypted to this identity (or it needs a passphrase instead)".to_owned()
        }
        D::DecryptionFailed if passphrase => "wrong passphrase".to_owned(),
        D::DecryptionFailed | D::InvalidMac => {
            "the archive is corrupt or does not match this identity".to_owned()
        }
        D::InvalidHeader | D::UnknownFormat => {
            "not an age-encrypted file, or its header is damaged".to_owned()
        }
        D::ExcessiveWork { required, .. } => {
            format!("its scrypt work factor ({required}) is too high to try")
        }
        D::KeyDecryptionFailed => "the identity's own passphrase is wrong".to_owned(),
        D::Io(io) => format!("the archive is truncated or corrupt ({io})"),
        other => other.to_string(),
    }
}

impl Vault {
    /// Writes the whole vault into one age-encrypted archive and returns it. The audit
    /// chain must verify; keyring passphrases go in only with
    /// [`ExportRequest::include_keyring_secrets`]. Records an `export` audit event.
    ///
    /// # Errors
    ///
    /// [`crate::AuditError`] if the chain does not verify; [`crate::Error::Keyring`] when a
    /// requested keyring passphrase cannot be read; the callbacks' error; [`BackupError`].
    pub fn export(
        &self,
        request: &ExportRequest,
        callbacks: &mut dyn Callbacks,
    ) -> Result<Exported> {
        let passphrase = match &request.to {
            ExportTo::Passphrase => {
                // Held to the strength rule of purpose `backup` (config.toml may set it).
                let purpose: crate::Purpose = "backup".parse()?;
                Some(self.new_passphrase(
                    callbacks,
                    self.config.policy(&purpose),
                    &purpose,
                    "the backup archive",
                    None,
                )?)
            }
            ExportTo::Recipients(r) if r.is_empty() => {
                return Err(BackupError::Recipient {
                    value: String::new(),
                    reason: "no recipients given".to_owned(),
                }
                .into());
            }
            ExportTo::Recipients(_) => None,
        };
        let lock = self.lock()?;
        let mut inventory = self.store.load()?;
        self.verify_audit()?;
        let home = self.store.home();
        let mut files = Vec::new();
        for name in TOP_FILES {
            if let Some(text) = read_text(&home.join(name))? {
                files.push(ArchiveFile {
                    path: name.to_owned(),
                    text: text.to_string(),
                });
            }
        }
        let keys_dir = self.store.keys_dir();
        let mut names: Vec<String> = match std::fs::read_dir(&keys_dir) {
            Ok(rd) => rd
                .filter_map(std::result::Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| allowed_path(&format!("keys/{n}")))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(StoreError::Io {
                    operation: "read",
                    path: keys_dir,
                    source,
                }
                .into());
            }
        };
        // Only the files a record names: a restore refuses any other.
        let named = named_key_files(&inventory);
        names.retain(|n| named.contains(&format!("keys/{n}")));
        names.sort();
        for name in names {
            if let Some(text) = read_text(&keys_dir.join(&name))? {
                files.push(ArchiveFile {
                    path: format!("keys/{name}"),
                    text: text.to_string(),
                });
            }
        }
        let mut keyring = Vec::new();
        if request.include_keyring {
            for record in inventory.keys().iter().filter(|k| k.pruned_at().is_none()) {
                if let Some(account) = record.keyring_account() {
                    let p = self
                        .keyring()?
                        .passphrase(account, &format!("passphrase of key {}", record.id()))?;
                    keyring.push(KeyringSecret {
                        key: record.id().to_string(),
                        account: account.to_owned(),
                        secret: p.expose().to_owned(),
                    });
                }
            }
        }
        let archive = Archive {
            format: FORMAT.to_owned(),
            version: VERSION,
            created_at: self.now(),
            files,
            keyring,
        };
        // Sized up front so the buffer holding the plaintext (keyring passphrases too) is
        // not regrown, which would leave copies behind that are never zeroized. Escaping
        // at most doubles text that is mostly base64 and newlines.
        let text_bytes: usize = archive.files.iter().map(|f| f.text.len()).sum::<usize>()
            + archive
                .keyring
                .iter()
                .map(|s| s.secret.len() + 256)
                .sum::<usize>();
        let mut plain = Zeroizing::new(Vec::with_capacity(2 * text_bytes + 4096));
        serde_json::to_writer(&mut *plain, &archive).map_err(|e| BackupError::Encrypt {
            reason: e.to_string(),
        })?;
        let encrypt_err = |e: &dyn std::fmt::Display| BackupError::Encrypt {
            reason: e.to_string(),
        };
        let encryptor = match (&request.to, &passphrase) {
            (ExportTo::Recipients(r), _) => {
                age::Encryptor::with_recipients(r.iter().map(BackupRecipient::as_age))
                    .map_err(|e| encrypt_err(&e))?
            }
            (ExportTo::Passphrase, Some(p)) => {
                let mut recipient =
                    age::scrypt::Recipient::new(SecretString::from(p.expose().to_owned()));
                if let Some(n) = request.work_factor {
                    recipient.set_work_factor(n);
                }
                callbacks.progress(Progress::DerivingKey);
                let e = age::Encryptor::with_recipients(std::iter::once(&recipient as _));
                callbacks.progress(Progress::Done);
                e.map_err(|e| encrypt_err(&e))?
            }
            (ExportTo::Passphrase, None) => unreachable!("asked for above"),
        };
        let mut out = Vec::new();
        {
            let format = if request.armor {
                age::armor::Format::AsciiArmor
            } else {
                age::armor::Format::Binary
            };
            let armored = age::armor::ArmoredWriter::wrap_output(&mut out, format)
                .map_err(|e| encrypt_err(&e))?;
            let mut w = encryptor
                .wrap_output(armored)
                .map_err(|e| encrypt_err(&e))?;
            w.write_all(&plain).map_err(|e| encrypt_err(&e))?;
            w.finish()
                .and_then(age::armor::ArmoredWriter::finish)
                .map_err(|e| encrypt_err(&e))?;
        }
        let exported = Exported {
            archive: out,
            keys: inventory.keys().len(),
            files: archive.files.len(),
            keyring_secrets: archive.keyring.len(),
        };
        let how = match &request.to {
            ExportTo::Recipients(r) => format!("to {} recipient(s)", r.len()),
            ExportTo::Passphrase => "with a passphrase".to_owned(),
        };
        self.record(
            &mut inventory,
            &[crate::audit::Draft {
                action: "export",
                key_id: None,
                fingerprint: None,
                outcome: crate::audit::Outcome::Ok,
                detail: Some(format!(
                    "encrypted backup {how}: {} keys, {} files, {} keyring passphrases",
                    exported.keys, exported.files, exported.keyring_secrets
                )),
            }],
        )?;
        drop(lock);
        Ok(exported)
    }

    /// Restores an archive made by [`Vault::export`] into this vault's home, which must be
    /// empty or missing (or, with [`RestoreRequest::force`], is moved aside). Everything is
    /// checked before anything is written; keyring passphrases in the archive go back into
    /// the OS keyring. Records a `restore` audit event in the restored log.
    ///
    /// # Errors
    ///
    /// [`BackupError`] for archives that cannot be decrypted or do not verify, and for a
    /// home that is not empty; the callbacks' error; [`crate::Error::Keyring`];
    /// [`StoreError`] for I/O.
    pub fn restore(
        &self,
        archive: &[u8],
        request: &RestoreRequest,
        callbacks: &mut dyn Callbacks,
    ) -> Result<Restored> {
        let home = self.store.home().to_owned();
        let name = request.name.clone();
        let invalid = |reason: String| BackupError::Invalid {
            archive: name.clone(),
            reason,
        };
        // Refuse a non-empty home before asking for any passphrase.
        let occupied = match std::fs::read_dir(&home) {
            Ok(mut rd) => rd.next().is_some(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(source) => {
                return Err(StoreError::Io {
                    operation: "read",
                    path: home,
                    source,
                }
                .into());
            }
        };
        if occupied && !request.force {
            return Err(BackupError::HomeNotEmpty { home }.into());
        }
        let plain = self.decrypt_archive(archive, request, callbacks)?;
        let parsed: Archive = serde_json::from_slice(&plain)
            .map_err(|e| invalid(format!("its content is not a keyvault archive ({e})")))?;
        if parsed.format != FORMAT {
            return Err(invalid(format!("its format is {:?}", parsed.format)).into());
        }
        if parsed.version != VERSION {
            return Err(invalid(format!(
                "it is version {} and this keyvault reads version {VERSION}",
                parsed.version
            ))
            .into());
        }
        let mut seen = std::collections::HashSet::new();
        for f in &parsed.files {
            if !allowed_path(&f.path) {
                return Err(invalid(format!("it holds an unexpected file {:?}", f.path)).into());
            }
            if !seen.insert(f.path.as_str()) {
                return Err(invalid(format!("it holds {} twice", f.path)).into());
            }
            if f.text.len() as u64 > MAX_FILE_BYTES {
                return Err(invalid(format!(
                    "{} is larger than {MAX_FILE_BYTES} bytes, more than export takes",
                    f.path
                ))
                .into());
            }
        }
        let file = |path: &str| parsed.files.iter().find(|f| f.path == path);
        let inventory_text =
            file("inventory.json").ok_or_else(|| invalid("it has no inventory.json".to_owned()))?;
        let inventory = Inventory::parse(inventory_text.text.as_bytes())
            .map_err(|e| invalid(format!("its inventory.json is damaged: {e}")))?;
        let audit_text = file("audit.jsonl").map_or("", |f| f.text.as_str());
        let verified = crate::audit::verify_bytes(audit_text.as_bytes(), inventory.audit_head())
            .map_err(|e| invalid(format!("its audit log does not verify: {e}")))?;
        if let Some(config) = file("config.toml") {
            crate::policy::Config::parse(&config.text, Path::new("config.toml"))
                .map_err(|e| invalid(format!("its config.toml is invalid: {e}")))?;
        }
        // No file no record names, every record as `new`/`import`/`mint` would have made it.
        let named = named_key_files(&inventory);
        for f in &parsed.files {
            if !TOP_FILES.contains(&f.path.as_str()) && !named.contains(&f.path) {
                return Err(invalid(format!(
                    "it holds {}, which no record names (keyvault never exports such a file)",
                    f.path
                ))
                .into());
            }
        }
        for record in inventory.keys() {
            check_record(record)
                .map_err(|reason| invalid(format!("record {}: {reason}", record.id())))?;
        }
        if let Some(known_hosts) = file("known_hosts") {
            check_known_hosts(&known_hosts.text).map_err(&invalid)?;
        }
        for record in inventory.keys() {
            let id = record.id().to_string();
            let check = |path: &str, private: bool| -> std::result::Result<(), String> {
                let f = file(path).ok_or_else(|| format!("{path} is missing"))?;
                let fingerprint = if private {
                    let key = ssh_key::PrivateKey::from_openssh(&f.text)
                        .map_err(|e| format!("{path} is not a key ({e})"))?;
                    // An unencrypted file where the record says it is protected (or the
                    // reverse) is not what keyvault wrote.
                    let protected = record.protection() != crate::Protection::None;
                    if key.is_encrypted() != protected {
                        return Err(format!(
                            "{path} is {} but its record says {}",
                            if key.is_encrypted() {
                                "encrypted"
                            } else {
                                "not encrypted"
                            },
                            if protected {
                                "it is protected"
                            } else {
                                "it is not"
                            }
                        ));
                    }
                    Ok(key.public_key().fingerprint(ssh_key::HashAlg::Sha256))
                } else {
                    ssh_key::PublicKey::from_openssh(f.text.trim())
                        .map(|k| k.fingerprint(ssh_key::HashAlg::Sha256))
                }
                .map_err(|e| format!("{path} is not a key ({e})"))?;
                if fingerprint.to_string() == record.fingerprint() {
                    Ok(())
                } else {
                    Err(format!(
                        "{path} is not the key its record names ({} ≠ {})",
                        fingerprint,
                        record.fingerprint()
                    ))
                }
            };
            if record.pruned_at().is_none() {
                check(&format!("keys/{id}"), true).map_err(&invalid)?;
            }
            if file(&format!("keys/{id}.pub")).is_some() {
                check(&format!("keys/{id}.pub"), false).map_err(&invalid)?;
            }
        }
        for s in &parsed.keyring {
            let ok = inventory
                .keys()
                .iter()
                .any(|k| k.id().as_str() == s.key && k.keyring_account() == Some(&s.account));
            if !ok {
                return Err(invalid(format!(
                    "it holds a keyring passphrase for {} that no record names",
                    s.key
                ))
                .into());
            }
        }
        let keyring_missing: Vec<String> = inventory
            .keys()
            .iter()
            .filter(|k| k.pruned_at().is_none() && k.state() != KeyState::Revoked)
            .filter(|k| {
                k.keyring_account()
                    .is_some_and(|a| !parsed.keyring.iter().any(|s| s.account == a))
            })
            .map(|k| k.id().to_string())
            .collect();

        // Everything checked: stage the files beside the home, then swap it in.
        let parent = fsutil::parent_dir(&home).to_owned();
        if !parent.exists() {
            // 0700 whatever the umask: the mode only ever loses bits to it.
            std::os::unix::fs::DirBuilderExt::mode(
                std::fs::DirBuilder::new().recursive(true),
                0o700,
            )
            .create(&parent)
            .map_err(|source| StoreError::Io {
                operation: "create",
                path: parent.clone(),
                source,
            })?;
        }
        // What changes what the vault trusts, against the vault it replaces.
        let review = if occupied {
            review_against(&home, &file)
        } else {
            Vec::new()
        };
        let base = home.file_name().map_or_else(
            || "keyvault".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let stamp = self.now().format("%Y%m%dT%H%M%SZ");
        let staging = parent.join(format!(".{base}.restore-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        let staged = (|| -> Result<()> {
            fsutil::ensure_dir(&staging, 0o700)?;
            fsutil::ensure_dir(&staging.join("keys"), 0o700)?;
            for f in &parsed.files {
                fsutil::write_atomic(
                    &staging.join(&f.path),
                    f.text.as_bytes(),
                    mode_for(&f.path),
                    fsutil::Replace::No,
                )?;
            }
            let current = staging.join("current");
            fsutil::ensure_dir(&current, 0o700)?;
            for purpose in inventory.purposes() {
                if let Some(active) = inventory.active(purpose) {
                    crate::vault::point_current_in(&current, purpose, active.id())?;
                }
            }
            fsutil::sync_dir(&staging.join("keys"))?;
            fsutil::sync_dir(&staging)?;
            Ok(())
        })();
        if let Err(e) = staged {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        // The keyring before the swap: if it refuses, the home is untouched.
        if !parsed.keyring.is_empty() {
            let put = (|| -> Result<()> {
                let keyring = self.keyring()?;
                for s in &parsed.keyring {
                    keyring.set(&s.account, &s.secret)?;
                }
                Ok(())
            })();
            if let Err(e) = put {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
        }
        let io = |operation: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io {
                operation,
                path,
                source,
            }
        };
        let mut moved_aside = None;
        if occupied {
            let aside = parent.join(format!("{base}.before-restore-{stamp}"));
            std::fs::rename(&home, &aside).map_err(io("move aside", &home))?;
            moved_aside = Some(aside);
        } else if home.exists() {
            std::fs::remove_dir(&home).map_err(io("replace", &home))?;
        }
        std::fs::rename(&staging, &home).map_err(io("rename", &staging))?;
        fsutil::sync_dir(&parent)?;

        let restored = Vault::open(&home)?.with_actor(self.actor.clone());
        let mut inventory = restored.store.load()?;
        let mut detail = format!(
            "restored from a backup made {}: {} keys",
            parsed.created_at.to_rfc3339(),
            inventory.keys().len()
        );
        if let Some(aside) = &moved_aside {
            detail.push_str(&format!("; previous contents moved to {}", aside.display()));
        }
        restored.record(
            &mut inventory,
            &[crate::audit::Draft {
                action: "restore",
                key_id: None,
                fingerprint: None,
                outcome: crate::audit::Outcome::Ok,
                detail: Some(detail),
            }],
        )?;
        Ok(Restored {
            home,
            created_at: parsed.created_at,
            keys: inventory.keys().len(),
            events: verified.events,
            keyring_secrets: parsed.keyring.len(),
            keyring_missing,
            moved_aside,
            review,
        })
    }

    fn decrypt_archive(
        &self,
        archive: &[u8],
        request: &RestoreRequest,
        callbacks: &mut dyn Callbacks,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let name = request.name.clone();
        let passphrase = matches!(request.from, RestoreFrom::Passphrase);
        let fail = |reason: String| BackupError::Decrypt {
            archive: name.clone(),
            reason,
        };
        let start = archive
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .map_or(&archive[..0], |i| &archive[i..]);
        if !start.starts_with(b"age-encryption.org/")
            && !start.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
        {
            return Err(fail("not an age-encrypted file".to_owned()).into());
        }
        let decryptor = age::Decryptor::new_buffered(age::armor::ArmoredReader::new(archive))
            .map_err(|e| fail(describe_decrypt(&e, passphrase)))?;
        let identities: Vec<Box<dyn age::Identity>> = match &request.from {
            RestoreFrom::Passphrase => {
                if !decryptor.is_scrypt() {
                    return Err(fail(
                        "it is encrypted to recipients, not a passphrase; use --identity"
                            .to_owned(),
                    )
                    .into());
                }
                let p = callbacks.passphrase(&PassphraseRequest::new(
                    PassphraseKind::Existing,
                    "the backup archive",
                ))?;
                let mut identity =
                    age::scrypt::Identity::new(SecretString::from(p.expose().to_owned()));
                identity.set_max_work_factor(30);
                vec![Box::new(identity)]
            }
            RestoreFrom::Identity(path) => {
                if decryptor.is_scrypt() {
                    return Err(fail(
                        "it is encrypted with a passphrase; use a passphrase source instead of --identity"
                            .to_owned(),
                    )
                    .into());
                }
                identities_from(path, callbacks)?
            }
        };
        if passphrase {
            callbacks.progress(Progress::DerivingKey);
        }
        let reader = decryptor.decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity));
        let mut plain = Zeroizing::new(Vec::new());
        let read = reader
            .map_err(|e| fail(describe_decrypt(&e, passphrase)))
            .and_then(|r| {
                r.take(MAX_ARCHIVE_BYTES + 1)
                    .read_to_end(&mut plain)
                    .map_err(|e| fail(format!("the archive is truncated or corrupt ({e})")))
            });
        if passphrase {
            callbacks.progress(Progress::Done);
        }
        read?;
        if plain.len() as u64 > MAX_ARCHIVE_BYTES {
            return Err(fail(format!(
                "it holds more than {MAX_ARCHIVE_BYTES} bytes, more than any vault"
            ))
            .into());
        }
        Ok(plain)
    }
}

/// The `keys/` files the records of `inventory` name: each live key's private file, each
/// key's `.pub`, and each certificate.
fn named_key_files(inventory: &Inventory) -> std::collections::HashSet<String> {
    let mut named = std::collections::HashSet::new();
    for record in inventory.keys() {
        let id = record.id();
        if record.pruned_at().is_none() {
            named.insert(format!("keys/{id}"));
        }
        named.insert(format!("keys/{id}.pub"));
        if let Some(cert) = record.certificate() {
            named.insert(cert.path.clone());
        }
    }
    named
}

/// Checks a restored record as `new`, `import`, `mint` and `ca trust` check what they
/// record: anything else could put text into an `authorized_keys` line (a comment holding a
/// line break and a second key) or into a file path.
fn check_record(record: &crate::KeyRecord) -> std::result::Result<(), String> {
    let id = record.id().as_str();
    let number = id
        .strip_prefix(record.purpose().as_str())
        .and_then(|n| n.strip_prefix('-'));
    if !number.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) {
        return Err(format!(
            "its id is not <purpose>-<n> for purpose {}",
            record.purpose()
        ));
    }
    Vault::check_comment(record.comment()).map_err(|e| format!("its comment is invalid: {e}"))?;
    let public = record.public_key();
    if public.chars().any(char::is_control) || public.len() > 16 * 1024 {
        return Err("its public key holds a line break or control character".to_owned());
    }
    let key = ssh_key::PublicKey::from_openssh(public)
        .map_err(|e| format!("its public key does not parse ({e})"))?;
    if key.fingerprint(ssh_key::HashAlg::Sha256).to_string() != record.fingerprint() {
        return Err("its public key does not have its fingerprint".to_owned());
    }
    if let Some(scope) = record.scope() {
        crate::lifecycle::check_scope(scope).map_err(|e| e.to_string())?;
    }
    if let Some(principals) = record.cert_authority() {
        crate::ca::check_principals(principals).map_err(|e| e.to_string())?;
    }
    if let Some(cert) = record.certificate() {
        crate::ca::check_principals(&cert.principals).map_err(|e| e.to_string())?;
        if cert.path != format!("keys/{id}-cert.pub") {
            return Err(format!(
                "its certificate path {:?} is not keys/{id}-cert.pub",
                cert.path
            ));
        }
    }
    let plain = |s: &str| !s.is_empty() && s.len() <= 4096 && !s.chars().any(char::is_control);
    for d in record.deployments() {
        if !plain(d.target()) {
            return Err("a deployment target holds a control character".to_owned());
        }
    }
    if record.keyring_account().is_some_and(|a| !plain(a)) {
        return Err("its keyring account holds a control character".to_owned());
    }
    Ok(())
}

/// Refuses `known_hosts` lines keyvault never writes: a marker (`@cert-authority`,
/// `@revoked`) or a host pattern with a wildcard or negation, which would trust a key for
/// hosts nobody checked.
fn check_known_hosts(text: &str) -> std::result::Result<(), String> {
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let hosts = line.split_whitespace().next().unwrap_or_default();
        if hosts.starts_with('@') {
            return Err(format!(
                "its known_hosts line {} is a {} marker, which keyvault never writes",
                n + 1,
                hosts.escape_debug()
            ));
        }
        if !hosts.starts_with("|1|") && hosts.contains(['*', '?', '!']) {
            return Err(format!(
                "its known_hosts line {} trusts a host key for the pattern {:?}, which keyvault never writes",
                n + 1,
                hosts
            ));
        }
    }
    Ok(())
}

/// What an archive changes in the policy and trusted host keys of the vault at `home`
/// (which it is about to replace).
fn review_against<'a>(
    home: &Path,
    file: &dyn Fn(&str) -> Option<&'a ArchiveFile>,
) -> Vec<RestoreNote> {
    let mut notes = Vec::new();
    for name in ["config.toml", "known_hosts"] {
        let before = fsutil::read_optional(&home.join(name), MAX_FILE_BYTES)
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let after = file(name).map_or("", |f| f.text.as_str());
        if before == after {
            continue;
        }
        let old: std::collections::HashSet<&str> = before.lines().map(str::trim).collect();
        let new: std::collections::HashSet<&str> = after.lines().map(str::trim).collect();
        let added: Vec<String> = after
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !old.contains(l))
            .map(|l| format!("{:?}", shorten(l)))
            .collect();
        let removed = before
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !new.contains(l))
            .count();
        let what = if name == "config.toml" {
            "the policy"
        } else {
            "the trusted host keys"
        };
        let mut message = format!(
            "{name} from the archive differs from the vault it replaced: {what} changed ({} line(s) added, {removed} removed)",
            added.len()
        );
        if !added.is_empty() {
            message.push_str(&format!(": {}", added.join(", ")));
        }
        notes.push(RestoreNote {
            severity: crate::status::Severity::High,
            file: name.to_owned(),
            message,
        });
    }
    notes
}

/// The identities in an identity file: age's, or one OpenSSH private key (decrypted with a
/// passphrase from `callbacks` if it is encrypted).
fn identities_from(
    path: &Path,
    callbacks: &mut dyn Callbacks,
) -> Result<Vec<Box<dyn age::Identity>>> {
    let bad = |reason: String| BackupError::Identity {
        path: path.to_owned(),
        reason,
    };
    let bytes = fsutil::read_optional(path, 1024 * 1024)?
        .map(Zeroizing::new)
        .ok_or_else(|| bad("no such file".to_owned()))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("not a text file".to_owned()))?;
    if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
        let key =
            ssh_key::PrivateKey::from_openssh(text).map_err(|e| bad(format!("not a key ({e})")))?;
        let subject = format!("identity {}", path.display());
        let plain = if key.is_encrypted() {
            let p = callbacks
                .passphrase(&PassphraseRequest::new(PassphraseKind::Existing, &subject))?;
            crate::keyfile::decrypt(&key, &p, &subject)?
        } else {
            key
        };
        let pem = crate::keyfile::to_openssh(&plain)?;
        let identity = age::ssh::Identity::from_buffer(pem.as_bytes(), None)
            .map_err(|e| bad(e.to_string()))?;
        if let age::ssh::Identity::Unsupported(_) = identity {
            return Err(bad(format!(
                "{} keys cannot decrypt age archives; use an ssh-ed25519 or ssh-rsa key",
                plain.algorithm()
            ))
            .into());
        }
        return Ok(vec![Box::new(identity)]);
    }
    let file = age::IdentityFile::from_buffer(text.as_bytes())
        .map_err(|e| bad(format!("not an age identity file ({e})")))?;
    let identities = file
        .into_identities()
        .map_err(|e| bad(e.to_string()))?
        .into_iter()
        .map(|i| i as Box<dyn age::Identity>)
        .collect::<Vec<_>>();
    if identities.is_empty() {
        return Err(bad("it holds no identity".to_owned()).into());
    }
    Ok(identities)
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
