//! Opening the database: the checks of the file and of SQLite's files beside it, the
//! connection's settings, the connection a reader leaves for the next, and database errors
//! in words.

use super::build::{remove_stale, stale_names, temp_name};
use super::{Db, SqliteStore};
use crate::error::{Result, StoreError};
use crate::fsutil;
use crate::store::Paths;
use crate::store::sql;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

impl SqliteStore {
    /// Opens the database for reading and writing: a regular file (never through a
    /// symlink), private to its owner, with no symlink or other non-regular file where
    /// SQLite keeps its companions (`-wal`, `-shm`, `-journal`), of a schema this build
    /// knows.
    ///
    /// The connection a reader of this process left ([`SqliteStore::keep`]) is taken
    /// instead of a new one when it is to the file there now (checked as a new one would
    /// be): a command that reads before it writes (`new`, `mint`) opens the database, and
    /// has SQLite read the log to index it, once.
    pub(super) fn connect(&self, wait: Duration) -> Result<Db, StoreError> {
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
    pub(super) fn keep(&self, db: Db) {
        if db.is_autocommit()
            && let Ok(mut idle) = self.idle.lock()
        {
            *idle = Some(db);
        }
    }

    /// A connection for a reader, or `None` when the vault has no state yet. Migrates a
    /// vault that still has its files, or settles files left beside the database; removes
    /// what a build killed before its rename left.
    pub(super) fn reader(&self) -> Result<Option<Db>, StoreError> {
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
}

/// SQLite's files beside `file`: its write-ahead log, its shared-memory index and its
/// rollback journal.
pub(super) fn companions(file: &Path) -> [PathBuf; 3] {
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
pub(super) fn check_private_file(path: &Path, meta: &std::fs::Metadata) -> Result<(), StoreError> {
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
pub(super) fn check_companions(file: &Path) -> Result<(), StoreError> {
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
pub(super) fn refuse(conn: Connection, e: StoreError) -> StoreError {
    let _ = conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false);
    drop(conn);
    e
}

/// Opens `file` (which exists) with keyvault's settings.
pub(super) fn open_connection(file: &Path, wait: Duration) -> rusqlite::Result<Connection> {
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
pub(super) fn db_error(
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
