//! [`FileStore`]: the state as files in the vault home (`inventory.json`, `audit.jsonl`
//! and the `.lock` file a writer holds), and [`Paths`], the names inside a home.

use super::{Changes, Session, Store, View};
use crate::audit::{self, Draft};
use crate::error::{Result, StoreError};
use crate::fsutil;
use crate::inventory::{INVENTORY_VERSION, Inventory, KeyId, KeyRecord, ParseError};
use chrono::{DateTime, Utc};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

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
        lock_file(self.lock_path(), &self.home, timeout)
    }
}

/// Takes the exclusive lock on the lock file `path`, waiting at most `timeout`; `home` is
/// what a process that gives up is told is locked (the home, or a database outside it).
pub(crate) fn lock_file(
    path: PathBuf,
    home: &Path,
    timeout: Duration,
) -> Result<LockGuard, StoreError> {
    // The lock file lives in the checked home (0700, the user's own), or beside a
    // database outside it: opened in place (the lock is on this inode, so no
    // temp+rename), no-follow, 0600, never truncated.
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
    let locked = match file.try_lock() {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => wait_for_lock(&file, timeout),
        Err(TryLockError::Error(source)) => Err(source),
    }
    .map_err(|source| StoreError::Io {
        operation: "lock",
        path: path.clone(),
        source,
    })?;
    if !locked {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        return Err(StoreError::Locked {
            home: home.to_owned(),
            holder: if holder.is_empty() {
                "another process".to_owned()
            } else {
                format!("process {holder}")
            },
            waited_secs: timeout.as_secs(),
        });
    }
    // Best effort: tell a waiting process who holds the lock.
    let _ = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| write!(file, "{}", std::process::id()));
    Ok(LockGuard { _file: file })
}

/// Waits at most `timeout` for the exclusive lock on `file`, which another process holds;
/// says whether it got it. The wait is in the kernel, so the lock passes to a waiter the
/// moment its holder lets go: a helper thread blocks in `flock` on a second handle of the
/// same open file (a flock belongs to the open file, not the handle, so the lock it gets is
/// `file`'s), and this thread waits for its word with the timeout. `unsafe` is forbidden
/// here, so no signal can interrupt the blocked call: after a timeout the helper stays
/// blocked until the holder lets go, then finds no one listening and closes its handle at
/// once, which (with `file` closed by then) releases the lock it got. It holds the lock
/// for no longer than that, and a process that exits takes it along.
fn wait_for_lock(file: &File, timeout: Duration) -> std::io::Result<bool> {
    if timeout.is_zero() {
        return Ok(false);
    }
    let waiter = file.try_clone()?;
    let (tell, told) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("keyvault-lock".to_owned())
        .stack_size(64 << 10)
        .spawn(move || {
            let got = loop {
                match waiter.lock() {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    other => break other,
                }
            };
            // Fails when the caller gave up: `waiter` is dropped right after, releasing the
            // lock if `file` is closed already (else `file`'s owner releases it on close).
            let _ = tell.send(got);
        })?;
    match told.recv_timeout(timeout) {
        Ok(got) => got.map(|()| true),
        Err(RecvTimeoutError::Timeout) => Ok(false),
        Err(RecvTimeoutError::Disconnected) => {
            Err(std::io::Error::other("the lock waiter stopped"))
        }
    }
}

/// The state as files in the vault home: `inventory.json`, `audit.jsonl` and the `.lock`
/// file a writer holds. It ignores [`View`]: it rewrites the whole file on each save, so it
/// always loads every record.
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
    fn load(&self, _view: View) -> Result<Inventory, StoreError> {
        self.paths.load()
    }

    fn begin(
        &self,
        timeout: Duration,
        _view: View,
    ) -> Result<(Box<dyn Session>, Inventory), StoreError> {
        let lock = self.paths.lock(timeout)?;
        let state = self.paths.load()?;
        let session = FileSession {
            paths: self.paths.clone(),
            _lock: lock,
        };
        Ok((Box::new(session), state))
    }

    fn key(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let mut state = self.paths.load()?;
        Ok(state
            .keys
            .iter()
            .position(|k| &k.id == id)
            .map(|i| state.keys.swap_remove(i)))
    }

    fn each_key(&self, f: &mut dyn FnMut(KeyRecord) -> Result<()>) -> Result<()> {
        // The file is one document: it is read whole, then handed out record by record.
        for record in self.paths.load()?.keys {
            f(record)?;
        }
        Ok(())
    }

    fn audit_lines(&self, after: u64, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        audit::each_line(&self.paths.audit_path(), after, f)
    }

    fn audit_log(&self) -> crate::error::AuditLog {
        crate::error::AuditLog::File(self.paths.audit_path())
    }
}

/// A [`FileStore`] writer: holds the `.lock` file.
struct FileSession {
    paths: Paths,
    _lock: LockGuard,
}

impl Session for FileSession {
    /// Writes the whole inventory whatever `changes` names. The inventory announces the new
    /// head before the lines are appended, so that lines past the recorded head are
    /// accepted only when keyvault itself wrote them (see [`crate::audit`]).
    fn save(
        &mut self,
        state: &mut Inventory,
        _changes: &Changes,
        events: &[Draft],
        time: DateTime<Utc>,
        actor: &str,
    ) -> Result<()> {
        if events.is_empty() {
            return Ok(self.paths.save(state)?);
        }
        let path = self.paths.audit_path();
        let mut chain = audit::Chain::new(
            &crate::error::AuditLog::File(path.clone()),
            state.audit.as_ref(),
        );
        audit::each_line(&path, 0, &mut |line| {
            chain.push(line)?;
            Ok(())
        })?;
        let prepared = chain.prepare(events, time, actor)?;
        if let Some(announce) = prepared.announce() {
            state.audit = Some(announce);
            self.paths.save(state)?;
            prepared.write(&path)?;
        }
        state.audit = prepared.head();
        Ok(self.paths.save(state)?)
    }

    fn uses_changes(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{begin, draft};
    use super::*;

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
        let head = store.load(View::All).expect("load").audit_head().cloned();
        assert_eq!(head.as_ref().map(crate::audit::AuditHead::seq), Some(1));
        assert!(matches!(
            store.begin(Duration::from_millis(20), View::All),
            Err(StoreError::Locked { .. })
        ));
        txn.record([draft("passwd")]);
        txn.commit().expect("commit");
        let state = store.load(View::All).expect("load");
        let verified = crate::audit::verify(&paths.audit_path(), state.audit_head())
            .expect("the chain verifies");
        assert_eq!((verified.events, verified.unanchored), (2, 0));
        let mut lines = Vec::new();
        store
            .audit_lines(1, &mut |l| {
                lines.push(l.to_vec());
                Ok(())
            })
            .expect("lines");
        assert_eq!(lines.len(), 1, "only the lines after seq 1");
        assert!(lines[0].starts_with(b"{\"seq\":2,"));
        // Released on commit.
        drop(
            store
                .begin(Duration::from_millis(20), View::All)
                .expect("free again"),
        );
    }
}
