//! [`Vault`]: a vault home opened with an injected clock and actor, and every operation on
//! it. Writers hold the vault's lock while they change files; readers never need it,
//! because every file is replaced atomically.

use crate::audit::{AuditEvent, AuditHead, Chain, Verification};
use crate::callbacks::{Callbacks, PassphraseKind, PassphraseRequest};
use crate::clock::{Clock, SystemClock};
use crate::error::{Result, StoreError};
use crate::fsutil;
use crate::inventory::{Inventory, KeyId, KeyRecord, Protection, Purpose};
use crate::keyfile;
use crate::names::KeySelector;
use crate::policy::Config;
use crate::secret::Passphrase;
use crate::store::{Txn, View};
use chrono::{DateTime, Utc};
use ssh_key::PrivateKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::admission::Expiry;
pub(crate) use crate::keys::Prepared;
pub use crate::keys::{ImportKey, NewKey};

/// A vault home directory and the operations on it.
///
/// Opening reads `config.toml` (if any) and creates nothing; the first write creates the
/// home (0700) and its files.
pub struct Vault {
    pub(crate) paths: crate::store::Paths,
    pub(crate) store: Arc<dyn crate::store::Store>,
    pub(crate) config: Config,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) actor: String,
    /// This machine's name, recorded on the keys it makes when several machines share the
    /// store ([`Vault::with_machine`]).
    pub(crate) machine: Option<String>,
    pub(crate) lock_timeout: Duration,
    pub(crate) hook: Option<FaultHook>,
    pub(crate) pod_progress: Option<PodProgressSink>,
    pub(crate) keyring: std::sync::OnceLock<crate::vault_secrets::Keyring>,
    pub(crate) default_home: bool,
    /// The store given to [`Vault::open_with_store`], which a restore keeps too.
    #[cfg_attr(not(feature = "backup"), allow(dead_code))]
    pub(crate) store_override: Option<crate::policy::StoreLocation>,
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
    /// Work on the pod finished: added, removed or failed.
    Finished {
        /// The pod's id.
        pod: String,
        /// The outcome.
        outcome: crate::report::PodOutcomeKind,
    },
}

