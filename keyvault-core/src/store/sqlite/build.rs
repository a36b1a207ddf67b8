//! Making a database: built under a temporary name beside it and renamed into place once
//! whole, and what a build killed before its rename (or a database removed without its
//! log) left, removed.

use super::SqliteStore;
use super::open::{companions, open_connection};
use crate::audit;
use crate::error::{Result, StoreError};
use crate::fsutil;
use crate::store::sql::{self, Dialect};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, TransactionBehavior, params};
use std::path::{Path, PathBuf};

impl SqliteStore {
    /// Makes the database: a new file beside it (0600, created exclusively, never through
    /// a link) gets the schema and whatever `fill` writes in one transaction, and is
    /// renamed into place once complete. Call with the writer lock held.
    pub(in crate::store) fn build(
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
}

/// The name a database is built under before it is renamed into place.
pub(super) fn temp_name(file: &Path) -> PathBuf {
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
pub(super) fn stale_names(tmp: &Path) -> [PathBuf; 4] {
    let [wal, shm, journal] = companions(tmp);
    [tmp.to_path_buf(), wal, shm, journal]
}

/// Removes what an interrupted build left (the file and SQLite's companions; a link there
/// is removed, not followed).
pub(super) fn remove_stale(tmp: &Path) -> Result<(), StoreError> {
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
