//! Keys of the vault: creating, importing, writing and re-encrypting private keys.

mod write;

use crate::admission::{Admitted, KeyOptions, check_comment};
use crate::audit::{Draft, Outcome};
use crate::callbacks::{Callbacks, PassphraseKind, PassphraseRequest, Progress};
use crate::error::{Result, StoreError};
use crate::fsutil;
use crate::inventory::{Inventory, KeyRecord, KeyState, Origin, Protection, Purpose};
use crate::keyfile::{self, DEFAULT_KDF_ROUNDS};
use crate::keygen::{self, Algorithm};
use crate::names::KeySelector;
use crate::policy::Policy;
use crate::secret::Passphrase;
use crate::vault::Vault;
use chrono::{DateTime, Utc};
use ssh_key::rand_core::CryptoRng;
use ssh_key::{HashAlg, PrivateKey};
use std::path::Path;

/// What to generate: see [`Vault::create`].
#[derive(Debug, Clone)]
pub struct NewKey {
    purpose: Purpose,
    options: KeyOptions,
}

impl NewKey {
    /// A key for `purpose` with the purpose's default algorithm and lifetime.
    #[must_use]
    pub fn new(purpose: Purpose) -> Self {
        Self::with_options(purpose, KeyOptions::default())
    }
    /// A key for `purpose` with these options.
    #[must_use]
    pub fn with_options(purpose: Purpose, options: KeyOptions) -> Self {
        NewKey { purpose, options }
    }
    crate::admission::key_options_setters!(
        algorithm,
        expiry,
        comment,
        kdf_rounds,
        unencrypted,
        passphrase_in_keyring
    );
}

/// What to adopt: see [`Vault::import`].
#[derive(Debug, Clone)]
pub struct ImportKey {
    purpose: Purpose,
    options: KeyOptions,
}

impl ImportKey {
    /// Import into `purpose`, expiring after the purpose's default lifetime.
    #[must_use]
    pub fn new(purpose: Purpose) -> Self {
        ImportKey {
            purpose,
            options: KeyOptions::default(),
        }
    }
    crate::admission::key_options_setters!(expiry, comment, unencrypted);
}

/// A new key after its slow parts ran, waiting to be written under the lock.
pub(crate) struct Prepared {
    pub(crate) key: PrivateKey,
    pub(crate) purpose: Purpose,
    pub(crate) algorithm: Algorithm,
    pub(crate) expires_at: Option<DateTime<Utc>>,
    pub(crate) comment: Option<String>,
    pub(crate) protection: Option<(Passphrase, u32)>,
    /// Keep the passphrase in the keyring (under the key's account).
    pub(crate) keyring: bool,
    pub(crate) origin: Origin,
    pub(crate) detail: String,
    /// The instant the expiry was computed from; recorded as `created_at` so a key's
    /// lifetime is exactly what was asked for.
    pub(crate) created_at: DateTime<Utc>,
    /// The encryption under `protection`, its KDF already running (started as early as
    /// possible, so that the vault's I/O overlaps it); `None` until started.
    pub(crate) encryption: Option<keyfile::PendingEncryption>,
}

impl Prepared {
    /// A new key of `purpose` as `admitted`, encrypted with `protection` when it is `Some`.
    pub(crate) fn new(
        key: PrivateKey,
        purpose: &Purpose,
        admitted: &Admitted,
        protection: Option<(Passphrase, u32)>,
        origin: Origin,
        detail: String,
    ) -> Self {
        Prepared {
            key,
            purpose: purpose.clone(),
            algorithm: admitted.algorithm(),
            expires_at: Some(admitted.expires_at()),
            comment: admitted.comment().map(ToOwned::to_owned),
            keyring: admitted.protection() == Protection::Keyring,
            protection,
            origin,
            detail,
            created_at: admitted.created_at(),
            encryption: None,
        }
    }

