//! Keys of the vault: creating, importing, writing and re-encrypting private keys.

use crate::audit::{Draft, Outcome};
use crate::callbacks::{Callbacks, PassphraseKind, PassphraseRequest, Progress};
use crate::error::{InputError, KeyError, PolicyError, Result, StoreError};
use crate::fsutil;
use crate::inventory::{Inventory, KeyId, KeyRecord, KeyState, Origin, Protection, Purpose};
use crate::keyfile::{self, DEFAULT_KDF_ROUNDS, MAX_KDF_ROUNDS};
use crate::keygen::{self, Algorithm};
use crate::names::KeySelector;
use crate::policy::{PassphraseRule, Policy};
use crate::secret::Passphrase;
use crate::span::Span;
use crate::vault::Vault;
use chrono::{DateTime, Utc};
use ssh_key::rand_core::CryptoRng;
use ssh_key::{HashAlg, PrivateKey};
use std::path::Path;

/// When a new key expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Expiry {
    /// The purpose's default lifetime.
    #[default]
    PolicyDefault,
    /// This long from now.
    After(Span),
    /// At this time.
    At(DateTime<Utc>),
}

/// What to generate: see [`Vault::create`].
#[derive(Debug, Clone)]
pub struct NewKey {
    purpose: Purpose,
    algorithm: Option<Algorithm>,
    expiry: Expiry,
    comment: Option<String>,
    kdf_rounds: Option<u32>,
    unencrypted: bool,
    keyring: bool,
}

impl NewKey {
    /// A key for `purpose` with the purpose's default algorithm and lifetime.
    #[must_use]
    pub fn new(purpose: Purpose) -> Self {
        NewKey {
            purpose,
            algorithm: None,
            expiry: Expiry::PolicyDefault,
            comment: None,
            kdf_rounds: None,
            unencrypted: false,
            keyring: false,
        }
    }
    /// Use this algorithm instead of the policy's default.
    #[must_use]
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = Some(algorithm);
        self
    }
    /// When the key expires.
    #[must_use]
    pub fn expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }
    /// The key's comment (default `keyvault:<id>`).
    #[must_use]
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }
    /// bcrypt-pbkdf rounds (default 16, or the policy's minimum if higher).
    #[must_use]
    pub fn kdf_rounds(mut self, rounds: u32) -> Self {
        self.kdf_rounds = Some(rounds);
        self
    }
    /// Store the private key unencrypted (only where the policy allows it).
    #[must_use]
    pub fn unencrypted(mut self, yes: bool) -> Self {
        self.unencrypted = yes;
        self
    }
    /// Encrypt with a strong random passphrase kept in the keyring (service `keyvault`,
    /// the key's account) instead of asking for one.
    #[must_use]
    pub fn passphrase_in_keyring(mut self, yes: bool) -> Self {
        self.keyring = yes;
        self
    }
}

/// What to adopt: see [`Vault::import`].
#[derive(Debug, Clone)]
pub struct ImportKey {
    purpose: Purpose,
    expiry: Expiry,
    comment: Option<String>,
    unencrypted: bool,
}

impl ImportKey {
    /// Import into `purpose`, expiring after the purpose's default lifetime.
    #[must_use]
    pub fn new(purpose: Purpose) -> Self {
        ImportKey {
            purpose,
            expiry: Expiry::PolicyDefault,
            comment: None,
            unencrypted: false,
        }
    }
    /// When the key expires (counted from the import).
    #[must_use]
    pub fn expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }
    /// Replace the key's comment.
    #[must_use]
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }
    /// Keep an unencrypted key unencrypted (only where the policy allows it).
    #[must_use]
    pub fn unencrypted(mut self, yes: bool) -> Self {
        self.unencrypted = yes;
        self
    }
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
}

impl Vault {
    pub(crate) fn resolve_expiry(
        &self,
        purpose: &Purpose,
        policy: &Policy,
        expiry: Expiry,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        let at = match expiry {
            Expiry::PolicyDefault => now + policy.default_ttl().to_delta(),
            Expiry::After(span) => {
                policy.check_ttl(purpose, span)?;
                now + span.to_delta()
            }
            Expiry::At(at) => {
                if at <= now {
                    return Err(InputError::ExpiryInPast {
                        at: at.to_rfc3339(),
                    }
                    .into());
                }
                let secs = u64::try_from((at - now).num_seconds()).unwrap_or(u64::MAX);
                policy.check_ttl(purpose, Span::from_secs(secs.max(1)))?;
                at
            }
        };
        Ok(at)
    }

