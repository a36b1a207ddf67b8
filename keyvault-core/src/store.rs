//! Where a vault keeps its state, and the transactions that change it.
//!
//! An operation reads and changes the state (key records, the rotation journal, the audit
//! chain's head) inside one [`Txn`]: it holds the writer lock, the loaded state and the
//! audit events not yet written. [`Txn::save`] writes the state and those events and keeps
//! the lock (a rotation saves each step before the next begins); [`Txn::commit`] saves and
//! releases it; dropping a `Txn` writes nothing further. The [`Store`] trait is the seam
//! under it: [`FileStore`] keeps today's files (`inventory.json`, `audit.jsonl`, `.lock`);
//! a database implements the same three calls.

use crate::audit::{self, Draft};
use crate::clock::Clock;
use crate::error::{Result, StoreError};
use crate::fsutil;
use crate::inventory::{INVENTORY_VERSION, Inventory, ParseError};
use chrono::{DateTime, Utc};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(test)]
pub(crate) mod memory;

/// The largest inventory keyvault reads (256 MiB, far beyond 10,000 keys).
const MAX_INVENTORY_BYTES: u64 = 256 << 20;

/// Paths inside a vault home.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    home: PathBuf,
}

/// Holds the vault's exclusive writer lock until dropped.
#[derive(Debug)]
pub(crate) struct LockGuard {
    _file: File,
}

impl Paths {
    pub(crate) fn new(home: PathBuf) -> Self {
        Paths { home }
    }
    pub(crate) fn home(&self) -> &Path {
        &self.home
    }
    pub(crate) fn inventory_path(&self) -> PathBuf {
        self.home.join("inventory.json")
    }
    pub(crate) fn keys_dir(&self) -> PathBuf {
        self.home.join("keys")
    }
    pub(crate) fn current_dir(&self) -> PathBuf {
        self.home.join("current")
    }
    pub(crate) fn audit_path(&self) -> PathBuf {
        self.home.join("audit.jsonl")
    }
    pub(crate) fn config_path(&self) -> PathBuf {
        self.home.join("config.toml")
    }
    fn lock_path(&self) -> PathBuf {
        self.home.join(".lock")
    }

    /// Creates the home and its subdirectories (0700) if missing.
    pub(crate) fn ensure_layout(&self) -> Result<(), StoreError> {
        fsutil::ensure_dir(&self.home, 0o700)?;
        fsutil::ensure_dir(&self.keys_dir(), 0o700)?;
        fsutil::ensure_dir(&self.current_dir(), 0o700)
    }

    /// Loads the inventory; a missing file is an empty inventory. A corrupt file or one of
    /// an unknown version is an error and is never overwritten by keyvault.
    pub(crate) fn load(&self) -> Result<Inventory, StoreError> {
        let path = self.inventory_path();
        if !path.exists() && std::fs::symlink_metadata(&path).is_err() {
            return Ok(Inventory::default());
        }
        let bytes = fsutil::read_owner_only(&path, MAX_INVENTORY_BYTES)?;
        Inventory::parse(&bytes).map_err(|e| match e {
            ParseError::Version(version) => StoreError::UnsupportedVersion {
                path: path.clone(),
                version,
                supported: INVENTORY_VERSION,
            },
            ParseError::Corrupt(detail) => StoreError::CorruptInventory {
                path: path.clone(),
                detail,
            },
        })
    }

    /// Writes the inventory atomically (temp, fsync, rename, directory fsync), mode 0600.
    pub(crate) fn save(&self, inventory: &Inventory) -> Result<(), StoreError> {
        fsutil::write_atomic(
            &self.inventory_path(),
            &inventory.to_json(),
            0o600,
            fsutil::Replace::Yes,
        )
    }

