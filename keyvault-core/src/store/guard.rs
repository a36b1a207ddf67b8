//! [`Guarded`]: a [`Store`] that first makes sure the home holds no vault state the store
//! does not read, so that switching `store = "…"` never starts an empty vault beside the
//! records, or goes on without them, in silence.
//!
//! What each store leaves unread, and so refuses ([`StoreError::Unread`]):
//!
//! - **files**, in a home without `inventory.json` and `audit.jsonl`: `vault.db`, or a
//!   migration's `inventory.json.migrated`/`audit.jsonl.migrated` (the records moved into
//!   a database, perhaps one named with `sqlite:FILE`).
//! - **SQLite** (`FILE`), in a home without those files (with them, it migrates them or
//!   settles them, see `store::sqlite`): the home's `vault.db` when it is not `FILE`; and
//!   when `FILE` does not exist yet, the `*.migrated` files (a new, empty database would
//!   stand in for the one they went into).
//! - **PostgreSQL**: any of `inventory.json`, `audit.jsonl`, `vault.db` and the `*.migrated`
//!   files. The server's records never include a home's own: moving them there is an
//!   export and a restore into a fresh home.
//!
//! The check runs before every call (a few `lstat`s), not when the vault is opened, so a
//! command that touches no records (`restore --force`, which moves the home aside) still
//! runs; it changes nothing. A writer's check runs again once it holds the writer lock:
//! another keyvault, told to use another store, may have migrated the home while it waited.
//! A reader's runs again once it has read, and what it read is dropped if the check now
//! fails: a reader of the files that another keyvault's migration into SQLite overtook
//! between the check and its read found no `inventory.json`, an empty vault; it gets the
//! error a reader started a moment later gets instead, never that empty vault. (A reader
//! of the database needs no second check: a migration renames the database into place
//! before it renames the files away, and a reader that sees the files waits for the
//! writer lock and migrates or settles them itself.)

use super::{Paths, Session, Store, View};
use crate::error::{Result, StoreError};
use crate::inventory::{Inventory, KeyId, KeyRecord};
use crate::policy::StoreLocation;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A store behind the check of the module documentation.
pub(crate) struct Guarded {
    inner: Arc<dyn Store>,
    paths: Paths,
    location: StoreLocation,
}

impl Guarded {
    pub(crate) fn new(inner: Arc<dyn Store>, paths: Paths, location: StoreLocation) -> Self {
        Guarded {
            inner,
            paths,
            location,
        }
    }

    /// [`StoreError::Unread`] naming the first file the store would leave unread.
    fn check(&self) -> Result<(), StoreError> {
        match unread(&self.paths, &self.location) {
            None => Ok(()),
            Some(found) => Err(StoreError::Unread {
                found,
                store: self.location.clone(),
            }),
        }
    }

    /// `read` between two checks: its result only when the home still holds no state the
    /// store leaves unread once it is done (see the module documentation).
    fn read<T, E: From<StoreError>>(&self, read: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        self.check()?;
        let result = read();
        self.check()?;
        result
    }
}

/// Whether anything is at `path` (a link counts, and is not followed).
fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok() // outside fsutil: an lstat
}

/// Whether `a` and `b` are the same file (both exist).
pub(super) fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (std::fs::metadata(a), std::fs::metadata(b)); // outside fsutil: stat only
    match (a, b) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// `path` with `.migrated` appended: where a migration keeps an old file.
pub(super) fn migrated(path: &Path) -> PathBuf {
    let mut kept = path.as_os_str().to_owned();
    kept.push(".migrated");
    PathBuf::from(kept)
}

/// The first file of the home's vault state that a store at `location` would not read.
fn unread(paths: &Paths, location: &StoreLocation) -> Option<PathBuf> {
    let files = [paths.inventory_path(), paths.audit_path()];
    let has_files = files.iter().any(|p| exists(p));
    let database = paths.home().join("vault.db");
    let kept = files.iter().map(|p| migrated(p));
    let candidates: Vec<PathBuf> = match location {
        StoreLocation::Files if has_files => return None,
        StoreLocation::Files => std::iter::once(database).chain(kept).collect(),
        StoreLocation::Sqlite(_) if has_files => return None,
        StoreLocation::Sqlite(file) => {
            let file = paths.home().join(file);
            // The home's own `vault.db` may be the store's file: never unread.
            let own = file == database;
            if !exists(&file) {
                let found = (!own)
                    .then(|| database.clone())
                    .into_iter()
                    .chain(kept)
                    .find(|p| exists(p));
                // Another keyvault may have built the database (renamed it into place, or
                // migrated the files into it) since the look above: if it exists now, it
                // is judged as one that existed.
                if found.is_none() || !exists(&file) {
                    return found;
                }
            }
            let other = !own && exists(&database) && !same_file(&database, &file);
            return other.then_some(database);
        }
        StoreLocation::Postgres(_) => files
            .iter()
            .cloned()
            .chain([database])
            .chain(kept)
            .collect(),
    };
    candidates.into_iter().find(|p| exists(p))
}

impl Store for Guarded {
    fn load(&self, view: View) -> Result<Inventory, StoreError> {
        self.read(|| self.inner.load(view))
    }

    fn begin(
        &self,
        timeout: Duration,
        view: View,
    ) -> Result<(Box<dyn Session>, Inventory), StoreError> {
        self.check()?;
        let begun = self.inner.begin(timeout, view)?;
        // Again under the writer lock: while this writer waited for it, another keyvault
        // with another store may have moved the vault (a migration renames the files).
        // On refusal the session is dropped, which lets the lock go; nothing is written.
        self.check()?;
        Ok(begun)
    }

    fn key(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.read(|| self.inner.key(id))
    }

    fn each_key(&self, f: &mut dyn FnMut(KeyRecord) -> Result<()>) -> Result<()> {
        self.read(|| self.inner.each_key(f))
    }

    fn audit_lines(&self, after: u64, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        self.read(|| self.inner.audit_lines(after, f))
    }

    fn audit_log(&self) -> crate::error::AuditLog {
        self.inner.audit_log()
    }

    fn set_wait(&self, wait: Duration) {
        self.inner.set_wait(wait);
    }
}