    /// Starts the encryption's KDF (if the key is to be encrypted and it has not started).
    pub(super) fn start_encryption<R: CryptoRng + ?Sized>(&mut self, rng: &mut R) -> Result<()> {
        if let (Some((passphrase, rounds)), None) = (&self.protection, &self.encryption) {
            self.encryption = Some(keyfile::start_encryption(rng, passphrase, *rounds)?);
        }
        Ok(())
    }
}

impl Vault {
    pub(crate) fn context_words<'a>(
        &'a self,
        purpose: &'a Purpose,
        comment: Option<&'a str>,
    ) -> Vec<&'a str> {
        let mut words = vec![purpose.as_str(), "keyvault"];
        words.extend(self.actor.split(['@', '.']));
        words.extend(comment);
        words
    }

    /// The passphrase a new key is encrypted with, and its kdf rounds, as `admitted`
    /// says: none; a random one kept in the keyring (which must be reachable); or a new one
    /// from `callbacks`, checked against the purpose's policy (`comment` joins the words it
    /// must not be built from).
    pub(crate) fn protect<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        admitted: &Admitted,
        callbacks: &mut dyn Callbacks,
        purpose: &Purpose,
        subject: &str,
        comment: Option<&str>,
    ) -> Result<Option<(Passphrase, u32)>> {
        let passphrase = match admitted.protection() {
            Protection::None => return Ok(None),
            Protection::Keyring => {
                self.keyring()?;
                crate::vault_secrets::random_passphrase(rng)
            }
            Protection::Passphrase => self.new_passphrase(
                callbacks,
                self.config.policy(purpose),
                purpose,
                subject,
                comment,
            )?,
        };
        Ok(Some((passphrase, admitted.kdf_rounds())))
    }

    /// A new key of the admitted algorithm, with progress to `callbacks`. `new`, `mint` and
    /// `rotate` call it right after [`Vault::protect`], in the order the user sees them
    /// (passphrase first, then the wait).
    pub(crate) fn generate<R: CryptoRng + ?Sized>(
        rng: &mut R,
        admitted: &Admitted,
        callbacks: &mut dyn Callbacks,
    ) -> Result<ssh_key::PrivateKey> {
        let algorithm = admitted.algorithm();
        callbacks.progress(Progress::Generating(algorithm));
        let key = keygen::generate(rng, algorithm, "");
        callbacks.progress(Progress::Done);
        Ok(key?)
    }

    /// As [`Vault::protect`] then [`Vault::generate`], with the encryption's KDF (nearly all of the
    /// time `new` takes) started as soon as the passphrase is known: the strength check
    /// (zxcvbn builds its dictionaries on first use, about 15 ms) and then the vault's I/O
    /// run while it works. A refused passphrase drops the KDF unfinished (it stops).
    fn protect_and_generate_started<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        admitted: &Admitted,
        callbacks: &mut dyn Callbacks,
        purpose: &Purpose,
        subject: &str,
    ) -> Result<Prepared> {
        let comment = admitted.comment();
        let (protection, encryption) = if admitted.protection() == Protection::Passphrase {
            let policy = self.config.policy(purpose);
            let rounds = admitted.kdf_rounds();
            let (passphrase, encryption) =
                self.new_passphrase_then(callbacks, policy, purpose, subject, comment, |p| {
                    // An empty passphrase is the check's to refuse, not the KDF's.
                    Ok((!p.is_empty())
                        .then(|| keyfile::start_encryption(rng, p, rounds))
                        .transpose()?)
                })?;
            (Some((passphrase, rounds)), encryption)
        } else {
            let protection = self.protect(rng, admitted, callbacks, purpose, subject, comment)?;
            (protection, None)
        };
        let key = Vault::generate(rng, admitted, callbacks)?;
        let mut prepared = Prepared::new(
            key,
            purpose,
            admitted,
            protection,
            Origin::Generated,
            String::new(),
        );
        prepared.encryption = encryption;
        prepared.start_encryption(rng)?;
        Ok(prepared)
    }

    /// `options` for a key keyvault is to generate for `purpose`, admitted by the
    /// purpose's policy now.
    pub(crate) fn admit_generated(
        &self,
        purpose: &Purpose,
        options: &KeyOptions,
    ) -> Result<Admitted> {
        Ok(self
            .config
            .policy(purpose)
            .admit(purpose, options, Origin::Generated, self.now())?)
    }

    /// A new key generated for a `new` or `mint` request as `admitted` (its own comment in
    /// the passphrase prompt), ready to write; its audit detail is left empty.
    pub(crate) fn generate_new<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        admitted: &Admitted,
        callbacks: &mut dyn Callbacks,
        purpose: &Purpose,
        subject: &str,
    ) -> Result<Prepared> {
        let protection = self.protect(
            rng,
            admitted,
            callbacks,
            purpose,
            subject,
            admitted.comment(),
        )?;
        let key = Vault::generate(rng, admitted, callbacks)?;
        Ok(Prepared::new(
            key,
            purpose,
            admitted,
            protection,
            Origin::Generated,
            String::new(),
        ))
    }

    pub(crate) fn new_passphrase(
        &self,
        callbacks: &mut dyn Callbacks,
        policy: &Policy,
        purpose: &Purpose,
        subject: &str,
        comment: Option<&str>,
    ) -> Result<Passphrase> {
        let (passphrase, ()) =
            self.new_passphrase_then(callbacks, policy, purpose, subject, comment, |_| Ok(()))?;
        Ok(passphrase)
    }

    /// As [`Vault::new_passphrase`], running `meanwhile` on the passphrase before the policy
    /// checks it (`new` starts the KDF there); its result is dropped if the check refuses.
    pub(crate) fn new_passphrase_then<T>(
        &self,
        callbacks: &mut dyn Callbacks,
        policy: &Policy,
        purpose: &Purpose,
        subject: &str,
        comment: Option<&str>,
        meanwhile: impl FnOnce(&Passphrase) -> Result<T>,
    ) -> Result<(Passphrase, T)> {
        let context = self.context_words(purpose, comment);
        let passphrase = callbacks.passphrase(
            &PassphraseRequest::new(PassphraseKind::New, subject)
                .checked_by(policy, purpose, &context),
        )?;
        let started = meanwhile(&passphrase)?;
        policy.check_passphrase(purpose, subject, &passphrase, &context)?;
        Ok((passphrase, started))
    }

    /// Generates a key for a purpose, encrypts it, records it as the purpose's active key
    /// and points `current/<purpose>` at it.
    ///
    /// Asks `callbacks` for a new passphrase (unless the request is unencrypted and the
    /// policy allows it) before any slow work, and reports generation as [`Progress`].
    /// Nothing is written until every check passed.
    ///
    /// # Errors
    ///
    /// [`crate::InputError`] and [`crate::PolicyError`] for requests the rules refuse,
    /// [`StoreError::ActiveKeyExists`] when the purpose already has an active key,
    /// the callbacks' error, [`KeyError`](crate::KeyError) and [`StoreError`] for failures.
    pub fn create<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        request: &NewKey,
        callbacks: &mut dyn Callbacks,
    ) -> Result<KeyRecord> {
        let purpose = &request.purpose;
        let admitted = self.admit_generated(purpose, &request.options)?;
        // Fail before asking anything if the purpose is taken or the inventory is bad.
        self.check_no_active(&self.store.load(crate::store::View::Live)?, purpose)?;
        let subject = format!("new key for purpose {purpose}");
        let mut prepared =
            self.protect_and_generate_started(rng, &admitted, callbacks, purpose, &subject)?;
        prepared.detail = format!(
            "generated {}, expires {}",
            admitted.algorithm(),
            admitted.expires_at().to_rfc3339()
        );
        self.commit_new(rng, prepared)
    }

    pub(crate) fn check_no_active(&self, inventory: &Inventory, purpose: &Purpose) -> Result<()> {
        match inventory.active(purpose) {
            Some(k) => Err(StoreError::ActiveKeyExists {
                purpose: purpose.to_string(),
                id: k.id().to_string(),
            }
            .into()),
            None => Ok(()),
        }
    }

    /// Under the lock: checks the purpose is free, writes the key, records it with an audit
    /// event and swaps `current/<purpose>`.
    pub(crate) fn commit_new<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        mut prepared: Prepared,
    ) -> Result<KeyRecord> {
        // The KDF runs while the lock is taken and the state read.
        prepared.start_encryption(rng)?;
        let mut txn = self.begin(crate::store::View::Live)?;
        self.check_no_active(&txn, &prepared.purpose)?;
        let action = match prepared.origin {
            Origin::Generated => "create",
            Origin::Imported => "import",
        };
        let detail = prepared.detail.clone();
        let record = self.write_key(&mut txn, rng, prepared, KeyState::Active)?;
        txn.record([Draft {
            action,
            key_id: Some(record.id().to_string()),
            fingerprint: Some(record.fingerprint().to_string()),
            outcome: Outcome::Ok,
            detail: Some(detail),
        }]);
        if let Err(e) = txn.save() {
            self.remove_key_files(&record);
            return Err(e);
        }
        self.point_current(record.purpose(), record.id())?;
        txn.commit()?;
        Ok(record)
    }

    pub(crate) fn remove_key_files(&self, record: &KeyRecord) {
        if let Some(account) = record.keyring_account() {
            self.forget_keyring_account(account);
        }
        let path = self.private_key_path(record);
        // Outside fsutil: removes (never writes) the key files this failed write made, in
        // the checked `keys/` directory; unlink does not follow a link.
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(path.with_file_name(format!("{}.pub", record.id())));
        if let Some(cert) = record.certificate() {
            // Outside fsutil: only removes the certificate this failed write made.
            let _ = std::fs::remove_file(self.home().join(&cert.path));
        }
    }

    /// Adopts an existing OpenSSH private key (e.g. one `ssh-keygen` made) as the active
    /// key of a purpose. The source file is read, never changed.
    ///
    /// An encrypted key is decrypted with the passphrase `callbacks` supplies (which must
    /// meet the policy) and re-encrypted with it; an unencrypted key is encrypted with a new
    /// passphrase unless the request is unencrypted and the policy allows that.
    ///
    /// # Errors
    ///
    /// As [`Vault::create`], plus [`KeyError`](crate::KeyError) for files that are not readable keys,
    /// [`StoreError::Permissions`] for a source others can read, and
    /// [`StoreError::DuplicateKey`] for a key already in the vault.
    pub fn import<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        path: &Path,
        request: &ImportKey,
        callbacks: &mut dyn Callbacks,
    ) -> Result<KeyRecord> {
        let purpose = &request.purpose;
        let policy = self.config.policy(purpose);
        let source = std::fs::canonicalize(path).map_err(|source| StoreError::Io {
            operation: "read",
            path: path.to_owned(),
            source,
        })?;
        let (key, _) = keyfile::read(&source)?;
        let subject = path.display().to_string();
        let algorithm = Algorithm::of_public_key(key.public_key(), &subject)?;
        // An encrypted key keeps its passphrase; only an unencrypted one may stay so.
        let options = request.options.clone().algorithm(algorithm);
        let options = if key.is_encrypted() {
            options.unencrypted(false)
        } else {
            options
        };
        let admitted = policy.admit(purpose, &options, Origin::Imported, self.now())?;
        self.check_no_active(&self.store.load(crate::store::View::Live)?, purpose)?;
        let fingerprint = key.fingerprint(HashAlg::Sha256);
        // The same key revoked long ago counts too: history is read record by record.
        let mut dup = None;
        self.store.each_key(&mut |k| {
            if dup.is_none() && *k.fingerprint() == fingerprint {
                dup = Some(k.id().to_string());
            }
            Ok(())
        })?;
        if let Some(id) = dup {
            return Err(StoreError::DuplicateKey { id }.into());
        }
        let (plain, protection) = if key.is_encrypted() {
            let passphrase = callbacks
                .passphrase(&PassphraseRequest::new(PassphraseKind::Existing, &subject))?;
            let plain = keyfile::decrypt(&key, &passphrase, &subject)?;
            policy.check_passphrase(
                purpose,
                &subject,
                &passphrase,
                &self.context_words(purpose, None),
            )?;
            let rounds = keyfile::kdf_rounds(&key)
                .unwrap_or(0)
                .max(admitted.kdf_rounds());
            (plain, Some((passphrase, rounds)))
        } else {
            let subject = format!("imported key for purpose {purpose}");
            let protection = self.protect(rng, &admitted, callbacks, purpose, &subject, None)?;
            (key.clone(), protection)
        };
        let file_comment = String::from_utf8_lossy(plain.comment().as_bytes()).into_owned();
        let detail = format!(
            "imported {algorithm} from {}, expires {}",
            source.display(),
            admitted.expires_at().to_rfc3339()
        );
        let mut prepared = Prepared::new(
            plain,
            purpose,
            &admitted,
            protection,
            Origin::Imported,
            detail,
        );
        if prepared.comment.is_none() && !file_comment.is_empty() {
            prepared.comment = check_comment(&file_comment).is_ok().then_some(file_comment);
        }
        self.commit_new(rng, prepared)
    }

    /// Re-encrypts a key with a new passphrase, atomically. The old passphrase (for an
    /// encrypted key) and the new one come from `callbacks`; a wrong old passphrase leaves
    /// the key file byte for byte as it was.
    ///
    /// # Errors
    ///
    /// As [`Vault::find`]; [`KeyError::Decrypt`](crate::KeyError::Decrypt) for a wrong old passphrase;
    /// [`crate::PolicyError::WeakPassphrase`]; [`StoreError::Changed`] if the file changed
    /// meanwhile; [`StoreError`] for I/O.
    pub fn change_passphrase<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        selector: &KeySelector,
        callbacks: &mut dyn Callbacks,
    ) -> Result<KeyRecord> {
        let inventory = self.store.load(crate::store::View::Live)?;
        let record = self.find_record(&inventory, selector)?;
        if record.state() == KeyState::Revoked {
            return Err(StoreError::NotFound {
                selector: format!("{selector} (revoked)"),
            }
            .into());
        }
        let path = self.private_key_path(&record);
        let (key, original) = self.read_record_key(&record)?;
        let subject = format!("key {}", record.id());
        let plain = if key.is_encrypted() {
            let old = self.passphrase_of(&record, callbacks, &subject, PassphraseKind::Existing)?;
            keyfile::decrypt(&key, &old, &subject)?
        } else {
            key.clone()
        };
        let policy = self.config.policy(record.purpose());
        let new = self.new_passphrase(
            callbacks,
            policy,
            record.purpose(),
            &subject,
            Some(record.comment()),
        )?;
        let rounds = keyfile::kdf_rounds(&key)
            .unwrap_or(0)
            .max(DEFAULT_KDF_ROUNDS)
            .max(policy.min_kdf_rounds());
        let encrypted = keyfile::encrypt(rng, &plain, &new, rounds)?;
        let text = keyfile::to_openssh(&encrypted)?;

        let mut txn = self.begin(crate::store::View::Live)?;
        let current = fsutil::read_private(&path, keyfile::MAX_KEY_FILE_BYTES)?;
        if *current != *original {
            return Err(StoreError::Changed { path }.into());
        }
        let Some(entry) = txn.get_mut(record.id()) else {
            return Err(StoreError::NotFound {
                selector: record.id().to_string(),
            }
            .into());
        };
        fsutil::write_atomic(&path, text.as_bytes(), 0o600, fsutil::Replace::Yes)?;
        entry.protection = Protection::Passphrase;
        entry.kdf_rounds = Some(rounds);
        let in_keyring = entry.keyring_account.take();
        let updated = entry.clone();
        txn.record([Draft {
            action: "passwd",
            key_id: Some(record.id().to_string()),
            fingerprint: Some(record.fingerprint().to_string()),
            outcome: Outcome::Ok,
            detail: Some(format!(
                "re-encrypted with a new passphrase, {rounds} kdf rounds"
            )),
        }]);
        txn.commit()?;
        // The keyring's passphrase no longer opens the key.
        if let Some(account) = in_keyring {
            self.forget_keyring_account(&account);
        }
        Ok(updated)
    }

    /// Reads a record's private key file and checks it is the recorded key.
    pub(crate) fn read_record_key(
        &self,
        record: &KeyRecord,
    ) -> Result<(PrivateKey, zeroize::Zeroizing<Vec<u8>>)> {
        let path = self.private_key_path(record);
        if std::fs::symlink_metadata(&path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
        {
            return Err(StoreError::KeyNotHere {
                id: record.id().to_string(),
                path,
            }
            .into());
        }
        let (key, bytes) = keyfile::read(&path)?;
        if key.fingerprint(HashAlg::Sha256) != *record.fingerprint() {
            return Err(StoreError::Mismatch {
                path,
                id: record.id().to_string(),
            }
            .into());
        }
        Ok((key, bytes))
    }
}