    /// Takes the exclusive writer lock, waiting at most `timeout`; on timeout the error
    /// names the process holding it. The home must exist ([`Paths::ensure_layout`]).
    pub(crate) fn lock(&self, timeout: Duration) -> Result<LockGuard, StoreError> {
        let path = self.lock_path();
        // The lock file lives in the checked home (0700, the user's own): opened in place
        // (the lock is on this inode, so no temp+rename), no-follow, 0600, never truncated.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|source| StoreError::Io {
                operation: "open lock file",
                path: path.clone(),
                source,
            })?;
        let start = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if start.elapsed() < timeout => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                Err(TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = holder.trim();
                    return Err(StoreError::Locked {
                        home: self.home.clone(),
                        holder: if holder.is_empty() {
                            "another process".to_owned()
                        } else {
                            format!("process {holder}")
                        },
                        waited_secs: timeout.as_secs(),
                    });
                }
                Err(TryLockError::Error(source)) => {
                    return Err(StoreError::Io {
                        operation: "lock",
                        path,
                        source,
                    });
                }
            }
        }
        // Best effort: tell a waiting process who holds the lock.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()));
        Ok(LockGuard { _file: file })
    }
}

/// Where a vault's state lives: key records, the rotation journal and the audit log.
///
/// Readers [`load`](Store::load) a consistent snapshot without a lock; writers
/// [`begin`](Store::begin) a session that holds the writer lock and save through it.
pub(crate) trait Store: Send + Sync {
    /// The state as last saved (empty when nothing was ever saved), without the lock.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the state cannot be read or is corrupt.
    fn load(&self) -> Result<Inventory, StoreError>;

    /// Takes the writer lock, waiting at most `timeout`, and reads the state under it.
    ///
    /// # Errors
    ///
    /// [`StoreError::Locked`] when another writer keeps it; as [`Store::load`].
    fn begin(&self, timeout: Duration) -> Result<(Box<dyn Session>, Inventory), StoreError>;
}

/// A writer's hold on a [`Store`]: the lock is released when it is dropped.
pub(crate) trait Session {
    /// Appends `events` (stamped `time`, by `actor`) to the audit log and writes `state`
    /// with the log's new head, so that both or, after a crash, a state that verifies are
    /// on record. Keeps the lock.
    ///
    /// # Errors
    ///
    /// [`StoreError`] and [`crate::AuditError`]; nothing is written past the first error.
    fn save(
        &mut self,
        state: &mut Inventory,
        events: &[Draft],
        time: DateTime<Utc>,
        actor: &str,
    ) -> Result<()>;
}

/// The state as files in the vault home: `inventory.json`, `audit.jsonl` and the `.lock`
/// file a writer holds.
#[derive(Debug, Clone)]
pub(crate) struct FileStore {
    paths: Paths,
}

impl FileStore {
    pub(crate) fn new(paths: Paths) -> Self {
        FileStore { paths }
    }
}

impl Store for FileStore {
    fn load(&self) -> Result<Inventory, StoreError> {
        self.paths.load()
    }

    fn begin(&self, timeout: Duration) -> Result<(Box<dyn Session>, Inventory), StoreError> {
        let lock = self.paths.lock(timeout)?;
        let state = self.paths.load()?;
        let session = FileSession {
            paths: self.paths.clone(),
            _lock: lock,
        };
        Ok((Box::new(session), state))
    }
}

/// A [`FileStore`] writer: holds the `.lock` file.
struct FileSession {
    paths: Paths,
    _lock: LockGuard,
}

impl Session for FileSession {
    /// The inventory announces the new head before the lines are appended, so that lines
    /// past the recorded head are accepted only when keyvault itself wrote them (see
    /// [`crate::audit`]).
    fn save(
        &mut self,
        state: &mut Inventory,
        events: &[Draft],
        time: DateTime<Utc>,
        actor: &str,
    ) -> Result<()> {
        if events.is_empty() {
            return Ok(self.paths.save(state)?);
        }
        let path = self.paths.audit_path();
        let prepared = audit::prepare(&path, state.audit.as_ref(), events, time, actor)?;
        if let Some(announce) = prepared.announce() {
            state.audit = Some(announce);
            self.paths.save(state)?;
            prepared.write(&path)?;
        }
        state.audit = prepared.head();
        Ok(self.paths.save(state)?)
    }
}

/// One operation's hold on the vault: the writer lock, the state loaded under it (a `Txn`
/// dereferences to it, as a lock guard does) and the audit events not yet written.
pub(crate) struct Txn {
    session: Box<dyn Session>,
    state: Inventory,
    events: Vec<Draft>,
    changed: bool,
    clock: Arc<dyn Clock>,
    actor: String,
}

