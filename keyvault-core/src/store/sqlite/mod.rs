//! The SQLite store, every vault's default: `vault.db` in the home (rusqlite's bundled
//! SQLite, so nothing is needed on the machine).
//!
//! WAL mode, foreign keys on, `synchronous=FULL`: a commit that returned is in the
//! write-ahead log `vault.db-wal`, fsynced. The log stays between commands (no checkpoint
//! when a connection closes, so the next writer neither makes a new log, with its header
//! and the directory fsynced, nor pays a checkpoint): it is part of the vault, read by every
//! connection, and copied into the database and emptied by the writer whose commit takes it
//! past [`write::CHECKPOINT_BYTES`]. The writer lock is the home's `.lock`
//! flock, as for the files (with `.FILE.lock` beside a database in another directory, which
//! other homes may name too), held for a whole [`super::Txn`]; each save is one
//! `BEGIN IMMEDIATE … COMMIT`. Readers read a snapshot (one read transaction) without the
//! lock. `View::Live` reads only the rows of the `keys_live` index (records that are not
//! revoked) and the per-purpose floors table, so it costs the same at a million records of
//! history as at a thousand.
//!
//! A new database is built beside the home's other files under a temporary name
//! (`.vault.db.new`), checkpointed whole into that file (no log left beside it) and renamed
//! into place, so a reader never sees a half-made one, and a log left at the final name
//! from a database no longer there (SQLite would apply it to any database of that name) is
//! removed first; what a
//! build killed before the rename leaves there (the schema, and for a migration the
//! records and audit lines of the files, which stay) is removed under the writer lock by
//! the next build, or by the next reader of a vault that has no database yet. A vault that still has
//! `inventory.json` (made by an earlier release, or with `store = "files"` before) is
//! migrated the first time any command opens it: under the writer lock the inventory is
//! read (a corrupt or newer one is refused, as before), the audit chain verified, every
//! record, the journal and every audit line imported with a `migrate` event in one
//! transaction, and the old files renamed `inventory.json.migrated` and
//! `audit.jsonl.migrated`. Files found beside an existing database are the end of a
//! migration stopped before those renames (its audit log is in the database: they are
//! renamed now) or are refused, never ignored.
//!
//! The module's parts: [`open`] opens and checks the database (and keeps a reader's
//! connection), [`build`] makes a new one, [`read`] reads the rows and [`write`] writes
//! them, for a writer's session and a migration.

mod build;
mod open;
mod read;
mod write;

pub(super) use write::{append_events, migrate_draft, write_journal, write_record};

use self::open::db_error;
use self::read::{read_view, row_record};
use self::write::SqliteSession;
use super::sql::{self, BadRow};
use super::{Paths, Session, Store, View};
use crate::audit;
use crate::error::{AuditLog, Result, StoreError};
use crate::fsutil;
use crate::inventory::{Inventory, KeyId, KeyRecord};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A vault's state in a SQLite database.
#[derive(Debug, Clone)]
pub(crate) struct SqliteStore {
    paths: Paths,
    file: PathBuf,
    /// How long a reader (or a migration started by one) waits for the writer lock or a
    /// busy database, in nanoseconds: the vault's lock timeout, as for a writer (set again
    /// by [`Store::set_wait`]; shared by the clones a writer's session keeps).
    wait: Arc<AtomicU64>,
    /// The connection the last reader of this process used, kept for the next reader or
    /// writer (see [`SqliteStore::connect`]).
    idle: Arc<Mutex<Option<Db>>>,
}

/// A connection to the database, and which file it opened (device and inode).
#[derive(Debug)]
struct Db {
    conn: Connection,
    file_id: (u64, u64),
}

impl std::ops::Deref for Db {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl std::ops::DerefMut for Db {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

impl SqliteStore {
    pub(crate) fn new(paths: Paths, file: PathBuf, wait: Duration) -> Self {
        let store = SqliteStore {
            paths,
            file,
            wait: Arc::default(),
            idle: Arc::default(),
        };
        store.set_wait(wait);
        store
    }

    /// How long a reader waits (see the field).
    fn wait(&self) -> Duration {
        Duration::from_nanos(self.wait.load(Ordering::Relaxed))
    }

    /// A database error on this store, in words.
    fn err(&self, operation: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |e| db_error(&self.paths, &self.file, operation, &e, self.wait())
    }

    fn bad_row(&self, e: BadRow) -> StoreError {
        StoreError::Database {
            store: self.file.display().to_string(),
            operation: "read",
            detail: e.0,
        }
    }

    fn exists(path: &Path) -> bool {
        std::fs::symlink_metadata(path).is_ok()
    }

    /// Whether the vault still keeps its state in `inventory.json`/`audit.jsonl`.
    fn has_files(&self) -> bool {
        Self::exists(&self.paths.inventory_path()) || Self::exists(&self.paths.audit_path())
    }

