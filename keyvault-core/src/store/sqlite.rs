//! The SQLite store, every vault's default: `vault.db` in the home (rusqlite's bundled
//! SQLite, so nothing is needed on the machine).
//!
//! WAL mode, foreign keys on, `synchronous=FULL`: a commit that returned is in the
//! write-ahead log `vault.db-wal`, fsynced. The log stays between commands (no checkpoint
//! when a connection closes, so the next writer neither makes a new log, with its header
//! and the directory fsynced, nor pays a checkpoint): it is part of the vault, read by every
//! connection, and copied into the database and emptied by the writer whose commit takes it
//! past [`CHECKPOINT_BYTES`]. The writer lock is the home's `.lock`
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

use super::sql::{self, BadRow, Dialect, KeyRow};
use super::{Changes, Paths, Session, Store, View};
use crate::audit::{self, AuditHead, Draft, Outcome};
use crate::error::{AuditLog, Result, StoreError};
use crate::fsutil;
use crate::inventory::{Inventory, JournalEntry, KeyId, KeyRecord};
use chrono::{DateTime, Utc};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The size of the write-ahead log (about 250 pages of 4 KiB) past which the writer whose
/// commit took it there checkpoints it into the database and empties it. Each process's
/// first connection reads the whole log to index it, so it is kept short; a checkpoint costs
/// two fsyncs, and the next commit one more (the new log's header), once every twenty-odd
/// write commands.
///
/// The writer does it, in TRUNCATE mode, not SQLite's automatic checkpoint: that one
/// (PASSIVE) leaves the log to be started over by the next writer, which happens only while
/// a connection keeps the log's index, and keyvault's processes keep none between commands
/// (each rebuilds it, and forgets the checkpoint), so the log would only grow, checkpointed
/// again at every commit.
const CHECKPOINT_BYTES: u64 = 1 << 20;

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

    /// Opens the database for reading and writing: a regular file (never through a
    /// symlink), private to its owner, with no symlink or other non-regular file where
    /// SQLite keeps its companions (`-wal`, `-shm`, `-journal`), of a schema this build
    /// knows.
    ///
    /// The connection a reader of this process left ([`SqliteStore::keep`]) is taken
    /// instead of a new one when it is to the file there now (checked as a new one would
    /// be): a command that reads before it writes (`new`, `mint`) opens the database, and
    /// has SQLite read the log to index it, once.
    fn connect(&self, wait: Duration) -> Result<Db, StoreError> {
        let meta = std::fs::symlink_metadata(&self.file).map_err(|source| StoreError::Io {
            operation: "open",
            path: self.file.clone(),
            source,
        })?;
        if !meta.is_file() {
            return Err(StoreError::NotRegular {
                path: self.file.clone(),
            });
        }
        check_private_file(&self.file, &meta)?;
        check_companions(&self.file)?;
        let file_id = (meta.dev(), meta.ino());
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.take());
        let conn = match idle {
            Some(db) if db.file_id == file_id => {
                db.conn.busy_timeout(wait).map_err(self.err("open"))?;
                db.conn
            }
            _ => open_connection(&self.file, wait)
                .map_err(|e| db_error(&self.paths, &self.file, "open", &e, wait))?,
        };
        let version: i64 = match conn.query_row(sql::SELECT_META, [], |r| r.get(0)) {
            Ok(version) => version,
            Err(e) => {
                return Err(refuse(
                    conn,
                    db_error(&self.paths, &self.file, "read", &e, wait),
                ));
            }
        };
        if version > sql::SCHEMA_VERSION {
            let e = StoreError::SchemaTooNew {
                store: self.file.display().to_string(),
                version,
                supported: sql::SCHEMA_VERSION,
            };
            return Err(refuse(conn, e));
        }
        Ok(Db { conn, file_id })
    }

    /// Keeps a reader's connection, out of any transaction, for the next
    /// [`SqliteStore::connect`] of this process.
    fn keep(&self, db: Db) {
        if db.is_autocommit()
            && let Ok(mut idle) = self.idle.lock()
        {
            *idle = Some(db);
        }
    }

    /// A connection for a reader, or `None` when the vault has no state yet. Migrates a
    /// vault that still has its files, or settles files left beside the database; removes
    /// what a build killed before its rename left.
    fn reader(&self) -> Result<Option<Db>, StoreError> {
        // The files first: a migration renames the database into place before it renames
        // them away, so a vault seen without files and then without a database has neither.
        let files = self.has_files();
        if !files && !Self::exists(&self.file) {
            let tmp = temp_name(&self.file);
            if !stale_names(&tmp).iter().any(|p| Self::exists(p)) {
                return Ok(None);
            }
            // Under the lock no build is under way: what is at the temporary name is the
            // remains of one that was killed (a migration's are removed by the next one).
            let _lock = self.lock(self.wait())?;
            if !Self::exists(&self.file) {
                remove_stale(&tmp)?;
                return Ok(None);
            }
        }
        if files {
            let _lock = self.lock(self.wait())?;
            self.create_or_migrate()?;
        }
        self.connect(self.wait()).map(Some)
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

    /// Makes the database: a new file beside it (0600, created exclusively, never through
    /// a link) gets the schema and whatever `fill` writes in one transaction, and is
    /// renamed into place once complete. Call with the writer lock held.
    pub(super) fn build(
        &self,
        fill: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let tmp = temp_name(&self.file);
        remove_stale(&tmp)?;
        let result = (|| {
            // An empty file is a valid empty database; written through the safe path.
            fsutil::write_atomic(&tmp, b"", 0o600, fsutil::Replace::No)?;
            let mut conn = open_connection(&tmp, self.wait()).map_err(self.err("create"))?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(self.err("create"))?;
            for statement in sql::schema(Dialect::Sqlite) {
                tx.execute(&statement, []).map_err(self.err("create"))?;
            }
            tx.execute(
                sql::INSERT_META,
                params![sql::SCHEMA_VERSION, audit::GENESIS],
            )
            .map_err(self.err("create"))?;
            fill(&tx)?;
            tx.commit().map_err(self.err("write"))?;
            self.close_whole(conn, &tmp)?;
            remove_orphan_log(&self.file)?;
            std::fs::rename(&tmp, &self.file).map_err(|source| StoreError::Io {
                operation: "create",
                path: self.file.clone(),
                source,
            })?;
            fsutil::sync_dir(fsutil::parent_dir(&self.file))
        })();
        if result.is_err() {
            let _ = remove_stale(&tmp);
        }
        result
    }

    /// Closes the only connection to the database being built at `tmp` with everything in
    /// the file itself: the log checkpointed into it (the file fsynced) and emptied, then
    /// removed with the index by the close; [`StoreError::Database`] if either is left.
    fn close_whole(&self, conn: Connection, tmp: &Path) -> Result<(), StoreError> {
        let (busy, _, _): (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(self.err("create"))?;
        // This connection's close may checkpoint (there is nothing left to copy) and so
        // removes the log and its index.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false)
            .map_err(self.err("create"))?;
        conn.close().map_err(|(_, e)| self.err("close")(e))?;
        let left = companions(tmp).into_iter().find(|p| Self::exists(p));
        if busy != 0 || left.is_some() {
            return Err(StoreError::Database {
                store: tmp.display().to_string(),
                operation: "create",
                detail: match left {
                    Some(path) => format!("{} was left beside the new database", path.display()),
                    None => "the new database could not be checkpointed".to_owned(),
                },
            });
        }
        Ok(())
    }

    pub(super) fn paths(&self) -> &Paths {
        &self.paths
    }

    pub(super) fn file(&self) -> &Path {
        &self.file
    }
}

/// The name a database is built under before it is renamed into place.
fn temp_name(file: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(file.file_name().unwrap_or_default());
    name.push(".new");
    file.with_file_name(name)
}

/// Removes a log and index at the name of `file`, which does not exist (a database is
/// built only then; under the writer lock): the remains of a database removed without
/// them. SQLite ties a log to its database by name alone, and would apply its commits to
/// the new database renamed there.
fn remove_orphan_log(file: &Path) -> Result<(), StoreError> {
    let [wal, shm, _] = companions(file);
    let mut removed = false;
    for name in [wal, shm] {
        // Outside fsutil: an unlink of SQLite's file beside a database that is not there; a
        // link there is removed, not followed, and nothing is written.
        match std::fs::remove_file(&name) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StoreError::Io {
                    operation: "remove",
                    path: name,
                    source,
                });
            }
        }
    }
    if removed {
        // Gone for good before the new database takes the name.
        fsutil::sync_dir(fsutil::parent_dir(file))?;
    }
    Ok(())
}