/// A test hook called at named points of multi-step operations; see
/// [`Vault::with_fault_hook`].
pub type FaultHook = Arc<dyn Fn(&str) -> Result<()> + Send + Sync>;

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("home", &self.paths.home())
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Opens the vault at `home`, reading its `config.toml` if present. Uses the system
    /// clock, actor `keyvault`, and the lock timeout `config.toml` gives (`lock_timeout`,
    /// 30 s by default) until told otherwise.
    ///
    /// # Errors
    ///
    /// [`crate::ConfigError`] when `config.toml` is invalid; [`StoreError`] when the home
    /// exists but is a symlink (also named `link/`), not a directory, owned by another
    /// user, or writable by group or others.
    pub fn open(home: impl Into<PathBuf>) -> Result<Self> {
        Self::open_with_store(home, None)
    }

    /// Opens the vault at `home` as [`Vault::open`] does, keeping its state in `store`
    /// when given, whatever `config.toml` says (the CLI passes `KEYVAULT_STORE`).
    ///
    /// # Errors
    ///
    /// As [`Vault::open`]; [`StoreError::NotBuiltIn`] for a store this build lacks, and
    /// the store's own errors when it cannot be opened.
    pub fn open_with_store(
        home: impl Into<PathBuf>,
        store: Option<crate::policy::StoreLocation>,
    ) -> Result<Self> {
        let home = home.into();
        crate::fsutil::check_home(&home)?;
        let paths = crate::store::Paths::new(home);
        let mut config = Config::load(&paths.config_path())?;
        if let Some(location) = store.clone() {
            config = config.with_store(location);
        }
        let lock_timeout = config.lock_timeout();
        Ok(Vault {
            store: crate::store::open(&paths, &config)?,
            paths,
            config,
            clock: Arc::new(SystemClock),
            actor: "keyvault".to_owned(),
            machine: None,
            lock_timeout,
            hook: None,
            pod_progress: None,
            keyring: std::sync::OnceLock::new(),
            default_home: false,
            store_override: store,
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
        crate::vault_secrets::key_account(id, self.paths.home(), self.default_home)
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
    /// `removed:<target>`) and of writing a new key (`public-key-written`: its public file
    /// is written, its private one not yet); an error from it stops the operation there,
    /// as a crash or a failed call would. For tests of crash safety; not for production use.
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

    /// Begins a transaction: creates the home's directories if missing, takes the writer
    /// lock (waiting at most the lock timeout) and loads the state. Every operation that
    /// changes the vault runs inside one.
    pub(crate) fn begin(&self, view: crate::store::View) -> Result<Txn> {
        self.paths.ensure_layout()?;
        Txn::begin(
            self.store.as_ref(),
            self.lock_timeout,
            view,
            Arc::clone(&self.clock),
            self.actor.clone(),
        )
    }

    /// Keeps the state in `store` instead of the home's files (unit tests).
    #[cfg(test)]
    #[must_use]
    pub(crate) fn with_store(mut self, store: Arc<dyn crate::store::Store>) -> Self {
        self.store = store;
        self
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

    /// Names this machine (e.g. its host name): under a store several machines share
    /// (PostgreSQL), each key made here records it ([`KeyRecord::machine`]), since its
    /// private key file stays here.
    #[must_use]
    pub fn with_machine(mut self, machine: impl Into<String>) -> Self {
        self.machine = Some(machine.into());
        self
    }

    /// How long an operation waits for another process before failing with
    /// [`StoreError::Locked`], in place of `lock_timeout` from `config.toml`: a writer for
    /// the writer lock, and a reader for whatever it waits on too (the writer lock while it
    /// migrates a vault's files into its database or clears a killed build's remains, and a
    /// database another program keeps busy). Zero is one try.
    #[must_use]
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self.store.set_wait(timeout);
        self
    }

    /// The home directory.
    #[must_use]
    pub fn home(&self) -> &Path {
        self.paths.home()
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
        self.paths.home().join(record.private_key_path())
    }

    /// [`Vault::private_key_path`] when the file may be on this machine; `None` when several
    /// machines share the store (PostgreSQL) and it is not here: made on another machine
    /// ([`KeyRecord::machine`] says which, when recorded), or deleted by `prune`.
    #[must_use]
    pub fn local_private_key_path(&self, record: &KeyRecord) -> Option<PathBuf> {
        let path = self.private_key_path(record);
        // Whether it exists, without following a link: nothing is read.
        if self.shared_store() && std::fs::symlink_metadata(&path).is_err() {
            return None;
        }
        Some(path)
    }

    /// Whether several machines share this vault's records (PostgreSQL), each keeping the
    /// private keys it made.
    pub(crate) fn shared_store(&self) -> bool {
        matches!(
            self.config.store(),
            crate::policy::StoreLocation::Postgres(_)
        )
    }

    /// The stable path naming the active key of `purpose` (`current/<purpose>`), for
    /// `IdentityFile` in `~/.ssh/config`.
    #[must_use]
    pub fn current_path(&self, purpose: &Purpose) -> PathBuf {
        self.paths.current_dir().join(purpose.as_str())
    }

    /// Where the files store keeps the audit log (`audit.jsonl` in the home); see
    /// [`Vault::audit_log`] for the log of the store in use.
    #[must_use]
    pub fn audit_path(&self) -> PathBuf {
        self.paths.audit_path()
    }

    /// Reads the inventory (empty if the vault has none yet).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the file is unreadable, corrupt, of an unknown version, or
    /// accessible to others.
    pub fn inventory(&self) -> Result<Inventory> {
        Ok(self.store.load(crate::store::View::All)?)
    }

    /// Hands `f` every key record, history included, oldest first, one at a time: the
    /// store never holds them all in memory at once (a database streams them).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the records cannot be read; whatever `f` returns.
    pub fn each_key(&self, f: &mut dyn FnMut(KeyRecord) -> Result<()>) -> Result<()> {
        self.store.each_key(f)
    }

    /// Finds the key a user means by `selector`: a key id, or a purpose (its active key).
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`], [`StoreError::NoActiveKey`], [`StoreError::Ambiguous`].
    pub fn find<'a>(
        &self,
        inventory: &'a Inventory,
        selector: &KeySelector,
    ) -> Result<&'a KeyRecord> {
        let by_id = selector.id().and_then(|id| inventory.get(id));
        let purpose = selector.purpose().filter(|p| inventory.has_purpose(p));
        match (by_id, purpose) {
            (Some(_), Some(_)) => Err(StoreError::Ambiguous {
                selector: selector.to_string(),
            }
            .into()),
            (Some(k), None) => Ok(k),
            (None, Some(purpose)) => inventory.active(purpose).ok_or_else(|| {
                StoreError::NoActiveKey {
                    purpose: purpose.to_string(),
                }
                .into()
            }),
            (None, None) => Err(StoreError::NotFound {
                selector: selector.to_string(),
            }
            .into()),
        }
    }

    /// [`Vault::find`] over an inventory of any view: a key id the view left out (a revoked
    /// key under [`View::Live`](crate::store::View::Live)) is read from the store.
    pub(crate) fn find_record(
        &self,
        inventory: &Inventory,
        selector: &KeySelector,
    ) -> Result<KeyRecord> {
        let unloaded = match selector.id() {
            Some(id) if inventory.get(id).is_none() => self.store.key(id)?,
            _ => None,
        };
        let Some(record) = unloaded else {
            return self.find(inventory, selector).cloned();
        };
        // Found by id: the answer is that record, or ambiguous if the purpose exists too.
        let with = Inventory {
            keys: vec![record],
            floors: inventory.floors.clone(),
            ..Inventory::default()
        };
        self.find(&with, selector).cloned()
    }

    /// [`Vault::find_record`] inside `txn`, which then holds the record (a revoked one a
    /// live view left out included) so that the operation can change it.
    pub(crate) fn find_in(&self, txn: &mut Txn, selector: &KeySelector) -> Result<KeyRecord> {
        let record = self.find_record(txn, selector)?;
        txn.include(record.clone());
        Ok(record)
    }

    pub(crate) fn point_current(&self, purpose: &Purpose, id: &KeyId) -> Result<()> {
        point_current_in(&self.paths.current_dir(), purpose, id)
    }

    /// Where the audit log is: `audit.jsonl` in the home, or the database's `audit` table.
    #[must_use]
    pub fn audit_log(&self) -> crate::AuditLog {
        self.store.audit_log()
    }

    /// The audit log's name in errors.
    fn audit_source(&self) -> crate::AuditLog {
        self.store.audit_log()
    }

    /// Reads the whole audit chain through the store, checking it against `head`; `each`
    /// is given every event.
    fn walk_audit(
        &self,
        head: Option<&AuditHead>,
        each: &mut dyn FnMut(AuditEvent),
    ) -> Result<Verification> {
        let mut chain = Chain::new(&self.audit_source(), head);
        self.store.audit_lines(0, &mut |line| {
            each(chain.push(line)?);
            Ok(())
        })?;
        Ok(chain.finish()?)
    }

    /// Every event of the chain that ends at `head`, after verifying it.
    pub(crate) fn audit_events_to(&self, head: Option<&AuditHead>) -> Result<Vec<AuditEvent>> {
        let mut events = Vec::new();
        self.walk_audit(head, &mut |e| events.push(e))?;
        Ok(events)
    }

    /// Checks only the newest `lines` lines of the chain against `head` (the line before
    /// them is taken as it is): edits, cuts and lines appended past the head show, at a cost
    /// that does not grow with the log. [`Vault::verify_audit`] checks every line.
    pub(crate) fn verify_audit_newest(&self, head: Option<&AuditHead>, lines: u64) -> Result<()> {
        let seq = head.map_or(0, AuditHead::seq);
        if seq <= lines {
            return self.walk_audit(head, &mut |_| {}).map(drop);
        }
        let first = seq - lines;
        let source = self.audit_source();
        let mut chain: Option<Chain> = None;
        self.store.audit_lines(first - 1, &mut |line| {
            match &mut chain {
                None => chain = Some(Chain::after(&source, head, first, line)?),
                Some(c) => drop(c.push(line)?),
            }
            Ok(())
        })?;
        let Some(chain) = chain else {
            return Err(crate::AuditError::Broken {
                log: source,
                line: first,
                reason: format!(
                    "the log ends before line {first} but the inventory recorded {seq} lines (truncated)"
                ),
            }
            .into());
        };
        chain.finish()?;
        Ok(())
    }

    /// Every audit event, after verifying the chain.
    ///
    /// # Errors
    ///
    /// [`crate::AuditError::Broken`] when the chain does not verify, [`StoreError`] when
    /// the inventory cannot be read.
    pub fn audit_events(&self) -> Result<Vec<AuditEvent>> {
        let inventory = self.store.load(View::Live)?;
        self.audit_events_to(inventory.audit_head())
    }

    /// Verifies the whole audit chain against the head recorded in the inventory.
    ///
    /// # Errors
    ///
    /// [`crate::AuditError::Broken`] naming the first bad line.
    pub fn verify_audit(&self) -> Result<Verification> {
        let inventory = self.store.load(View::Live)?;
        self.walk_audit(inventory.audit_head(), &mut |_| {})
    }

    /// The audit log's events so far, checked as [`Vault::audit_events`] checks them, and
    /// an [`AuditTail`](crate::audit_tail::AuditTail) that returns the events appended
    /// later. Takes no lock: writers go on while the log is followed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the inventory cannot be read; [`crate::AuditError`] as
    /// [`Vault::audit_events`].
    pub fn follow_audit(&self) -> Result<(Vec<AuditEvent>, crate::audit_tail::AuditTail)> {
        // The inventory before the log: a writer appends lines before it records them.
        let inventory = self.store.load(View::Live)?;
        let store = Arc::clone(&self.store);
        let source: crate::audit_tail::LineSource =
            Box::new(move |after, f| store.audit_lines(after, f));
        let (tail, events) = crate::audit_tail::AuditTail::open(
            source,
            &self.audit_source(),
            inventory.audit_head(),
        )?;
        Ok((events, tail))
    }
}

/// Points `dir/<purpose>` (and `.pub`) at key `id` in the sibling `keys/` directory: the
/// `current/` links of a home, or of one being staged by a restore.
pub(crate) fn point_current_in(dir: &Path, purpose: &Purpose, id: &KeyId) -> Result<()> {
    fsutil::ensure_dir(dir, 0o700)?;
    let (public_target, private_target) = (
        Path::new("../keys").join(format!("{id}.pub")),
        Path::new("../keys").join(id.as_str()),
    );
    let (public_link, private_link) = (
        dir.join(format!("{purpose}.pub")),
        dir.join(purpose.as_str()),
    );
    // The public half first, as before; one fsync of the directory makes both durable.
    fsutil::swap_symlinks(&[
        (&public_target, &public_link),
        (&private_target, &private_link),
    ])?;
    Ok(())
}