    /// The writer lock: the home's `.lock`, and when the database is in another directory
    /// (`sqlite:FILE` outside the home, which other homes may name too) the lock file
    /// `.FILE.lock` beside it as well, so that every home's writers on it take turns. Taken
    /// in that order by every writer, each waiting at most `timeout`.
    fn lock(&self, timeout: Duration) -> Result<WriterLock, StoreError> {
        let home = self.paths.lock(timeout)?;
        let dir = fsutil::parent_dir(&self.file);
        let beside = if super::guard::same_file(dir, self.paths.home()) {
            None
        } else {
            let mut name = std::ffi::OsString::from(".");
            name.push(self.file.file_name().unwrap_or_default());
            name.push(".lock");
            Some(super::files::lock_file(
                dir.join(name),
                &self.file,
                timeout,
            )?)
        };
        Ok(WriterLock {
            _home: home,
            _beside: beside,
        })
    }

    /// Under the writer lock: makes the database if there is none, from the files if the
    /// vault has them; files beside an existing database are settled (the end of a
    /// migration that stopped after the rename of the database, else refused).
    fn create_or_migrate(&self) -> Result<(), StoreError> {
        match (self.has_files(), Self::exists(&self.file)) {
            (false, true) => Ok(()),
            (false, false) => self.build(|_| Ok(())),
            (true, false) => super::sqlite_migrate::migrate(self),
            (true, true) => super::sqlite_migrate::settle(self),
        }
    }

    /// Whether the database's audit line `seq` is the one whose hash is `hash`.
    pub(super) fn holds_line(&self, seq: u64, hash: &str) -> Result<bool, StoreError> {
        let conn = self.connect(self.wait())?;
        let line: Option<String> = conn
            .query_row(
                sql::SELECT_AUDIT_LINE,
                params![i64::try_from(seq).unwrap_or(i64::MAX)],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err("read"))?;
        Ok(line.is_some_and(|l| audit::hash_line(l.as_bytes()) == hash))
    }

    pub(super) fn paths(&self) -> &Paths {
        &self.paths
    }

    pub(super) fn file(&self) -> &Path {
        &self.file
    }
}

impl Store for SqliteStore {
    fn load(&self, view: View) -> Result<Inventory, StoreError> {
        let Some(mut db) = self.reader()? else {
            return Ok(Inventory::default());
        };
        let state = {
            let tx = db.transaction().map_err(self.err("read"))?;
            read_view(self, &tx, view)?
        };
        self.keep(db);
        Ok(state)
    }

    fn begin(
        &self,
        timeout: Duration,
        view: View,
    ) -> Result<(Box<dyn Session>, Inventory), StoreError> {
        // A database that exists is opened before the lock is taken, so the lock is held
        // for the work alone (only making or migrating one needs the lock first).
        // A reader's connection of this process is taken (see `connect`).
        let early = if Self::exists(&self.file) {
            Some(self.connect(timeout)?)
        } else {
            None
        };
        let lock = self.lock(timeout)?;
        self.create_or_migrate()?;
        let mut conn = match early {
            Some(conn) => conn,
            None => self.connect(timeout)?,
        };
        let state = {
            let tx = conn.transaction().map_err(self.err("read"))?;
            read_view(self, &tx, view)?
        };
        let session = SqliteSession {
            _lock: lock,
            store: self.clone(),
            conn,
            timeout,
        };
        Ok((Box::new(session), state))
    }

    fn key(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let Some(db) = self.reader()? else {
            return Ok(None);
        };
        let err = self.err("read");
        let record = {
            let mut statement = db.prepare_cached(sql::SELECT_KEY).map_err(&err)?;
            let mut rows = statement.query(params![id.as_str()]).map_err(&err)?;
            match rows.next().map_err(&err)? {
                Some(row) => Some(row_record(self, row)?),
                None => None,
            }
        };
        self.keep(db);
        Ok(record)
    }

    fn each_key(&self, f: &mut dyn FnMut(KeyRecord) -> Result<()>) -> Result<()> {
        let Some(mut db) = self.reader()? else {
            return Ok(());
        };
        let err = self.err("read");
        {
            let tx = db.transaction().map_err(&err)?;
            let mut statement = tx.prepare(sql::SELECT_ALL_KEYS).map_err(&err)?;
            let mut rows = statement.query([]).map_err(&err)?;
            while let Some(row) = rows.next().map_err(&err)? {
                f(row_record(self, row)?)?;
            }
        }
        self.keep(db);
        Ok(())
    }

    fn audit_lines(&self, after: u64, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let Some(mut db) = self.reader()? else {
            return Ok(());
        };
        let err = self.err("read");
        {
            let tx = db.transaction().map_err(&err)?;
            let mut statement = tx.prepare(sql::SELECT_AUDIT_AFTER).map_err(&err)?;
            let after = i64::try_from(after).unwrap_or(i64::MAX);
            let mut rows = statement.query(params![after]).map_err(&err)?;
            while let Some(row) = rows.next().map_err(&err)? {
                let line = row.get_ref(1).map_err(&err)?;
                let bytes = match line {
                    rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => b,
                    _ => &[][..],
                };
                f(bytes)?;
            }
        }
        self.keep(db);
        Ok(())
    }

    fn audit_log(&self) -> AuditLog {
        AuditLog::Sqlite(self.file.clone())
    }

    fn set_wait(&self, wait: Duration) {
        let nanos = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
        self.wait.store(nanos, Ordering::Relaxed);
    }
}

/// The locks a writer holds (see [`SqliteStore::lock`]), released when dropped.
struct WriterLock {
    _home: super::files::LockGuard,
    _beside: Option<super::files::LockGuard>,
}
