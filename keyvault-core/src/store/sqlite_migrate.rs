//! Moving a vault's files into its SQLite database ([`migrate`]), and filling a new
//! database with many records at once ([`bulk_import`], for `make-fleet`).

use super::sqlite::{SqliteStore, append_events, migrate_draft, write_journal, write_record};
use crate::audit;
use crate::error::{Result, StoreError};
use crate::fsutil;
use crate::inventory::KeyRecord;
use chrono::Utc;
use rusqlite::params;
use std::path::{Path, PathBuf};

/// The largest audit log a migration reads (as the files store reads it).
const MAX_LOG_BYTES: u64 = 1 << 30;

/// Imports `inventory.json` and `audit.jsonl` into a new database, with the writer lock
/// held: the inventory is read as the files store reads it (a corrupt file or one of a
/// newer version is refused and nothing changes), the chain verified against its head,
/// then records, journal, every audit line and a `migrate` event are written in one
/// transaction and the database renamed into place; the old files are kept, renamed
/// `*.migrated`.
pub(super) fn migrate(store: &SqliteStore) -> Result<(), StoreError> {
    let paths = store.paths();
    let inventory = paths.load()?;
    let audit_path = paths.audit_path();
    let verified = audit::verify(&audit_path, inventory.audit_head()).map_err(|e| {
        StoreError::CorruptInventory {
            path: audit_path.clone(),
            detail: format!("not migrated: {e}"),
        }
    })?;
    let bytes = fsutil::read_optional(&audit_path, MAX_LOG_BYTES)?.unwrap_or_default();
    let lines: Vec<&[u8]> = match bytes.strip_suffix(b"\n") {
        Some(body) => body.split(|b| *b == b'\n').collect(),
        None => Vec::new(),
    };
    debug_assert_eq!(lines.len() as u64, verified.events);
    // The lines' own head: an announced tail an interrupted append left is kept.
    let head = audit::head_of(&bytes);
    // Never back in time from the newest line (a clock behind it would refuse the append).
    let newest = lines
        .iter()
        .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            v.get("time")?
                .as_str()?
                .parse::<chrono::DateTime<Utc>>()
                .ok()
        })
        .max();
    let now = newest.map_or_else(Utc::now, |t| t.max(Utc::now()));
    let err = |operation| {
        move |e: rusqlite::Error| StoreError::Database {
            store: store.file().display().to_string(),
            operation,
            detail: e.to_string(),
        }
    };
    store.build(|tx| {
        for record in inventory.keys() {
            write_record(tx, record).map_err(err("write"))?;
        }
        write_journal(tx, inventory.journal()).map_err(as_store)?;
        for (i, line) in lines.iter().enumerate() {
            let line = std::str::from_utf8(line).map_err(|e| StoreError::CorruptInventory {
                path: audit_path.clone(),
                detail: format!("line {} is not UTF-8 ({e})", i + 1),
            })?;
            tx.prepare_cached(super::sql::INSERT_AUDIT)
                .and_then(|mut s| s.execute(params![i64::try_from(i + 1).unwrap_or(0), line]))
                .map_err(err("write"))?;
        }
        let draft = migrate_draft(inventory.keys().len(), lines.len());
        let log = crate::error::AuditLog::Sqlite(store.file().to_owned());
        append_events(
            tx,
            head.as_ref(),
            &[draft],
            now,
            "keyvault",
            &log,
            &err("write"),
        )
        .map_err(as_store)?;
        Ok(())
    })?;
    keep_old_files(paths)
}

/// The name an old file is kept under once migrated.
fn kept(old: &Path) -> PathBuf {
    let mut kept = old.as_os_str().to_owned();
    kept.push(".migrated");
    PathBuf::from(kept)
}

/// Renames `inventory.json` and `audit.jsonl` (those there are) to `*.migrated`.
fn keep_old_files(paths: &super::Paths) -> Result<(), StoreError> {
    for old in [paths.inventory_path(), paths.audit_path()] {
        // Outside fsutil: a rename inside the checked home, which writes no data and follows
        // no link (a link at either name is itself moved or replaced); the directory is
        // fsynced below.
        match std::fs::rename(&old, kept(&old)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StoreError::Io {
                    operation: "rename",
                    path: old,
                    source: e,
                });
            }
            _ => {}
        }
    }
    fsutil::sync_dir(paths.home())
}

/// With the writer lock held, a vault that has both its database and its files: when the
/// database holds the files' audit log (its last line is the database's line of that
/// number, so by the chain every line before it too; or both are empty of records), a
/// migration stopped between renaming the database into place and renaming the files, and
/// this finishes it. Anything else (files made after the migration, another vault's, or a
/// `*.migrated` already there that a rename would replace) is
/// [`StoreError::NotMigrated`]: never ignored, nothing changed.
pub(super) fn settle(store: &SqliteStore) -> Result<(), StoreError> {
    let paths = store.paths();
    let bytes = fsutil::read_optional(&paths.audit_path(), MAX_LOG_BYTES)?.unwrap_or_default();
    let held = match audit::head_of(&bytes) {
        Some(head) => store.holds_line(head.seq(), head.hash())?,
        None => paths.load()?.keys().is_empty(),
    };
    let old = [paths.inventory_path(), paths.audit_path()];
    let present = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    let clobbers = old.iter().any(|p| present(p) && present(&kept(p)));
    if held && !clobbers {
        return keep_old_files(paths);
    }
    let path = old.into_iter().find(|p| present(p)).unwrap_or_default();
    Err(StoreError::NotMigrated {
        path,
        database: store.file().to_owned(),
    })
}

/// A store error from the wider error type (a database append fails only with these).
fn as_store(e: crate::Error) -> StoreError {
    match e {
        crate::Error::Store(e) => e,
        other => StoreError::Database {
            store: String::new(),
            operation: "write",
            detail: other.to_string(),
        },
    }
}

/// Makes the SQLite database of a vault home that has none from `records` (in order), in
/// one transaction: the benchmarks' million-record vaults (`make-fleet`). No audit events.
///
/// # Errors
///
/// [`StoreError`] when the home already has a database or state files, or it cannot be
/// written.
#[doc(hidden)]
pub fn bulk_import(home: &Path, records: &mut dyn Iterator<Item = KeyRecord>) -> Result<()> {
    fsutil::check_home(home)?;
    let paths = super::Paths::new(home.to_owned());
    paths.ensure_layout()?;
    let wait = crate::policy::Config::default().lock_timeout();
    let store = SqliteStore::new(paths.clone(), home.join("vault.db"), wait);
    let _lock = paths.lock(wait)?;
    if std::fs::symlink_metadata(store.file()).is_ok()
        || std::fs::symlink_metadata(paths.inventory_path()).is_ok()
    {
        return Err(StoreError::Io {
            operation: "create",
            path: store.file().to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        }
        .into());
    }
    store.build(|tx| {
        for record in records {
            write_record(tx, &record).map_err(|e| StoreError::Database {
                store: store.file().display().to_string(),
                operation: "write",
                detail: e.to_string(),
            })?;
        }
        Ok(())
    })?;
    Ok(())
}