#[cfg(test)]
mod tests {
    use crate::callbacks::FixedPassphrase;
    use crate::secret::Passphrase;
    use crate::{NewKey, Vault};
    use std::os::unix::fs::PermissionsExt;

    fn vault(dir: &tempfile::TempDir) -> Vault {
        let home = dir.path().join("vault");
        std::fs::create_dir_all(home.join("keys")).expect("home");
        for d in [&home, &home.join("keys")] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        }
        std::fs::write(
            home.join("config.toml"),
            "[purpose.web]\npassphrase = \"optional\"\n",
        )
        .expect("config");
        Vault::open(&home).expect("open")
    }

    fn create(vault: &Vault) -> crate::Result<crate::KeyRecord> {
        vault.create(
            &mut ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng),
            &NewKey::new("web".parse().expect("purpose")).unencrypted(true),
            &mut FixedPassphrase(Passphrase::new("unused".to_owned())),
        )
    }

    #[test]
    fn a_new_key_skips_ids_whose_file_exists_and_writes_both_files_with_their_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = vault(&dir);
        let keys = vault.home().join("keys");
        std::fs::write(keys.join("web-1"), "left by a crash").expect("leftover");
        let record = create(&vault).expect("create");
        assert_eq!(record.id().as_str(), "web-2");
        assert_eq!(record.comment(), "keyvault:web-2");
        assert_eq!(
            std::fs::read_to_string(keys.join("web-1")).expect("leftover"),
            "left by a crash"
        );
        let mode = |name: &str| {
            std::fs::metadata(keys.join(name))
                .expect("meta")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("web-2"), 0o600);
        assert_eq!(mode("web-2.pub"), 0o644);
        assert_eq!(
            std::fs::read_to_string(keys.join("web-2.pub")).expect("pub"),
            format!("{}\n", record.public_key())
        );
        let private = ssh_key::PrivateKey::read_openssh_file(keys.join("web-2")).expect("key");
        assert!(!private.is_encrypted());
        assert_eq!(private.comment().to_string(), "keyvault:web-2");
    }

    #[test]
    fn a_public_file_left_by_a_crash_is_skipped_and_kept() {
        // `new` writes the public half first (while the KDF runs): a crash right after
        // leaves `web-1.pub` alone, and the next key takes the next id.
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = vault(&dir);
        let keys = vault.home().join("keys");
        std::fs::write(keys.join("web-1.pub"), "in the way\n").expect("leftover");
        let record = create(&vault).expect("created beside the leftover");
        assert_eq!(record.id().as_str(), "web-2");
        assert!(!keys.join("web-1").exists());
        assert_eq!(
            std::fs::read_to_string(keys.join("web-1.pub")).expect("pub"),
            "in the way\n"
        );
        assert_eq!(vault.inventory().expect("inventory").keys().len(), 1);
    }
}