/// The temporary name `tmp` and SQLite's companions of it.
fn stale_names(tmp: &Path) -> [PathBuf; 4] {
    let [wal, shm, journal] = companions(tmp);
    [tmp.to_path_buf(), wal, shm, journal]
}

/// Removes what an interrupted build left (the file and SQLite's companions; a link there
/// is removed, not followed).
fn remove_stale(tmp: &Path) -> Result<(), StoreError> {
    for name in stale_names(tmp) {
        // Outside fsutil: an unlink of keyvault's own temporary name, under the writer lock;
        // a link there is removed, not followed, and nothing is written.
        match std::fs::remove_file(&name) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StoreError::Io {
                    operation: "remove",
                    path: name,
                    source: e,
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// SQLite's files beside `file`: its write-ahead log, its shared-memory index and its
/// rollback journal.
fn companions(file: &Path) -> [PathBuf; 3] {
    ["-wal", "-shm", "-journal"].map(|suffix| {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    })
}

/// The checks of a database file and of each companion there: owned by the user running
/// keyvault ([`StoreError::NotOwned`]) and private to them ([`StoreError::Permissions`]).
/// The log holds the newest records and audit lines until a checkpoint copies them into
/// the database, and the index says which of its frames are live, so each is as secret
/// and as trusted as the database itself. SQLite makes both with the database's mode (and,
/// as root, its owner), whatever the umask: 0600 beside a database keyvault made.
fn check_private_file(path: &Path, meta: &std::fs::Metadata) -> Result<(), StoreError> {
    if meta.uid() != crate::dirfd::effective_uid() {
        return Err(StoreError::NotOwned {
            path: path.to_owned(),
            owner: meta.uid(),
        });
    }
    fsutil::check_private_mode(path, meta)
}

/// For each companion of `file` that is there: [`StoreError::NotRegular`] when it is a
/// symlink or not a regular file (SQLite would only say it cannot open the database, as it
/// opens them without following links, and would never write through it), and the checks
/// of the database itself ([`check_private_file`]) when it is one.
fn check_companions(file: &Path) -> Result<(), StoreError> {
    for path in companions(file) {
        // Outside fsutil: an lstat, which reads nothing and follows no link.
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if !meta.is_file() => return Err(StoreError::NotRegular { path }),
            Ok(meta) => check_private_file(&path, &meta)?,
            Err(_) => {}
        }
    }
    Ok(())
}

/// `e`, once `conn` to a database keyvault refuses is closed as any other program's
/// would be: the last connection checkpoints the log and removes it and its index, so a
/// refused database is left as it was found, with no new file beside it.
fn refuse(conn: Connection, e: StoreError) -> StoreError {
    let _ = conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false);
    drop(conn);
    e
}

/// Opens `file` (which exists) with keyvault's settings.
fn open_connection(file: &Path, wait: Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NOFOLLOW
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(wait)?;
    // No checkpoint when the last connection closes, so the log stays for the next
    // command (see the module documentation): no new log to create and fsync with its
    // directory, no checkpoint's two fsyncs, at every write command. A commit is as durable
    // (synchronous=FULL fsyncs the log at each one); the checkpoint a commit makes once the
    // log passes CHECKPOINT_BYTES keeps it short (see `SqliteSession::keep_log_short`).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!("cannot use WAL mode (journal mode is {mode})")),
        ));
    }
    // No automatic checkpoint: the writer makes its own (`SqliteSession::keep_log_short`).
    conn.execute_batch(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;",
    )?;
    Ok(conn)
}

