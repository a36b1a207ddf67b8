//! Where a vault keeps its state, and the transactions that change it.
//!
//! An operation reads and changes the state (key records, the rotation journal, the audit
//! chain's head) inside one [`Txn`]: it holds the writer lock, the loaded state and the
//! audit events not yet written. [`Txn::save`] writes the records that changed, the journal
//! if it changed, and those events, and keeps the lock (a rotation saves each step before
//! the next begins); [`Txn::commit`] saves and releases it; dropping a `Txn` writes nothing
//! further. The [`Store`] trait is the seam under it, record by record: [`FileStore`] keeps
//! today's files (`inventory.json`, `audit.jsonl`, `.lock`); a database implements the same
//! calls. [`open`] picks the store `config.toml` names.

mod files;
mod guard;
#[cfg(test)]
pub(crate) mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
mod sqlite_migrate;
#[cfg(all(test, feature = "sqlite"))]
mod sqlite_tests;

#[cfg(feature = "postgres")]
pub use postgres::legacy_password_account as postgres_legacy_password_account;
#[cfg(feature = "postgres")]
pub use postgres::password_account as postgres_password_account;
#[cfg(feature = "postgres")]
pub use postgres::{
    PasswordFileIgnored as PostgresPasswordFileIgnored,
    password_file_ignored as postgres_password_file_ignored,
};
#[cfg(feature = "sqlite")]
pub use sqlite_migrate::bulk_import;

pub(crate) use files::{FileStore, Paths};

use crate::audit::Draft;
use crate::clock::Clock;
use crate::error::{Result, StoreError};
use crate::inventory::{Inventory, JournalEntry, KeyId, KeyRecord};
use crate::policy::{Config, StoreLocation};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Which records a reader or a writer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    /// Every record, history included (list, export, show by fingerprint, scan, restore).
    All,
    /// The records that are not `Revoked`, the whole journal, the audit head, and for every
    /// purpose the highest key number ever used ([`Inventory::next_id`] never reuses the id
    /// of a revoked record). status, sweep, mint, rotate, deploy, revoke, new/import, due,
    /// observe use this.
    Live,
}

/// Where a vault's state lives: key records, the rotation journal and the audit log.
///
/// Readers [`load`](Store::load) a consistent snapshot without a lock; writers
/// [`begin`](Store::begin) a session that holds the writer lock and save through it.
/// Records are never deleted: revoked ones are history.
pub(crate) trait Store: Send + Sync {
    /// A consistent snapshot of `view` (empty when nothing was ever saved), without the
    /// writer lock.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the state cannot be read or is corrupt.
    fn load(&self, view: View) -> Result<Inventory, StoreError>;

    /// Takes the writer lock, waiting at most `timeout`, and loads `view` under it.
    ///
    /// # Errors
    ///
    /// [`StoreError::Locked`] when another writer keeps it; as [`Store::load`].
    fn begin(
        &self,
        timeout: Duration,
        view: View,
    ) -> Result<(Box<dyn Session>, Inventory), StoreError>;

