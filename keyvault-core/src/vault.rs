//! [`Vault`]: a vault home opened with an injected clock and actor, and every operation on
//! it. Writers hold the vault's lock while they change files; readers never need it,
//! because every file is replaced atomically.

use crate::audit::{self, AuditEvent, Draft, Outcome, Verification};
use crate::callbacks::{Callbacks, PassphraseKind, PassphraseRequest, Progress};
use crate::clock::{Clock, SystemClock};
use crate::error::{InputError, KeyError, PolicyError, Result, StoreError};
use crate::fsutil;
use crate::inventory::{Inventory, KeyId, KeyRecord, KeyState, Origin, Protection, Purpose};
use crate::keyfile::{self, DEFAULT_KDF_ROUNDS, MAX_KDF_ROUNDS};
use crate::keygen::{self, Algorithm};
use crate::policy::{Config, PassphraseRule, Policy};
use crate::secret::Passphrase;
use crate::span::Span;
use crate::status::{Finding, FindingKind, Severity, StatusReport};
use chrono::{DateTime, Utc};
use ssh_key::rand_core::CryptoRng;
use ssh_key::{HashAlg, PrivateKey};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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

/// A vault home directory and the operations on it.
///
/// Opening reads `config.toml` (if any) and creates nothing; the first write creates the
/// home (0700) and its files.
pub struct Vault {
    pub(crate) store: crate::store::Store,
    pub(crate) config: Config,
    clock: Arc<dyn Clock>,
    pub(crate) actor: String,
    lock_timeout: Duration,
    hook: Option<FaultHook>,
    pod_progress: Option<PodProgressSink>,
    keyring: std::sync::OnceLock<crate::vault_secrets::Keyring>,
    default_home: bool,
}

/// Told when keyvault starts and finishes work on each pod (from worker threads).
pub type PodProgressSink = Arc<dyn Fn(&PodProgress) + Send + Sync>;

/// Progress of one pod during `rotate --pods`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PodProgress {
    /// Work on the pod started.
    Started {
        /// The pod's id.
        pod: String,
    },
    /// Work on the pod finished: `added`, `removed` or `failed`.
    Finished {
        /// The pod's id.
        pod: String,
        /// The outcome.
        outcome: String,
    },
}

