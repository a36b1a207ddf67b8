//! Writing the rows: a writer's session (one `BEGIN IMMEDIATE … COMMIT` per save, and the
//! checkpoint that keeps the log short), and the writes a migration shares with it.

use super::open::{companions, db_error};
use super::read::read_head;
use super::{Db, SqliteStore, WriterLock};
use crate::audit::{AuditHead, Draft, Outcome};
use crate::error::{AuditLog, Result, StoreError};
use crate::inventory::{Inventory, JournalEntry, KeyRecord};
use crate::store::sql::{self, Dialect, KeyRow};
use crate::store::{Changes, Session};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
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

/// A writer on a [`SqliteStore`]: holds the writer lock and a connection.
pub(super) struct SqliteSession {
    /// Dropped first (fields drop in order): the next writer goes on while this
    /// connection closes (which leaves the log as it is).
    pub(super) _lock: WriterLock,
    pub(super) store: SqliteStore,
    pub(super) conn: Db,
    pub(super) timeout: Duration,
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
pub(in crate::store) fn write_record(
    tx: &Connection,
    record: &KeyRecord,
) -> Result<(), rusqlite::Error> {
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
pub(in crate::store) fn write_journal(tx: &Connection, journal: &[JournalEntry]) -> Result<()> {
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
pub(in crate::store) fn append_events(
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
pub(in crate::store) fn migrate_draft(records: usize, lines: usize) -> Draft {
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