impl Txn {
    /// Begins a transaction on `store`; events are stamped by `clock` and `actor`.
    pub(crate) fn begin(
        store: &dyn Store,
        timeout: Duration,
        clock: Arc<dyn Clock>,
        actor: String,
    ) -> Result<Self> {
        let (session, state) = store.begin(timeout)?;
        Ok(Txn {
            session,
            state,
            events: Vec::new(),
            changed: false,
            clock,
            actor,
        })
    }

    /// Queues audit events, written by the next [`Txn::save`] or [`Txn::commit`].
    pub(crate) fn record(&mut self, drafts: impl IntoIterator<Item = Draft>) {
        self.events.extend(drafts);
    }

    /// Whether audit events are queued for the next save.
    pub(crate) fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Writes the state and the queued events, keeping the lock: a step that must be on
    /// record before a remote one begins. Writes nothing when nothing changed.
    ///
    /// # Errors
    ///
    /// As [`Session::save`].
    pub(crate) fn save(&mut self) -> Result<()> {
        if !self.changed && self.events.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(&mut self.events);
        self.session
            .save(&mut self.state, &events, self.clock.now(), &self.actor)?;
        self.changed = false;
        Ok(())
    }

    /// Saves (as [`Txn::save`]) and releases the lock.
    ///
    /// # Errors
    ///
    /// As [`Session::save`].
    pub(crate) fn commit(mut self) -> Result<()> {
        self.save()
    }
}

impl Deref for Txn {
    type Target = Inventory;
    fn deref(&self) -> &Inventory {
        &self.state
    }
}

/// Borrowing the state mutably marks it changed: the next save writes it.
impl DerefMut for Txn {
    fn deref_mut(&mut self) -> &mut Inventory {
        self.changed = true;
        &mut self.state
    }
}

#[cfg(test)]
mod tests {
    use super::memory::MemoryStore;
    use super::*;
    use crate::audit::Outcome;
    use crate::clock::FixedClock;

    fn draft(action: &'static str) -> Draft {
        Draft {
            action,
            key_id: None,
            fingerprint: None,
            outcome: Outcome::Ok,
            detail: None,
        }
    }

    fn begin(store: &dyn Store) -> Txn {
        let clock = Arc::new(FixedClock(chrono::Utc::now()));
        Txn::begin(
            store,
            Duration::from_millis(50),
            clock,
            "me@host".to_owned(),
        )
        .expect("begin")
    }

    #[test]
    fn a_txn_dropped_without_commit_changes_nothing_and_one_that_did_nothing_writes_nothing() {
        let store = MemoryStore::default();
        let mut txn = begin(&store);
        txn.journal.clear();
        txn.record([draft("create")]);
        drop(txn);
        assert_eq!(store.saved().saves, 0);
        assert!(store.saved().events.is_empty());
        begin(&store).commit().expect("commit");
        assert_eq!(store.saved().saves, 0, "nothing changed, nothing written");
        let mut txn = begin(&store);
        txn.record([draft("create")]);
        txn.commit().expect("commit");
        assert_eq!(store.saved().saves, 1);
        assert_eq!(store.saved().events.len(), 1);
    }

    #[test]
    fn the_file_store_keeps_the_lock_across_saves_and_anchors_the_audit_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = Paths::new(dir.path().join("vault"));
        paths.ensure_layout().expect("layout");
        let store = FileStore::new(paths.clone());
        let mut txn = begin(&store);
        txn.record([draft("create")]);
        txn.save().expect("save");
        // Saved, and still locked: another writer waits and gives up.
        let head = store.load().expect("load").audit_head().cloned();
        assert_eq!(head.as_ref().map(crate::audit::AuditHead::seq), Some(1));
        assert!(matches!(
            store.begin(Duration::from_millis(20)),
            Err(StoreError::Locked { .. })
        ));
        txn.record([draft("passwd")]);
        txn.commit().expect("commit");
        let state = store.load().expect("load");
        let verified = crate::audit::verify(&paths.audit_path(), state.audit_head())
            .expect("the chain verifies");
        assert_eq!((verified.events, verified.unanchored), (2, 0));
        // Released on commit.
        drop(store.begin(Duration::from_millis(20)).expect("free again"));
    }
}