/// A test hook called at named points of multi-step operations; see
/// [`Vault::with_fault_hook`].
pub type FaultHook = Arc<dyn Fn(&str) -> Result<()> + Send + Sync>;

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("home", &self.store.home())
            .field("actor", &self.actor)
            .finish_non_exhaustive()
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
    /// Opens the vault at `home`, reading its `config.toml` if present. Uses the system
    /// clock, actor `keyvault`, and a 30 s lock timeout until told otherwise.
    ///
    /// # Errors
    ///
    /// [`crate::ConfigError`] when `config.toml` is invalid; [`StoreError`] when the home
    /// exists but is a symlink (also named `link/`), not a directory, owned by another
    /// user, or writable by group or others.
    pub fn open(home: impl Into<PathBuf>) -> Result<Self> {
        let home = home.into();
        crate::fsutil::check_home(&home)?;
        let store = crate::store::Store::new(home);
        let config = Config::load(&store.config_path())?;
        Ok(Vault {
            store,
            config,
            clock: Arc::new(SystemClock),
            actor: "keyvault".to_owned(),
            lock_timeout: Duration::from_secs(30),
            hook: None,
            pod_progress: None,
            keyring: std::sync::OnceLock::new(),
            default_home: false,
        })
    }

    /// Uses `keyring` for passphrases kept in a keyring instead of the OS keyring (which is
    /// opened the first time it is needed).
    #[must_use]
    pub fn with_keyring(self, keyring: crate::vault_secrets::Keyring) -> Self {
        let _ = self.keyring.set(keyring);
        self
    }

    /// Says that this vault lives at the user's default home, so its keyring accounts are
    /// plain key ids (`personal-1`); other vaults qualify them with their home
    /// (`personal-1@/srv/ci/vault`) so that vaults never share an entry.
    #[must_use]
    pub fn with_default_home(mut self, yes: bool) -> Self {
        self.default_home = yes;
        self
    }

    /// The keyring: the one given with [`Vault::with_keyring`], else the OS keyring.
    ///
    /// # Errors
    ///
    /// [`crate::vault_secrets::KeyringError::Unavailable`] when none is reachable.
    pub fn keyring(&self) -> Result<&crate::vault_secrets::Keyring> {
        if let Some(k) = self.keyring.get() {
            return Ok(k);
        }
        let k = crate::vault_secrets::Keyring::os()?;
        Ok(self.keyring.get_or_init(|| k))
    }

    /// The keyring account of key `id`'s passphrase in this vault.
    pub(crate) fn keyring_account(&self, id: &KeyId) -> String {
        crate::vault_secrets::key_account(id, self.store.home(), self.default_home)
    }

    /// The passphrase of an existing encrypted key: from the keyring when its record says
    /// it lives there, else asked of `callbacks` as `kind`.
    pub(crate) fn passphrase_of(
        &self,
        record: &KeyRecord,
        callbacks: &mut dyn Callbacks,
        subject: &str,
        kind: PassphraseKind,
    ) -> Result<Passphrase> {
        match record.keyring_account() {
            Some(account) if record.protection() == Protection::Keyring => Ok(self
                .keyring()?
                .passphrase(account, &format!("passphrase of key {}", record.id()))?),
            _ => callbacks.passphrase(&PassphraseRequest::new(kind, subject)),
        }
    }

    /// Decrypts a record's key, fetching its passphrase from the keyring or asking
    /// `callbacks` for it as `kind` ([`PassphraseKind::Existing`] for the key an operation
    /// is about, [`PassphraseKind::Login`] for one keyvault logs in with on its behalf).
    pub(crate) fn unlock(
        &self,
        record: &KeyRecord,
        callbacks: &mut dyn Callbacks,
        subject: &str,
        kind: PassphraseKind,
    ) -> Result<PrivateKey> {
        let (key, _) = self.read_record_key(record)?;
        if !key.is_encrypted() {
            return Ok(key);
        }
        let p = self.passphrase_of(record, callbacks, subject, kind)?;
        Ok(keyfile::decrypt(&key, &p, subject)?)
    }

    /// Live keys whose passphrase the inventory places in the OS keyring: each entry must be
    /// there, or the key cannot be opened. An unreachable keyring leaves them unchecked.
    fn keyring_findings(
        &self,
        live: &[&KeyRecord],
        findings: &mut Vec<Finding>,
        unchecked: &mut Vec<crate::status::Unchecked>,
    ) {
        let held: Vec<(&KeyRecord, &str)> = live
            .iter()
            .filter_map(|k| k.keyring_account().map(|a| (*k, a)))
            .collect();
        if held.is_empty() {
            return;
        }
        let keyring = match self.keyring() {
            Ok(k) => k,
            Err(e) => {
                unchecked.push(crate::status::Unchecked {
                    target: "os-keyring".to_owned(),
                    reason: e.to_string(),
                });
                return;
            }
        };
        for (k, account) in held {
            match keyring.get(account) {
                Ok(Some(_)) => {}
                Ok(None) => findings.push(Finding {
                    severity: Severity::High,
                    kind: FindingKind::KeyringPassphrase,
                    key_id: Some(k.id().clone()),
                    message: format!(
                        "the passphrase of key {} is missing from the OS keyring (service keyvault, account {account}): the key cannot be opened",
                        k.id()
                    ),
                    fix: format!(
                        "restore it with `keyvault restore` from an export made with --include-keyring-secrets, or rotate {} away",
                        k.purpose()
                    ),
                }),
                Err(e) => {
                    unchecked.push(crate::status::Unchecked {
                        target: "os-keyring".to_owned(),
                        reason: e.to_string(),
                    });
                    return;
                }
            }
        }
    }

    /// Deletes a passphrase from the keyring once nothing it opens is left. Best effort (a
    /// keyring that is gone cannot hold it anyway): `false` when it could not be deleted.
    pub(crate) fn forget_keyring_account(&self, account: &str) -> bool {
        self.keyring().is_ok_and(|k| k.delete(account).is_ok())
    }

    /// Reports each pod's progress during `rotate --pods` to `sink` (called from worker
    /// threads), so a front end can show it live.
    #[must_use]
    pub fn with_pod_progress(mut self, sink: PodProgressSink) -> Self {
        self.pod_progress = Some(sink);
        self
    }

    pub(crate) fn pod_progress(&self, event: &PodProgress) {
        if let Some(sink) = &self.pod_progress {
            sink(event);
        }
    }

    /// Installs a hook called at each named step of rotations, revocations and sweeps
    /// (`prepared`, `write:<target>`, `written:<target>`, `added:<target>`, `promoted`,
    /// `removed:<target>`); an error from it stops the operation there, as a crash or a
    /// failed call would. For tests of crash safety; not for production use.
    #[doc(hidden)]
    #[must_use]
    pub fn with_fault_hook(mut self, hook: FaultHook) -> Self {
        self.hook = Some(hook);
        self
    }

    pub(crate) fn hook(&self, point: &str) -> Result<()> {
        match &self.hook {
            Some(h) => h(point),
            None => Ok(()),
        }
    }

    pub(crate) fn lock(&self) -> Result<crate::store::LockGuard> {
        Ok(self.store.lock(self.lock_timeout)?)
    }

    /// Uses `clock` for every notion of "now".
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Records `actor` (e.g. `alice@laptop`) in audit events.
    #[must_use]
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    /// How long a writer waits for another process's lock before failing.
    #[must_use]
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The home directory.
    #[must_use]
    pub fn home(&self) -> &Path {
        self.store.home()
    }

    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current time by the injected clock.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The absolute path of a key's private key file.
    #[must_use]
    pub fn private_key_path(&self, record: &KeyRecord) -> PathBuf {
        self.store.home().join(record.private_key_path())
    }

    /// The stable path naming the active key of `purpose` (`current/<purpose>`), for
    /// `IdentityFile` in `~/.ssh/config`.
    #[must_use]
    pub fn current_path(&self, purpose: &Purpose) -> PathBuf {
        self.store.current_dir().join(purpose.as_str())
    }

    /// The audit log's path.
    #[must_use]
    pub fn audit_path(&self) -> PathBuf {
        self.store.audit_path()
    }

    /// Reads the inventory (empty if the vault has none yet).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the file is unreadable, corrupt, of an unknown version, or
    /// accessible to others.
    pub fn inventory(&self) -> Result<Inventory> {
        Ok(self.store.load()?)
    }

    /// Finds the key a user means by `selector`: a key id, or a purpose (its active key).
    ///
    /// # Errors
    ///
    /// [`InputError`] when `selector` is neither a valid id nor a valid purpose,
    /// [`StoreError::NotFound`], [`StoreError::NoActiveKey`], [`StoreError::Ambiguous`].
    pub fn find<'a>(&self, inventory: &'a Inventory, selector: &str) -> Result<&'a KeyRecord> {
        let by_id = selector
            .parse::<KeyId>()
            .ok()
            .and_then(|id| inventory.get(&id));
        let purpose = selector.parse::<Purpose>().ok();
        let has_purpose = purpose
            .as_ref()
            .is_some_and(|p| inventory.keys().iter().any(|k| k.purpose() == p));
        match (by_id, has_purpose) {
            (Some(_), true) => Err(StoreError::Ambiguous {
                selector: selector.to_owned(),
            }
            .into()),
            (Some(k), false) => Ok(k),
            (None, true) => {
                let purpose = purpose.expect("has_purpose implies a purpose");
                inventory.active(&purpose).ok_or_else(|| {
                    StoreError::NoActiveKey {
                        purpose: purpose.to_string(),
                    }
                    .into()
                })
            }
            (None, false) => {
                if purpose.is_none() && selector.parse::<KeyId>().is_err() {
                    Err(InputError::Purpose {
                        value: selector.to_owned(),
                        reason: "not a valid key id or purpose",
                    }
                    .into())
                } else {
                    Err(StoreError::NotFound {
                        selector: selector.to_owned(),
                    }
                    .into())
                }
            }
        }
    }

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

    fn context_words<'a>(&'a self, purpose: &'a Purpose, comment: Option<&'a str>) -> Vec<&'a str> {
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
    fn commit_new<R: CryptoRng + ?Sized>(
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
                fingerprint: Some(record.fingerprint().to_owned()),
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
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        if let Some(dup) = inventory
            .keys()
            .iter()
            .find(|k| k.fingerprint() == fingerprint)
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

    /// Appends audit events and saves the inventory with the new chain head.
    /// The inventory announces the new head before the lines are appended, so that lines
    /// past the recorded head are accepted only when keyvault itself wrote them.
    pub(crate) fn record(&self, inventory: &mut Inventory, drafts: &[Draft]) -> Result<()> {
        let path = self.store.audit_path();
        let prepared = audit::prepare(
            &path,
            inventory.audit.as_ref(),
            drafts,
            self.now(),
            &self.actor,
        )?;
        if let Some(announce) = prepared.announce() {
            inventory.audit = Some(announce);
            self.store.save(inventory)?;
            prepared.write(&path)?;
        }
        inventory.audit = prepared.head();
        self.store.save(inventory)?;
        Ok(())
    }

    pub(crate) fn point_current(&self, purpose: &Purpose, id: &KeyId) -> Result<()> {
        point_current_in(&self.store.current_dir(), purpose, id)
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
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        if let Some(dup) = inventory
            .keys()
            .iter()
            .find(|k| k.fingerprint() == fingerprint)
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
        selector: &str,
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
                fingerprint: Some(record.fingerprint().to_owned()),
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
        if key.fingerprint(HashAlg::Sha256).to_string() != record.fingerprint() {
            return Err(StoreError::Mismatch {
                path,
                id: record.id().to_string(),
            }
            .into());
        }
        Ok((key, bytes))
    }

    /// Checks the vault's health at the clock's "now": expired keys still live, keys
    /// expiring within `warn_within` (default: each purpose's policy), a broken audit log,
    /// key files missing or accessible to others, interrupted rotations; and with
    /// `targets`, what every target really holds (drift, unmanaged keys, pods that still
    /// trust old keys). Targets that cannot be read are listed in
    /// [`StatusReport::unchecked`].
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the inventory itself cannot be read.
    pub fn status(
        &self,
        warn_within: Option<Span>,
        targets: Option<&dyn crate::target::Targets>,
    ) -> Result<StatusReport> {
        // Files others can read are findings, not failures: a monitor must say so.
        let mut findings = self.file_mode_findings();
        // The key files' modes are read on a second thread while the inventory is parsed:
        // at fleet size each takes about as long as the other.
        let keys_dir = self.store.keys_dir();
        let scan = std::thread::spawn(move || key_file_modes(&keys_dir));
        let inventory = match self.store.load() {
            Ok(i) => i,
            Err(StoreError::Permissions { .. }) if !findings.is_empty() => {
                return Ok(StatusReport {
                    checked_at: self.now(),
                    keys: 0,
                    live_keys: 0,
                    findings,
                    targets: Vec::new(),
                    unchecked: Vec::new(),
                    in_grace: Vec::new(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let now = self.now();
        let live: Vec<&KeyRecord> = inventory
            .keys()
            .iter()
            .filter(|k| k.state() != KeyState::Revoked)
            .collect();
        let modes = scan.join().ok().flatten();
        for k in &live {
            let window =
                warn_within.unwrap_or_else(|| self.config.policy(k.purpose()).warn_within());
            if let Some(at) = k.expires_at() {
                if at <= now {
                    findings.push(Finding {
                        severity: Severity::High,
                        kind: FindingKind::Expired,
                        key_id: Some(k.id().clone()),
                        message: format!(
                            "key {} ({}, {}) expired on {}",
                            k.id(),
                            k.purpose(),
                            k.state(),
                            at.format("%Y-%m-%d %H:%M UTC")
                        ),
                        fix: format!("replace it: keyvault rotate {}", k.purpose()),
                    });
                } else if at <= now + window.to_delta() && k.scope().is_none() {
                    // Scoped keys are short-lived by design: only their expiry matters.
                    findings.push(Finding {
                        severity: Severity::Medium,
                        kind: FindingKind::Expiring,
                        key_id: Some(k.id().clone()),
                        message: format!(
                            "key {} ({}) expires on {}",
                            k.id(),
                            k.purpose(),
                            at.format("%Y-%m-%d %H:%M UTC")
                        ),
                        fix: format!("rotate it before then: keyvault rotate {}", k.purpose()),
                    });
                }
            }
            let path = self.private_key_path(k);
            // The mode of the key's file if it is a regular file (the inventory's paths are
            // always keys/<id>, checked when it is read).
            let mode = match &modes {
                Some(modes) => modes.get(k.id().as_str()).copied().flatten(),
                None => std::fs::symlink_metadata(&path)
                    .ok()
                    .filter(std::fs::Metadata::is_file)
                    .map(|meta| meta.mode()),
            };
            match mode {
                Some(mode) if mode & 0o077 != 0 => findings.push(Finding {
                    severity: Severity::High,
                    kind: FindingKind::Permissions,
                    key_id: Some(k.id().clone()),
                    message: format!(
                        "private key {} has mode {:04o}; expected 0600",
                        path.display(),
                        mode & 0o7777
                    ),
                    fix: format!("chmod 600 {}", path.display()),
                }),
                Some(_) => {}
                None => findings.push(Finding {
                    severity: Severity::High,
                    kind: FindingKind::KeyFile,
                    key_id: Some(k.id().clone()),
                    message: format!(
                        "private key file {} of live key {} is missing",
                        path.display(),
                        k.id()
                    ),
                    fix: "restore it from a backup, or revoke the key".to_owned(),
                }),
            }
        }
        if let Err(e) = audit::verify(&self.store.audit_path(), inventory.audit_head()) {
            findings.push(Finding {
                severity: Severity::High,
                kind: FindingKind::AuditBroken,
                key_id: None,
                message: e.to_string(),
                fix: "find out who changed the log; keyvault log --verify shows where".to_owned(),
            });
        }
        findings.extend(self.journal_findings(&inventory, now));
        findings.extend(self.current_link_findings(&inventory));
        let (summaries, mut unchecked) = match targets {
            Some(t) => self.target_findings(&inventory, t, now, &mut findings),
            None => (Vec::new(), Vec::new()),
        };
        self.keyring_findings(&live, &mut findings, &mut unchecked);
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        Ok(StatusReport {
            checked_at: now,
            keys: inventory.keys().len(),
            live_keys: live.len(),
            findings,
            targets: summaries,
            unchecked,
            in_grace: crate::status::in_grace(&inventory),
        })
    }

    /// `current/<purpose>` links that do not name the purpose's active key (a crash between
    /// recording a key and swapping the link, or a hand edit).
    pub(crate) fn current_link_findings(&self, inventory: &Inventory) -> Vec<Finding> {
        let mut out = Vec::new();
        for purpose in inventory.purposes() {
            let Some(active) = inventory.active(purpose) else {
                continue;
            };
            let link = self.current_path(purpose);
            let points_at = std::fs::read_link(&link).ok();
            if points_at.as_deref()
                != Some(Path::new("../keys").join(active.id().as_str()).as_path())
            {
                out.push(Finding {
                    severity: Severity::Medium,
                    kind: FindingKind::CurrentLink,
                    key_id: Some(active.id().clone()),
                    message: format!(
                        "{} does not point at {}, the active key of {purpose}{}",
                        link.display(),
                        active.id(),
                        points_at
                            .map(|p| format!(" (it points at {})", p.display()))
                            .unwrap_or_default()
                    ),
                    fix: "keyvault sweep (it re-points the link)".to_owned(),
                });
            }
        }
        out
    }

    /// Files of the home that others can access: the home and `keys/` (0700), the
    /// inventory and the audit log (0600). (`config.toml` holds no secret.)
    fn file_mode_findings(&self) -> Vec<Finding> {
        let checks = [
            (self.store.home().to_owned(), 0o700),
            (self.store.keys_dir(), 0o700),
            (self.store.inventory_path(), 0o600),
            (self.store.audit_path(), 0o600),
        ];
        checks
            .into_iter()
            .filter_map(|(path, expected)| {
                let mode = std::fs::symlink_metadata(&path).ok()?.mode() & 0o7777;
                (mode & 0o077 != 0).then(|| Finding {
                    severity: Severity::High,
                    kind: FindingKind::Permissions,
                    key_id: None,
                    message: format!(
                        "{} has mode {mode:04o}; expected {expected:04o}",
                        path.display()
                    ),
                    fix: format!("chmod {expected:o} {}", path.display()),
                })
            })
            .collect()
    }

    /// Loads a key into the ssh-agent at `socket`: decrypted with the passphrase from
    /// `callbacks`, sent over the agent's socket only, for at most `lifetime` and never
    /// beyond the key's expiry (default: the shorter of the remaining validity and 8 hours),
    /// with `confirm` asking before each use. Returns the record and the lifetime set, in
    /// seconds. Revoked and expired keys are refused.
    ///
    /// # Errors
    ///
    /// As [`Vault::find`]; [`InputError::Request`] for revoked or expired keys;
    /// [`KeyError::Decrypt`]; errors from the agent.
    pub fn agent_add(
        &self,
        selector: &str,
        socket: &Path,
        lifetime: Option<Span>,
        confirm: bool,
        callbacks: &mut dyn Callbacks,
    ) -> Result<(KeyRecord, u32)> {
        let mut inventory = self.store.load()?;
        let record = self.find(&inventory, selector)?.clone();
        let now = self.now();
        if record.state() == KeyState::Revoked || record.is_expired_at(now) {
            return Err(InputError::Request {
                message: format!(
                    "key {} is {}; only live keys go into an agent",
                    record.id(),
                    record.display_state_at(now)
                ),
            }
            .into());
        }
        let wanted = lifetime.map_or(8 * 3600, Span::as_secs);
        let remaining = record.expires_at().map_or(u64::MAX, |at| {
            u64::try_from((at - now).num_seconds()).unwrap_or(0)
        });
        let secs = u32::try_from(wanted.min(remaining).max(1)).unwrap_or(u32::MAX);
        let subject = format!("key {}", record.id());
        let plain = self.unlock(&record, callbacks, &subject, PassphraseKind::Existing)?;
        crate::agent::add_identity_with(socket, &plain, Some(secs), confirm)?;
        let _lock = self.lock()?;
        inventory = self.store.load()?;
        let detail = format!(
            "loaded into ssh-agent for {}{}",
            Span::from_secs(u64::from(secs)),
            if confirm { ", confirm each use" } else { "" }
        );
        self.record(
            &mut inventory,
            &[Draft {
                action: "agent-add",
                key_id: Some(record.id().to_string()),
                fingerprint: Some(record.fingerprint().to_owned()),
                outcome: Outcome::Ok,
                detail: Some(detail),
            }],
        )?;
        Ok((record, secs))
    }

    /// Removes a key from the ssh-agent at `socket`.
    ///
    /// # Errors
    ///
    /// As [`Vault::find`]; errors from the agent (e.g. it does not hold the key).
    pub fn agent_remove(&self, selector: &str, socket: &Path) -> Result<KeyRecord> {
        let inventory = self.store.load()?;
        let record = self.find(&inventory, selector)?.clone();
        let public = ssh_key::PublicKey::from_openssh(record.public_key()).map_err(|e| {
            KeyError::Crypto {
                operation: "parse",
                reason: e.to_string(),
            }
        })?;
        crate::agent::remove_identity(socket, &public)?;
        Ok(record)
    }

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

    /// Every audit event, after verifying the chain.
    ///
    /// # Errors
    ///
    /// [`crate::AuditError::Broken`] when the chain does not verify, [`StoreError`] when
    /// the inventory cannot be read.
    pub fn audit_events(&self) -> Result<Vec<AuditEvent>> {
        let inventory = self.store.load()?;
        Ok(audit::read(
            &self.store.audit_path(),
            inventory.audit_head(),
        )?)
    }

    /// Verifies the audit chain against the head recorded in the inventory.
    ///
    /// # Errors
    ///
    /// [`crate::AuditError::Broken`] naming the first bad line.
    pub fn verify_audit(&self) -> Result<Verification> {
        let inventory = self.store.load()?;
        Ok(audit::verify(
            &self.store.audit_path(),
            inventory.audit_head(),
        )?)
    }
}

/// The mode of every private key file in `dir` by file name (`None`: there, but not a
/// regular file), from one directory listing: each entry is `lstat`ed relative to the
/// directory, with no path walk. `None` when the directory cannot be listed (the caller then
/// looks at each file itself).
fn key_file_modes(dir: &Path) -> Option<std::collections::HashMap<String, Option<u32>>> {
    let mut modes = std::collections::HashMap::new();
    for entry in std::fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        // Public halves and temporary files are not private keys.
        if name.ends_with(".pub") || name.starts_with('.') {
            continue;
        }
        // `DirEntry::metadata` does not follow symlinks.
        let mode = entry
            .metadata()
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|meta| meta.mode());
        modes.insert(name, mode);
    }
    Some(modes)
}

/// Points `dir/<purpose>` (and `.pub`) at key `id` in the sibling `keys/` directory: the
/// `current/` links of a home, or of one being staged by a restore.
pub(crate) fn point_current_in(dir: &Path, purpose: &Purpose, id: &KeyId) -> Result<()> {
    fsutil::ensure_dir(dir, 0o700)?;
    fsutil::swap_symlink(
        &Path::new("../keys").join(format!("{id}.pub")),
        &dir.join(format!("{purpose}.pub")),
    )?;
    fsutil::swap_symlink(
        &Path::new("../keys").join(id.as_str()),
        &dir.join(purpose.as_str()),
    )?;
    Ok(())
}