    /// The algorithm a new key of `purpose` gets: `requested`, else the policy's default;
    /// it must be one keyvault generates and the policy allows.
    pub(crate) fn algorithm_for(
        purpose: &Purpose,
        policy: &Policy,
        requested: Option<Algorithm>,
    ) -> Result<Algorithm> {
        let algorithm = requested.unwrap_or(policy.default_algorithm());
        if !algorithm.is_generatable() {
            return Err(InputError::CannotGenerate {
                algorithm: algorithm.to_string(),
            }
            .into());
        }
        policy.check_algorithm(purpose, algorithm)?;
        Ok(algorithm)
    }

    pub(crate) fn check_comment(comment: &str) -> Result<()> {
        if comment.len() > 256 {
            return Err(InputError::Comment {
                reason: "longer than 256 bytes",
            }
            .into());
        }
        if comment.chars().any(char::is_control) {
            return Err(InputError::Comment {
                reason: "contains a line break or control character",
            }
            .into());
        }
        Ok(())
    }

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

    /// A passphrase for a new key: a random one when it is to live in the keyring (the
    /// keyring must be reachable), else a new one from `callbacks`, checked against the
    /// policy.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn fresh_passphrase<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        in_keyring: bool,
        callbacks: &mut dyn Callbacks,
        policy: &Policy,
        purpose: &Purpose,
        subject: &str,
        comment: Option<&str>,
    ) -> Result<Passphrase> {
        if in_keyring {
            self.keyring()?;
            return Ok(crate::vault_secrets::random_passphrase(rng));
        }
        self.new_passphrase(callbacks, policy, purpose, subject, comment)
    }

    pub(crate) fn new_passphrase(
        &self,
        callbacks: &mut dyn Callbacks,
        policy: &Policy,
        purpose: &Purpose,
        subject: &str,
        comment: Option<&str>,
    ) -> Result<Passphrase> {
        let context = self.context_words(purpose, comment);
        let passphrase = callbacks.passphrase(
            &PassphraseRequest::new(PassphraseKind::New, subject)
                .checked_by(policy, purpose, &context),
        )?;
        policy.check_passphrase(purpose, subject, &passphrase, &context)?;
        Ok(passphrase)
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
    /// [`InputError`] and [`PolicyError`] for requests the rules refuse,
    /// [`StoreError::ActiveKeyExists`] when the purpose already has an active key,
    /// the callbacks' error, [`KeyError`] and [`StoreError`] for failures.
    pub fn create<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        request: &NewKey,
        callbacks: &mut dyn Callbacks,
    ) -> Result<KeyRecord> {
        let purpose = &request.purpose;
        let policy = self.config.policy(purpose);
        let algorithm = Self::algorithm_for(purpose, policy, request.algorithm)?;
        let now = self.now();
        let expires_at = self.resolve_expiry(purpose, policy, request.expiry, now)?;
        if let Some(c) = &request.comment {
            Self::check_comment(c)?;
        }
        let rounds = self.rounds_for(purpose, policy, request.kdf_rounds)?;
        if request.unencrypted && policy.passphrase() == PassphraseRule::Required {
            return Err(PolicyError::PassphraseRequired {
                purpose: purpose.to_string(),
            }
            .into());
        }
        // Fail before asking anything if the purpose is taken or the inventory is bad.
        self.check_no_active(&self.store.load()?, purpose)?;
        let protection = if request.unencrypted {
            None
        } else {
            let subject = format!("new key for purpose {purpose}");
            let p = self.fresh_passphrase(
                rng,
                request.keyring,
                callbacks,
                policy,
                purpose,
                &subject,
                request.comment.as_deref(),
            )?;
            Some((p, rounds))
        };
        callbacks.progress(Progress::Generating(algorithm));
        let key = keygen::generate(rng, algorithm, "");
        callbacks.progress(Progress::Done);
        self.commit_new(
            rng,
            Prepared {
                key: key?,
                purpose: purpose.clone(),
                algorithm,
                expires_at: Some(expires_at),
                comment: request.comment.clone(),
                protection,
                keyring: request.keyring,
                origin: Origin::Generated,
                detail: format!("generated {algorithm}, expires {}", expires_at.to_rfc3339()),
                created_at: now,
            },
        )
    }

    pub(crate) fn rounds_for(
        &self,
        purpose: &Purpose,
        policy: &Policy,
        requested: Option<u32>,
    ) -> Result<u32> {
        match requested {
            Some(r) if !(1..=MAX_KDF_ROUNDS).contains(&r) => Err(InputError::KdfRounds {
                value: r,
                min: 1,
                max: MAX_KDF_ROUNDS,
            }
            .into()),
            Some(r) if r < policy.min_kdf_rounds() => Err(PolicyError::KdfRoundsTooLow {
                purpose: purpose.to_string(),
                rounds: r,
                min: policy.min_kdf_rounds(),
            }
            .into()),
            Some(r) => Ok(r),
            None => Ok(DEFAULT_KDF_ROUNDS.max(policy.min_kdf_rounds())),
        }
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
        prepared: Prepared,
    ) -> Result<KeyRecord> {
        let _lock = self.lock()?;
        let mut inventory = self.store.load()?;
        self.check_no_active(&inventory, &prepared.purpose)?;
        let action = match prepared.origin {
            Origin::Generated => "create",
            Origin::Imported => "import",
        };
        let detail = prepared.detail.clone();
        let record = self.write_key(&mut inventory, rng, prepared, KeyState::Active)?;
        let recorded = self.record(
            &mut inventory,
            &[Draft {
                action,
                key_id: Some(record.id().to_string()),
                fingerprint: Some(record.fingerprint().to_string()),
                outcome: Outcome::Ok,
                detail: Some(detail),
            }],
        );
        if let Err(e) = recorded {
            self.remove_key_files(&record);
            return Err(e);
        }
        self.point_current(record.purpose(), record.id())?;
        Ok(record)
    }

    pub(crate) fn remove_key_files(&self, record: &KeyRecord) {
        if let Some(account) = record.keyring_account() {
            self.forget_keyring_account(account);
        }
        let path = self.private_key_path(record);
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(path.with_file_name(format!("{}.pub", record.id())));
    }

    /// With the lock held: picks the id, encrypts, writes the key files (private 0600,
    /// fsynced, before anything else refers to them) and adds the record in `state` to
    /// `inventory` (not saved).
    pub(crate) fn write_key<R: CryptoRng + ?Sized>(
        &self,
        inventory: &mut Inventory,
        rng: &mut R,
        prepared: Prepared,
        state: KeyState,
    ) -> Result<KeyRecord> {
        let Prepared {
            mut key,
            purpose,
            algorithm,
            expires_at,
            comment,
            protection,
            keyring,
            origin,
            detail: _,
            created_at,
        } = prepared;
        let fingerprint = key.fingerprint(HashAlg::Sha256);
        if let Some(dup) = inventory
            .keys()
            .iter()
            .find(|k| *k.fingerprint() == fingerprint)
        {
            return Err(StoreError::DuplicateKey {
                id: dup.id().to_string(),
            }
            .into());
        }
        // Skip ids whose files exist (left by a process that died before recording them).
        let mut id = inventory.next_id(&purpose);
        while std::fs::symlink_metadata(self.store.keys_dir().join(id.as_str())).is_ok() {
            id = KeyId::new(&purpose, id.number() + 1);
        }
        let comment = comment.unwrap_or_else(|| format!("keyvault:{id}"));
        key.set_comment(comment.as_str());
        let (stored, kdf_rounds) = match &protection {
            Some((passphrase, rounds)) => (
                keyfile::encrypt(rng, &key, passphrase, *rounds)?,
                Some(*rounds),
            ),
            None => (key.clone(), None),
        };
        let text = keyfile::to_openssh(&stored)?;
        let public_key = key
            .public_key()
            .to_openssh()
            .map_err(|e| KeyError::Crypto {
                operation: "encode",
                reason: e.to_string(),
            })?;
        let relative = format!("keys/{id}");
        let private_path = self.store.home().join(&relative);
        let public_path = self.store.home().join(format!("{relative}.pub"));
        // The passphrase reaches the keyring before the only copy of the key is written.
        let keyring_account = match (&protection, keyring) {
            (Some((passphrase, _)), true) => {
                let account = self.keyring_account(&id);
                self.keyring()?.set(&account, passphrase.expose())?;
                Some(account)
            }
            _ => None,
        };
        let forget = |account: &Option<String>| {
            if let Some(a) = account {
                self.forget_keyring_account(a);
            }
        };
        if let Err(e) = keyfile::write_new(&private_path, &text) {
            forget(&keyring_account);
            return Err(e.into());
        }
        if let Err(e) = fsutil::write_atomic(
            &public_path,
            format!("{public_key}\n").as_bytes(),
            0o644,
            fsutil::Replace::No,
        ) {
            let _ = std::fs::remove_file(&private_path);
            forget(&keyring_account);
            return Err(e.into());
        }
        let record = KeyRecord {
            id,
            purpose,
            algorithm,
            fingerprint,
            public_key,
            comment,
            created_at,
            expires_at,
            state,
            protection: match (&protection, &keyring_account) {
                (Some(_), Some(_)) => Protection::Keyring,
                (Some(_), None) => Protection::Passphrase,
                (None, _) => Protection::None,
            },
            kdf_rounds,
            origin,
            private_key_path: relative,
            deployments: Vec::new(),
            rotated_from: None,
            rotated_to: None,
            revoked_at: None,
            pruned_at: None,
            scope: None,
            cert_authority: None,
            certificate: None,
            keyring_account,
        };
        inventory.keys.push(record.clone());
        Ok(record)
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
    /// As [`Vault::create`], plus [`KeyError`] for files that are not readable keys,
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
        policy.check_algorithm(purpose, algorithm)?;
        if let Some(c) = &request.comment {
            Self::check_comment(c)?;
        }
        let now = self.now();
        let expires_at = self.resolve_expiry(purpose, policy, request.expiry, now)?;
        let inventory = self.store.load()?;
        self.check_no_active(&inventory, purpose)?;
        let fingerprint = key.fingerprint(HashAlg::Sha256);
        if let Some(dup) = inventory
            .keys()
            .iter()
            .find(|k| *k.fingerprint() == fingerprint)
        {
            return Err(StoreError::DuplicateKey {
                id: dup.id().to_string(),
            }
            .into());
        }
        let default_rounds = DEFAULT_KDF_ROUNDS.max(policy.min_kdf_rounds());
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
            let rounds = keyfile::kdf_rounds(&key).unwrap_or(0).max(default_rounds);
            (plain, Some((passphrase, rounds)))
        } else if request.unencrypted {
            if policy.passphrase() == PassphraseRule::Required {
                return Err(PolicyError::PassphraseRequired {
                    purpose: purpose.to_string(),
                }
                .into());
            }
            (key.clone(), None)
        } else {
            let subject = format!("imported key for purpose {purpose}");
            let p = self.new_passphrase(callbacks, policy, purpose, &subject, None)?;
            (key.clone(), Some((p, default_rounds)))
        };
        let file_comment = String::from_utf8_lossy(plain.comment().as_bytes()).into_owned();
        let comment = request.comment.clone().or_else(|| {
            (!file_comment.is_empty() && Self::check_comment(&file_comment).is_ok())
                .then_some(file_comment)
        });
        self.commit_new(
            rng,
            Prepared {
                key: plain,
                purpose: purpose.clone(),
                algorithm,
                expires_at: Some(expires_at),
                comment,
                protection,
                keyring: false,
                origin: Origin::Imported,
                detail: format!(
                    "imported {algorithm} from {}, expires {}",
                    source.display(),
                    expires_at.to_rfc3339()
                ),
                created_at: now,
            },
        )
    }

    /// Re-encrypts a key with a new passphrase, atomically. The old passphrase (for an
    /// encrypted key) and the new one come from `callbacks`; a wrong old passphrase leaves
    /// the key file byte for byte as it was.
    ///
    /// # Errors
    ///
    /// As [`Vault::find`]; [`KeyError::Decrypt`] for a wrong old passphrase;
    /// [`PolicyError::WeakPassphrase`]; [`StoreError::Changed`] if the file changed
    /// meanwhile; [`StoreError`] for I/O.
    pub fn change_passphrase<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        selector: &KeySelector,
        callbacks: &mut dyn Callbacks,
    ) -> Result<KeyRecord> {
        let inventory = self.store.load()?;
        let record = self.find(&inventory, selector)?.clone();
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

        let _lock = self.store.lock(self.lock_timeout)?;
        let mut inventory = self.store.load()?;
        let current = fsutil::read_private(&path, keyfile::MAX_KEY_FILE_BYTES)?;
        if *current != *original {
            return Err(StoreError::Changed { path }.into());
        }
        let Some(entry) = inventory.get_mut(record.id()) else {
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
        self.record(
            &mut inventory,
            &[Draft {
                action: "passwd",
                key_id: Some(record.id().to_string()),
                fingerprint: Some(record.fingerprint().to_string()),
                outcome: Outcome::Ok,
                detail: Some(format!(
                    "re-encrypted with a new passphrase, {rounds} kdf rounds"
                )),
            }],
        )?;
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