/// A database error in words; a busy database is [`StoreError::Locked`].
fn db_error(
    paths: &Paths,
    file: &Path,
    operation: &'static str,
    e: &rusqlite::Error,
    waited: Duration,
) -> StoreError {
    let code = e.sqlite_error_code();
    if matches!(
        code,
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    ) {
        return StoreError::Locked {
            home: paths.home().to_owned(),
            holder: format!("another process using {}", file.display()),
            waited_secs: waited.as_secs(),
        };
    }
    let detail = match code {
        Some(ErrorCode::ReadOnly) => "the database is read-only".to_owned(),
        Some(ErrorCode::DiskFull) => "the database or its disk is full".to_owned(),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            "the file is not a keyvault database, or it is corrupt".to_owned()
        }
        _ => match e {
            rusqlite::Error::SqliteFailure(_, Some(message)) => message.clone(),
            other => other.to_string(),
        },
    };
    StoreError::Database {
        store: file.display().to_string(),
        operation,
        detail,
    }
}

/// Reads `view` in the connection's current transaction.
fn read_view(store: &SqliteStore, conn: &Connection, view: View) -> Result<Inventory, StoreError> {
    let err = store.err("read");
    let mut state = Inventory::default();
    let select = match view {
        View::All => sql::SELECT_ALL_KEYS,
        View::Live => sql::SELECT_LIVE_KEYS,
    };
    let mut rows = conn.prepare_cached(select).map_err(&err)?;
    let mut rows = rows.query([]).map_err(&err)?;
    while let Some(row) = rows.next().map_err(&err)? {
        state.keys.push(row_record(store, row)?);
    }
    if view == View::Live {
        let mut rows = conn.prepare_cached(sql::SELECT_FLOORS).map_err(&err)?;
        let mut rows = rows.query([]).map_err(&err)?;
        while let Some(row) = rows.next().map_err(&err)? {
            let purpose: String = row.get(0).map_err(&err)?;
            let number: i64 = row.get(1).map_err(&err)?;
            let revoked: i64 = row.get(2).map_err(&err)?;
            state.revoked_unloaded += usize::try_from(revoked).unwrap_or(0);
            let purpose = purpose
                .parse()
                .map_err(|_| store.bad_row(BadRow(format!("purpose {purpose:?} is not valid"))))?;
            state
                .floors
                .insert(purpose, u64::try_from(number).unwrap_or(0));
        }
    }
    let mut rows = conn.prepare_cached(sql::SELECT_JOURNAL).map_err(&err)?;
    let mut rows = rows.query([]).map_err(&err)?;
    while let Some(row) = rows.next().map_err(&err)? {
        let json: String = row.get(0).map_err(&err)?;
        state
            .journal
            .push(sql::journal_of(&json).map_err(|e| store.bad_row(e))?);
    }
    state.audit = read_head(conn).map_err(&err)?;
    Ok(state)
}