    /// One record by id, history included.
    ///
    /// # Errors
    ///
    /// As [`Store::load`].
    fn key(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError>;

    /// Every record, oldest first, one at a time, without holding them all in memory.
    ///
    /// # Errors
    ///
    /// As [`Store::load`], and whatever `f` returns.
    #[allow(dead_code)] // Used by the readers as they move to it.
    fn each_key(&self, f: &mut dyn FnMut(KeyRecord) -> Result<()>) -> Result<()>;

    /// The audit log's raw lines (exactly the bytes that were hashed, without the newline)
    /// with seq > `after`, oldest first.
    ///
    /// # Errors
    ///
    /// [`crate::AuditError`] when the log cannot be read, and whatever `f` returns.
    #[allow(dead_code)] // Used by the readers as they move to it.
    fn audit_lines(&self, after: u64, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()>;

    /// Where the audit log is, to name it in errors.
    fn audit_log(&self) -> crate::error::AuditLog;

    /// Sets how long its readers wait at most for the writer lock or a busy store (the
    /// vault's lock timeout; a writer is given its own in [`Store::begin`]). A store whose
    /// readers never wait ignores it.
    fn set_wait(&self, _wait: Duration) {}
}

/// A writer's hold on a [`Store`]: the lock is released when it is dropped.
pub(crate) trait Session {
    /// Writes, as one unit, the records named in `changes.keys` (inserted or changed;
    /// upsert by id), the whole journal when `changes.journal`, and `events` (stamped
    /// `time`, by `actor`) appended to the audit chain after the current head; sets
    /// `state.audit` to the new head. Keeps the lock.
    ///
    /// # Errors
    ///
    /// [`StoreError`] and [`crate::AuditError`]; nothing is written past the first error.
    fn save(
        &mut self,
        state: &mut Inventory,
        changes: &Changes,
        events: &[Draft],
        time: DateTime<Utc>,
        actor: &str,
    ) -> Result<()>;

    /// Whether [`Session::save`] reads `changes`. A store that rewrites the whole state on
    /// every save (the files) says no, and a [`Txn`] then keeps no copy of what it loaded
    /// to work them out (it passes empty [`Changes`]).
    fn uses_changes(&self) -> bool {
        true
    }

    /// Before a change outside the store that must then be recorded (a key removed from a
    /// target): whether the store takes the writes that record it, for the records of
    /// `keys`, so a store that cannot write (read-only, without the privilege, its disk
    /// full) stops the operation before anything outside changes. Writes as much as the
    /// record will take, in a transaction it rolls back. A store whose writes cannot fail
    /// that way, or that has no such check, says yes (the default): the later save still
    /// fails with the reason, and the operation reports what it left undone.
    ///
    /// # Errors
    ///
    /// As [`Session::save`]; nothing is written.
    fn check_writable(&mut self, _keys: &[KeyId]) -> Result<()> {
        Ok(())
    }
}

/// What a [`Txn`] changed since its last save: worked out by the `Txn` itself by comparing
/// the records it loaded (a snapshot taken at begin and after each save) with the state
/// now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    /// Records inserted or changed, in the state's order.
    pub keys: Vec<KeyId>,
    /// Whether the journal changed.
    pub journal: bool,
}

/// Opens the store `config` names (`store = "…"`, or what the caller set with
/// [`Config::with_store`]) for the vault at `paths`; every call on it first refuses a home
/// holding vault state that store does not read (see [`guard`]).
///
/// # Errors
///
/// [`StoreError::NotBuiltIn`] for a store this build does not have; the store's own errors
/// when it cannot be opened.
pub(crate) fn open(paths: &Paths, config: &Config) -> Result<Arc<dyn Store>> {
    let location = config.store();
    let store: Arc<dyn Store> = match &location {
        StoreLocation::Files => Arc::new(FileStore::new(paths.clone())),
        StoreLocation::Sqlite(file) => {
            open_sqlite(paths, &paths.home().join(file), config.lock_timeout())?
        }
        StoreLocation::Postgres(url) => open_postgres(paths, url)?,
    };
    Ok(Arc::new(guard::Guarded::new(
        store,
        paths.clone(),
        location,
    )))
}

/// The SQLite store at `file` (not built in yet).
#[cfg(feature = "sqlite")]
fn open_sqlite(paths: &Paths, file: &Path, wait: Duration) -> Result<Arc<dyn Store>> {
    Ok(Arc::new(sqlite::SqliteStore::new(
        paths.clone(),
        file.to_owned(),
        wait,
    )))
}

/// The SQLite store (not built in).
#[cfg(not(feature = "sqlite"))]
fn open_sqlite(_paths: &Paths, _file: &Path, _wait: Duration) -> Result<Arc<dyn Store>> {
    Err(StoreError::NotBuiltIn { store: "sqlite" }.into())
}

/// The PostgreSQL store (not built in).
#[cfg(not(feature = "postgres"))]
fn open_postgres(_paths: &Paths, _url: &str) -> Result<Arc<dyn Store>> {
    Err(StoreError::NotBuiltIn { store: "postgres" }.into())
}

/// The PostgreSQL store at `url` (connects on first use).
#[cfg(feature = "postgres")]
fn open_postgres(_paths: &Paths, url: &str) -> Result<Arc<dyn Store>> {
    Ok(Arc::new(postgres::PostgresStore::open(url)?))
}

/// The records and journal a [`Txn`] loaded or last saved, to tell what changed since.
struct Snapshot {
    keys: Vec<KeyRecord>,
    journal: Vec<JournalEntry>,
}

impl Snapshot {
    fn of(state: &Inventory) -> Self {
        Snapshot {
            keys: state.keys.clone(),
            journal: state.journal.clone(),
        }
    }

