//! Exporting the vault into an age-encrypted archive.

use super::restore::named_key_files;
use super::*;
use crate::callbacks::{Callbacks, Progress};
use crate::error::{Result, StoreError};
use crate::inventory::Inventory;
use crate::secret::Passphrase;
use crate::vault::Vault;
use age::secrecy::SecretString;
use std::io::Write;
use zeroize::Zeroizing;

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
        let passphrase = self.export_passphrase(request, callbacks)?;
        let mut txn = self.begin(crate::store::View::All)?;
        // The log as the store holds it, verified as it goes into the archive.
        let mut log = Vec::new();
        self.store.audit_lines(0, &mut |line| {
            log.extend_from_slice(line);
            log.push(b'\n');
            Ok(())
        })?;
        crate::audit::verify_bytes(&log, txn.audit_head())?;
        let files = self.archive_files(&txn, &log)?;
        let keyring = self.keyring_secrets(&txn, request)?;
        let archive = Archive {
            format: FORMAT.to_owned(),
            version: VERSION,
            created_at: self.now(),
            files,
            keyring,
        };
        let plain = serialize(&archive)?;
        let out = encrypt(&plain, request, passphrase.as_ref(), callbacks)?;
        let exported = Exported {
            archive: out,
            keys: txn.keys().len(),
            files: archive.files.len(),
            keyring_secrets: archive.keyring.len(),
        };
        let how = match &request.to {
            ExportTo::Recipients(r) => format!("to {} recipient(s)", r.len()),
            ExportTo::Passphrase => "with a passphrase".to_owned(),
        };
        txn.record([crate::audit::Draft {
            action: "export",
            key_id: None,
            fingerprint: None,
            outcome: crate::audit::Outcome::Ok,
            detail: Some(format!(
                "encrypted backup {how}: {} keys, {} files, {} keyring passphrases",
                exported.keys, exported.files, exported.keyring_secrets
            )),
        }]);
        txn.commit()?;
        Ok(exported)
    }

    /// The archive's passphrase when it is encrypted with one (asked before the lock);
    /// refuses an empty list of recipients.
    fn export_passphrase(
        &self,
        request: &ExportRequest,
        callbacks: &mut dyn Callbacks,
    ) -> Result<Option<Passphrase>> {
        match &request.to {
            ExportTo::Passphrase => {
                // Held to the strength rule of purpose `backup` (config.toml may set it).
                let purpose: crate::Purpose = "backup".parse()?;
                Ok(Some(self.new_passphrase(
                    callbacks,
                    self.config.policy(&purpose),
                    &purpose,
                    "the backup archive",
                    None,
                )?))
            }
            ExportTo::Recipients(r) if r.is_empty() => Err(BackupError::Recipient {
                value: String::new(),
                reason: "no recipients given".to_owned(),
            }
            .into()),
            ExportTo::Recipients(_) => Ok(None),
        }
    }

    /// The top files, then the `keys/` files a record of `inventory` names, sorted.
    /// `inventory.json` and `audit.jsonl` are made from the store (`inventory` and `log`),
    /// whichever store it is, so an archive has the same format from every store.
    fn archive_files(&self, inventory: &Inventory, log: &[u8]) -> Result<Vec<ArchiveFile>> {
        let home = self.paths.home();
        let mut files = Vec::new();
        let from_store = |bytes: &[u8]| {
            String::from_utf8(bytes.to_owned()).map_err(|e| BackupError::Encrypt {
                reason: format!("the audit log is not UTF-8 ({e})"),
            })
        };
        files.push(ArchiveFile {
            path: "inventory.json".to_owned(),
            text: from_store(&inventory.to_json())?,
        });
        if !log.is_empty() {
            files.push(ArchiveFile {
                path: "audit.jsonl".to_owned(),
                text: from_store(log)?,
            });
        }
        for name in TOP_FILES
            .into_iter()
            .filter(|n| !matches!(*n, "inventory.json" | "audit.jsonl"))
        {
            if let Some(text) = read_text(&home.join(name))? {
                files.push(ArchiveFile {
                    path: name.to_owned(),
                    text: text.to_string(),
                });
            }
        }
        let keys_dir = self.paths.keys_dir();
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
        let named = named_key_files(inventory);
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
        Ok(files)
    }

    /// The keyring passphrases of the live keys, when the request includes them.
    fn keyring_secrets(
        &self,
        inventory: &Inventory,
        request: &ExportRequest,
    ) -> Result<Vec<KeyringSecret>> {
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
        Ok(keyring)
    }
}

/// The archive as JSON, in a buffer zeroized when dropped.
fn serialize(archive: &Archive) -> Result<Zeroizing<Vec<u8>>> {
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
    serde_json::to_writer(&mut *plain, archive).map_err(|e| BackupError::Encrypt {
        reason: e.to_string(),
    })?;
    Ok(plain)
}

/// `plain` encrypted as `request` says (to its recipients, or with `passphrase`), armored
/// when asked.
fn encrypt(
    plain: &[u8],
    request: &ExportRequest,
    passphrase: Option<&Passphrase>,
    callbacks: &mut dyn Callbacks,
) -> Result<Vec<u8>> {
    let encrypt_err = |e: &dyn std::fmt::Display| BackupError::Encrypt {
        reason: e.to_string(),
    };
    let encryptor = match (&request.to, passphrase) {
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
        w.write_all(plain).map_err(|e| encrypt_err(&e))?;
        w.finish()
            .and_then(age::armor::ArmoredWriter::finish)
            .map_err(|e| encrypt_err(&e))?;
    }
    Ok(out)
}