fn row_record(store: &SqliteStore, row: &rusqlite::Row<'_>) -> Result<KeyRecord, StoreError> {
    let err = store.err("read");
    let id: String = row.get(0).map_err(&err)?;
    let state: String = row.get(1).map_err(&err)?;
    let json: String = row.get(2).map_err(&err)?;
    sql::record_of(&id, &state, &json).map_err(|e| store.bad_row(e))
}

fn read_head(conn: &Connection) -> rusqlite::Result<Option<AuditHead>> {
    let (seq, hash): (i64, String) =
        conn.query_row(sql::SELECT_HEAD, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(sql::head(seq, hash))
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

/// A writer on a [`SqliteStore`]: holds the writer lock and a connection.
struct SqliteSession {
    /// Dropped first (fields drop in order): the next writer goes on while this
    /// connection closes (which leaves the log as it is).
    _lock: WriterLock,
    store: SqliteStore,
    conn: Db,
    timeout: Duration,
}

impl Session for SqliteSession {
    fn save(
        &mut self,
        state: &mut Inventory,
        changes: &Changes,
        events: &[Draft],
        time: DateTime<Utc>,
        actor: &str,
    ) -> Result<()> {
        let store = &self.store;
        let timeout = self.timeout;
        let err = |operation| {
            move |e: rusqlite::Error| db_error(&store.paths, &store.file, operation, &e, timeout)
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("write"))?;
        for id in &changes.keys {
            if let Some(record) = state.get(id) {
                write_record(&tx, record).map_err(err("write"))?;
            }
        }
        if changes.journal {
            write_journal(&tx, &state.journal)?;
        }
        let head = if events.is_empty() {
            state.audit.clone()
        } else {
            let head = read_head(&tx).map_err(err("read"))?;
            let log = AuditLog::Sqlite(store.file.clone());
            append_events(&tx, head.as_ref(), events, time, actor, &log, &err("write"))?
        };
        tx.commit().map_err(err("write"))?;
        state.audit = head;
        self.keep_log_short();
        Ok(())
    }
}

impl SqliteSession {
    /// Once the log is past [`CHECKPOINT_BYTES`], copies it into the database and empties
    /// it (`wal_checkpoint(TRUNCATE)`), without waiting for readers: one reading the log
    /// leaves it for the next commit. Nothing of the commit depends on it, so a checkpoint
    /// that fails changes nothing but the log's size.
    fn keep_log_short(&self) {
        let [log, _, _] = companions(&self.store.file);
        // Outside fsutil: an lstat, which reads nothing and follows no link.
        let long = std::fs::symlink_metadata(&log).is_ok_and(|m| m.len() > CHECKPOINT_BYTES);
        if !long {
            return;
        }
        let _ = self.conn.busy_timeout(Duration::ZERO);
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        let _ = self.conn.busy_timeout(self.timeout);
    }
}

/// Inserts or changes `record`'s row, raises its purpose's floor and keeps its count of
/// revoked records.
pub(super) fn write_record(tx: &Connection, record: &KeyRecord) -> Result<(), rusqlite::Error> {
    let row = KeyRow::of(record).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
    let was: Option<String> = tx
        .prepare_cached(sql::SELECT_KEY_STATE)?
        .query_row(params![row.id], |r| r.get(0))
        .optional()?;
    let revoked = |state: &str| i64::from(state == "revoked");
    let delta = revoked(&row.state) - was.as_deref().map_or(0, revoked);
    tx.prepare_cached(sql::UPSERT_KEY)?.execute(params![
        row.id,
        row.purpose,
        row.number,
        row.state,
        row.expires_at,
        row.minted,
        row.fingerprint,
        row.record
    ])?;
    tx.prepare_cached(sql::upsert_floor(Dialect::Sqlite))?
        .execute(params![row.purpose, row.number, delta])?;
    Ok(())
}

/// Replaces the journal.
pub(super) fn write_journal(tx: &Connection, journal: &[JournalEntry]) -> Result<()> {
    let err = |e: rusqlite::Error| StoreError::Database {
        store: String::new(),
        operation: "write",
        detail: e.to_string(),
    };
    tx.execute(sql::DELETE_JOURNAL, []).map_err(err)?;
    for (pos, entry) in journal.iter().enumerate() {
        tx.execute(
            sql::INSERT_JOURNAL,
            params![
                i64::try_from(pos).unwrap_or(i64::MAX),
                entry.purpose.as_str(),
                sql::journal_json(entry)?
            ],
        )
        .map_err(err)?;
    }
    Ok(())
}

/// Appends `events` after `head` (checking the stored last line against it) and records
/// the new head; returns it.
pub(super) fn append_events(
    tx: &Connection,
    head: Option<&AuditHead>,
    events: &[Draft],
    time: DateTime<Utc>,
    actor: &str,
    log: &AuditLog,
    err: &dyn Fn(rusqlite::Error) -> StoreError,
) -> Result<Option<AuditHead>> {
    let last: Option<String> = match head {
        Some(h) => tx
            .query_row(
                sql::SELECT_AUDIT_LINE,
                params![i64::try_from(h.seq()).unwrap_or(i64::MAX)],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?,
        None => None,
    };
    let (lines, new_head) = sql::encode_events(
        last.as_deref().map(str::as_bytes),
        head,
        events,
        time,
        actor,
        log,
    )?;
    for (seq, line) in &lines {
        tx.prepare_cached(sql::INSERT_AUDIT)
            .and_then(|mut s| s.execute(params![seq, line]))
            .map_err(err)?;
    }
    let (seq, hash) = sql::head_columns(new_head.as_ref());
    tx.execute(sql::SET_HEAD, params![seq, hash]).map_err(err)?;
    Ok(new_head)
}

/// The `migrate` event's draft.
pub(super) fn migrate_draft(records: usize, lines: usize) -> Draft {
    Draft {
        action: "migrate",
        key_id: None,
        fingerprint: None,
        outcome: Outcome::Ok,
        detail: Some(format!(
            "{records} records and {lines} audit lines imported from inventory.json and audit.jsonl"
        )),
    }
}