    /// What differs between this snapshot and `state`.
    fn changes(&self, state: &Inventory) -> Changes {
        let before: HashMap<&KeyId, &KeyRecord> = self.keys.iter().map(|k| (&k.id, k)).collect();
        let keys = state
            .keys
            .iter()
            .filter(|k| before.get(&k.id).is_none_or(|b| *b != *k))
            .map(|k| k.id.clone())
            .collect();
        Changes {
            keys,
            journal: self.journal != state.journal,
        }
    }
}

/// One operation's hold on the vault: the writer lock, the state loaded under it (a `Txn`
/// dereferences to it, as a lock guard does) and the audit events not yet written.
pub(crate) struct Txn {
    session: Box<dyn Session>,
    state: Inventory,
    /// What was loaded or last saved, when the session reads [`Changes`].
    saved: Option<Snapshot>,
    events: Vec<Draft>,
    changed: bool,
    clock: Arc<dyn Clock>,
    actor: String,
}

impl Txn {
    /// Begins a transaction on `store` over `view`; events are stamped by `clock` and
    /// `actor`.
    pub(crate) fn begin(
        store: &dyn Store,
        timeout: Duration,
        view: View,
        clock: Arc<dyn Clock>,
        actor: String,
    ) -> Result<Self> {
        let (session, state) = store.begin(timeout, view)?;
        Ok(Txn {
            saved: session.uses_changes().then(|| Snapshot::of(&state)),
            session,
            state,
            events: Vec::new(),
            changed: false,
            clock,
            actor,
        })
    }

    /// Adds `record` (read with [`Store::key`]: a revoked one a live view left out) to the
    /// state as loaded, so that an operation on it can change it; nothing when the state
    /// has it already.
    pub(crate) fn include(&mut self, record: KeyRecord) {
        if self.state.get(&record.id).is_none() {
            if let Some(saved) = &mut self.saved {
                saved.keys.push(record.clone());
            }
            self.state.keys.push(record);
        }
    }

    /// Queues audit events, written by the next [`Txn::save`] or [`Txn::commit`].
    pub(crate) fn record(&mut self, drafts: impl IntoIterator<Item = Draft>) {
        self.events.extend(drafts);
    }

    /// Whether audit events are queued for the next save.
    pub(crate) fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Writes the records and journal that changed and the queued events, keeping the
    /// lock: a step that must be on record before a remote one begins. Writes nothing when
    /// nothing changed.
    ///
    /// # Errors
    ///
    /// As [`Session::save`].
    pub(crate) fn save(&mut self) -> Result<()> {
        if !self.changed && self.events.is_empty() {
            return Ok(());
        }
        let changes = self
            .saved
            .as_ref()
            .map(|s| s.changes(&self.state))
            .unwrap_or_default();
        let events = std::mem::take(&mut self.events);
        self.session.save(
            &mut self.state,
            &changes,
            &events,
            self.clock.now(),
            &self.actor,
        )?;
        if self.saved.is_some() {
            self.saved = Some(Snapshot::of(&self.state));
        }
        self.changed = false;
        Ok(())
    }

    /// Whether the store takes the writes that record a change of `keys`, before that
    /// change is made outside it ([`Session::check_writable`]); writes nothing.
    ///
    /// # Errors
    ///
    /// As [`Session::save`].
    pub(crate) fn check_writable(&mut self, keys: &[KeyId]) -> Result<()> {
        self.session.check_writable(keys)
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

/// Borrowing the state mutably marks it changed: the next save writes what differs.
impl DerefMut for Txn {
    fn deref_mut(&mut self) -> &mut Inventory {
        self.changed = true;
        &mut self.state
    }
}

#[cfg(test)]
pub(crate) mod tests;
